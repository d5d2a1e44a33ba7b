"""The rule engine: rules load from data, every code is stable, and each kind of rule fires."""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lenient import parse_keeping_markup
from lxml import etree

from gateway.catalog import CEB_NS, DS_NS, load
from gateway.errors import ConfigError, Finding, InputError
from gateway.pipeline import validate_bytes
from gateway.sandbox import samplegen
from gateway.validate import detect, findings_of, overlay, rules
from gateway.xmlio import parse


def _set(data: bytes, field: str, old: str, new: str) -> bytes:
    tag = f"<ceb:{field}>".encode()
    assert tag + old.encode() in data, (field, old)
    return data.replace(tag + old.encode(), tag + new.encode(), 1)


def _text(data: bytes, field: str) -> str:
    root = parse(data).root
    el = next(root.iter(f"{{{root.nsmap['ceb']}}}{field}"))
    return el.text or ""


def test_rules_load_with_unique_codes() -> None:
    loaded = rules.load_rules()
    codes = [r.code for r in loaded]
    assert len(codes) == len(set(codes)) and len(codes) >= 30
    kinds = {r.kind for r in loaded}
    assert {"codelist", "format", "sum", "product", "lines_sum", "sequence", "required_when"} <= kinds


def test_unknown_group_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        rules._select(["no-such-group"], load())


@pytest.mark.parametrize("code", ["CEB311", "CEB411", "CEB511", "CEB303", "CEB505", "CEB312", "CEB622"])
def test_generated_messages_pass_the_rules(code: str) -> None:
    data = samplegen.build(code, records=2, lines=3, seed=7)
    t = load()[code]
    assert [f for f in rules.check(parse(data).root, t) if f.severity == "error"] == []


def test_acturalpaid_is_exact_to_the_last_fen() -> None:
    data = samplegen.build("CEB311", lines=3, seed=3)
    paid = Decimal(_text(data, "acturalPaid"))
    bad = _set(data, "acturalPaid", _text(data, "acturalPaid"), str(paid + Decimal("0.01")))
    report = validate_bytes(bad)
    assert [f.code for f in report.errors] == ["CEBGW-RULE-ACTURALPAID"]
    f = report.errors[0]
    assert f.field == "acturalPaid" and f.path == "/CEB311Message/Order/OrderHead/acturalPaid"
    assert f.message_zh and "实际支付" in f.message_zh


def test_record_index_in_path_for_the_third_record() -> None:
    data = samplegen.build("CEB311", records=3, lines=2, seed=5)
    root = parse(data).root
    ns = root.nsmap["ceb"]
    heads = list(root.iter(f"{{{ns}}}OrderHead"))
    heads[2].find(f"{{{ns}}}appType").text = "9"  # type: ignore[union-attr]
    from lxml import etree

    report = validate_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    assert [(f.code, f.path) for f in report.errors] == [
        ("CEBGW-RULE-APPTYPE", "/CEB311Message/Order[3]/OrderHead/appType")]


def test_gnum_gap_names_the_line() -> None:
    data = samplegen.build("CEB621", lines=3, seed=2)
    root = parse(data).root
    ns = root.nsmap["ceb"]
    gnums = list(root.iter(f"{{{ns}}}gnum"))
    gnums[1].text = "3"
    found = rules.check(root, load()["CEB621"])
    assert [(f.code, f.path) for f in found] == [
        ("CEBGW-RULE-GNUM", "/CEB621Message/Inventory/InventoryList[2]/gnum")]


def test_warning_does_not_invalidate() -> None:
    data = samplegen.build("CEB311", seed=1)
    root = parse(data).root
    guid = root.get("guid") or ""
    report = validate_bytes(data.replace(guid.encode(), guid.lower().encode()))
    assert report.valid
    assert [f.code for f in report.warnings] == ["CEBGW-RULE-GUID-FORM"]


def test_formats_check_real_dates() -> None:
    ok = rules.FORMATS
    assert ok["datetime14"]("20261123235959") and not ok["datetime14"]("20261323000000")
    assert ok["date8"]("20240229") and not ok["date8"]("20230229")
    assert ok["datetime17"]("20261123101010123") and not ok["datetime17"]("20261123101010")
    assert ok["integer"]("-301010") and not ok["integer"]("12a")


