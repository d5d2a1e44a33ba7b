"""The comparison engine: every rule with a consistent and an inconsistent parcel."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from gateway.errors import ERRORS, ConfigError
from gateway.reconcile import (
    Limits,
    MemoryHistory,
    Parcel,
    ParcelKey,
    compare,
    load_rules,
    missing,
    parcel_from,
    rule_codes,
    spending,
)

from .parcels import consistent, document, with_head, with_line, without_line

Change = Callable[[Parcel], Parcel]

# rule code → (a change that breaks only that rule, the document and field the finding names)
BREAKS: dict[str, tuple[Change, str, str]] = {
    "CEBGW-RECON-ORDER-LINK": (lambda p: with_head(p, "CEB621", ebpCode="9999999999"), "CEB621", "ebpCode"),
    "CEBGW-RECON-PAYMENT-LINK": (lambda p: with_head(p, "CEB411", ebpCode="9999999999"), "CEB411", "ebpCode"),
    "CEBGW-RECON-PAYCODE": (lambda p: with_head(p, "CEB311", payCode="9999999999"), "CEB311", "payCode"),
    "CEBGW-RECON-AMOUNTPAID": (lambda p: with_head(p, "CEB411", amountPaid="1.00"), "CEB411", "amountPaid"),
    "CEBGW-RECON-ACTURALPAID": (lambda p: with_head(p, "CEB311", discount="1.00"), "CEB311", "acturalPaid"),
    "CEBGW-RECON-LINETOTAL": (lambda p: with_line(with_line(p, "CEB311", 0, totalPrice="66.00"),
                                                  "CEB621", 0, totalPrice="66.00"), "CEB311", "totalPrice"),
    "CEBGW-RECON-LINES": (lambda p: with_line(p, "CEB621", 1, itemName="别的商品"), "CEB621", "itemName"),
    "CEBGW-RECON-WAYBILL-LINK": (lambda p: with_head(p, "CEB511", logisticsNo="SF000"),
                                 "CEB621", "logisticsNo"),
    "CEBGW-RECON-CONSIGNEE": (lambda p: with_head(p, "CEB511", consignee="王先生"), "CEB511", "consignee"),
    "CEBGW-RECON-BUYER": (lambda p: with_head(p, "CEB621", buyerTelephone="13900000000"),
                          "CEB621", "buyerTelephone"),
    "CEBGW-RECON-PAYER": (lambda p: with_head(p, "CEB411", payerName="张三"), "CEB411", "payerName"),
    "CEBGW-RECON-CURRENCY": (lambda p: with_head(p, "CEB511", currency="502"), "CEB511", "currency"),
    "CEBGW-RECON-IDTYPE": (lambda p: with_head(with_head(p, "CEB311", buyerIdType="2"), "CEB621",
                                               buyerIdType="2"), "CEB311", "buyerIdType"),
    "CEBGW-RECON-PAYER-IDTYPE": (lambda p: with_head(p, "CEB411", payerIdType="2"), "CEB411", "payerIdType"),
    "CEBGW-RECON-ASSURE": (lambda p: with_head(p, "CEB621", assureCode="1234567890"), "CEB621", "assureCode"),
    "CEBGW-RECON-SINGLE-LIMIT": (lambda p: p, "CEB621", "totalPrice"),  # with Limits(single=100)
    "CEBGW-RECON-ANNUAL-LIMIT": (lambda p: p, "CEB621", "buyerIdNumber"),  # with a history
    "CEBGW-RECON-CHARGES": (lambda p: with_head(p, "CEB511", freight="20.00"), "CEB621", "freight"),
}
LIMITED = {"CEBGW-RECON-SINGLE-LIMIT": Limits(single=Decimal("100"))}


def _history_near_limit(p: Parcel) -> MemoryHistory:
    h = MemoryHistory()
    s = spending(p)
    assert s is not None
    h.record(s.buyer_id, s.year, ParcelKey("OTHER", "EARLIER"), Decimal("26000") - s.amount + Decimal("0.01"))
    return h


def test_every_rule_has_a_case() -> None:
    assert set(rule_codes()) == set(BREAKS)


def test_the_consistent_parcel_has_no_finding() -> None:
    p = consistent()
    assert compare(p) == []
    assert missing(p) == ()


@pytest.mark.parametrize("code", list(BREAKS))
def test_each_rule_finds_its_inconsistency(code: str) -> None:
    change, doc, field = BREAKS[code]
    p = change(consistent())
    history = _history_near_limit(p) if code == "CEBGW-RECON-ANNUAL-LIMIT" else None
    found = compare(p, LIMITED.get(code), history)
    assert {f.code for f in found} == {code}, [f.message for f in found]
    f = found[0]
    assert (f.document, f.field) == (doc, field)
    assert f.customs_text().startswith(f"[Code:{f.customs_code};Desc:")
    assert f.zh in f.customs_text() and f.message.startswith(f.en)
    assert code in ERRORS
    # and the consistent parcel passes the rule (limit rules: under the default limits, no history)
    assert not [g for g in compare(consistent()) if g.code == code]


def test_amounts_compare_as_decimals() -> None:
    paid = document(consistent(), "CEB311").get("acturalPaid")
    p = with_head(consistent(), "CEB411", amountPaid=paid + "000")
    assert compare(p) == []
    p = with_head(p, "CEB411", amountPaid=paid + "0001")
    assert [f.code for f in compare(p)] == ["CEBGW-RECON-AMOUNTPAID"]


def test_missing_and_extra_lines_are_named_by_gnum() -> None:
    p = without_line(consistent(), "CEB621", 1)
    found = [f for f in compare(p) if f.code == "CEBGW-RECON-LINES"]
    assert [(f.field, f.line, f.values) for f in found] == [("gnum", "2", ("", "2"))]
    p = with_line(consistent(), "CEB621", 1, gnum="3")
    found = [f for f in compare(p) if f.code == "CEBGW-RECON-LINES"]
    assert sorted(f.line or "" for f in found) == ["2", "3"]


def test_a_partial_parcel_compares_what_it_has() -> None:
    full = consistent()
    p = parcel_from([document(full, "CEB311"), with_head(full, "CEB511", consignee="王先生").waybill or
                     document(full, "CEB511")])
    assert missing(p) == ("CEB411", "CEB621")
    assert [f.code for f in compare(p)] == ["CEBGW-RECON-CONSIGNEE"]
    assert compare(parcel_from([])) == []


def test_the_annual_limit_counts_other_parcels_only() -> None:
    p = consistent()
    s = spending(p)
    inventory = document(p, "CEB621")
    value = sum(Decimal(ln["totalPrice"]) for ln in inventory.lines) + Decimal(inventory.get("freight")) \
        + Decimal(inventory.get("insuredFee"))
    assert s is not None and s.year == int(inventory.get("appTime")[:4]) and s.amount == value
    h = MemoryHistory()
    h.record(s.buyer_id, s.year, p.key, Decimal("30000"))  # this very parcel, recorded before
    assert compare(p, history=h) == []
    h.record(s.buyer_id, s.year, ParcelKey("X", "Y"), Decimal("26000") - value)
    assert compare(p, history=h) == []  # exactly at the limit
    h.record(s.buyer_id, s.year, ParcelKey("X", "Y"), Decimal("26000.01") - value)
    assert [f.code for f in compare(p, history=h)] == ["CEBGW-RECON-ANNUAL-LIMIT"]
    h.record(s.buyer_id, s.year - 1, ParcelKey("X", "Z"), Decimal("99999"))
    assert len(compare(p, history=h)) == 1


def test_an_order_without_payment_fields_is_not_compared_on_them() -> None:
    p = with_head(consistent(), "CEB311", payCode="", payTransactionId="", payName="")
    assert compare(p) == []


def test_rules_load_from_text_and_refuse_mistakes() -> None:
    text = """
