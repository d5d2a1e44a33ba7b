"""Parcels for the service tests: the four documents of one order, changed and signed as their
senders would send them, in a sandbox whose accounts carry pre-flight policies."""

from __future__ import annotations

import re
import uuid

from lxml import etree

from gateway.catalog import load as load_catalog
from gateway.dsig import signature_required
from gateway.sandbox import samplegen
from gateway.xmlio import parse

from .kit import Api, Sandbox

CEB = "{http://www.chinaport.gov.cn/ceb}"
POLICIES = {"ecommerce": "hold", "payment": "warn", "logistics": "warn", "platform": "off"}


def order_set(order_no: str, seed: int = 0) -> dict[str, bytes]:
    """CEB311, 411, 511 and 621 of one consistent parcel, unsigned."""
    return samplegen.build_order_set(order_no, seed=seed)


def head_field(data: bytes, name: str) -> str:
    root = parse(data).root
    el = next(root.iter(f"{CEB}{name}"), None)
    return (el.text or "") if el is not None else ""


def changed(data: bytes, *, app_type: str | None = None, **fields: str) -> bytes:
    """``data`` with head fields set (the first element of each name), new root and head guids
    (a new version), and ``appType`` if given."""
    root = parse(data).root
    if app_type is not None:
        fields["appType"] = app_type
    for name, value in fields.items():
        el = next(root.iter(f"{CEB}{name}"))
        el.text = value
    root.set("guid", str(uuid.uuid4()).upper())
    head_guid = next(root.iter(f"{CEB}guid"))
    head_guid.text = str(uuid.uuid4()).upper()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def sender_of(sb: Sandbox, data: bytes) -> str:
    return sb.owner_of(head_field(data, "copCode"))


def signed(sb: Sandbox, data: bytes) -> bytes:
    """Signed by its sender where the catalogue requires a signature."""
    ident = load_catalog().identify(parse(data))
    return sb.sign_as(sender_of(sb, data), data) if signature_required(ident.type, ident.root) else data


async def submit(api: Api, sb: Sandbox, data: bytes) -> tuple[int, dict[str, object]]:
    return await api.post_xml(sb.token(sender_of(sb, data)), signed(sb, data))


def as_sender(data: bytes, cop_code: str, name: str) -> bytes:
    """``data`` sent by another enterprise (BaseTransfer copCode and copName)."""
    root = parse(data).root
    transfer = root.find(f"{CEB}BaseTransfer")
    assert transfer is not None
    transfer.find(f"{CEB}copCode").text = cop_code  # type: ignore[union-attr]
    transfer.find(f"{CEB}copName").text = name  # type: ignore[union-attr]
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def customs_text_codes(info: str) -> list[str]:
    return re.findall(r"\[Code:(\d+);", info)
