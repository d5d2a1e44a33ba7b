"""The XSDs in xsd/, the samples in samples/ and the sample generator agree with each other and the spec."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
import xmlschema
from lxml import etree

from gateway.sandbox import samplegen as sg

ROOT = Path(__file__).resolve().parent.parent
XSD = ROOT / "xsd"
VALID = ROOT / "samples" / "valid"
UNSIGNED = ROOT / "samples" / "unsigned"
CEB = "{http://www.chinaport.gov.cn/ceb}"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
DS = "{" + DS_NS + "}"

EXPORT_CODES = frozenset(
    "303 304 403 404 505 506 507 508 509 510 603 604 605 606 607 608 701 702 792 213 214 215 216".split()
)
DXP_SCHEMAS = {"DxpMsg": "dxp-terminal.xsd", "DxpMsgSv": "dxp-transport.xsd", "DxpRep": "dxp-response.xsd"}
ALL_CODES = sg.DECLARATIONS + sg.RECEIPTS + sg.CUSTOMS_ISSUED


def schema_file(name: str) -> Path:
    """Schema for a message code ("CEB311", "DxpMsg", ...) or a sample file name."""
    stem = Path(name).stem
    for dxp, xsd in DXP_SCHEMAS.items():
        if stem == dxp or stem.startswith(dxp + "-"):
            return XSD / xsd
    m = re.match(r"CEB(\d{3})", stem)
    assert m, name
    flow = "export" if m.group(1) in EXPORT_CODES else "import"
    # samples/valid/CODE-2018.xml follow the 2018 edition; everything else the current one
    return XSD / (f"ceb-{flow}-2018.xsd" if stem.endswith("-2018") else f"ceb-{flow}.xsd")


@cache
def schema(path: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(path)))


def parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser)


def errors(doc: etree._Element, name: str) -> list[str]:
    s = schema(schema_file(name))
    if s.validate(doc):
        return []
    return [str(e.message) for e in s.error_log]  # type: ignore[attr-defined]


def assert_valid(data: bytes, name: str) -> None:
    errs = errors(parse(data), name)
    assert not errs, errs[:5]


# --------------------------------------------------------------------------- schemas


SCHEMAS = sorted(XSD.glob("*.xsd"))


def test_all_schemas_present() -> None:
    names = {p.name for p in SCHEMAS}
    assert {"ceb-import.xsd", "ceb-export.xsd", "dxp-terminal.xsd", "dxp-transport.xsd", "dxp-response.xsd",
            "xmldsig-core.xsd"} <= names


# For each schema: a sample it must accept (for xmldsig-core.xsd, the ds:Signature of a signed one)
SCHEMA_SAMPLE = {"ceb-import.xsd": "CEB311.xml", "ceb-export.xsd": "CEB303.xml",
                 "ceb-import-2018.xsd": "CEB621-2018.xml", "ceb-export-2018.xsd": "CEB303-2018.xml",
                 "dxp-terminal.xsd": "DxpMsg.xml", "dxp-transport.xsd": "DxpMsgSv.xml",
                 "dxp-response.xsd": "DxpRep.xml", "xmldsig-core.xsd": "CEB621.xml"}


def _accepted_and_refused(name: str) -> tuple[etree._Element, etree._Element]:
    """A document the schema ``name`` must accept, and the same with a foreign first child."""
    assert name in SCHEMA_SAMPLE, f"name a sample that {name} accepts in SCHEMA_SAMPLE"
    good = parse((VALID / SCHEMA_SAMPLE[name]).read_bytes())
    if name == "xmldsig-core.xsd":
        sig = good.find(f"{{{DS_NS}}}Signature")
        assert sig is not None
        good = etree.fromstring(etree.tostring(sig))
    bad = etree.fromstring(etree.tostring(good))
    bad.insert(0, etree.Element("{urn:x-test}unexpected"))
    return good, bad


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_schema_compiles_lxml(path: Path) -> None:
    assert b"<!DOCTYPE" not in path.read_bytes()
    schema = etree.XMLSchema(etree.parse(str(path)))
    good, bad = _accepted_and_refused(path.name)
    assert schema.validate(good), schema.error_log
    assert not schema.validate(bad)


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_schema_compiles_xmlschema(path: Path) -> None:
    schema = xmlschema.XMLSchema10(str(path))
    good, bad = _accepted_and_refused(path.name)
    assert schema.is_valid(good)
    assert not schema.is_valid(bad)


def test_generated_schemas_up_to_date() -> None:
    proc = subprocess.run([sys.executable, str(XSD / "src" / "build_xsd.py"), "--check"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("flow", ["import", "export"])
def test_only_roots_are_global(flow: str) -> None:
    tree = etree.parse(str(XSD / f"ceb-{flow}.xsd"))
    xs = "{http://www.w3.org/2001/XMLSchema}"
    names = [e.get("name") for e in tree.getroot().iterchildren(xs + "element")]
    assert names and all(re.fullmatch(r"CEB\d{3}Message", n or "") for n in names)
    expected = {c for c in ALL_CODES if (c[3:] in EXPORT_CODES) == (flow == "export")}
    assert {n[:6] for n in names if n} == expected
    bare = b'<Order xmlns="http://www.chinaport.gov.cn/ceb"/>'
    assert errors(parse(bare), f"CEB{'303' if flow == 'export' else '311'}")


# --------------------------------------------------------------------------- samples


VALID_SAMPLES = sorted(VALID.glob("*.xml"))
UNSIGNED_SAMPLES = sorted(UNSIGNED.glob("*.xml"))


def test_sample_set_complete() -> None:
    names = {p.stem for p in VALID_SAMPLES} | {p.stem for p in UNSIGNED_SAMPLES}
    missing = {c for c in ALL_CODES} - names
    assert not missing
    assert {"DxpMsg", "DxpMsgSv", "CEB311-default-ns", "CEB311-bom-standalone", "CEB622-status100"} <= names
    assert {p.stem for p in UNSIGNED_SAMPLES} >= set(sg.SIGNATURE_REQUIRED)


@pytest.mark.parametrize("path", VALID_SAMPLES, ids=lambda p: p.name)
def test_valid_sample_validates(path: Path) -> None:
    assert_valid(path.read_bytes(), path.name)


@cache
def xmlschema_for(path: Path) -> xmlschema.XMLSchema10:
    return xmlschema.XMLSchema10(str(path))


@pytest.mark.parametrize("name", ["CEB311.xml", "CEB311-bom-standalone.xml", "CEB303.xml", "CEB816.xml",
                                  "CEB900.xml", "DxpMsg.xml", "DxpMsgSv.xml", "DxpRep.xml"])
def test_xmlschema_accepts_samples(name: str) -> None:
    xmlschema_for(schema_file(name)).validate(str(VALID / name))


def test_bom_standalone_sample_really_has_them() -> None:
    data = (VALID / "CEB311-bom-standalone.xml").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf<?xml") and b'standalone="yes"' in data.split(b"\n", 1)[0]


def test_status100_sample() -> None:
    root = parse((VALID / "CEB622-status100.xml").read_bytes())
    assert root.findtext(f"{CEB}InventoryReturn/{CEB}returnStatus") == "100"
    assert root.findtext(f"{CEB}InventoryReturn/{CEB}returnInfo") == "[Code:13035;Desc:支付企业不一致]"
    assert root.prefix is None


def test_dxp_samples_wrap_ceb_messages() -> None:
    import base64

    dxp = "{http://www.chinaport.gov.cn/dxp}"
    msg = parse((VALID / "DxpMsg.xml").read_bytes())
    inner = base64.b64decode(msg.findtext(f"{dxp}Data") or "")
    assert_valid(inner, "CEB311")
    sv = parse((VALID / "DxpMsgSv.xml").read_bytes())
    inner = base64.b64decode(sv.findtext(f"{dxp}DxpMsg/{dxp}Data") or "")
    assert parse(inner).tag == f"{CEB}CEB312Message"
    assert_valid(inner, "CEB312")


@pytest.mark.skipif(shutil.which("xmllint") is None, reason="xmllint not installed")
@pytest.mark.parametrize("name", ["CEB311.xml", "CEB303.xml", "CEB622-status100.xml", "DxpMsgSv.xml"])
def test_xmllint_accepts_samples(name: str) -> None:
    cmd = ["xmllint", "--noout", "--nonet", "--schema", str(schema_file(name)), str(VALID / name)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("path", UNSIGNED_SAMPLES, ids=lambda p: p.name)
def test_unsigned_sample_needs_signature(path: Path) -> None:
    root = parse(path.read_bytes())
    errs = errors(root, path.name)
    assert errs and all("Signature" in e for e in errs), errs
    root.append(sg.placeholder_signature())  # import tail: ds:Signature is the last child
    assert not errors(root, path.name)


# --------------------------------------------------------------------------- samplegen


def _lines_cases(code: str) -> list[int]:
    return [1, 10, 100 if code[3:] in EXPORT_CODES else 99]


@pytest.mark.parametrize("code", ALL_CODES)
def test_samplegen_validates(code: str) -> None:
    for records in (1, 3):
        for lines in _lines_cases(code):
            data = sg.build(code, records=records, lines=lines, seed=records * 7 + lines)
            root = parse(data)
            if code in sg.SIGNATURE_REQUIRED:
                root.append(sg.placeholder_signature())
            errs = errors(root, code)
            assert not errs, (code, records, lines, errs[:3])


@pytest.mark.parametrize("code", sg.RECEIPTS)
def test_build_receipt_validates(code: str) -> None:
    data = sg.build_receipt(code, {}, status="-1" if code == "CEB900" else "120", seed=3)
    root = parse(data)
    assert root.prefix is None and root.tag == f"{CEB}{code}Message"
    assert not errors(root, code)


def test_samplegen_output_format() -> None:
    data = sg.build("CEB311", seed=4)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<ceb:CEB311Message')
    assert b'xmlns:ceb="http://www.chinaport.gov.cn/ceb"' in data
    assert b"\n  <ceb:Order>\n    <ceb:OrderHead>\n" in data
    assert data == sg.build("CEB311", seed=4)
    assert data != sg.build("CEB311", seed=5)
    guid = parse(data).get("guid") or ""
    assert re.fullmatch(r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}", guid)


@pytest.mark.parametrize("code", ["CEB311", "CEB621", "CEB303", "CEB603"])
def test_samplegen_money_rules(code: str) -> None:
    root = parse(sg.build(code, records=2, lines=7, seed=11))
    head_tag, line_tag = ("OrderHead", "OrderList") if code in ("CEB311", "CEB303") else (
        "InventoryHead", "InventoryList")
    for rec in root.iterchildren(CEB + ("Order" if "Order" in head_tag else "Inventory")):
        head = rec.find(CEB + head_tag)
        assert head is not None
        total = Decimal(0)
        for n, line in enumerate(rec.iterchildren(CEB + line_tag), 1):
            assert line.findtext(CEB + "gnum") == str(n)
            price, qty, tp = (Decimal(line.findtext(CEB + t) or "x") for t in ("price", "qty", "totalPrice"))
            assert price * qty == tp and -tp.as_tuple().exponent <= 2  # type: ignore[operator]
            total += tp
        if code == "CEB311":
            v = {t: Decimal(head.findtext(CEB + t) or "x")
                 for t in ("goodsValue", "freight", "taxTotal", "discount", "acturalPaid")}
            assert v["goodsValue"] == total
            assert v["acturalPaid"] == v["goodsValue"] + v["freight"] + v["taxTotal"] - v["discount"]
            assert head.findtext(CEB + "currency") == "142" and head.findtext(CEB + "orderType") == "I"
        if code == "CEB303":
            assert Decimal(head.findtext(CEB + "goodsValue") or "x") == total
            assert head.findtext(CEB + "orderType") == "E"


def test_order_set_consistent() -> None:
    docs = {c: parse(b) for c, b in sg.build_order_set("SO-TEST-0001", lines=3, seed=2).items()}
    docs["CEB621"].append(sg.placeholder_signature())
    for c, root in docs.items():
        assert not errors(root, c), c

    def h(code: str, path: str, field: str) -> str:
        return docs[code].findtext(f"{CEB}{path}/{CEB}{field}") or ""

    o, p, w, i = "Order/" + CEB + "OrderHead", "Payment/" + CEB + "PaymentHead", \
        "Logistics/" + CEB + "LogisticsHead", "Inventory/" + CEB + "InventoryHead"
    assert h("CEB311", o, "orderNo") == h("CEB411", p, "orderNo") == h("CEB511", w, "orderNo") \
        == h("CEB621", i, "orderNo") == "SO-TEST-0001"
    assert h("CEB311", o, "ebpCode") == h("CEB411", p, "ebpCode") == h("CEB621", i, "ebpCode")
    assert Decimal(h("CEB411", p, "amountPaid")) == Decimal(h("CEB311", o, "acturalPaid"))
    for f in ("payCode", "payTransactionId"):
        assert h("CEB311", o, f) == h("CEB411", p, f)
    for f in ("consignee", "consigneeTelephone", "consigneeAddress"):
        assert h("CEB311", o, f) == h("CEB511", w, f)
    for f in ("buyerIdType", "buyerIdNumber", "buyerName", "buyerTelephone"):
        assert h("CEB311", o, f) == h("CEB621", i, f)
    assert h("CEB621", i, "assureCode") == h("CEB621", i, "ebcCode") == h("CEB311", o, "ebcCode")
    for f in ("logisticsCode", "logisticsNo"):
        assert h("CEB511", w, f) == h("CEB621", i, f)
    order_lines = docs["CEB311"].findall(f"{CEB}Order/{CEB}OrderList")
    inv_lines = docs["CEB621"].findall(f"{CEB}Inventory/{CEB}InventoryList")
    assert len(order_lines) == len(inv_lines) == 3
    for ol, il in zip(order_lines, inv_lines, strict=True):
        for f in ("gnum", "qty", "price", "totalPrice"):
            assert ol.findtext(CEB + f) == il.findtext(CEB + f)
        assert (ol.findtext(CEB + "itemName") or "").endswith(il.findtext(CEB + "gname") or "?")
    assert docs["CEB311"].findtext(f"{CEB}BaseTransfer/{CEB}copCode") == h("CEB311", o, "ebcCode")
    assert docs["CEB411"].findtext(f"{CEB}BaseTransfer/{CEB}copCode") == h("CEB411", p, "payCode")
    assert docs["CEB511"].findtext(f"{CEB}BaseTransfer/{CEB}copCode") == h("CEB511", w, "logisticsCode")


# --------------------------------------------------------------------------- negatives


def test_101_records_rejected() -> None:
    for code in ("CEB311", "CEB303", "CEB312"):
        assert errors(parse(sg.build(code, records=101, lines=1)), code)
    assert not errors(parse(sg.build("CEB311", records=100, lines=1)), "CEB311")


def test_import_line_limit() -> None:
    assert errors(parse(sg.build("CEB311", lines=100)), "CEB311")
    root = parse(sg.build("CEB621", lines=100))
    root.append(sg.placeholder_signature())
    assert errors(root, "CEB621")
    assert not errors(parse(sg.build("CEB303", lines=100)), "CEB303")
    assert errors(parse(sg.build("CEB303", lines=101)), "CEB303")


def _order_head(root: etree._Element) -> etree._Element:
    head = root.find(f"{CEB}Order/{CEB}OrderHead")
    assert head is not None
    return head


def _set(root: etree._Element, field: str, value: str) -> etree._Element:
    el = _order_head(root).find(CEB + field)
    assert el is not None
    el.text = value
    return root


def test_negative_field_values() -> None:
    base = sg.build("CEB311", seed=9)
    assert errors(_set(parse(base), "orderNo", "X" * 61), "CEB311")
    assert not errors(_set(parse(base), "orderNo", "X" * 60), "CEB311")
    assert errors(_set(parse(base), "goodsValue", "12.345678"), "CEB311")
    assert not errors(_set(parse(base), "goodsValue", "12.34567"), "CEB311")
    assert errors(_set(parse(base), "goodsValue", "1" * 20), "CEB311")
    assert not errors(_set(parse(base), "goodsValue", "1" * 19), "CEB311")
    assert errors(_set(parse(base), "currency", "1420"), "CEB311")
    root = parse(base)
    root.set("guid", "SHORT")
    assert errors(root, "CEB311")


def test_missing_elements_rejected() -> None:
    root = parse(sg.build("CEB311", seed=9))
    head = _order_head(root)
    head.remove(head.find(CEB + "orderNo"))  # type: ignore[arg-type]
    assert any("orderNo" in e for e in errors(root, "CEB311"))
    root = parse(sg.build("CEB311", seed=9))
    order = root.find(CEB + "Order")
    assert order is not None
    order.remove(_order_head(root))
    assert any("OrderHead" in e for e in errors(root, "CEB311"))
    root = parse(sg.build("CEB311", seed=9))
    root.remove(root.find(CEB + "BaseTransfer"))  # type: ignore[arg-type]
    assert errors(root, "CEB311")


def test_optional_field_may_be_omitted() -> None:
    root = parse(sg.build("CEB311", seed=9))
    head = _order_head(root)
    for f in ("payCode", "payName", "payTransactionId", "batchNumbers", "consigneeDistrict"):
        head.remove(head.find(CEB + f))  # type: ignore[arg-type]
    assert not errors(root, "CEB311")


def test_export_tail_order() -> None:
    root = parse(sg.build("CEB303", seed=2))
    root.append(sg.placeholder_signature())
    root.append(sg.extend_message())
    assert not errors(root, "CEB303")
    root = parse(sg.build("CEB303", seed=2))
    root.append(sg.extend_message())
    root.append(sg.placeholder_signature())  # import order: rejected for export
    assert errors(root, "CEB303")


def test_import_tail_order() -> None:
    root = parse(sg.build("CEB311", seed=2))
    root.append(sg.extend_message())
    root.append(sg.placeholder_signature())
    assert not errors(root, "CEB311")
    root = parse(sg.build("CEB311", seed=2))
    root.append(sg.placeholder_signature())
    root.append(sg.extend_message())
    assert errors(root, "CEB311")


def test_base_subscribe_limit() -> None:
    def with_subscribers(n: int) -> etree._Element:
        root = parse(sg.build("CEB411", seed=1))
        for k in range(n):
            bs = etree.SubElement(root, CEB + "BaseSubscribe")
            for tag, text in (("status", "ALL"), ("dxpMode", "DXP"), ("dxpAddress", f"DXPENT000000000{k}")):
                etree.SubElement(bs, CEB + tag).text = text
        return root

    assert not errors(with_subscribers(5), "CEB411")
    assert errors(with_subscribers(6), "CEB411")


def test_receipts_have_no_tail() -> None:
    root = parse(sg.build_receipt("CEB312", {"orderNo": "SO1"}))
    bt = etree.SubElement(root, CEB + "BaseTransfer")
    for tag, text in (("copCode", "X"), ("copName", "X"), ("dxpMode", "DXP"), ("dxpId", "X")):
        etree.SubElement(bt, CEB + tag).text = text
    assert errors(root, "CEB312")


def test_ceb816_accepts_pdf_trailing_fields() -> None:
    root = parse(sg.build("CEB816", seed=1))
    head = root.find(f"{CEB}Tax/{CEB}TaxHeadRd")
    assert head is not None
    etree.SubElement(head, CEB + "orderNo").text = "SO1"
    etree.SubElement(head, CEB + "logisticNo").text = "SF1"
    assert not errors(root, "CEB816")


def test_dxp_negatives() -> None:
    dxp = "{http://www.chinaport.gov.cn/dxp}"
    root = parse((VALID / "DxpMsg.xml").read_bytes())
    root.set("ver", "2.0")
    assert errors(root, "DxpMsg")
    root = parse((VALID / "DxpMsg.xml").read_bytes())
    rids = root.find(f"{dxp}TransInfo/{dxp}ReceiverIds")
    assert rids is not None
    for k in range(5):
        etree.SubElement(rids, dxp + "ReceiverId").text = f"DXPENT000000000{k}"
    assert errors(root, "DxpMsg")  # 6 receivers
    root = parse((VALID / "DxpMsg.xml").read_bytes())
    root.append(sg.placeholder_signature())
    assert not errors(root, "DxpMsg")
