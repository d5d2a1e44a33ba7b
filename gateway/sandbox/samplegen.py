"""Deterministic generator of realistic, schema-valid, UNSIGNED CEB messages.

Every declaration, receipt and customs-issued message type of the CEB standard (spec §7, §8) can
be generated, plus the DXP envelopes (§9).  Output depends only on the arguments: the same
``(code, records, lines, seed, ids)`` always gives the same bytes.

Business rules that hold in every generated declaration (spec §3, §12): times ``yyyyMMddHHmmss``,
dates ``yyyyMMdd``, receipt times ``yyyyMMddHHmmssSSS``; guids are uppercase UUID4 strings derived
from the seed; ``appType`` 1, ``appStatus`` 2; import currency 142; line ``totalPrice`` = ``price``
x ``qty`` exactly; ``goodsValue`` = sum of the line totals; ``acturalPaid`` = goodsValue + freight
+ taxTotal - discount; ``gnum`` runs 1..n; ``BaseTransfer/copCode`` is the sending enterprise.
Signature-required types (CEB621/623/625/711) are produced WITHOUT ``ds:Signature``: signing is
the job of :mod:`gateway.dsig`.

What a message holds comes from the catalogue (records, heads, lists, senders) and from the
schemas in ``xsd/`` (the fields, in order); envelopes are :func:`gateway.envelope.wrap`'s.  It
builds trusted XML only and never parses input (it reads the schemas and its own envelopes).
Used by the customs sandbox (:mod:`gateway.sandbox.customs`), the tests, the benchmarks and
``samples/make_samples.py``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache

from lxml import etree

from ..catalog import CEB_NS, DS_NS, DXP_NS
from ..catalog import load as load_catalog
from ..dsig.certgen import sandbox_enterprises
from ..envelope import RECEIVER_IMPORT, receiver_for, wrap
from ..validate.xsd import child_elements
from ..xmlio import parse

__all__ = [
    "DECLARATIONS",
    "RECEIPTS",
    "CUSTOMS_ISSUED",
    "SIGNATURE_REQUIRED",
    "EnterpriseIds",
    "build",
    "build_order_set",
    "build_parcel",
    "build_record",
    "build_receipt",
    "build_receipts",
    "build_dxp_msg",
    "build_dxp_msg_sv",
    "build_dxp_rep",
    "flow_of",
    "receipt_fields",
    "placeholder_signature",
    "extend_message",
]

XML_DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'



_CAST = {str(e["name"]): e for e in sandbox_enterprises()}


def _cast(name: str, what: str) -> str:
    """A sandbox enterprise's ``code``, ``dxp_id`` or Chinese name (``title_zh``), from the one list."""
    return str(_CAST[name][what])


@dataclass(frozen=True)
class EnterpriseIds:
    """Codes, names and DXP ids of the parties of a cross-border deal (defaults: the sandbox cast
    of ``gateway/sandbox/enterprises.toml``)."""

    ebp_code: str = _cast("platform", "code")
    ebp_name: str = _cast("platform", "title_zh")
    ebp_dxp_id: str = _cast("platform", "dxp_id")
    ebc_code: str = _cast("ecommerce", "code")
    ebc_name: str = _cast("ecommerce", "title_zh")
    ebc_dxp_id: str = _cast("ecommerce", "dxp_id")
    pay_code: str = _cast("payment", "code")
    pay_name: str = _cast("payment", "title_zh")
    pay_dxp_id: str = _cast("payment", "dxp_id")
    logistics_code: str = _cast("logistics", "code")
    logistics_name: str = _cast("logistics", "title_zh")
    logistics_dxp_id: str = _cast("logistics", "dxp_id")
    agent_code: str = _cast("agent", "code")
    agent_name: str = _cast("agent", "title_zh")
    agent_dxp_id: str = _cast("agent", "dxp_id")
    operator_code: str = _cast("site_operator", "code")
    operator_name: str = _cast("site_operator", "title_zh")
    operator_dxp_id: str = _cast("site_operator", "dxp_id")


# --------------------------------------------------------------------------- message layouts
# What a message holds is the catalogue's (record, head, list, flow, record limit, sender roles)
# and its schema's (the fields in order, and which are optional); below are only the
# generator's own choices.

_CATALOG = load_catalog()
DECLARATIONS: tuple[str, ...] = tuple(t.code for t in _CATALOG.declarations())
RECEIPTS: tuple[str, ...] = tuple(t.code for t in _CATALOG.receipts() if not t.head)  # flat ...Return records
CUSTOMS_ISSUED: tuple[str, ...] = tuple(t.code for t in _CATALOG.receipts() if t.head)  # tax, summary results
SIGNATURE_REQUIRED: frozenset[str] = frozenset(t.code for t in _CATALOG if t.signature == "required")

# The EnterpriseIds prefix of each sender role, and the role whose BaseTransfer a generated
# declaration carries where it is not the catalogue's first sender role.
_PARTY = {"ecommerce": "ebc", "platform": "ebp", "payment": "pay", "logistics": "logistics", "agent": "agent",
          "site_operator": "operator"}