# --------------------------------------------------------------------------- the overlay schema

XS = "http://www.w3.org/2001/XMLSchema"
ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "samples").glob("*/*.xml"))


@cache
def _pattern_schema(pattern: str) -> etree.XMLSchema:
    doc = etree.Element(f"{{{XS}}}schema", nsmap={"xs": XS})
    el = etree.SubElement(doc, f"{{{XS}}}element", name="v")
    restriction = etree.SubElement(etree.SubElement(el, f"{{{XS}}}simpleType"), f"{{{XS}}}restriction",
                                   base="xs:string")
    etree.SubElement(restriction, f"{{{XS}}}pattern", value=pattern)
    return etree.XMLSchema(doc)


def _libxml2_matches(pattern: str, value: str) -> bool:
    """Does libxml2, the engine the overlay runs on, match ``value`` against the XSD pattern?"""
    v = etree.Element("v")
    v.text = value
    return bool(_pattern_schema(pattern).validate(v))


def _accepted(fmt: str, value: str) -> bool:
    """What the format rule does with an element text: strip, then check unless empty."""
    v = value.strip()
    return not v or rules.FORMATS[fmt](v)


def _plain_path(data: bytes) -> list[Finding]:
    """Findings as computed without the overlay: the plain XSD, then every rule."""
    ident = load().identify(parse_keeping_markup(data))
    return detect(ident)[1] + rules.check(ident.root, ident.type)


def _overlay_path(data: bytes) -> list[Finding]:
    return findings_of(load().identify(parse_keeping_markup(data))).findings


PATTERN_PROBES = [
    "", " ", "1", " 1", "1 ", "01", "-1", "--1", "+1", "1.0", "１", "abc", "0" * 36, "0" * 35,
    "123456", "12345a",
    "20240229", "20230229", "00000101", "99991231", "19000229", "20000229", "20241301", "20240431",
    "20261123235959", "20261123240000", "20261123235960", "20261123101010123", "2026112310101012",
    "991A45A0-8EC6-44E8-81A1-13791448F596", "991a45a0-8ec6-44e8-81a1-13791448f596",
    "991A45A0 8EC6-44E8-81A1-13791448F596", "\u3000" + "1" * 35, "1" * 35 + "\xa0",
]


@pytest.mark.parametrize("fmt", sorted(rules.FORMAT_PATTERNS))
def test_format_pattern_accepts_only_what_the_format_accepts(fmt: str) -> None:
    pattern = rules.FORMAT_PATTERNS[fmt]
    for value in PATTERN_PROBES:
        if _libxml2_matches(pattern, value):
            assert _accepted(fmt, value), (fmt, value)


@settings(max_examples=200, deadline=None)
@given(fmt=st.sampled_from(["datetime14", "date8", "datetime17", "uuid-upper", "integer", "district"]),
       data=st.data())
def test_strings_the_pattern_generates_pass_the_format(fmt: str, data: st.DataObject) -> None:
    # these patterns mean the same to Python's re; hypothesis builds strings matching them
    value = data.draw(st.from_regex(rules.FORMAT_PATTERNS[fmt], fullmatch=True))
    assert _accepted(fmt, value)


def test_date_patterns_match_exactly_the_real_dates() -> None:
    """Over ASCII digits the patterns refuse nothing the formats accept (or valid messages would
    lose the fast path), and accept nothing they refuse."""
    date8 = re.compile(rules.FORMAT_PATTERNS["date8"])
    for year in (1, 4, 100, 200, 400, 1600, 1900, 2000, 2023, 2024, 2100, 2400, 9996, 9999, 0):
        for month in range(14):
            for day in range(33):
                v = f"{year:04d}{month:02d}{day:02d}"
                assert bool(date8.fullmatch(v)) == rules.FORMATS["date8"](v), v
    dt14 = re.compile(rules.FORMAT_PATTERNS["datetime14"])
    for h, m, s in [(0, 0, 0), (23, 59, 59), (24, 0, 0), (12, 60, 0), (12, 0, 60), (9, 9, 9), (19, 5, 0)]:
        v = f"20240229{h:02d}{m:02d}{s:02d}"
        assert bool(dt14.fullmatch(v)) == rules.FORMATS["datetime14"](v), v
    for v in ("20240229", "20230229", "00010101", "99991231", "19000229", "20000229", "00000101"):
        assert _libxml2_matches(rules.FORMAT_PATTERNS["date8"], v) == rules.FORMATS["date8"](v), v


