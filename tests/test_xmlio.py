"""The hardened parser: hostile inputs get their exact code, fast and in bounded memory."""

from __future__ import annotations

import resource
import time
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway import xmlio
from gateway.catalog import load
from gateway.errors import InputError, ParseError
from gateway.pipeline import validate_bytes
from gateway.xmlio import element_path, parse

HOSTILE = Path(__file__).resolve().parents[1] / "samples" / "hostile"
MANIFEST = tomllib.loads((HOSTILE / "manifest.toml").read_text())["files"]


def test_manifest_covers_every_hostile_file() -> None:
    assert sorted(MANIFEST) == sorted(p.name for p in HOSTILE.glob("*.xml"))


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_hostile_file_gets_its_code(name: str) -> None:
    report = validate_bytes((HOSTILE / name).read_bytes(), source=name)
    assert not report.valid
    assert [f.code for f in report.errors] == [MANIFEST[name]], report.errors


def test_entity_bomb_is_refused_before_libxml2_expands_anything() -> None:
    data = (HOSTILE / "billion-laughs.xml").read_bytes()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    for _ in range(100):
        with pytest.raises(ParseError) as info:
            parse(data)
        assert info.value.code == "CEBGW-PARSE-DTD"
    # Bounded work: 100 refusals must not grow the process by the 3 GB an expansion would take.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 50_000
    assert time.perf_counter() - started < 5  # generous: a real expansion takes minutes


def test_doctype_inside_cdata_is_not_mistaken_for_a_dtd() -> None:
    data = (b'<?xml version="1.0"?><ceb:CEB900Message xmlns:ceb="http://www.chinaport.gov.cn/ceb" '
            b'guid="x" version="1.0"><ceb:MessageReturn><ceb:oriBizMessage><![CDATA[<!DOCTYPE x>]]>'
            b'</ceb:oriBizMessage></ceb:MessageReturn></ceb:CEB900Message>')
    assert parse(data).root.tag.endswith("CEB900Message")


def test_oversize_is_refused_without_parsing() -> None:
    with pytest.raises(ParseError) as info:
        parse(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1000)
    assert info.value.code == "CEBGW-PARSE-TOO-LARGE"


def test_depth_limit_is_configurable() -> None:
    doc = b"<r>" + b"<a>" * 10 + b"</a>" * 10 + b"</r>"
    assert parse(doc, max_depth=11).root.tag == "r"
    with pytest.raises(ParseError) as info:
        parse(doc, max_depth=10)
    assert info.value.code == "CEBGW-PARSE-TOO-DEEP"


def test_bom_and_standalone_are_accepted() -> None:
    data = (b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            b'<CEB312Message xmlns="http://www.chinaport.gov.cn/ceb" guid="x" version="1.0"/>')
    ident = load().identify(parse(data))
    assert ident.type.code == "CEB312"


def test_identify_uses_namespace_not_prefix() -> None:
    data = b'<x:CEB311Message xmlns:x="http://www.chinaport.gov.cn/ceb" guid="g" version="1.0"/>'
    assert load().identify(parse(data)).type.code == "CEB311"
    with pytest.raises(InputError) as info:
        load().identify(parse(b'<ceb:CEB311Message xmlns:ceb="urn:other"/>'))
    assert info.value.code == "CEBGW-IDENT-NAMESPACE"


def test_element_path_indexes_repeated_records() -> None:
    doc = b'<r xmlns="urn:a"><Order><h/></Order><Order><h/></Order><Order><h><f/></h></Order></r>'
    root = parse(doc).root
    f = root[2][0][0]
    assert element_path(f) == "/r/Order[3]/h/f"
    assert element_path(root[0][0]) == "/r/Order[1]/h"


def test_cdata_and_character_references_are_merged_into_one_text_node() -> None:
    root = parse(b"<a>2<![CDATA[0]]>&#48;&#x31;&amp;<![CDATA[<b/>]]></a>").root
    assert root.text == "2001&<b/>" and len(root) == 0 and list(root.iter()) == [root]