_SENDER_ROLE = {"CEB623": "agent", "CEB625": "agent", "CEB605": "agent"}
# Optional fields left out although the scenario has a value: the numbers customs assigns to
# a new declaration (preNo, invtNo, sumNo, rkdNo: they do not exist yet when it is declared),
# and a few the sandbox deal does not use.
_UNUSED: dict[str, frozenset[str]] = {
    "CEB621": frozenset({"preNo", "invtNo", "ieDate"}),
    "CEB711": frozenset({"preNo", "rkdNo"}),
    "CEB507": frozenset({"preNo"}),
    "CEB509": frozenset({"preNo"}),
    "CEB603": frozenset({"preNo", "invtNo", "loctNo"}),
    "CEB607": frozenset({"preNo", "loctNo"}),
    "CEB701": frozenset({"preNo", "sumNo", "loctNo"}),
    "CEB213": frozenset({"loctNo"}),
    "CEB816": frozenset({"orderNo", "logisticsNo"}),
}


@dataclass(frozen=True)
class _Layout:
    """Element layout of one message: record tag, optional head tag and fields, optional list."""

    flow: str  # import | export
    record: str
    head: str | None  # None: the fields sit directly in the record (flat record)
    fields: tuple[str, ...]
    lines: str | None
    line_fields: tuple[str, ...]
    sender: str | None  # EnterpriseIds prefix of the BaseTransfer sender; None: no tail
    max_records: int


@cache
def _layout(code: str) -> _Layout:
    mtype = _CATALOG.types.get(code)
    if mtype is None or mtype.is_envelope:
        raise ValueError(f"unknown message code {code!r}")
    flat = not mtype.head
    record = (mtype.root, mtype.record)
    sample = _scenario(mtype.flow, 0, 0, 1, EnterpriseIds())
    unused = _UNUSED.get(code, frozenset())

    def chosen(path: tuple[str, ...], values: Mapping[str, str]) -> tuple[str, ...]:
        fields = child_elements(mtype, path)
        if mtype.kind == "receipt" and flat:
            return tuple(name for name, _ in fields)  # receipts: every field, keys included
        return tuple(name for name, optional in fields
                     if not optional or (name in values and name not in unused))

    sender = None
    if mtype.kind == "declaration":
        sender = _PARTY[_SENDER_ROLE.get(code, mtype.sender[0])]
    head_values = {**sample.head, **_OVERRIDES.get(code, {})}
    return _Layout(mtype.flow, mtype.record, None if flat else mtype.head,
                   chosen(record if flat else (*record, mtype.head), head_values),
                   mtype.lines, chosen((*record, mtype.lines), sample.lines[0]) if mtype.lines else (),
                   sender, mtype.max_records)


def receipt_fields(code: str) -> tuple[str, ...]:
    """The fields of a receipt record of type ``code`` (one of :data:`RECEIPTS`), in order."""
    if code not in RECEIPTS:
        raise ValueError(f"{code!r} is not a receipt code")
    return _layout(code).fields


# Per-message overrides of scenario values (same field name, different meaning or code).
_OVERRIDES: dict[str, dict[str, str]] = {
    "CEB711": {"ieFlag": "I"},
    "CEB213": {"ieFlag": "I", "reason": "买家七天无理由退货，商品退运入境"},
    "CEB215": {"ieFlag": "I"},
    "CEB623": {"reason": "订购人取消订单，申请撤销清单"},
    "CEB625": {"reason": "商品破损，消费者申请退货"},
    "CEB605": {"reason": "订单取消，申请撤销出口清单"},
}


# --------------------------------------------------------------------------- scenario data


@dataclass(frozen=True)
class _Product:
    name: str
    brand: str
    spec: str
    gcode: str
    unit: str  # JGS-20 transaction unit
    price: Decimal
    net_kg: Decimal  # net weight of one unit in kg (qty1 per unit, unit1 = 035 kg)
    origin: str  # JGS-20 country of origin
    barcode: str


_IMPORT_PRODUCTS: tuple[_Product, ...] = (
    _Product("婴儿配方奶粉3段", "爱他美", "800克/罐", "1901101090", "122", Decimal("218.00"),
             Decimal("0.8"), "304", "4008976022343"),
    _Product("保湿修护面霜", "理肤泉", "50毫升/支", "3304990099", "012", Decimal("159.90"),
             Decimal("0.065"), "305", "3337875543248"),
    _Product("维生素C咀嚼片", "澳佳宝", "500毫克×120片/瓶", "2106909090", "142", Decimal("89.50"),
             Decimal("0.25"), "601", "9300705661017"),
    _Product("声波电动牙刷", "飞利浦", "HX6730型/支", "8509809000", "012", Decimal("399.00"),
             Decimal("0.3"), "309", "8710103706231"),
    _Product("特级初榨橄榄油", "百格士", "750毫升/瓶", "1509200000", "142", Decimal("76.80"),
             Decimal("0.69"), "312", "8410179100029"),
    _Product("婴儿纸尿裤L码", "花王", "54片/包", "9619002000", "121", Decimal("108.00"),
             Decimal("1.2"), "116", "4901301230874"),
    _Product("氨基酸洗面奶", "资生堂", "120克/支", "3304990099", "012", Decimal("65.00"),
             Decimal("0.13"), "116", "4901872453183"),
    _Product("深海鱼油软胶囊", "健美生", "1000毫克×200粒/瓶", "2106909090", "142", Decimal("128.00"),
             Decimal("0.35"), "501", "0064642029138"),
)

