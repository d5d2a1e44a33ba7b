#!/usr/bin/env python3
"""Write the broken sample messages under samples/invalid/ and their manifest.

Usage: .venv/bin/python samples/invalid/make_invalid.py

Every sample starts from a VALID message built by gateway.sandbox.samplegen (seed 1; types that need a
signature get a structurally complete dummy ``ds:Signature`` in its place) and changes it in ONE
deliberate way.  The expected findings next to each sample were worked out from the spec
(ceb-standard.md §3, §7/§8, §12) and gateway/validate/rules/*.toml, not copied from the
validator's output; tests/test_samples.py compares the two.

Deterministic: running it twice gives identical files.  manifest.toml is written by this script;
edit the expectations here, not there.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gateway.catalog import CEB_NS, DS_NS, DXP_NS  # noqa: E402
from gateway.envelope import RECEIVER_IMPORT  # noqa: E402
from gateway.sandbox import samplegen as sg  # noqa: E402

OUT = Path(__file__).resolve().parent
SEED = 1
C = "{" + CEB_NS + "}"
DS = "{" + DS_NS + "}"


# --------------------------------------------------------------------------- tree helpers


def tree(data: bytes) -> etree._Element:
    """Parse samplegen output (trusted bytes we just generated)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True)
    return etree.fromstring(data, parser)


def ser(root: etree._Element) -> bytes:
    etree.indent(root, space="  ")
    return sg.XML_DECL + etree.tostring(root, encoding="UTF-8", xml_declaration=False) + b"\n"


def el(root: etree._Element, name: str, index: int = 0) -> etree._Element:
    """The index-th element (document order) with local name ``name`` in the CEB namespace."""
    found = list(root.iter(C + name))
    return found[index]


def set_text(root: etree._Element, name: str, value: str, index: int = 0) -> None:
    el(root, name, index).text = value


def remove(root: etree._Element, name: str, index: int = 0) -> None:
    e = el(root, name, index)
    parent = e.getparent()
    assert parent is not None
    parent.remove(e)


def new(name: str, text: str | None = None, ns: str = C) -> etree._Element:
    e = etree.Element(ns + name)
    e.text = text
    return e


def insert_after(anchor: etree._Element, e: etree._Element) -> None:
    anchor.addnext(e)


def place_tail(root: etree._Element, code: str, *, signature: bool, extend: bool = False) -> None:
    """Append ds:Signature / ExtendMessage where the XSD puts them (spec §0: import vs export order)."""
    ext = [sg.extend_message()] if extend else []
    sig = [sg.placeholder_signature()] if signature else []
    items = ext + sig if sg.flow_of(code) == "import" else sig + ext
    for item in items:
        root.append(item)


NEEDS_SIGNATURE = sg.SIGNATURE_REQUIRED | {"CEB607"}  # 607: appStatus 2 (samplegen's default) needs it


def base(code: str, *, records: int = 1, lines: int = 2, extend: bool = False,
         signed: bool = False) -> etree._Element:
    """A valid message of type ``code`` as a tree, with a dummy signature where needed (or ``signed``)
    and optionally an ExtendMessage."""
    root = tree(sg.build(code, records=records, lines=lines, seed=SEED))
    place_tail(root, code, signature=signed or code in NEEDS_SIGNATURE, extend=extend)
    return root


def money(text: str | None, delta: str) -> str:
    return str(Decimal(text or "0") + Decimal(delta))


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Sample:
    name: str
    description: str
    build: Callable[[], bytes]
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    known_issue: str | None = None


def E(code: str, fld: str, path: str | None = None) -> dict[str, str]:  # noqa: N802  # reads like a table
    out = {"code": code, "field": fld}
    if path is not None:
        out["path"] = path
    return out


def mutate(code: str, change: Callable[[etree._Element], None], **kw: object) -> Callable[[], bytes]:
    def make() -> bytes:
        root = base(code, **kw)  # type: ignore[arg-type]
        change(root)
        return ser(root)

    return make


def setter(name: str, value: str, index: int = 0) -> Callable[[etree._Element], None]:
    return lambda root: set_text(root, name, value, index)


def remover(name: str, index: int = 0) -> Callable[[etree._Element], None]:
    return lambda root: remove(root, name, index)


# ---- arithmetic helpers


def _actural_off(root: etree._Element) -> None:
    e = el(root, "acturalPaid")
    e.text = money(e.text, "0.01")


def _qty_plus_one(root: etree._Element) -> None:
    """Line 1 qty + 1, price and totalPrice unchanged: totalPrice != price x qty (and nothing else)."""
    line_qty = el(root, "qty")
    line_qty.text = money(line_qty.text, "1")


