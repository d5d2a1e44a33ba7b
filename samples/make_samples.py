#!/usr/bin/env python3
"""Write the sample messages under samples/valid/ and samples/unsigned/ with gateway.sandbox.samplegen.

Usage: .venv/bin/python samples/make_samples.py

Deterministic: running it twice gives identical files.  Signature-required types (CEB621, 623, 625,
711) go to samples/unsigned/; they are signed into samples/valid/ by the signing tooling.
"""

from __future__ import annotations

import functools
import re
import sys
import tomllib
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.catalog import load as load_catalog  # noqa: E402
from gateway.dsig.keys import load_key  # noqa: E402
from gateway.dsig.sign import sign  # noqa: E402
from gateway.envelope import RECEIVER_IMPORT  # noqa: E402
from gateway.pipeline import validate_bytes  # noqa: E402
from gateway.sandbox import samplegen as sg  # noqa: E402
from gateway.validate import xsd  # noqa: E402
from gateway.xmlio import parse  # noqa: E402

VALID = ROOT / "samples" / "valid"
CERTS = ROOT / "certs" / "sandbox"
# Declarations signed in samples/valid: the XSD requires a signature (621/623/625/711), or the
# rules do (607 with appStatus 2).  RSA-SHA1, the official profile: deterministic output.
SIGNED = sorted(set(sg.SIGNATURE_REQUIRED) | {"CEB607"})
UNSIGNED = ROOT / "samples" / "unsigned"
ORDER_NO = "SO20261123000458001"
SEED = 1


def _text(xml: bytes, tag: str) -> str:
    """Value of the first <ceb:tag> in generated (trusted) XML; avoids re-parsing."""
    start = xml.index(f":{tag}>".encode()) + len(tag) + 2
    return xml[start:xml.index(b"<", start)].decode("utf-8")


def main() -> int:
    VALID.mkdir(parents=True, exist_ok=True)
    UNSIGNED.mkdir(parents=True, exist_ok=True)
    files: dict[Path, bytes] = {}

    order_set = sg.build_order_set(ORDER_NO, lines=2, seed=SEED)
    for code in sg.DECLARATIONS:
        data = order_set.get(code) or sg.build(code, records=1, lines=2, seed=SEED)
        target = UNSIGNED if code in sg.SIGNATURE_REQUIRED else VALID
        files[target / f"{code}.xml"] = data
    for code in sg.CUSTOMS_ISSUED:
        files[VALID / f"{code}.xml"] = sg.build(code, records=1, lines=2, seed=SEED)

    order, payment, waybill, inventory = (order_set[c] for c in ("CEB311", "CEB411", "CEB511", "CEB621"))
    linked: dict[str, dict[str, str]] = {
        "CEB312": {k: _text(order, k) for k in ("ebpCode", "ebcCode", "orderNo")},
        "CEB412": {k: _text(payment, k) for k in ("payCode", "payTransactionId")},
        "CEB512": {k: _text(waybill, k) for k in ("logisticsCode", "logisticsNo")},
        "CEB622": {k: _text(inventory, k) for k in ("ebpCode", "ebcCode", "agentCode", "copNo")},
    }
    for code in sg.RECEIPTS:
        status = "-1" if code == "CEB900" else "2"
        files[VALID / f"{code}.xml"] = sg.build_receipt(code, linked.get(code, {}), status=status, seed=SEED)

    # Variants.
    files[VALID / "CEB311-default-ns.xml"] = sg.build("CEB311", seed=SEED, default_ns=True)
    plain = sg.build("CEB311", seed=SEED + 1)
    assert plain.startswith(sg.XML_DECL)
    decl = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    files[VALID / "CEB311-bom-standalone.xml"] = b"\xef\xbb\xbf" + decl + plain[len(sg.XML_DECL):]
    files[VALID / "CEB622-status100.xml"] = sg.build_receipt(
        "CEB622", linked["CEB622"], status="100", info="[Code:13035;Desc:支付企业不一致]", seed=SEED
    )

    # DXP envelopes.
    ebc_dxp = sg.EnterpriseIds().ebc_dxp_id
    files[VALID / "DxpMsg.xml"] = sg.build_dxp_msg(order, msg_type="CEB311Message", sender_id=ebc_dxp,
                                                   seed=SEED)
    receipt = files[VALID / "CEB312.xml"]
    files[VALID / "DxpMsgSv.xml"] = sg.build_dxp_msg_sv(
        receipt, msg_type="CEB312Message", sender_id=RECEIVER_IMPORT, receiver_ids=[ebc_dxp], seed=SEED
    )
    files[VALID / "DxpRep.xml"] = sg.build_dxp_rep(receiver_id=ebc_dxp, seed=SEED)

    _sign_required(files)
    _edition_variants(files)

    for path, data in sorted(files.items()):
        path.write_bytes(data)
        print(path.relative_to(ROOT))
    return 0


