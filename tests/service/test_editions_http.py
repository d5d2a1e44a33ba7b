"""Both editions and empty content end to end: submitted over HTTP, queued for customs byte-exact,
answered by customs, delivered to the sender; refused where the gateway's own rules say so."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.catalog import load as load_catalog
from gateway.sandbox import samplegen
from gateway.xmlio import parse

from .kit import Sandbox, aio, customs_receipt, envelope_data, running

VALID = Path(__file__).resolve().parents[2] / "samples" / "valid"
CEB = "{http://www.chinaport.gov.cn/ceb}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"
CATALOG = load_catalog()


def _as_sandbox_sender(sb: Sandbox, name: str) -> tuple[str, bytes]:
    """A sample from samples/valid, re-signed (where its type needs it) by its sender's sandbox key."""
    data = (VALID / name).read_bytes()
    root = parse(data).root
    owner = sb.owner_of(root.findtext(f"{CEB}BaseTransfer/{CEB}copCode") or "")
    if root.find(f"{DS}Signature") is not None:
        start, end = data.index(b"<ds:Signature"), data.index(b"</ds:Signature>") + len(b"</ds:Signature>")
        data = sb.sign_as(owner, data[:start] + data[end:])
    return owner, data


@pytest.mark.parametrize(("name", "edition", "receipt"), [
    ("CEB311-empty.xml", "202205", "CEB312"),
    ("CEB621-empty.xml", "202205", "CEB622"),
    ("CEB303-2018.xml", "2018", "CEB304"),
    ("CEB505-2018.xml", "2018", "CEB506"),
    ("CEB621-2018.xml", "2018", "CEB622"),
])
@aio
async def test_edition_and_empty_content_go_through(sb: Sandbox, name: str, edition: str,
                                                    receipt: str) -> None:
    owner, data = _as_sandbox_sender(sb, name)
    code = name.split("-")[0]
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body
        assert (body["message_type"], body["edition"]) == (code, edition)
        status, got = await api.get(sb.token(owner), f"/v1/messages/{body['id']}")
        assert (status, got["edition"]) == (200, edition)
        status, batch = await api.get(sb.token("customs"), "/v1/customs/outbox?limit=10")
        (item,) = batch["items"]
        assert envelope_data(item["envelope"])[1] == data  # byte-exact, empty elements and all
        await api.post_json(sb.token("customs"), "/v1/customs/outbox/ack", {"ids": [item["id"]]})
        keys = CATALOG[code].business_keys(parse(data).root)[0]
        answer = samplegen.build_receipt(receipt, dict(keys), status="2")
        posted = customs_receipt(sb, answer, sb.account(owner)["dxp_id"])
        status, out = await api.post_xml(sb.token("customs"), posted, path="/v1/customs/receipts")
        assert status == 200, out
        (record,) = out["records"]
        assert (record["outcome"], record["message_id"]) == ("delivered", body["id"])
        status, mail = await api.get(sb.token(owner), "/v1/receipts")
        assert status == 200 and [m["message_type"] for m in mail["items"]] == [receipt]


@pytest.mark.parametrize(("name", "field"), [
    ("CEB621-empty-copno.xml", "copNo"),
    ("CEB621-no-copno.xml", "copNo"),
    ("CEB303-empty-orderno.xml", "ebpCode"),
])
@aio
async def test_empty_business_key_is_refused_with_the_rule_code(sb: Sandbox, name: str, field: str) -> None:
    data = (Path(__file__).resolve().parents[2] / "samples" / "invalid" / name).read_bytes()
    root = parse(data).root
    owner = sb.owner_of(root.findtext(f"{CEB}BaseTransfer/{CEB}copCode") or "")
    if root.find(f"{DS}Signature") is not None or CATALOG[name.split("-")[0]].signature == "required":
        if root.find(f"{DS}Signature") is not None:
            start = data.index(b"<ds:Signature")
            data = data[:start] + data[data.index(b"</ds:Signature>") + len(b"</ds:Signature>"):]
        data = sb.sign_as(owner, data)
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 422, body
        error = body["error"]
        assert error["code"] == "CEBGW-RULE-EMPTY-KEY"
        assert field in {e["field"] for e in error["errors"] if e["code"] == "CEBGW-RULE-EMPTY-KEY"}
        assert "CEBGW-RULE-EMPTY-KEY" in body["ceb900"]
        status, health = await api.get(None, "/healthz")
        assert status == 200


@aio
async def test_a_deployment_may_refuse_an_edition(sb: Sandbox) -> None:
    owner, data = _as_sandbox_sender(sb, "CEB303-2018.xml")
    settings = sb.settings.with_(accept_editions=("202205",))
    async with running(settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 422, body
        assert body["error"]["code"] == "CEBGW-EDITION-REFUSED"
        owner, current = _as_sandbox_sender(sb, "CEB303.xml")
        status, body = await api.post_xml(sb.token(owner), current)
        assert (status, body["edition"]) == (202, "202205")