_EXPORT_PRODUCTS: tuple[_Product, ...] = (
    _Product("女式针织连衣裙", "沙箱衣坊", "棉95%氨纶5%/M码", "6104420000", "011", Decimal("25.50"),
             Decimal("0.3"), "142", "6971234560018"),
    _Product("蓝牙无线耳机", "声悦", "TWS-X2型/副", "8518300000", "007", Decimal("18.90"),
             Decimal("0.12"), "142", "6971234560025"),
    _Product("硅胶手机保护壳", "壳匠", "6.1英寸/个", "3926909090", "007", Decimal("3.20"),
             Decimal("0.04"), "142", "6971234560032"),
    _Product("陶瓷功夫茶具套装", "景德瓷韵", "一壶六杯/套", "6912001000", "006", Decimal("32.00"),
             Decimal("1.5"), "142", "6971234560049"),
)

_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = ("伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
          "明", "超")
_ADDRESSES: tuple[tuple[str, str], ...] = (
    ("330106", "浙江省杭州市西湖区文三路478号华星时代广场A座1203室"),
    ("310115", "上海市浦东新区张杨路1500号时代广场8楼805室"),
    ("440305", "广东省深圳市南山区科技园南区高新南七道18号"),
    ("110105", "北京市朝阳区建国路88号SOHO现代城2号楼1701"),
    ("510107", "四川省成都市武侯区天府大道北段1480号拉德方斯大厦东楼6层"),
    ("320106", "江苏省南京市鼓楼区中山北路105号中环国际广场2208室"),
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CUSTOMS = "2918"  # customs of declaration (matches invtNo 2918YYYYI…)
_BASE_TIME = datetime(2026, 11, 23, 9, 30, 0)


def _rng(*parts: object) -> random.Random:
    return random.Random("|".join(str(p) for p in parts))


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _weight(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.001")))


def _id_number(rng: random.Random, district: str) -> str:
    birth = datetime(1975, 1, 1) + timedelta(days=rng.randrange(0, 9000))
    body = f"{district}{birth:%Y%m%d}{rng.randrange(100, 1000)}"
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]
    return body + check


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


@dataclass(frozen=True)
class _Scenario:
    head: dict[str, str]
    lines: tuple[dict[str, str], ...]


def _parties(ids: EnterpriseIds) -> dict[str, str]:
    """The codes and names of the deal's parties, by the fields that name them."""
    return {
        "ebpCode": ids.ebp_code, "ebpName": ids.ebp_name,
        "ebcCode": ids.ebc_code, "ebcName": ids.ebc_name,
        "payCode": ids.pay_code, "payName": ids.pay_name,
        "logisticsCode": ids.logistics_code, "logisticsName": ids.logistics_name,
        "agentCode": ids.agent_code, "agentName": ids.agent_name,
        "operatorCode": ids.operator_code, "operatorName": ids.operator_name,
        "ownerCode": ids.ebc_code, "ownerName": ids.ebc_name,
        "declAgentCode": ids.agent_code, "declAgentName": ids.agent_name,
        "assureCode": ids.ebc_code,
    }


def _customs_issued(rng: random.Random, t0: datetime, invt_no: str, vat_total: Decimal,
                    serial: int) -> dict[str, str]:
    """The values of the documents customs issues for the deal (tax, summary results, receipts)."""
    return {
        "returnTime": f"{t0 + timedelta(hours=1):%Y%m%d%H%M%S}{rng.randrange(1000):03d}",
        "taxNo": f"{invt_no}_0",
        "customsTax": "0",
        "valueAddedTax": _money(vat_total),
        "consumptionTax": "0",
        "status": "1",
        "entDutyNo": f"{_CUSTOMS}{t0:%Y}{_digits(rng, 10)}",
        "sumNo": f"{_CUSTOMS}{t0:%Y}E{_digits(rng, 9)}",
        "opDate": f"{t0 + timedelta(days=5):%Y%m%d%H%M%S}000",
        "declSeqNo": f"{_CUSTOMS}{t0:%Y}{_digits(rng, 10)}",
        "decTmpNo": f"T{t0:%Y}{_digits(rng, 13)}",
        "decPreNo": f"{_CUSTOMS}{t0:%Y}{_digits(rng, 10)}",
        "entryId": f"{_CUSTOMS}{t0:%Y}{_digits(rng, 10)}",
        "decState": "1",
        "rkdNo": f"RKD{t0:%Y%m%d}{serial % 10**7:07d}",
    }


def _scenario_lines(rng: random.Random, n_lines: int, imp: bool, t0: datetime,
                    serial: int, qty_scale: int = 1) -> list[dict[str, str]]:
    """The list lines of a deal: products drawn from the flow's catalogue, with their sums."""
    catalogue = _IMPORT_PRODUCTS if imp else _EXPORT_PRODUCTS
    currency = "142" if imp else "502"
    letter = "I" if imp else "E"
    day = f"{t0:%Y%m%d}"
    lines: list[dict[str, str]] = []
    for j in range(n_lines):
        p = catalogue[(rng.randrange(len(catalogue)) + j) % len(catalogue)]
        qty = Decimal(rng.randrange(1, 4)) * qty_scale
        total = p.price * qty
        vat = (total * Decimal("0.091")).quantize(Decimal("0.01"))
        lines.append({
            "gnum": str(j + 1),
            "itemNo": f"SKU{p.gcode[:4]}{j + 1:04d}",
            "itemName": f"{p.brand}{p.name}",
            "itemDescribe": f"{p.brand}{p.name}，{p.spec}",
            "gmodel": f"{p.name}|{p.brand}|{p.spec}",
            "gname": p.name,
            "gcode": p.gcode,
            "barCode": p.barcode,
            "unit": p.unit,
            "unit1": "035",
            "qty": str(qty),
            "qty1": _weight(p.net_kg * qty),
            "price": _money(p.price),
            "totalPrice": _money(total),
            "currency": currency,
            "country": p.origin if imp else "502",
            "tradeCountry": p.origin,
            "logisticsNo": f"SF{serial % 10**6:06d}{j + 1:06d}",
            "totalPackageNo": f"PKG{day}{serial % 10**4:04d}{j + 1:03d}",
            "invtNo": f"{_CUSTOMS}{t0:%Y}{letter}{(serial * 100 + j + 1) % 10**9:09d}",
            "gseqno": str(j + 1),
            "taxPrice": _money(total),
            "customsTax": "0",
            "valueAddedTax": _money(vat),
            "consumptionTax": "0",
        })
    return lines


def _scenario(flow: str, seed: int, idx: int, n_lines: int, ids: EnterpriseIds,
              order_no: str | None = None, qty_scale: int = 1) -> _Scenario:
    """All values of one business record (order, waybill, inventory, ...) of a deal."""
    rng = _rng("scenario", flow, seed, idx, order_no or "")
    t0 = _BASE_TIME + timedelta(minutes=(seed * 37 + idx * 3) % 600, seconds=rng.randrange(60))
    day = f"{t0:%Y%m%d}"
    serial = (seed * 1000 + idx) % 10**9
    district, address = _ADDRESSES[rng.randrange(len(_ADDRESSES))]
    buyer = _SURNAMES[rng.randrange(len(_SURNAMES))] + _GIVEN[rng.randrange(len(_GIVEN))]
    consignee = buyer if rng.random() < 0.7 else _SURNAMES[rng.randrange(len(_SURNAMES))] + "先生"
    phone = f"13{rng.randrange(0, 10)}{_digits(rng, 8)}"
    imp = flow == "import"
    currency = "142" if imp else "502"
    letter = "I" if imp else "E"

    lines = _scenario_lines(rng, n_lines, imp, t0, serial, qty_scale)
    goods = sum((Decimal(ln["totalPrice"]) for ln in lines), Decimal(0))
    net = sum((Decimal(ln["qty1"]) for ln in lines), Decimal(0))
    vat_total = sum((Decimal(ln["valueAddedTax"]) for ln in lines), Decimal(0))

    freight = Decimal(rng.choice(("0", "8", "10", "15")))
    discount = Decimal(rng.choice(("0", "0", "5", "10")))
    discount = min(discount, goods)
    tax_total = (goods * Decimal("0.091")).quantize(Decimal("0.01")) if imp else Decimal(0)
    paid = goods + freight + tax_total - discount
    gross = net * Decimal("1.15") + Decimal("0.2")
    order = order_no or f"SO{day}{seed % 10**6:06d}{idx + 1:04d}"
    logistics_no = f"SF{_digits(rng, 12)}"
    bill_no = f"784-{_digits(rng, 8)}"
    invt_no = f"{_CUSTOMS}{t0:%Y}{letter}{serial:09d}"
    pre_no = f"B{day}{serial:09d}"
    cop_no = f"COP{day}{serial % 10**6:06d}"
    head = {
        "guid": _guid(rng),
        "appType": "1",
        "appTime": f"{t0:%Y%m%d%H%M%S}",
        "appStatus": "2",
        "orderType": "I" if imp else "E",
        "orderNo": order,
        **_parties(ids),
        "goodsValue": _money(goods),
        "freight": _money(freight),
        "discount": _money(discount),
        "taxTotal": _money(tax_total),
        "acturalPaid": _money(paid),
        "amountPaid": _money(paid),
        "charge": _money(goods + freight),
        "insuredFee": "0",
        "currency": currency,
        "fCurrency": currency, "iCurrency": currency, "fFlag": "3", "iFlag": "3",
        "buyerRegNo": f"u{_digits(rng, 9)}",
        "buyerName": buyer,
        "buyerTelephone": phone,
        "buyerIdType": "1",
        "buyerIdNumber": _id_number(rng, district),
        "payTransactionId": f"{t0:%Y%m%d}2200{_digits(rng, 12)}",
        "batchNumbers": f"LOT{t0:%Y%m}{rng.randrange(100, 999)}",
        "consignee": consignee,
        "consigneeTelephone": phone,
        "consigneeAddress": address,
        "consigneeDistrict": district,
        "payTime": f"{t0 - timedelta(minutes=2):%Y%m%d%H%M%S}",
        "accountingDate": f"{t0 + timedelta(days=1):%Y%m%d%H%M%S}",
        "payNo": f"PAY{t0:%Y%m%d}{_digits(rng, 10)}",
        "logisticsNo": logistics_no,
        "logisticsStatus": "S",
        "logisticsTime": f"{t0 + timedelta(days=3):%Y%m%d%H%M%S}",
        "billNo": bill_no,
        "weight": _weight(gross),
        "grossWeight": _weight(gross),
        "netWeight": _weight(net),
        "packNo": "1",
        "goodsInfo": "、".join(dict.fromkeys(ln["gname"] for ln in lines))[:60] or "日用品",
        "copNo": cop_no,
        "coElNo": cop_no,
        "preNo": pre_no,
        "invtNo": invt_no,
        "ieFlag": "I" if imp else "E",
        "declTime": day,
        "ieDate": day,
        "customsCode": _CUSTOMS,
        "portCode": _CUSTOMS,
        "tradeMode": "9610",
        "trafMode": "5",
        "trafNo": "CA1048",
        "trafName": "中国国际航空",
        "voyageNo": f"CA{1000 + rng.randrange(9000)}",
        "domesticTrafNo": f"浙A{_digits(rng, 5)}",
        "loctNo": "2918W00001",
        "country": "502",  # import: country of departure; export: destination
        "POD": "LAX",
        "wrapType": "2",
        "statisticsFlag": "A",
        "msgCount": "1",
        "msgSeqNo": "1",
        "leaveTime": f"{t0 + timedelta(hours=20):%Y%m%d%H%M%S}",
        "unloadLocation": "杭州萧山国际机场跨境电商监管中心",
        "location": "杭州综保区退货理货仓A区",
        "summaryFlag": "1",
        "itemNameFlag": "1",
        "reason": "消费者申请",
        "ebcTelephone": "0571-88886666",
        "telephone": phone,
        "payerIdType": "1",
        "payerIdNumber": "",  # filled below (= buyer)
        "payerName": buyer,
        **_customs_issued(rng, t0, invt_no, vat_total, serial),  # last: it draws from rng after the rest
    }
    head["payerIdNumber"] = head["buyerIdNumber"]
    return _Scenario(head, tuple(lines))


# --------------------------------------------------------------------------- element building


def _sub(parent: etree._Element, ns: str, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        el.text = text
    return el


def _fill(parent: etree._Element, ns: str, names: Sequence[str], values: Mapping[str, str]) -> None:
    for name in names:
        value = values[name]
        if name == "oriBizMessage":
            _sub(parent, ns, name).text = etree.CDATA(value)
        else:
            _sub(parent, ns, name, value)


def _root(code: str, guid: str, default_ns: bool) -> etree._Element:
    tag = f"{{{CEB_NS}}}{code}Message"
    if default_ns:
        root = etree.Element(tag, nsmap={None: CEB_NS})  # type: ignore[dict-item]  # lxml-stubs lack None
    else:
        root = etree.Element(tag, nsmap={"ceb": CEB_NS})
    root.set("guid", guid)
    root.set("version", "1.0")
    return root


def _serialize(root: etree._Element) -> bytes:
    etree.indent(root, space="  ")
    return XML_DECL + etree.tostring(root, encoding="UTF-8", xml_declaration=False) + b"\n"


def _sender(ids: EnterpriseIds, role: str) -> tuple[str, str, str]:
    return (str(getattr(ids, f"{role}_code")), str(getattr(ids, f"{role}_name")),
            str(getattr(ids, f"{role}_dxp_id")))


def _tail(root: etree._Element, ids: EnterpriseIds, role: str) -> None:
    code, name, dxp_id = _sender(ids, role)
    bt = _sub(root, CEB_NS, "BaseTransfer")
    _fill(bt, CEB_NS, ("copCode", "copName", "dxpMode", "dxpId"),
          {"copCode": code, "copName": name, "dxpMode": "DXP", "dxpId": dxp_id})


def _add_record(root: etree._Element, code: str, layout: _Layout, sc: _Scenario) -> None:
    values = {**sc.head, **_OVERRIDES.get(code, {})}
    rec = _sub(root, CEB_NS, layout.record)
    head = rec if layout.head is None else _sub(rec, CEB_NS, layout.head)
    _fill(head, CEB_NS, layout.fields, values)
    if layout.lines is not None:
        for line in sc.lines:
            _fill(_sub(rec, CEB_NS, layout.lines), CEB_NS, layout.line_fields, line)


def _message_guid(code: str, seed: int, extra: str = "") -> str:
    return _guid(_rng("root", code, seed, extra))


def build(code: str, *, records: int = 1, lines: int = 2, seed: int = 0, ids: EnterpriseIds | None = None,
          default_ns: bool = False) -> bytes:
    """Build one unsigned CEB message of type ``code`` (e.g. ``"CEB311"``).

    ``records`` business records (ignored for CEB711 and CEB900, which carry exactly one), each with
    ``lines`` list lines where the message has a list.  Receipt codes give ``ceb:``-prefixed receipts
    (use :func:`build_receipt` for the default-namespace form e-port sends).  Counts are not capped at
    the schema limits, so over-limit messages can be generated for negative tests.
    """
    ids = ids or EnterpriseIds()
    if code in RECEIPTS:
        layout = _layout(code)
        n = 1 if layout.max_records == 1 else records
        keys = [_receipt_defaults(code, seed, i, ids) for i in range(n)]
        return _receipt(code, keys, status="2", info=None, seed=seed, default_ns=default_ns, ids=ids)
    layout = _layout(code)
    root = _root(code, _message_guid(code, seed, f"{records}/{lines}"), default_ns)
    n = 1 if layout.max_records == 1 else records
    for i in range(n):
        _add_record(root, code, layout, _scenario(layout.flow, seed, i, lines, ids))
    if layout.sender is not None:
        _tail(root, ids, layout.sender)
    return _serialize(root)


def build_order_set(order_no: str, *, lines: int = 2, seed: int = 0,
                    ids: EnterpriseIds | None = None) -> dict[str, bytes]:
    """CEB311, CEB411, CEB511 and CEB621 of one import order, consistent with each other (spec §12)."""
    ids = ids or EnterpriseIds()
    sc = _scenario("import", seed, 0, lines, ids, order_no=order_no)
    out: dict[str, bytes] = {}
    for code in ("CEB311", "CEB411", "CEB511", "CEB621"):
        layout = _layout(code)
        rec_guid = _guid(_rng("record", code, seed, order_no))
        doc = _Scenario({**sc.head, "guid": rec_guid}, sc.lines)
        root = _root(code, _message_guid(code, seed, order_no), False)
        _add_record(root, code, layout, doc)
        assert layout.sender is not None
        _tail(root, ids, layout.sender)
        out[code] = _serialize(root)
    return out


PARCEL_CODES = {"import": ("CEB311", "CEB411", "CEB511", "CEB621"),
                "export": ("CEB303", "CEB403", "CEB505", "CEB603")}


def build_parcel(order_no: str, *, flow: str = "import", lines: int = 2, seed: int = 0, qty_scale: int = 1,
                 changes: Mapping[str, Mapping[str, str]] | None = None,
                 ids: EnterpriseIds | None = None) -> dict[str, bytes]:
    """The order, payment (import) or collection (export), waybill and inventory list of one
    parcel, consistent with each other (spec §12) unless ``changes`` (by message code, field
    -> value, applied to the record's head) makes them disagree.  ``qty_scale`` multiplies
    every line's quantity (the sums follow), e.g. to go over the single-transaction limit."""
    ids = ids or EnterpriseIds()
    sc = _scenario(flow, seed, 0, lines, ids, order_no=order_no, qty_scale=qty_scale)
    out: dict[str, bytes] = {}
    for code in PARCEL_CODES[flow]:
        layout = _layout(code)
        rec_guid = _guid(_rng("record", code, seed, order_no))
        doc = _Scenario({**sc.head, "guid": rec_guid, **(changes or {}).get(code, {})}, sc.lines)
        changed = sorted((changes or {}).get(code, {}).items())
        root = _root(code, _message_guid(code, seed, f"{order_no}/{qty_scale}/{changed}"), False)
        _add_record(root, code, layout, doc)
        assert layout.sender is not None
        _tail(root, ids, layout.sender)
        out[code] = _serialize(root)
    return out


def build_record(code: str, head: Mapping[str, str], lines: Sequence[Mapping[str, str]] = (), *,
                 seed: int = 0, ids: EnterpriseIds | None = None) -> bytes:
    """One message of type ``code`` with one record: the generator's values for it, with
    ``head``'s fields (the record's head) and ``lines`` (one list line each, over the
    generator's line values) in their place.  E.g. a departure report (CEB509) listing given
    waybills, a summary application (CEB701) listing given inventory lists, or the summary
    result customs issues (CEB792)."""
    ids = ids or EnterpriseIds()
    layout = _layout(code)
    sc = _scenario(layout.flow, seed, 0, max(1, len(lines)), ids)
    doc_lines = tuple({**sc.lines[j], **line} for j, line in enumerate(lines)) if lines else sc.lines
    root = _root(code, _message_guid(code, seed, "record"), False)
    _add_record(root, code, layout, _Scenario({**sc.head, "guid": _guid(_rng("record", code, seed)), **head},
                                             doc_lines))
    if layout.sender is not None:
        _tail(root, ids, layout.sender)
    return _serialize(root)


# --------------------------------------------------------------------------- receipts


def _receipt_defaults(code: str, seed: int, idx: int, ids: EnterpriseIds) -> dict[str, str]:
    flow = _layout(code).flow
    h = _scenario(flow, seed, idx, 1, ids).head
    keys = {name: h[name] for name in _layout(code).fields if name in h}
    keys.pop("returnTime", None)
    return keys


_BROKEN_311 = (f'<ceb:CEB311Message xmlns:ceb="{CEB_NS}" guid="broken" version="1.0">'
               "<ceb:Order/></ceb:CEB311Message>")

_DEFAULT_INFO = {
    "1": "电子口岸已暂存",
    "3": "发送海关成功",
    "4": "发送海关失败",
    "100": "[Code:1301;Desc:海关退单]",
    "120": "[Code:1800;Desc:逻辑校验通过]",
    "300": "[Code:1200;Desc:待人工审核]",
    "399": "海关审结",
    "500": "[Code:2300;Desc:查验]",
    "800": "[Code:2600;Desc:放行]",
    "899": "结关",
}


_SET_HERE = frozenset({"guid", "returnStatus", "returnTime", "returnInfo"})


def _receipt(code: str, key_sets: Sequence[Mapping[str, str]], *, status: str, info: str | None, seed: int,
             default_ns: bool, ids: EnterpriseIds) -> bytes:
    layout = _layout(code)
    root = _root(code, _message_guid(code, seed, f"receipt/{len(key_sets)}"), default_ns)
    for i, keys in enumerate(key_sets):
        rng = _rng("receipt", code, seed, i)
        # the generator's values only for fields not given (a scenario costs ~0.5 ms)
        values = {} if set(layout.fields) <= set(keys) | _SET_HERE else _receipt_defaults(code, seed, i, ids)
        values.update(keys)
        values["guid"] = keys.get("guid", _guid(rng))
        status = keys.get("returnStatus", status)  # build_receipts: each record its own
        values["returnStatus"] = status
        t = _BASE_TIME + timedelta(minutes=5 + (seed * 37 + i * 3) % 600, seconds=rng.randrange(60))
        values["returnTime"] = keys.get("returnTime", f"{t:%Y%m%d%H%M%S}{rng.randrange(1000):03d}")
        if "returnInfo" in keys:
            values["returnInfo"] = keys["returnInfo"]
        elif info is not None:
            values["returnInfo"] = info
        elif status == "2":
            values["returnInfo"] = f"新增申报成功[{values['guid']}]"
        elif status.startswith("-"):
            values["returnInfo"] = "报文格式校验失败"
        else:
            values["returnInfo"] = _DEFAULT_INFO.get(status, "处理完成")
        if code == "CEB900":
            values.setdefault("oriCopMsgId", _guid(rng))
            values.setdefault("oriMessageType", "CEB311Message")
            values.setdefault("oriBizMessage", _BROKEN_311)
            if info is None and not status.startswith("-"):
                values["returnInfo"] = "报文格式校验失败：缺少必填节点OrderHead"
        rec = _sub(root, CEB_NS, layout.record)
        _fill(rec, CEB_NS, layout.fields, values)
    return _serialize(root)


def build_receipt(code: str, keys: dict[str, str], *, status: str = "2", info: str | None = None,
                  seed: int = 0) -> bytes:
    """A receipt (CEB312, 412, ..., 216, 900) in the default namespace, as e-port sends them.

    ``keys`` fills business keys (and any other field of the receipt record, including ``guid`` and
    ``returnTime``); the other fields get valid values.  ``info`` is the returnInfo text (default: a
    text typical for ``status``).  For CEB900 pass ``status`` as a negative code, e.g. ``"-1"``.
    """
    unknown = set(keys) - set(receipt_fields(code))
    if unknown:
        raise ValueError(f"{code}: unknown receipt fields {sorted(unknown)}")
    if code == "CEB900" and status == "2":
        status = "-1"
    return _receipt(code, [keys], status=status, info=info, seed=seed, default_ns=True, ids=EnterpriseIds())


def build_receipts(code: str, records: Sequence[Mapping[str, str]], *, seed: int = 0) -> bytes:
    """A receipt message of type ``code`` with one record per item of ``records`` (each with its
    own ``returnStatus`` and ``returnInfo`` and any other field, as :func:`build_receipt`'s
    ``keys``), in the default namespace: what e-port sends when it answers in batches."""
    if not 1 <= len(records) <= _layout(code).max_records:
        raise ValueError(f"{code}: 1 to {_layout(code).max_records} records")
    allowed = set(receipt_fields(code))
    for rec in records:
        unknown = set(rec) - allowed
        if unknown:
            raise ValueError(f"{code}: unknown receipt fields {sorted(unknown)}")
    return _receipt(code, records, status="2", info=None, seed=seed, default_ns=True, ids=EnterpriseIds())


# --------------------------------------------------------------------------- DXP envelopes


def flow_of(code: str) -> str:
    """``import`` or ``export`` for a CEB message code (spec §2): the catalogue's."""
    mtype = _CATALOG.types.get(code)
    if mtype is None or mtype.is_envelope:
        raise ValueError(f"unknown message code {code!r}")
    return mtype.flow


def _dxp_header(msg_type: str, seed: int) -> tuple[str, str]:
    """CopMsgId and CreatTime of a generated envelope, fixed by the seed."""
    rng = _rng("dxp", msg_type, seed)
    cop_msg_id = _guid(rng)
    created = _BASE_TIME + timedelta(minutes=seed % 600, seconds=rng.randrange(60))
    return cop_msg_id, f"{created:%Y-%m-%dT%H:%M:%S}"


def build_dxp_msg(payload: bytes, *, msg_type: str, sender_id: str, receiver_ids: Sequence[str] | None = None,
                  seed: int = 0) -> bytes:
    """Wrap CEB message bytes into a terminal-node ``dxp:DxpMsg`` (spec §9.1), as the gateway's
    :func:`gateway.envelope.wrap` writes it; by default to the customs system of the message's flow."""
    if receiver_ids is None:
        receiver_ids = [receiver_for(flow_of(msg_type[:6]))]
    cop_msg_id, created = _dxp_header(msg_type, seed)
    return wrap(payload, msg_type=msg_type, sender_id=sender_id, receiver_ids=tuple(receiver_ids),
                cop_msg_id=cop_msg_id, created=created)


def build_dxp_msg_sv(payload: bytes, *, msg_type: str, sender_id: str, receiver_ids: Sequence[str],
                     seed: int = 0, sta_node: str = "00000002", end_node: str = "33000001") -> bytes:
    """Wrap CEB message bytes into ``DxpMsgSv`` → ``DxpMsg`` (transport node, spec §9.2)."""
    root = etree.Element(f"{{{DXP_NS}}}DxpMsgSv", nsmap={"dxp": DXP_NS})
    root.set("ver", "1.0")
    sv = _sub(root, DXP_NS, "SvNo")
    sv.set("Ver", "1.0")
    sent = _BASE_TIME + timedelta(minutes=seed % 600, seconds=30)
    _sub(sv, DXP_NS, "MsgId", f"{sta_node}{sent:%Y%m%d%H%M%S}{seed % 10**10:010d}")
    _sub(sv, DXP_NS, "SubMsgId", "1")
    _sub(sv, DXP_NS, "SendTime", f"{sent:%Y-%m-%dT%H:%M:%S}")
    _sub(sv, DXP_NS, "EndNode", end_node)
    _sub(sv, DXP_NS, "StaNode", sta_node)
    msg = build_dxp_msg(payload, msg_type=msg_type, sender_id=sender_id, receiver_ids=receiver_ids, seed=seed)
    root.append(parse(msg, source="generated DxpMsg").root)
    return _serialize(root)


def build_dxp_rep(*, receiver_id: str, code: str = "0000", info: str = "成功",
                  msg_type: str = "CEB311Message", seed: int = 0) -> bytes:
    """A DXP platform response ``DxpRep`` (spec §9.1; note the official spelling ``RecevierId``)."""
    rng = _rng("dxprep", seed)
    root = etree.Element(f"{{{DXP_NS}}}DxpRep", nsmap={"dxp": DXP_NS})
    root.set("ver", "1.0")
    _sub(root, DXP_NS, "RecevierId", receiver_id)
    resp = _sub(root, DXP_NS, "Response")
    _sub(resp, DXP_NS, "ResponseCode", code)
    _sub(resp, DXP_NS, "ResponseInfo", info)
    _sub(resp, DXP_NS, "NoticeTime", f"{_BASE_TIME:%Y-%m-%d}")
    ori = _sub(resp, DXP_NS, "OriHead")
    _sub(ori, DXP_NS, "CopMsgId", _guid(rng))
    _sub(ori, DXP_NS, "SenderId", receiver_id)
    rids = _sub(ori, DXP_NS, "ReceiverIds")
    _sub(rids, DXP_NS, "ReceiverId", RECEIVER_IMPORT)
    _sub(ori, DXP_NS, "CreatTime", f"{_BASE_TIME:%Y-%m-%dT%H:%M:%S}")
    _sub(ori, DXP_NS, "MsgType", msg_type)
    return _serialize(root)


def placeholder_signature() -> etree._Element:
    """A structurally complete ``ds:Signature`` whose values verify nothing.

    For schema and rule tests only: validation checks the signature's shape, never its
    values (that is :mod:`gateway.dsig`'s job).
    """
    ds = f"{{{DS_NS}}}"
    sig = etree.Element(ds + "Signature", nsmap={"ds": DS_NS})
    si = etree.SubElement(sig, ds + "SignedInfo")
    etree.SubElement(si, ds + "CanonicalizationMethod",
                     Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315")
    etree.SubElement(si, ds + "SignatureMethod", Algorithm="http://www.chinaport.gov.cn/2022/04/xmldsig#sm2-sm3")
    ref = etree.SubElement(si, ds + "Reference", URI="")
    transforms = etree.SubElement(ref, ds + "Transforms")
    etree.SubElement(transforms, ds + "Transform",
                     Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature")
    etree.SubElement(ref, ds + "DigestMethod", Algorithm="http://www.chinaport.gov.cn/2022/04/xmldsig#sm3")
    etree.SubElement(ref, ds + "DigestValue").text = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="
    etree.SubElement(sig, ds + "SignatureValue").text = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    key_info = etree.SubElement(sig, ds + "KeyInfo")
    etree.SubElement(key_info, ds + "KeyName").text = "03000000000cde6f"
    x509 = etree.SubElement(key_info, ds + "X509Data")
    etree.SubElement(x509, ds + "X509Certificate").text = "MIIBszCCAVmgAwIBAgIUAA=="
    return sig


def extend_message() -> etree._Element:
    """An ``ExtendMessage`` with a free payload (spec §4.3), for tail-order tests."""
    c = f"{{{CEB_NS}}}"
    ext = etree.Element(c + "ExtendMessage")
    etree.SubElement(ext, c + "name").text = "sandbox"
    etree.SubElement(ext, c + "version").text = "1.0"
    etree.SubElement(etree.SubElement(ext, c + "Message"), "{urn:x-sandbox}payload").text = "free"
    return ext