def _sender_key_stem(data: bytes) -> str:
    """The sandbox enterprise whose code is the message's BaseTransfer/copCode."""
    root = parse(data).root
    cop = root.findtext("{http://www.chinaport.gov.cn/ceb}BaseTransfer/{http://www.chinaport.gov.cn/ceb}copCode")
    ids = sg.EnterpriseIds()
    by_code = {ids.ebp_code: "platform", ids.ebc_code: "ecommerce", ids.pay_code: "payment",
               ids.logistics_code: "logistics", ids.agent_code: "agent", ids.operator_code: "site_operator"}
    return by_code[cop or ""]


def _sign_required(files: dict[Path, bytes]) -> None:
    """Sign the declarations that must carry a signature with their sender's sandbox RSA key."""
    catalog = load_catalog()
    for code in SIGNED:
        source = UNSIGNED / f"{code}.xml" if code in sg.SIGNATURE_REQUIRED else VALID / f"{code}.xml"
        data = files[source]
        stem = _sender_key_stem(data)
        key = load_key(CERTS / f"{stem}-rsa.key.pem", CERTS / f"{stem}-rsa.cert.pem")
        signed = sign(data, key, alg="rsa-sha1", message_type=catalog[code])
        files[VALID / f"{code}.xml"] = signed


# --------------------------------------------------------------------------- edition variants

XSD_SRC = ROOT / "xsd" / "src"
CEB = "{http://www.chinaport.gov.cn/ceb}"


def _tables() -> tuple[dict[str, dict[str, list[str]]], dict[str, dict[str, dict[str, str]]]]:
    with open(XSD_SRC / "empty.toml", "rb") as fh:
        empty = tomllib.load(fh)
    with open(XSD_SRC / "editions.toml", "rb") as fh:
        older = tomllib.load(fh)
    return empty, older


def _leaves(root: etree._Element) -> list[tuple[etree._Element, str, str]]:
    """(element, parent name, name) of every CEB leaf, signatures and extensions aside."""
    out = []
    for el in root.iter(CEB + "*"):
        parent = el.getparent()
        if len(el) or parent is None or parent is root or "ExtendMessage" in {a.tag[len(CEB):] for a in
                                                                             el.iterancestors()}:
            continue
        out.append((el, str(parent.tag)[len(CEB):], str(el.tag)[len(CEB):]))
    return out


def _ser(root: etree._Element) -> bytes:
    etree.indent(root, space="  ")
    return sg.XML_DECL + etree.tostring(root, encoding="UTF-8") + b"\n"


def _max(spec: str) -> int:
    m = re.search(r"(\d+)$", spec.split()[0])
    assert m, spec
    return int(m.group(1))