def test_guid_pattern_refuses_every_kind_of_whitespace() -> None:
    spaces = [c for c in map(chr, range(0x110000)) if c.isspace() and (c in "\t\n\r" or ord(c) >= 0x20)]
    assert "\u3000" in spaces and len(spaces) >= 20
    for c in spaces:
        for value in ("A" * 35 + c, c + "A" * 35, "A" * 17 + c + "A" * 18):
            assert not _libxml2_matches(rules.FORMAT_PATTERNS["guid"], value), hex(ord(c))
    assert _libxml2_matches(rules.FORMAT_PATTERNS["guid"], "{991a45a0-8ec6-44e8-81a1-13791448f5}")


def test_code_list_pattern_is_literal() -> None:
    spec: dict[str, object] = {"values": ["A.B", "1|2", " 3", "(4)"]}
    rule = rules.Rule("X", "codelist", "error", "x", "x", frozenset(), spec)
    pattern = rules._schema_pattern(rule)
    assert pattern is not None
    probes = ("A.B", "AxB", "1|2", "1", "2", " 3", "3", "(4)", "4")
    assert [v for v in probes if _libxml2_matches(pattern, v)] == ["A.B", "1|2", "(4)"]
    warning = rules.Rule("X", "codelist", "warning", "x", "x", frozenset(), {"values": ["1"]})
    assert rules._schema_pattern(warning) is None


def test_overlay_covers_every_error_code_list_and_format_rule() -> None:
    for t in load():
        if t.is_envelope:
            continue
        found = overlay.overlay_for(t)
        assert found is not None, t.flow
        facts = found.facts[t.code]
        presence = rules.presence_check(t.code)
        assert presence is not None, t.code  # the presence rule applies to every type
        assert facts.covered == {c.code for c in rules.schema_checks(t.code)} | {presence[0]}, t.code
        errors = {r.code for r in rules.load_rules()
                  if t.code in r.types and r.severity == "error" and r.kind in ("codelist", "format")
                  and any(not f.startswith("@") for f in r.spec["fields"])}
        assert facts.covered == errors | {"CEBGW-RULE-EMPTY-REQUIRED"}, t.code


def test_overlay_facts_for_ceb621() -> None:
    t = load()["CEB621"]
    found = overlay.overlay_for(t)
    assert found is not None
    facts = found.facts["CEB621"]
    assert {"gnum", "qty", "price", "totalPrice"} <= set(facts.columns)
    assert "itemRecordNo" not in facts.columns  # optional: not in every line
    assert facts.head_first
    assert set(facts.containers) == {f"{{{CEB_NS}}}Message", f"{{{DS_NS}}}Signature"}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_overlay_path_finds_the_same_as_the_plain_path(path: Path) -> None:
    data = path.read_bytes()
    try:
        expected = _plain_path(data)
    except InputError:
        return  # not parseable or identifiable: validation never gets that far
    assert _overlay_path(data) == expected


def _signed(data: bytes) -> bytes:
    """With a placeholder ds:Signature where the schema wants one (validation never verifies it)."""
    root = parse(data).root
    root.append(samplegen.placeholder_signature())
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _ceb621(**changes: str) -> bytes:
    """A CEB621 that passes everything, with the first element of each named field given
    new content (markup allowed)."""
    data = _signed(samplegen.build("CEB621", lines=3, seed=4))
    for field, content in changes.items():
        new = f"<ceb:{field}>{content}<".encode()
        data, n = re.subn(rf"<ceb:{field}>[^<]*<".encode(), new, data, count=1)
        assert n == 1, field
    return data


