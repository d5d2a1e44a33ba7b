"""A mailbox item in ``format=json`` shows the receipt record it is about: the store keeps each
record's number, so two records of one receipt message alike in status and keys stay apart."""

from __future__ import annotations

import copy

from lxml import etree

from gateway.catalog import CEB_NS
from gateway.catalog import load as load_catalog
from gateway.sandbox import samplegen
from gateway.xmlio import parse

from .kit import Sandbox, aio, customs_receipt, declaration, running


def _two_records(receipt: bytes, infos: tuple[str, str]) -> bytes:
    """``receipt`` with its one record twice, the copies told apart only by guid and returnInfo."""
    root = parse(receipt).root
    first = root[0]
    second = copy.deepcopy(first)
    first.addnext(second)
    for rec, info, guid in zip((first, second), infos, ("A" * 36, "B" * 36), strict=True):
        rec.find(f"{{{CEB_NS}}}returnInfo").text = info  # type: ignore[union-attr]
        rec.find(f"{{{CEB_NS}}}guid").text = guid  # type: ignore[union-attr]
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@aio
async def test_each_mail_item_shows_its_own_record(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", seed=61)
    keys = load_catalog()["CEB311"].business_keys(parse(data).root)[0]
    receipt = _two_records(samplegen.build_receipt("CEB312", dict(keys), status="120"),
                           ("first record", "second record"))
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body
        posted = customs_receipt(sb, receipt, sb.account(owner)["dxp_id"])
        status, out = await api.post_xml(sb.token("customs"), posted, path="/v1/customs/receipts")
        assert status == 200 and [r["outcome"] for r in out["records"]] == ["delivered", "delivered"], out
        status, mail = await api.get(sb.token(owner), "/v1/receipts?format=json")
        assert status == 200
        shown = [(item["record"]["guid"], item["record"]["returnInfo"]) for item in mail["items"]]
        assert shown == [("A" * 36, "first record"), ("B" * 36, "second record")]