def _edition_variants(files: dict[Path, bytes]) -> None:
    """``CODE-empty.xml``: every field whose empty content the 202205 schema accepts, left empty
    (business keys and the sender's copCode aside: the gateway needs those).  ``CODE-2018.xml``:
    the message in a form only the 2018 edition accepts (a longer field, a field it lacks), for
    the types whose records the editions table changes."""
    empty, older = _tables()
    catalog = load_catalog()
    for t in catalog:
        if t.is_envelope:
            continue
        source = (UNSIGNED if t.code in sg.SIGNATURE_REQUIRED else VALID) / f"{t.code}.xml"
        if source not in files:
            continue
        keep = set(t.keys) | {"copCode"}
        root = sg_tree(files[source])
        _strip_signature(root)
        required = xsd.required_children(t)
        emptiable = [(el, (parent, name) in required) for el, parent, name in _leaves(root)
                     if name in empty[t.flow].get(parent, ()) and name not in keep]
        # the optional ones where the message has any (as real messages leave notes and numbers
        # customs assigns later empty); else the required ones, which the rules warn about
        chosen = [el for el, req in emptiable if not req] or [el for el, _ in emptiable]
        kept = {el: el.text for el in chosen}
        for el in chosen:
            el.text = ""
        # a field the gateway's own rules need (e.g. billNo of a direct-purchase list) keeps its value
        for _ in range(3):
            refused = {f.field for f in validate_bytes(_ser(root)).errors}
            for el in chosen:
                if str(el.tag).rpartition("}")[2] in refused:
                    el.text = kept[el]
        _new_guid(root, "0E00")  # other bytes under the same guid would be a conflict (409)
        files[VALID / f"{t.code}-empty.xml"] = _signed_if_needed(t.code, _ser(root))

        if "2018" not in t.editions:
            continue
        root = sg_tree(files[source])
        _strip_signature(root)
        changed = False
        for el, parent, name in _leaves(root):
            spec = older.get(t.flow, {}).get(parent, {}).get(name)
            if spec is None:
                continue
            if spec == "absent":
                el.getparent().remove(el)  # type: ignore[union-attr]
                changed = True
            elif "empty" in spec.split() and name not in empty[t.flow].get(parent, ()):
                el.text = ""
                changed = True
            elif len(el.text or "") < _max(spec) and _max(spec) > _max_now(t.flow, parent, name):
                el.text = (el.text or "") + "0" * (_max(spec) - len(el.text or ""))
                changed = True
        if changed:
            _new_guid(root, "2018")
            files[VALID / f"{t.code}-2018.xml"] = _signed_if_needed(t.code, _ser(root))


@functools.cache
def _schema_tree(flow: str) -> etree._ElementTree:
    return etree.parse(str(ROOT / "xsd" / f"ceb-{flow}.xsd"))


def _max_now(flow: str, parent: str, name: str) -> int:
    """The field's maxLength in the 202205 schema."""
    xsd = _schema_tree(flow)
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    for decl in xsd.iterfind(f".//xs:element[@name='{parent}']//xs:element[@name='{name}']", ns):
        tname = decl.get("type", "").rpartition(":")[2]
        found = xsd.find(f"xs:simpleType[@name='{tname}']/xs:restriction/*[@value]", ns)
        facets = xsd.findall(f"xs:simpleType[@name='{tname}']/xs:restriction/*", ns)
        for f in facets:
            if f.tag.endswith("maxLength") or f.tag.endswith("}length"):
                return int(f.get("value", "0"))
        assert found is not None
    raise AssertionError(f"{flow} {parent}/{name} not in the schema")


def _new_guid(root: etree._Element, tail: str) -> None:
    guid = root.get("guid", "")
    root.set("guid", guid[:-len(tail)] + tail)


def sg_tree(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True)
    return etree.fromstring(data, parser)


def _strip_signature(root: etree._Element) -> None:
    for sig in root.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        root.remove(sig)


def _signed_if_needed(code: str, data: bytes) -> bytes:
    if code not in SIGNED:
        return data
    stem = _sender_key_stem(data)
    key = load_key(CERTS / f"{stem}-rsa.key.pem", CERTS / f"{stem}-rsa.cert.pem")
    return sign(data, key, alg="rsa-sha1", message_type=load_catalog()[code])


if __name__ == "__main__":
    sys.exit(main())