def test_overlay_path_taken_for_a_valid_message() -> None:
    data = _ceb621()
    ident = load().identify(parse(data))
    facts = overlay.validate(ident.root, ident.type)
    assert facts is not None and rules._plain(ident.root, facts.containers, CEB_NS)
    assert _overlay_path(data) == _plain_path(data) == []


@pytest.mark.parametrize("data", [
    pytest.param(_ceb621(appType="<!-- c -->1"), id="comment-before-code"),
    pytest.param(_ceb621(appType="1<!-- c -->"), id="comment-after-code"),
    pytest.param(_ceb621(appType="9<!-- c -->"), id="comment-after-bad-code"),
    pytest.param(_ceb621(gnum="<?pi x?>1"), id="pi-in-gnum"),
    pytest.param(_ceb621(price="<!-- c -->65.00"), id="comment-in-price"),
    pytest.param(_ceb621(packNo=" 1 "), id="int-code-with-spaces"),
    pytest.param(_ceb621(packNo="01"), id="int-code-leading-zero"),
    pytest.param(_ceb621(gnum=" 1"), id="gnum-with-space"),
    pytest.param(_ceb621(gnum="01"), id="gnum-leading-zero"),
    pytest.param(_ceb621(tradeMode="1210"), id="bonded-missing-fields"),
    pytest.param(_ceb621(trafNo="\u3000"), id="direct-blank-trafNo"),
    pytest.param(_ceb621(declTime="20230229"), id="not-a-date"),
    pytest.param(_ceb621(declTime="２０２４0229"), id="fullwidth-date"),
    pytest.param(_ceb621(guid="991A45A0-8EC6-44E8-81A1-13791448F59\u3000"), id="guid-ideographic-space"),
    pytest.param(_ceb621(totalPrice="1.00"), id="wrong-total"),
    pytest.param(_ceb621(gnum="2"), id="gnum-twice"),
    pytest.param(_ceb621(currency=""), id="empty-required-currency"),
    pytest.param(_ceb621(currency=" \t\r\n "), id="blank-required-currency"),
    pytest.param(_ceb621(currency="\u3000"), id="ideographic-space-currency"),
    pytest.param(_ceb621(barCode=""), id="empty-optional-barCode"),
    pytest.param(_ceb621(unit="  "), id="blank-required-line-field"),
    pytest.param(_ceb621(copNo=""), id="empty-key"),
    pytest.param(_ceb621(appType="1", orderNo=" "), id="blank-key-orderNo"),
    pytest.param(_ceb621(qty="1e0"), id="qty-not-a-decimal"),
])
def test_overlay_path_same_findings_on_edge_cases(data: bytes) -> None:
    assert _overlay_path(data) == _plain_path(data)


MAIN_SAMPLES = [p for p in SAMPLES if p.parent.name == "valid" and re.fullmatch(r"CEB\d+\.xml", p.name)]


@pytest.mark.parametrize("path", MAIN_SAMPLES, ids=lambda p: p.stem)
def test_every_field_blanked_is_judged_alike_on_both_paths(path: Path) -> None:
    """Each CEB field of a message, left empty or blank in turn, gets the same findings from the
    overlay as from the plain path: whether the overlay rules a blank value out by a pattern
    or by the field's type (a number, a date), it never passes one the presence rule refuses."""
    ident = load().identify(parse(path.read_bytes()))
    root = ident.root
    if overlay.validate(root, ident.type) is None:
        pytest.skip("this sample takes the plain path as it is")
    leaves = [i for i, el in enumerate(root.iter(f"{{{CEB_NS}}}*")) if not len(el)]
    assert leaves
    for n, index in enumerate(leaves):
        tree = etree.fromstring(etree.tostring(root))
        field = list(tree.iter(f"{{{CEB_NS}}}*"))[index]
        field.text = "" if n % 2 else " \t "
        data = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
        assert _overlay_path(data) == _plain_path(data), etree.QName(field).localname


