"""The rule engine: rules load from data, every code is stable, and each kind of rule fires."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway import samplegen
from gateway.catalog import load
from gateway.errors import ConfigError
from gateway.validate import rules, validate_bytes
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