def _line_price_consistent(root: etree._Element) -> None:
    """Line 1 price + 1 and totalPrice = price x qty again: only the head goodsValue is now wrong."""
    price, qty, total = el(root, "price"), el(root, "qty"), el(root, "totalPrice")
    price.text = money(price.text, "1")
    total.text = str(Decimal(price.text) * Decimal(qty.text or "0"))


def _goodsvalue_off(root: etree._Element) -> None:
    e = el(root, "goodsValue")
    e.text = money(e.text, "1")


def _gnums(*values: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        for i, v in enumerate(values):
            set_text(root, "gnum", v, i)

    return change


# ---- structure helpers


def _bonded_without_ems(root: etree._Element) -> None:
    """A bonded (1210) inventory complete except emsNo."""
    set_text(root, "tradeMode", "1210")
    insert_after(el(root, "agentName"), new("areaCode", "3301990C34"))
    insert_after(el(root, "areaCode"), new("areaName", "沙箱保税仓储经营有限公司"))
    for i, line in enumerate(root.iter(C + "InventoryList")):
        line[0].addnext(new("itemRecordNo", f"T2918W000001{i + 1:04d}"))  # after gnum


def _add_subscribe(status: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        sub = new("BaseSubscribe")
        for name, text in (("status", status), ("dxpMode", "DXP"), ("dxpAddress", "DXPENT0000458799")):
            sub.append(new(name, text))
        insert_after(el(root, "BaseTransfer"), sub)

    return change


def _swap(first: str, second: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        a, b = el(root, first), el(root, second)
        b.addnext(a)  # moves a after b

    return change


def _unknown_at_end_of_head(root: etree._Element) -> None:
    head = el(root, "OrderHead")
    head.append(new("buyerNickName", "小王"))


def _unknown_in_middle(root: etree._Element) -> None:
    insert_after(el(root, "acturalPaid"), new("couponCode", "NEWUSER10"))


def _tail_reversed(root: etree._Element) -> None:
    """Swap ds:Signature and ExtendMessage at the end of the root."""
    sig = root.find(DS + "Signature")
    ext = root.find(C + "ExtendMessage")
    assert sig is not None and ext is not None
    if root.index(sig) < root.index(ext):
        ext.addnext(sig)  # export order (Signature, ExtendMessage) -> ExtendMessage, Signature
    else:
        sig.addnext(ext)  # import order (ExtendMessage, Signature) -> Signature, ExtendMessage


def _drop_signature(root: etree._Element) -> None:
    sig = root.find(DS + "Signature")
    assert sig is not None
    root.remove(sig)


def _root_attr(name: str, value: str | None) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        if value is None:
            del root.attrib[name]
        else:
            root.set(name, value)

    return change


def _head_guid_with_space(root: etree._Element) -> None:
    g = el(root, "guid")
    text = g.text or ""
    g.text = text[:8] + " " + text[9:]  # still 36 characters
    assert len(g.text) == 36


def _lower_root_guid(root: etree._Element) -> None:
    root.set("guid", root.get("guid", "").lower())


# ---- DXP


def _dxp(payload: bytes, msg_type: str, receivers: list[str] | None = None) -> bytes:
    return sg.build_dxp_msg(payload, msg_type=msg_type, sender_id=sg.EnterpriseIds().ebc_dxp_id,
                            receiver_ids=receivers, seed=SEED)


def _dxp_sv(payload: bytes, msg_type: str) -> bytes:
    return sg.build_dxp_msg_sv(payload, msg_type=msg_type, sender_id=RECEIVER_IMPORT,
                               receiver_ids=[sg.EnterpriseIds().ebc_dxp_id], seed=SEED)


def _inner_actural() -> bytes:
    return mutate("CEB311", _actural_off)()


def _inner_missing() -> bytes:
    return mutate("CEB411", remover("payTransactionId"))()


def _inner_receipt() -> bytes:
    return mutate("CEB312", setter("returnStatus", "OK"))()


def _six_receivers() -> bytes:
    # the gateway's envelope writer refuses more than five receivers: add the sixth to its output
    root = tree(_dxp(ser(base("CEB311")), "CEB311Message", [f"DXPENT000045876{i}" for i in range(5)]))
    receivers = root.find(f"{{{DXP_NS}}}TransInfo/{{{DXP_NS}}}ReceiverIds")
    assert receivers is not None
    etree.SubElement(receivers, f"{{{DXP_NS}}}ReceiverId").text = "DXPENT0000458765"
    return ser(root)


# --------------------------------------------------------------------------- the list

OH = "/CEB311Message/Order/OrderHead"
IH = "/CEB621Message/Inventory/InventoryHead"
XH = "/CEB603Message/Inventory/InventoryHead"
SAMPLES: list[Sample] = [
    # ---------------------------------------------------------------- code lists (§3.4)
    Sample("CEB311-apptype.xml", "appType 4 (only 1, 2, 3 exist)",
           mutate("CEB311", setter("appType", "4")),
           [E("CEBGW-RULE-APPTYPE", "appType", f"{OH}/appType")]),
    Sample("CEB623-apptype-change.xml", "appType 2 on an inventory cancellation (only 1 allowed)",
           mutate("CEB623", setter("appType", "2")),
           [E("CEBGW-RULE-APPTYPE-CANCEL", "appType", "/CEB623Message/InvtCancel/appType")]),
    Sample("CEB411-appstatus.xml", "appStatus 3 (only 1 draft, 2 declare)",
           mutate("CEB411", setter("appStatus", "3")),
           [E("CEBGW-RULE-APPSTATUS", "appStatus", "/CEB411Message/Payment/PaymentHead/appStatus")]),
    Sample("CEB505-appstatus.xml", "export waybill with appStatus 0",
           mutate("CEB505", setter("appStatus", "0")),
           [E("CEBGW-RULE-APPSTATUS", "appStatus", "/CEB505Message/Logistics/appStatus")]),
    Sample("CEB311-ordertype.xml", "import order with orderType E",
           mutate("CEB311", setter("orderType", "E")),
           [E("CEBGW-RULE-ORDERTYPE-IMPORT", "orderType", f"{OH}/orderType")]),
    Sample("CEB303-ordertype.xml", "export order with orderType I",
           mutate("CEB303", setter("orderType", "I")),
           [E("CEBGW-RULE-ORDERTYPE-EXPORT", "orderType", "/CEB303Message/Order/OrderHead/orderType")]),
    Sample("CEB311-buyeridtype.xml", "buyerIdType 2 (must be 1)",
           mutate("CEB311", setter("buyerIdType", "2")),
           [E("CEBGW-RULE-IDTYPE", "buyerIdType", f"{OH}/buyerIdType")]),
    Sample("CEB411-payeridtype.xml", "payerIdType 2 (must be 1)",
           mutate("CEB411", setter("payerIdType", "2")),
           [E("CEBGW-RULE-IDTYPE", "payerIdType", "/CEB411Message/Payment/PaymentHead/payerIdType")]),
    Sample("CEB411-currency.xml", "import payment in USD (502); import currency is fixed 142",
           mutate("CEB411", setter("currency", "502")),
           [E("CEBGW-RULE-CURRENCY-IMPORT", "currency", "/CEB411Message/Payment/PaymentHead/currency")]),
    Sample("CEB311-line-currency.xml", "order line 2 in USD (502); import currency is fixed 142",
           mutate("CEB311", setter("currency", "502", 2)),
           [E("CEBGW-RULE-CURRENCY-IMPORT", "currency", "/CEB311Message/Order/OrderList[2]/currency")]),
    Sample("CEB621-ieflag.xml", "import inventory with ieFlag E",
           mutate("CEB621", setter("ieFlag", "E")),
           [E("CEBGW-RULE-IEFLAG-IMPORT", "ieFlag", f"{IH}/ieFlag")]),
    Sample("CEB215-ieflag.xml", "export return tally with ieFlag E (returns use I)",
           mutate("CEB215", setter("ieFlag", "E")),
           [E("CEBGW-RULE-IEFLAG-IMPORT", "ieFlag", "/CEB215Message/InvtRefundDetail/ieFlag")]),
    Sample("CEB603-ieflag.xml", "export inventory with ieFlag I",
           mutate("CEB603", setter("ieFlag", "I")),
           [E("CEBGW-RULE-IEFLAG-EXPORT", "ieFlag", f"{XH}/ieFlag")]),
    Sample("CEB621-trademode.xml", "import inventory with tradeMode 9710 (export-only B2B mode)",
           mutate("CEB621", setter("tradeMode", "9710")),
           [E("CEBGW-RULE-TRADEMODE-IMPORT", "tradeMode", f"{IH}/tradeMode")]),
    Sample("CEB603-trademode.xml", "export inventory with tradeMode 0110 (general trade, not e-commerce)",
           mutate("CEB603", setter("tradeMode", "0110")),
           [E("CEBGW-RULE-TRADEMODE-EXPORT", "tradeMode", f"{XH}/tradeMode")]),
    Sample("CEB213-trademode.xml", "export return with tradeMode 9810 (returns: 9610/1210/1239)",
           mutate("CEB213", setter("tradeMode", "9810")),
           [E("CEBGW-RULE-TRADEMODE-RETURN", "tradeMode",
              "/CEB213Message/InvtRefund/InvtRefundHead/tradeMode")]),
    Sample("CEB511-dxpmode.xml", "BaseTransfer dxpMode FTP",
           mutate("CEB511", setter("dxpMode", "FTP")),
           [E("CEBGW-RULE-DXPMODE", "dxpMode", "/CEB511Message/BaseTransfer/dxpMode")]),
    Sample("CEB311-subscribe-status.xml", "a BaseSubscribe with status ANY (ALL/DATA/RET)",
           mutate("CEB311", _add_subscribe("ANY")),
           [E("CEBGW-RULE-SUBSCRIBE-STATUS", "status", "/CEB311Message/BaseSubscribe/status")]),
    Sample("CEB513-logisticsstatus.xml", "waybill status R (only S = signed for)",
           mutate("CEB513", setter("logisticsStatus", "R")),
           [E("CEBGW-RULE-LOGISTICSSTATUS", "logisticsStatus",
              "/CEB513Message/LogisticsStatus/logisticsStatus")]),
    Sample("CEB514-logisticsstatus.xml", "waybill status receipt with logisticsStatus R",
           mutate("CEB514", setter("logisticsStatus", "R")),
           [E("CEBGW-RULE-LOGISTICSSTATUS", "logisticsStatus",
              "/CEB514Message/LogisticsStatusReturn/logisticsStatus")]),
    Sample("CEB511-packno.xml", "import parcel with packNo 2 (fixed 1)",
           mutate("CEB511", setter("packNo", "2")),
           [E("CEBGW-RULE-PACKNO", "packNo", "/CEB511Message/Logistics/LogisticsHead/packNo")]),
    Sample("CEB621-packno.xml", "import inventory with packNo 3 (fixed 1)",
           mutate("CEB621", setter("packNo", "3")),
           [E("CEBGW-RULE-PACKNO", "packNo", f"{IH}/packNo")]),
    Sample("CEB603-statisticsflag.xml", "export inventory with statisticsFlag C (A/B)",
           mutate("CEB603", setter("statisticsFlag", "C")),
           [E("CEBGW-RULE-STATISTICSFLAG", "statisticsFlag", f"{XH}/statisticsFlag")]),
    Sample("CEB604-statisticsflag.xml", "export inventory receipt with statisticsFlag 1",
           mutate("CEB604", setter("statisticsFlag", "1")),
           [E("CEBGW-RULE-STATISTICSFLAG", "statisticsFlag",
              "/CEB604Message/InventoryReturn/statisticsFlag")]),
    Sample("CEB603-fflag.xml", "export inventory with fFlag 4 (1 rate, 2 unit price, 3 total)",
           mutate("CEB603", setter("fFlag", "4")),
           [E("CEBGW-RULE-FLAG-TOTAL", "fFlag", f"{XH}/fFlag")]),
    Sample("CEB701-summaryflag.xml", "summary application with summaryFlag 3 (1/2)",
           mutate("CEB701", setter("summaryFlag", "3")),
           [E("CEBGW-RULE-SUMMARYFLAG", "summaryFlag",
              "/CEB701Message/SummaryApply/SummaryApplyHead/summaryFlag")]),
    Sample("CEB816-taxstatus.xml", "tax bill with status 4 (1/2/3)",
           mutate("CEB816", setter("status", "4")),
           [E("CEBGW-RULE-TAXSTATUS", "status", "/CEB816Message/Tax/TaxHeadRd/status")]),
    Sample("CEB818-taxstatus.xml", "tax bill status message with status 0",
           mutate("CEB818", setter("status", "0")),
           [E("CEBGW-RULE-TAXSTATUS", "status", "/CEB818Message/Tax/TaxHeadStatus/status")]),
    # ---------------------------------------------------------------- formats (§3.1, §3.3)
    Sample("CEB311-apptime-month13.xml", "appTime in month 13",
           mutate("CEB311", lambda r: set_text(r, "appTime", "202613" + (el(r, "appTime").text or "")[6:])),
           [E("CEBGW-RULE-DATETIME", "appTime", f"{OH}/appTime")]),
    Sample("CEB403-accountingdate-feb29.xml", "accountingDate on 29 Feb of a non-leap year (2026)",
           mutate("CEB403", setter("accountingDate", "20260229101500")),
           [E("CEBGW-RULE-DATETIME", "accountingDate", "/CEB403Message/Receipts/accountingDate")]),
    Sample("CEB509-leavetime-hour25.xml", "leaveTime at hour 25",
           mutate("CEB509", setter("leaveTime", "20261124250000")),
           [E("CEBGW-RULE-DATETIME", "leaveTime", "/CEB509Message/Departure/DepartureHead/leaveTime")]),
    Sample("CEB621-decltime-feb30.xml", "declTime 30 February",
           mutate("CEB621", setter("declTime", "20260230")),
           [E("CEBGW-RULE-DATE", "declTime", f"{IH}/declTime")]),
    Sample("CEB603-iedate-feb30.xml", "export ieDate 30 February",
           mutate("CEB603", setter("ieDate", "20260230")),
           [E("CEBGW-RULE-DATE", "ieDate", f"{XH}/ieDate")]),
    Sample("CEB312-returntime-14.xml", "returnTime of 14 digits (no ms): the format rule (the schema's "
           "OrderReturn/returnTime is maxLength 17 alone, as it may be empty)",
           mutate("CEB312", lambda r: set_text(r, "returnTime", (el(r, "returnTime").text or "")[:14])),
           [E("CEBGW-RULE-RETURNTIME", "returnTime", "/CEB312Message/OrderReturn/returnTime")]),
    Sample("CEB792-opdate-day0.xml", "opDate on day 00 (17 characters)",
           mutate("CEB792", setter("opDate", "20261100093000000")),
           [E("CEBGW-RULE-RETURNTIME", "opDate", "/CEB792Message/SummaryResult/SummaryResultHead/opDate")]),
    Sample("CEB311-guid-space.xml", "OrderHead guid of 36 characters, a space instead of the 1st hyphen",
           mutate("CEB311", _head_guid_with_space),
           [E("CEBGW-RULE-GUID", "guid", f"{OH}/guid")]),
    Sample("CEB312-returnstatus.xml", "returnStatus OK (not an integer code)",
           mutate("CEB312", setter("returnStatus", "OK")),
           [E("CEBGW-RULE-RETURNSTATUS", "returnStatus", "/CEB312Message/OrderReturn/returnStatus")]),
    Sample("CEB622-returnstatus.xml", "returnStatus 1.5",
           mutate("CEB622", setter("returnStatus", "1.5")),
           [E("CEBGW-RULE-RETURNSTATUS", "returnStatus", "/CEB622Message/InventoryReturn/returnStatus")]),
    Sample("CEB311-district.xml", "consigneeDistrict 33010A (six digits required)",
           mutate("CEB311", setter("consigneeDistrict", "33010A")),
           [E("CEBGW-RULE-DISTRICT", "consigneeDistrict", f"{OH}/consigneeDistrict")]),
    # ---------------------------------------------------------------- arithmetic (§12 rules 4-5)
    Sample("CEB311-acturalpaid.xml", "acturalPaid 0.01 more than goodsValue + freight + taxTotal - discount",
           mutate("CEB311", _actural_off),
           [E("CEBGW-RULE-ACTURALPAID", "acturalPaid", f"{OH}/acturalPaid")]),
    Sample("CEB311-totalprice.xml", "line 1 qty + 1, totalPrice unchanged",
           mutate("CEB311", _qty_plus_one),
           [E("CEBGW-RULE-TOTALPRICE", "totalPrice", "/CEB311Message/Order/OrderList[1]/totalPrice")]),
    Sample("CEB621-totalprice.xml", "inventory line 1 qty + 1, totalPrice unchanged",
           mutate("CEB621", _qty_plus_one),
           [E("CEBGW-RULE-TOTALPRICE", "totalPrice",
              "/CEB621Message/Inventory/InventoryList[1]/totalPrice")]),
    Sample("CEB303-totalprice.xml", "export order line 1 qty + 1, totalPrice unchanged",
           mutate("CEB303", _qty_plus_one),
           [E("CEBGW-RULE-TOTALPRICE", "totalPrice", "/CEB303Message/Order/OrderList[1]/totalPrice")]),
    Sample("CEB603-totalprice.xml", "export inventory line 1 qty + 1, totalPrice unchanged",
           mutate("CEB603", _qty_plus_one),
           [E("CEBGW-RULE-TOTALPRICE", "totalPrice",
              "/CEB603Message/Inventory/InventoryList[1]/totalPrice")]),
    Sample("CEB311-goodsvalue.xml", "line 1 price + 1 (line total consistent), goodsValue not updated",
           mutate("CEB311", _line_price_consistent),
           [E("CEBGW-RULE-GOODSVALUE", "goodsValue", f"{OH}/goodsValue")]),
    Sample("CEB311-gnum-gap.xml", "three lines numbered 1, 2, 4",
           mutate("CEB311", _gnums("1", "2", "4"), lines=3),
           [E("CEBGW-RULE-GNUM", "gnum", "/CEB311Message/Order/OrderList[3]/gnum")]),
    Sample("CEB311-gnum-zero.xml", "two lines numbered 0, 1",
           mutate("CEB311", _gnums("0", "1")),
           [E("CEBGW-RULE-GNUM", "gnum", "/CEB311Message/Order/OrderList[1]/gnum")]),
    Sample("CEB507-gnum-gap.xml", "arrival list numbered 1, 3",
           mutate("CEB507", _gnums("1", "3")),
           [E("CEBGW-RULE-GNUM", "gnum", "/CEB507Message/Arrival/ArrivalList[2]/gnum")]),
    # ---------------------------------------------------------------- structure rules
    Sample("CEB621-bonded-no-emsno.xml", "bonded (1210) inventory without emsNo",
           mutate("CEB621", _bonded_without_ems),
           [E("CEBGW-RULE-BONDED", "emsNo", f"{IH}/emsNo")]),
    Sample("CEB621-direct-no-billno.xml", "direct-purchase (9610) inventory without billNo",
           mutate("CEB621", remover("billNo")),
           [E("CEBGW-RULE-DIRECT", "billNo", f"{IH}/billNo")]),
    Sample("CEB507-msgseqno.xml", "msgSeqNo 2 with msgCount 1",
           mutate("CEB507", setter("msgSeqNo", "2")),
           [E("CEBGW-RULE-MSGSEQNO", "msgSeqNo", "/CEB507Message/Arrival/ArrivalHead/msgSeqNo")]),
    Sample("CEB701-msgseqno-zero.xml", "msgSeqNo 0 (sequence starts at 1)",
           mutate("CEB701", setter("msgSeqNo", "0")),
           [E("CEBGW-RULE-MSGSEQNO", "msgSeqNo", "/CEB701Message/SummaryApply/SummaryApplyHead/msgSeqNo")]),
    Sample("CEB607-declared-unsigned.xml", "master/sub waybill list with appStatus 2 and no ds:Signature",
           mutate("CEB607", _drop_signature),
           [E("CEBGW-RULE-SIGNATURE-DECLARED", "Signature", "/CEB607Message/Signature")]),
    Sample("CEB607-declared-unsigned-3-records.xml", "three declared records, no ds:Signature: one fault",
           mutate("CEB607", _drop_signature, records=3, lines=1),
           [E("CEBGW-RULE-SIGNATURE-DECLARED", "Signature", "/CEB607Message/Signature")]),
    Sample("CEB711-unsigned.xml", "warehouse-entry detail without its required ds:Signature",
           mutate("CEB711", _drop_signature),
           [E("CEBGW-XSD-MISSING", "Signature", "/CEB711Message/Signature")]),
    # ---------------------------------------------------------------- XSD
    Sample("CEB311-missing-orderno.xml", "OrderHead without orderNo",
           mutate("CEB311", remover("orderNo")),
           [E("CEBGW-XSD-MISSING", "orderNo", f"{OH}/orderNo")]),
    Sample("CEB621-missing-ieflag.xml", "InventoryHead without ieFlag (optional emsNo, invtNo also absent)",
           mutate("CEB621", remover("ieFlag")),
           [E("CEBGW-XSD-MISSING", "ieFlag", f"{IH}/ieFlag")]),
    Sample("CEB505-missing-goodsinfo.xml", "export waybill without goodsInfo (optional ebcCode follows)",
           mutate("CEB505", remover("goodsInfo")),
           [E("CEBGW-XSD-MISSING", "goodsInfo", "/CEB505Message/Logistics/goodsInfo")]),
    Sample("CEB311-buyername-too-long.xml", "buyerName of 61 characters (C..60)",
           mutate("CEB311", setter("buyerName", "王" * 61)),
           [E("CEBGW-XSD-LENGTH", "buyerName", f"{OH}/buyerName")]),
    Sample("CEB603-logisticsno-too-long.xml",
           "export logisticsNo of 81 characters (C..32 in the 202205 edition, C..80 in 2018)",
           mutate("CEB603", setter("logisticsNo", "SF" + "1" * 79)),
           [E("CEBGW-XSD-LENGTH", "logisticsNo", f"{XH}/logisticsNo")]),
    Sample("CEB411-guid-35.xml", "PaymentHead guid of 35 characters: the guid rule (the schema's "
           "PaymentHead/guid is maxLength 36 alone, as it may be empty)",
           mutate("CEB411", lambda r: set_text(r, "guid", (el(r, "guid").text or "")[:35])),
           [E("CEBGW-RULE-GUID", "guid", "/CEB411Message/Payment/PaymentHead/guid")]),
    Sample("CEB311-root-guid-35.xml", "root guid attribute of 35 characters",
           mutate("CEB311", lambda r: r.set("guid", r.get("guid", "")[:35])),
           [E("CEBGW-XSD-ATTRIBUTE", "guid", "/CEB311Message/@guid")],
           [E("CEBGW-RULE-GUID-FORM", "guid", "/CEB311Message/@guid")]),
    Sample("CEB311-missing-guid-attr.xml", "root without the guid attribute",
           mutate("CEB311", _root_attr("guid", None)),
           [E("CEBGW-XSD-ATTRIBUTE", "guid", "/CEB311Message/@guid")]),
    Sample("CEB311-wrong-order.xml", "ebpName before ebpCode",
           mutate("CEB311", _swap("ebpCode", "ebpName")),
           [E("CEBGW-XSD-UNEXPECTED", "ebpName", f"{OH}/ebpName")]),
    Sample("CEB311-unknown-element.xml", "an undeclared couponCode element between acturalPaid and currency",
           mutate("CEB311", _unknown_in_middle),
           [E("CEBGW-XSD-UNEXPECTED", "couponCode", f"{OH}/couponCode")]),
    Sample("CEB311-unknown-element-at-end.xml", "an undeclared buyerNickName element at the end of OrderHead",
           mutate("CEB311", _unknown_at_end_of_head),
           [E("CEBGW-XSD-UNEXPECTED", "buyerNickName", f"{OH}/buyerNickName")]),
    Sample("CEB311-bad-decimal.xml", "freight 12.3.4",
           mutate("CEB311", setter("freight", "12.3.4")),
           [E("CEBGW-XSD-TYPE", "freight", f"{OH}/freight")]),
    Sample("CEB505-bad-decimal.xml", "export grossWeight with a decimal comma (1,5)",
           mutate("CEB505", setter("grossWeight", "1,5")),
           [E("CEBGW-XSD-TYPE", "grossWeight", "/CEB505Message/Logistics/grossWeight")]),
    Sample("CEB511-fraction-digits.xml", "weight with 6 fraction digits (N19,5)",
           mutate("CEB511", setter("weight", "1.234567")),
           [E("CEBGW-XSD-DIGITS", "weight", "/CEB511Message/Logistics/LogisticsHead/weight")]),
    Sample("CEB511-20-digits.xml", "weight of 20 digits (N19,5)",
           mutate("CEB511", setter("weight", "12345678901234567890")),
           [E("CEBGW-XSD-DIGITS", "weight", "/CEB511Message/Logistics/LogisticsHead/weight")]),
    Sample("CEB507-msgcount-not-int.xml", "msgCount 1.0 (int(9))",
           mutate("CEB507", setter("msgCount", "1.0")),
           [E("CEBGW-XSD-TYPE", "msgCount", "/CEB507Message/Arrival/ArrivalHead/msgCount")]),
    Sample("CEB513-101-records.xml", "101 waybill status records (max 100)",
           mutate("CEB513", lambda r: None, records=101),
           [E("CEBGW-XSD-COUNT", "LogisticsStatus", "/CEB513Message/LogisticsStatus[101]")]),
    Sample("CEB311-100-lines.xml", "an import order with 100 lines (max 99)",
           mutate("CEB311", lambda r: None, lines=100),
           [E("CEBGW-XSD-COUNT", "OrderList", "/CEB311Message/Order/OrderList[100]")]),
    Sample("CEB303-extend-before-signature.xml", "export tail with ExtendMessage before ds:Signature",
           mutate("CEB303", _tail_reversed, extend=True, signed=True),
           [E("CEBGW-XSD-UNEXPECTED", "Signature", "/CEB303Message/Signature")]),
    Sample("CEB411-signature-before-extend.xml", "import tail with ds:Signature before ExtendMessage",
           mutate("CEB411", _tail_reversed, extend=True, signed=True),
           [E("CEBGW-XSD-UNEXPECTED", "ExtendMessage", "/CEB411Message/ExtendMessage")]),
    # ---------------------------------------------------------------- DXP envelopes
    Sample("DxpMsg-6-receivers.xml", "DxpMsg with 6 ReceiverIds (1..5)",
           _six_receivers,
           [E("CEBGW-XSD-COUNT", "ReceiverId", "/DxpMsg/TransInfo/ReceiverIds/ReceiverId[6]")]),
    Sample("DxpMsg-inner-acturalpaid.xml", "valid DxpMsg around CEB311-acturalpaid.xml",
           lambda: _dxp(_inner_actural(), "CEB311Message"),
           [E("CEBGW-RULE-ACTURALPAID", "acturalPaid", f"/DxpMsg/Data{OH}/acturalPaid")]),
    Sample("DxpMsg-inner-missing.xml", "valid DxpMsg around a CEB411 without payTransactionId",
           lambda: _dxp(_inner_missing(), "CEB411Message"),
           [E("CEBGW-XSD-MISSING", "payTransactionId",
              "/DxpMsg/Data/CEB411Message/Payment/PaymentHead/payTransactionId")]),
    Sample("DxpMsgSv-inner-returnstatus.xml", "valid DxpMsgSv around CEB312-returnstatus.xml",
           lambda: _dxp_sv(_inner_receipt(), "CEB312Message"),
           [E("CEBGW-RULE-RETURNSTATUS", "returnStatus",
              "/DxpMsgSv/DxpMsg/Data/CEB312Message/OrderReturn/returnStatus")]),
    # ---------------------------------------------------------------- empty content (rules/presence.toml)
    Sample("CEB621-empty-copno.xml", "import inventory copNo empty: schema-valid (the official schema takes "
           "empty content there), but it is the key receipts are routed by",
           mutate("CEB621", setter("copNo", "")),
           [E("CEBGW-RULE-EMPTY-KEY", "copNo", f"{IH}/copNo")]),
    Sample("CEB621-no-copno.xml",
           "import inventory without copNo (optional in the schema): the routing key is missing",
           mutate("CEB621", remover("copNo")),
           [E("CEBGW-RULE-EMPTY-KEY", "copNo", f"{IH}/copNo")]),
    Sample("CEB303-empty-orderno.xml",
           "export order with empty orderNo and ebpCode (both may be empty in the 202205 schema): "
           "the keys receipts are routed by",
           mutate("CEB303", lambda r: (set_text(r, "orderNo", ""), set_text(r, "ebpCode", "")) and None),
           [E("CEBGW-RULE-EMPTY-KEY", "ebpCode", "/CEB303Message/Order/OrderHead/ebpCode"),
            E("CEBGW-RULE-EMPTY-KEY", "orderNo", "/CEB303Message/Order/OrderHead/orderNo")]),
    Sample("CEB311-empty-currency.xml",
           "VALID: OrderHead currency empty (the schema takes it; required: a warning)",
           mutate("CEB311", setter("currency", "")),
           [], [E("CEBGW-RULE-EMPTY-REQUIRED", "currency", f"{OH}/currency")]),
    # ---------------------------------------------------------------- valid, with a warning
    Sample("CEB311-guid-lowercase.xml", "VALID: root guid is a lowercase UUID (a warning only)",
           mutate("CEB311", _lower_root_guid),
           [], [E("CEBGW-RULE-GUID-FORM", "guid", "/CEB311Message/@guid")]),
    Sample("CEB303-currency-unusual.xml", "VALID: export order currency 999 (uncommon code: a warning)",
           mutate("CEB303", setter("currency", "999")),
           [], [E("CEBGW-RULE-CURRENCY", "currency", "/CEB303Message/Order/OrderHead/currency")]),
    Sample("CEB303-goodsvalue.xml", "VALID: export goodsValue 1 more than the lines' sum (a warning)",
           mutate("CEB303", _goodsvalue_off),
           [], [E("CEBGW-RULE-GOODSVALUE-EXPORT", "goodsValue",
                  "/CEB303Message/Order/OrderHead/goodsValue")]),
]


# --------------------------------------------------------------------------- output


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _entries(items: list[dict[str, str]]) -> str:
    if not items:
        return "[]"
    rows = ["{" + ", ".join(f"{k} = {_toml_str(v)}" for k, v in item.items()) + "}" for item in items]
    return "[\n    " + ",\n    ".join(rows) + ",\n]"


def manifest() -> str:
    out = [
        "# Broken (and a few valid-with-warning) messages: what the validator must report for each.",
        "# GENERATED by samples/invalid/make_invalid.py - edit the expectations there.",
        "#",
        "# errors: exactly these error codes (as a multiset), each with its field and, where given, path.",
        "# warnings: these warnings must be reported (others are allowed).",
        "# known_issue: the validator disagrees with the expectation (a validator bug); the test is xfail.",
        "",
    ]
    for s in SAMPLES:
        out.append(f"[files.{_toml_str(s.name)}]")
        out.append(f"description = {_toml_str(s.description)}")
        out.append(f"valid = {'false' if s.errors else 'true'}")
        out.append(f"errors = {_entries(s.errors)}")
        out.append(f"warnings = {_entries(s.warnings)}")
        if s.known_issue:
            out.append(f"known_issue = {_toml_str(s.known_issue)}")
        out.append("")
    return "\n".join(out)


def main() -> int:
    names = [s.name for s in SAMPLES]
    assert len(names) == len(set(names)), "duplicate sample name"
    for old in OUT.glob("*.xml"):
        if old.name not in names:
            old.unlink()
    for s in SAMPLES:
        (OUT / s.name).write_bytes(s.build())
    (OUT / "manifest.toml").write_text(manifest(), encoding="utf-8")
    print(f"{len(SAMPLES)} samples written to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