def test_ceb_element_in_extend_message_is_still_checked() -> None:
    root = parse(samplegen.build("CEB621", lines=2, seed=4)).root
    ext = samplegen.extend_message()
    message = ext.find(f"{{{CEB_NS}}}Message")
    assert message is not None
    etree.SubElement(message, f"{{{CEB_NS}}}appType").text = "9"
    root.append(ext)
    root.append(samplegen.placeholder_signature())
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    found = _overlay_path(data)
    assert found == _plain_path(data)
    assert "CEBGW-RULE-APPTYPE" in [f.code for f in found]


@pytest.mark.parametrize("content", ["", "  \n ", None])
def test_empty_extend_message_is_judged_alike_on_both_paths(content: str | None) -> None:
    """``Message`` is required and its wildcard content may be empty: the overlay cannot rule
    a blank one out, so the presence rule still looks at it on the overlay path."""
    root = parse(samplegen.build("CEB621", lines=2, seed=4)).root
    ext = samplegen.extend_message()
    message = ext.find(f"{{{CEB_NS}}}Message")
    assert message is not None
    if content is not None:  # None: the sample's own content (child elements)
        for child in list(message):
            message.remove(child)
        message.text = content
    root.append(ext)
    root.append(samplegen.placeholder_signature())
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    ident = load().identify(parse(data))
    assert overlay.validate(ident.root, ident.type) is not None  # the overlay path is taken
    found = _overlay_path(data)
    assert found == _plain_path(data)
    assert ("CEBGW-RULE-EMPTY-REQUIRED" in [f.code for f in found]) == (content is not None)


def test_xsi_type_cannot_bypass_the_overlay() -> None:
    xsi = "http://www.w3.org/2001/XMLSchema-instance"
    root = parse(samplegen.build("CEB621", lines=2, seed=4)).root
    root.append(samplegen.placeholder_signature())
    app_type = next(root.iter(f"{{{CEB_NS}}}appType"))
    app_type.text = "9"
    app_type.set(f"{{{xsi}}}type", "xs:string")
    etree.cleanup_namespaces(root, top_nsmap={"xs": XS, "xsi": xsi})
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    assert _overlay_path(data) == _plain_path(data)


def test_checked_view_reads_what_the_xpath_view_reads() -> None:
    root = parse(samplegen.build("CEB621", records=2, lines=4, seed=8)).root
    root.append(samplegen.placeholder_signature())
    t = load()["CEB621"]
    facts = overlay.validate(root, t)
    assert facts is not None
    compiled = rules.compiled("CEB621")
    reads = compiled.checked_plan(facts).reads
    assert reads is not None and reads.column_tags and reads.head_tags
    for rec in root.iterchildren(t.q(t.record)):
        slow, fast = rules.RecordView(rec, t.head, t.lines), rules.CheckedRecordView(rec, t, reads)
        for name in ("gnum", "qty", "price", "totalPrice", "itemRecordNo", "note"):
            assert fast.line_texts(name) == slow.line_texts(name), name
        for name in ("tradeMode", "emsNo", "trafNo", "billNo", "freight"):
            assert fast.head_text(name) == slow.head_text(name), name
        for name in (*t.keys, "tradeMode", "freight", "note"):  # the keys are prefetched as elements
            assert fast.head_el(name) is slow.head_el(name), name
        assert {f"e{k}" for k in t.keys} <= set(fast._cache)
        assert fast.line_count() == slow.line_count() == 4


def test_quick_arithmetic_keeps_the_exact_verdict() -> None:
    data = samplegen.build("CEB311", lines=3, seed=3)
    qty, price = _text(data, "qty"), _text(data, "price")
    total = Decimal(qty) * Decimal(price)
    # a value with more digits than the decimal context: 1 x value rounds it, as it always did
    long_price = price + "0" * 30
    found = rules.check(parse(_set(data, "price", price, long_price)).root, load()["CEB311"])
    assert [f.code for f in found if f.code == "CEBGW-RULE-TOTALPRICE"] == []
    bad = _set(data, "totalPrice", _text(data, "totalPrice"), str(total + Decimal("0.00001")))
    assert "CEBGW-RULE-TOTALPRICE" in [f.code for f in rules.check(parse(bad).root, load()["CEB311"])]
