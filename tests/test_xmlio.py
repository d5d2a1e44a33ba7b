"""The hardened parser: hostile inputs get their exact code, fast and in bounded memory."""

from __future__ import annotations

import resource
import time
import tomllib
from pathlib import Path

import pytest

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