@pytest.mark.parametrize("doc,code", [
    (b"<a>2<!---->0</a>", "CEBGW-PARSE-COMMENT"),
    (b"<a><b/><!-- c --></a>", "CEBGW-PARSE-COMMENT"),
    (b"<a>x<?pi?>y</a>", "CEBGW-PARSE-PI"),
    (b"<a><b><c><?pi deep?></c></b></a>", "CEBGW-PARSE-PI"),
])
def test_comments_and_pis_inside_the_root_are_refused_with_where(doc: bytes, code: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(doc)
    assert info.value.code == code
    finding = info.value.findings[0]
    assert finding.code == code and finding.path and finding.field and finding.line == 1


@pytest.mark.parametrize("doc", [
    b'<?xml version="1.0"?>\n<!-- before --><?pi before?><a>1</a><!-- after --><?pi after?>',
    b"<!--only a comment first--><a/>",
])
def test_comments_and_pis_outside_the_root_are_allowed(doc: bytes) -> None:
    assert parse(doc).root.tag == "a"


@pytest.mark.parametrize("data", [
    "<a>中</a>".encode("utf-16"), "<a/>".encode("utf-16-le"), "<a/>".encode("utf-16-be"),
    "<a/>".encode("utf-32"), b'\xef\xbb\xbf<?xml version="1.0" encoding="GBK"?><a/>',
    b'<?xml version="1.0" encoding=\'latin1\'?><a/>', b"<a>\xc0\xaf</a>", b"<a>\xed\xa0\x80</a>",
    b"<a>\xff</a>", '<?xml version="1.0" encoding="GB18030"?><a>中</a>'.encode("gb18030"),
])
def test_anything_but_utf8_is_refused(data: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse(data)
    assert info.value.code == "CEBGW-PARSE-ENCODING"


def test_bounds_on_attributes_namespaces_and_nodes() -> None:
    attrs = b" ".join(b'a%d="1"' % i for i in range(33))
    with pytest.raises(ParseError) as info:
        parse(b"<r><x " + attrs + b"/></r>")
    assert info.value.code == "CEBGW-PARSE-TOO-MANY-ATTRIBUTES" and info.value.findings[0].path == "/r/x"
    assert parse(b"<r><x " + attrs + b"/></r>", max_attributes=33).root.tag == "r"
    decls = b" ".join(b'xmlns:p%d="urn:%d"' % (i, i) for i in range(40))
    with pytest.raises(ParseError) as info:
        parse(b"<r " + decls + b"><x/></r>")
    assert info.value.code == "CEBGW-PARSE-TOO-MANY-NAMESPACES"
    many = b"<r>" + b"<x/>" * 2000 + b"</r>"
    assert parse(many, max_nodes=2001).root.tag == "r"
    with pytest.raises(ParseError) as info:
        parse(many, max_nodes=2000)
    assert info.value.code == "CEBGW-PARSE-TOO-MANY-NODES"
    with pytest.raises(ParseError) as info:
        parse(b"<r>" + b'<x a="1" b="2"/>' * 1000 + b"</r>", max_nodes=2500)
    assert info.value.code == "CEBGW-PARSE-TOO-MANY-NODES"


def test_the_node_limit_counts_elements_and_attributes_exactly() -> None:
    doc = b"<r>" + b"<x a='1'></x>" * 1000 + b"</r>"  # 1001 elements, 1000 attributes, 2002 "<"
    assert parse(doc, max_nodes=2001).root.tag == "r"
    with pytest.raises(ParseError) as info:
        parse(doc, max_nodes=2000)
    assert info.value.code == "CEBGW-PARSE-TOO-MANY-NODES"


_NOT_UTF8 = b"\xc0\xaf"  # an overlong "/": not UTF-8


@pytest.mark.parametrize("doc", [
    b"<a>x" + _NOT_UTF8 + b"</a>",
    b'<a x="' + _NOT_UTF8 + b'"/>',
    b"<!--" + _NOT_UTF8 + b"--><a/>",
    b"<?pi " + _NOT_UTF8 + b"?><a/>",
    b"<a/><!--" + _NOT_UTF8 + b"-->",
    b"<a><![CDATA[" + _NOT_UTF8 + b"]]></a>",
    b"<a" + _NOT_UTF8 + b"/>",
    b"<a/>\n" + _NOT_UTF8,
    b'<a x="\xed\xa0\x80"/>',  # a UTF-16 surrogate written as UTF-8
    b"<a>\xf4\x90\x80\x80</a>",  # above U+10FFFF
], ids=["text", "attribute", "prolog-comment", "prolog-pi", "epilog-comment", "cdata", "name", "epilog",
        "surrogate", "above-10ffff"])
def test_bytes_that_are_not_utf8_are_refused_wherever_they_are(doc: bytes) -> None:
    """The parser leaves the byte-by-byte UTF-8 check to libxml2 (told the input is UTF-8) and
    explains a refusal: wherever such bytes sit, the answer is the encoding error naming the byte."""
    with pytest.raises(ParseError) as info:
        parse(doc)
    assert info.value.code == "CEBGW-PARSE-ENCODING"
    with pytest.raises(UnicodeDecodeError) as bad:
        doc.decode("utf-8")
    assert f"byte {bad.value.start} " in info.value.message


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="<?!->xml \"=", max_size=40).map(str.encode))
def test_markup_prefilter_is_the_exact_test(body: bytes) -> None:
    """``_may_hold_markup`` looks for "!" and "?" first; it answers as the exact test does."""
    for doc in (body, b'<?xml version="1.0"?>' + body, b"<?xml-stylesheet href=\"a\"?>" + body):
        exact = b"<!--" in doc or doc.count(b"<?") > (1 if doc.startswith(b"<?xml") else 0)
        # a ">" before the declaration's "?>": not a document the parser accepts, so never asked
        if doc.startswith(b"<?xml") and doc.find(b">") != doc.find(b"?>") + 1:
            continue
        assert xmlio._may_hold_markup(doc) == exact, doc