[[rule]]
code = "CEBGW-RECON-TEST-ONLY"
kind = "constant"
places = ["CEB511"]
field = "packNo"
value = "2"
severity = "warning"
customs = "1"
en = "packNo two"
zh = "件数二"
"""
    rules = load_rules(text)
    found = compare(consistent(), rules=rules)
    assert [(f.code, f.severity, f.values) for f in found] == [
        ("CEBGW-RECON-TEST-ONLY", "warning", ("1", "2"))]
    with pytest.raises(ConfigError, match="unknown kind"):
        load_rules(text.replace('"constant"', '"nonsense"'))
    with pytest.raises(ConfigError, match="not a parcel document"):
        load_rules(text.replace('"CEB511"', '"CEB303"'))
    with pytest.raises(ConfigError, match="missing"):
        load_rules(text.replace('customs = "1"', ""))


def test_finding_dict_carries_both_languages_and_the_customs_text() -> None:
    p = consistent()
    f = compare(with_head(p, "CEB621", buyerTelephone="13900000000"))[0]
    d = f.as_dict()
    assert d["customs_code"] == "130126"
    assert d["customs_text"] == ("[Code:130126;Desc:清单上的订购人信息与订单上的订购人信息不一致"
                                 "(CEB621 buyerTelephone)]")
    assert d["other_document"] == "CEB311"
    assert d["values"] == ["13900000000", document(p, "CEB311").get("buyerTelephone")]
    assert f.as_error_finding().code == "CEBGW-RECON-BUYER"
