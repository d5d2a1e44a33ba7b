"""Amounts exact or refused with the JSON path; bad JSON names the path and the rule; editions."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.catalog import CEB_NS, load
from gateway.errors import MappingError
from gateway.mapping import Context, json_from_xml, loads, xml_from_json
from gateway.validate import detect
from gateway.xmlio import parse

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load()


def _sample_json(name: str) -> dict[str, Any]:
    parsed = parse((ROOT / "samples" / "valid" / name).read_bytes())
    ident = CATALOG.identify(parsed)
    edition = detect(ident)[0]
    assert edition is not None
    return json_from_xml(parsed.root, ident.type, edition)


def _order(**head: Any) -> bytes:
    """The sample order as JSON text, with ``head`` replacing OrderHead fields (raw JSON values)."""
    doc = _sample_json("CEB311.xml")
    text = json.dumps(doc, ensure_ascii=False)
    for k, v in head.items():
        old = json.dumps(doc["order"][0]["orderHead"][k], ensure_ascii=False)
        text = text.replace(f'"{k}": {old}', f'"{k}": {v}', 1)
    return text.encode()


def _field(xml: bytes, name: str) -> str:
    el = parse(xml).root.find(f".//{{{CEB_NS}}}{name}")
    assert el is not None and el.text is not None
    return el.text


def _refusal(data: bytes, **kw: Any) -> MappingError:
    with pytest.raises(MappingError) as info:
        xml_from_json(loads(data), CATALOG, **kw)
    return info.value


@pytest.mark.parametrize(("raw", "written"), [
    ('"0.1"', "0.1"), ("0.1", "0.1"), ("1e-5", "0.00001"), ('"1117.80"', "1117.80"), ("12", "12"),
    ('"1234567890123456789"', "1234567890123456789"), ("1234567890123456789", "1234567890123456789"),
    ("12345678901234.12345", "12345678901234.12345"), ("0.10000000", "0.10000000"),
])
def test_amounts_are_exact(raw: str, written: str) -> None:
    _, _, xml = xml_from_json(loads(_order(acturalPaid=raw)), CATALOG)
    assert _field(xml, "acturalPaid") == written


@pytest.mark.parametrize(("raw", "rule"), [
    ("1e-7", "CEBGW-JSON-AMOUNT"), ('"12345678901234567890"', "CEBGW-JSON-AMOUNT"),
    ("12345678901234567890", "CEBGW-JSON-AMOUNT"), ("123456789012345.12345", "CEBGW-JSON-AMOUNT"),
    ('"1,00"', "CEBGW-JSON-TYPE"), ('"1e-5"', "CEBGW-JSON-TYPE"), ("true", "CEBGW-JSON-TYPE"),
    ("[1]", "CEBGW-JSON-TYPE"),
])
def test_amounts_that_cannot_be_exact_are_refused_with_the_path(raw: str, rule: str) -> None:
    err = _refusal(_order(acturalPaid=raw))
    assert [(f.code, f.path) for f in err.findings] == [(rule, "/order/0/orderHead/acturalPaid")]


def test_wrong_type_unknown_missing_and_too_long_are_all_named() -> None:
    doc = loads(_order(orderNo="12", buyerName='"' + "x" * 61 + '"'))
    head = doc["order"][0]["orderHead"]
    del head["ebpCode"]
    head["buyer_phone"] = "1"
    err = _refusal(json.dumps(doc, default=str).encode())
    got = {(f.code, f.path) for f in err.findings}
    assert got == {("CEBGW-JSON-TYPE", "/order/0/orderHead/orderNo"),
                   ("CEBGW-JSON-LENGTH", "/order/0/orderHead/buyerName"),
                   ("CEBGW-JSON-REQUIRED", "/order/0/orderHead/ebpCode"),
                   ("CEBGW-JSON-UNKNOWN", "/order/0/orderHead/buyer_phone")}
    assert err.http_status == 422
    assert all(f.message.startswith(f.path or "?") for f in err.findings)


def test_not_json_or_a_key_given_twice_is_a_syntax_error() -> None:
    for data in (b"{", b"[1]", b'{"a": 1, "a": 2}', b'{"a": NaN}'):
        with pytest.raises(MappingError) as info:
            loads(data)
        assert info.value.code == "CEBGW-JSON-SYNTAX"


def test_defaults_fill_what_the_json_leaves_out() -> None:
    from datetime import UTC, datetime
    doc = loads(_order())
    head = doc["order"][0]["orderHead"]
    for k in ("guid", "appType", "appTime", "appStatus", "currency"):
        del head[k]
    del doc["guid"]
    doc["baseTransfer"] = {"copName": doc["baseTransfer"]["copName"]}
    head["acturalPaid"] = Decimal("1222.52")
    ctx = Context(code="3301960A7Z", dxp_id="DXPENT0000458762",
                  clock=lambda: datetime(2026, 11, 23, 2, 7, 22, tzinfo=UTC))
    _, _, xml = xml_from_json(doc, CATALOG, ctx=ctx)
    assert _field(xml, "appTime") == "20261123100722"  # Beijing time
    assert (_field(xml, "appType"), _field(xml, "appStatus"), _field(xml, "currency")) == ("1", "2", "142")
    assert len(_field(xml, "guid")) == 36
    assert (_field(xml, "copCode"), _field(xml, "dxpId"), _field(xml, "dxpMode")) == (
        "3301960A7Z", "DXPENT0000458762", "DXP")


def test_iso_times_and_currency_names_are_converted() -> None:
    _, _, xml = xml_from_json(loads(_order(appTime='"2026-11-23T02:07:22Z"', currency='"cny"')), CATALOG)
    assert (_field(xml, "appTime"), _field(xml, "currency")) == ("20261123100722", "142")
    err = _refusal(_order(appTime='"yesterday"'))
    assert [(f.code, f.path) for f in err.findings] == [("CEBGW-JSON-FORMAT", "/order/0/orderHead/appTime")]


def test_one_record_may_be_given_as_an_object() -> None:
    doc = loads(_order())
    doc["order"] = doc["order"][0]
    _, _, xml = xml_from_json(doc, CATALOG)
    assert _field(xml, "orderNo") == "SO20261123000458001"


def test_the_type_comes_from_the_body_or_the_caller() -> None:
    doc = loads(_order())
    del doc["messageType"]
    err = _refusal(json.dumps(doc, default=str).encode())
    assert err.code == "CEBGW-JSON-REQUIRED"
    t, _, _ = xml_from_json(doc, CATALOG, message_type="CEB311")
    assert t.code == "CEB311"
    assert _refusal(_order(), message_type="CEB411").code == "CEBGW-MAPPING"


def test_an_edition_that_cannot_hold_a_value_refuses_it_naming_the_field() -> None:
    doc = _sample_json("CEB303-2018.xml")  # ebpCode of 50 characters: 2018 takes 50, 202205 18
    err = _refusal(json.dumps(doc, ensure_ascii=False).encode(), edition="202205")
    assert {(f.code, f.path) for f in err.findings} >= {("CEBGW-MAPPING", "/order/0/orderHead/ebpCode")}
    assert "2018" in err.findings[0].message and "at most 18" in err.findings[0].message


def test_a_202205_message_carried_into_2018() -> None:
    doc = _sample_json("CEB311.xml")
    t, edition, xml = xml_from_json(doc, CATALOG, edition="2018")
    assert edition == "2018"
    ident = CATALOG.identify(parse(xml))
    assert detect(ident)[:2] == ("2018", []) or detect(ident)[1] == []


def test_receipt_return_info_is_parsed_into_code_and_text() -> None:
    doc = _sample_json("CEB622.xml")
    infos = [r["returnInfo"] for r in doc["inventoryReturn"]]
    assert any(isinstance(i, str) for i in infos) or infos
    xml = (ROOT / "samples" / "valid" / "CEB622.xml").read_bytes().replace(
        "新增申报成功".encode(), b"[Code:1800;Desc:OK]", 1)
    root = parse(xml).root
    el = root.find(f".//{{{CEB_NS}}}returnInfo")
    assert el is not None
    el.text = "[Code:1800;Desc:逻辑校验通过]"
    doc = json_from_xml(parse(etree.tostring(root)).root, CATALOG.types["CEB622"], "202205")
    assert doc["inventoryReturn"][0]["returnInfo"] == {"code": "1800", "text": "逻辑校验通过"}
    _, _, back = xml_from_json(doc, CATALOG)
    assert _field(back, "returnInfo") == "[Code:1800;Desc:逻辑校验通过]"


_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(
    lambda s: s.strip() == s and s != "")
_amount = st.decimals(min_value=Decimal("-99999999999999"), max_value=Decimal("99999999999999"),
                      places=5, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(name=_text, note=_text, paid=_amount, as_string=st.booleans(), items=st.integers(1, 5))
def test_property_json_to_xml_to_json(name: str, note: str, paid: Decimal, as_string: bool,
                                       items: int) -> None:
    doc = _sample_json("CEB311.xml")
    head = doc["order"][0]["orderHead"]
    head["buyerName"], head["note"] = name, note
    head["acturalPaid"] = format(paid, "f") if as_string else paid
    line = doc["order"][0]["orderList"][0]
    doc["order"][0]["orderList"] = [{**line, "gnum": i + 1} for i in range(items)]
    _, edition, xml = xml_from_json(doc, CATALOG)
    back = json_from_xml(parse(xml).root, CATALOG.types["CEB311"], edition)
    head["acturalPaid"] = format(paid, "f")
    assert back == doc


@settings(max_examples=80, deadline=None)
@given(text=st.text(max_size=40))
def test_property_any_text_round_trips_or_is_refused_at_its_path(text: str) -> None:
    doc = _sample_json("CEB311.xml")
    doc["order"][0]["orderHead"]["note"] = text
    try:
        _, edition, xml = xml_from_json(doc, CATALOG)
    except MappingError as exc:
        assert [(f.code, f.path) for f in exc.findings] == [("CEBGW-JSON-FORMAT", "/order/0/orderHead/note")]
        return
    back = json_from_xml(parse(xml).root, CATALOG.types["CEB311"], edition)
    assert back["order"][0]["orderHead"]["note"] == text


def test_extend_message_free_xml_is_refused_both_ways() -> None:
    xml = (ROOT / "samples" / "valid" / "CEB311.xml").read_bytes().replace(
        b"</ceb:BaseTransfer>", b"</ceb:BaseTransfer><ceb:ExtendMessage><ceb:name>x</ceb:name>"
        b"<ceb:version>1</ceb:version><ceb:Message><a xmlns='urn:x'/></ceb:Message></ceb:ExtendMessage>")
    with pytest.raises(MappingError, match="free XML"):
        json_from_xml(parse(xml).root, CATALOG.types["CEB311"], "202205")
    doc = _sample_json("CEB311.xml")
    doc["extendMessage"] = {"name": "x", "version": "1", "message": {}}
    err = _refusal(json.dumps(doc, ensure_ascii=False).encode())
    assert [(f.code, f.path) for f in err.findings] == [("CEBGW-MAPPING", "/extendMessage/message")]


@pytest.mark.parametrize("raw", ["1e999999999", "-1E-999999999"])
def test_huge_exponents_are_refused_without_writing_them_out(raw: str) -> None:
    err = _refusal(_order(acturalPaid=raw))
    found = [(f.code, f.path) for f in err.findings]
    assert found == [("CEBGW-JSON-AMOUNT", "/order/0/orderHead/acturalPaid")]


def test_json_nested_too_deeply_is_a_syntax_error() -> None:
    with pytest.raises(MappingError) as info:
        loads(b"[" * 100_000 + b"]" * 100_000)
    assert info.value.code == "CEBGW-JSON-SYNTAX"