_PROLOG_PARTS = st.sampled_from([
    b'<?xml version="1.0" encoding="UTF-8"?>', b'<?xml version="1.0"?>',
    b"<?xml version='1.0' encoding='utf-8'?>",
    b'<?xml version="1.0" encoding="GBK"?>', b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
    b"\xef\xbb\xbf", b"\xff\xfe", b" ", b"\n", b"\t", b"\r\n", b"<!-- c -->", b"<?pi x?>", b"<!DOCTYPE r>",
    b"<!ENTITY x 'y'>", b"<r/>", b"<ceb:CEB311Message>", b"<", b"<!", b"<?", b"\x00", b""])


@settings(max_examples=600, deadline=None)
@given(st.lists(_PROLOG_PARTS, max_size=6).map(b"".join))
def test_usual_start_implies_what_the_encoding_and_prolog_checks_find(data: bytes) -> None:
    """The fast path skips the two checks only where they would let the bytes through from byte 0."""
    if xmlio._usual_start(data):
        assert xmlio._check_encoding(data, "-") == 0
        xmlio._check_prolog(data, 0, "-")  # raises on a DOCTYPE


@pytest.mark.parametrize(("data", "usual"), [
    (b'<?xml version="1.0" encoding="UTF-8"?>\n<r/>', True),
    (b'<?xml version="1.0"?><r/>', True),
    (b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE r>\n<r/>', False),
    (b'<?xml version="1.0" encoding="UTF-8"?><!-- c --><r/>', False),
    (b'<?xml version="1.0" encoding="GBK"?><r/>', False),
    (b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?><r/>', False),
    (b"<r/>", False),
])
def test_usual_start_cases(data: bytes, usual: bool) -> None:
    assert xmlio._usual_start(data) is usual


# Children as the generator writes them: a tag in one of two namespaces (or none), a comment
# or a processing instruction; the same tag may repeat, so "first" is what is being tested.
_CHILD = st.sampled_from(["<a:x/>", "<a:y>1</a:y>", "<b:x/>", "<x/>", "<a:z><a:x/></a:z>", "<!--c-->",
                          "<?p q?>"])
_TAGS = ["{urn:a}x", "{urn:a}y", "{urn:b}x", "x", "{urn:a}z", "{urn:a}missing"]


@given(st.lists(_CHILD, max_size=12), st.lists(st.sampled_from(_TAGS), max_size=4))
@settings(max_examples=300, deadline=None)
def test_child_and_first_children_answer_what_find_answers(children: list[str], tags: list[str]) -> None:
    root = etree.fromstring(f'<r xmlns:a="urn:a" xmlns:b="urn:b">{"".join(children)}</r>'.encode())
    for tag in _TAGS:
        assert xmlio.child(root, tag) is root.find(tag)
    found = xmlio.first_children(root, tags)
    assert found == {t: root.find(t) for t in tags if root.find(t) is not None}
