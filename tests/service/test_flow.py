"""End to end: submit → customs outbox → receipts → mailboxes, on the real server."""

from __future__ import annotations

import asyncio

import pytest
from lxml import etree

from gateway.catalog import load as load_catalog
from gateway.envelope import RECEIVER_EXPORT, RECEIVER_IMPORT
from gateway.sandbox import samplegen
from gateway.store import open_store
from gateway.xmlio import parse

from .kit import DXP, Sandbox, aio, customs_receipt, declaration, envelope_data, running

CEB = "{http://www.chinaport.gov.cn/ceb}"
# A cancellation or return must name an inventory list customs numbered (gateway.lifecycle):
# tests/service/test_lifecycle.py sends them after their list, end to end.
DECLARATIONS = [t.code for t in load_catalog().declarations() if t.code not in ("CEB623", "CEB625")]


def with_subscribers(data: bytes, *subs: tuple[str, str]) -> bytes:
    """Insert BaseSubscribe entries (status, dxpAddress) after BaseTransfer."""
    extra = "".join(f"<ceb:BaseSubscribe><ceb:status>{st}</ceb:status><ceb:dxpMode>DXP</ceb:dxpMode>"
                    f"<ceb:dxpAddress>{addr}</ceb:dxpAddress></ceb:BaseSubscribe>" for st, addr in subs)
    return data.replace(b"</ceb:BaseTransfer>", b"</ceb:BaseTransfer>" + extra.encode(), 1)


@pytest.mark.parametrize("code", DECLARATIONS)
@aio
async def test_each_declaration_is_queued_for_customs_with_its_exact_bytes(sb: Sandbox, code: str) -> None:
    owner, data = declaration(sb, code)
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body
        assert body["message_type"] == code and body["status"] == "declared" and body["business_keys"]
        status, batch = await api.get(sb.token("customs"), "/v1/customs/outbox?limit=10")
        assert status == 200 and len(batch["items"]) == 1
        item = batch["items"][0]
        assert item["message_id"] == body["id"]
        env, inner = envelope_data(item["envelope"])
        assert inner == data
        mtype = load_catalog()[code]
        assert env.findtext(f"{DXP}TransInfo/{DXP}SenderId") == sb.account(owner)["dxp_id"]
        assert env.findtext(f"{DXP}TransInfo/{DXP}ReceiverIds/{DXP}ReceiverId") == (
            RECEIVER_EXPORT if mtype.flow == "export" else RECEIVER_IMPORT)
        assert env.findtext(f"{DXP}TransInfo/{DXP}MsgType") == mtype.root
        cop = env.findtext(f"{DXP}TransInfo/{DXP}CopMsgId") or ""
        assert len(cop) == 36 and cop == cop.upper()
        status, acked = await api.post_json(sb.token("customs"), "/v1/customs/outbox/ack",
                                            {"ids": [item["id"]]})
        assert (status, acked["acked"]) == (200, 1)
        status, rec = await api.get(sb.token(owner), f"/v1/messages/{body['id']}")
        assert (status, rec["status"]) == (200, "sent")


@aio
async def test_optional_signature_is_verified_when_present(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", sign_it=True)
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body


@aio
async def test_rejection_receipt_reaches_sender_and_ret_subscriber_only(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", seed=3)
    payment, logistics = sb.account("payment"), sb.account("logistics")
    data = with_subscribers(data, ("RET", payment["dxp_id"]), ("DATA", logistics["dxp_id"]))
    keys = load_catalog()["CEB311"].business_keys(parse(data).root)[0]
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body
        receipt = samplegen.build_receipt("CEB312", dict(keys), status="100",
                                          info="[Code:13035;Desc:支付企业不一致]")
        posted = customs_receipt(sb, receipt, sb.account(owner)["dxp_id"])
        status, out = await api.post_xml(sb.token("customs"), posted, path="/v1/customs/receipts")
        assert status == 200, out
        (record,) = out["records"]
        assert record["outcome"] == "delivered" and record["message_id"] == body["id"]
        assert sorted(record["delivered_to"]) == ["ecommerce", "payment"]
        for name, expected in (("ecommerce", 1), ("payment", 1), ("logistics", 0), ("platform", 0)):
            status, mail = await api.get(sb.token(name), "/v1/receipts?format=json")
            assert status == 200 and len(mail["items"]) == expected, name
        status, mail = await api.get(sb.token("ecommerce"), "/v1/receipts?format=json")
        item = mail["items"][0]
        assert item["status"] == "100" and "13035" in item["info"]
        assert item["record"]["returnInfo"] == "[Code:13035;Desc:支付企业不一致]"
        assert item["xml"].encode() == receipt
        status, rec = await api.get(sb.token(owner), f"/v1/messages/{body['id']}")
        assert rec["status"] == "rejected" and rec["timeline"][0]["status"] == "100"
        _, text = await api.text("/metrics")
        assert 'cebgw_receipt_records{type="CEB312",status="100"} 1' in text
        assert 'cebgw_declarations{type="CEB311",state="rejected"} 1' in text


@aio
async def test_multi_record_receipt_delivers_one_and_dead_letters_the_other(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", seed=5)
    keys = load_catalog()["CEB311"].business_keys(parse(data).root)[0]
    first = parse(samplegen.build_receipt("CEB312", dict(keys), status="120")).root
    other = parse(samplegen.build_receipt("CEB312", {**keys, "orderNo": "NOSUCHORDER"}, status="120",
                                          seed=9)).root
    first.append(other[0])
    receipt = etree.tostring(first, xml_declaration=True, encoding="UTF-8")
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202
        posted = customs_receipt(sb, receipt, "DXPENT0000458762")
        status, out = await api.post_xml(sb.token("customs"), posted, path="/v1/customs/receipts")
        assert status == 200, out
        assert [r["outcome"] for r in out["records"]] == ["delivered", "dead_letter"]
        status, dead = await api.get(sb.token("customs"), "/v1/dead-letters")
        assert status == 200 and len(dead["items"]) == 1 and "NOSUCHORDER" in dead["items"][0]["reason"]
        assert (await api.get(sb.token("ecommerce"), "/v1/dead-letters"))[0] == 403
        rid = dead["items"][0]["id"]
        status, rerouted = await api.post_json(sb.token("customs"), f"/v1/dead-letters/{rid}/reroute",
                                               {"message_id": body["id"]})
        assert status == 200 and rerouted["delivered_to"] == ["ecommerce"]
        status, mail = await api.get(sb.token("ecommerce"), "/v1/receipts")
        assert len(mail["items"]) == 2
        # posting the same receipt again delivers nothing twice
        posted = customs_receipt(sb, receipt, "DXPENT0000458762")
        status, out = await api.post_xml(sb.token("customs"), posted, path="/v1/customs/receipts")
        assert [r["outcome"] for r in out["records"]] == ["duplicate", "duplicate"]


@aio
async def test_wrapped_submission_keeps_copmsgid_and_ceb900_correlates_by_it(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", seed=7)
    acc = sb.account(owner)
    wrapped = samplegen.build_dxp_msg(data, msg_type="CEB311Message", sender_id=acc["dxp_id"], seed=7)
    cop = parse(wrapped).root.findtext(f"{DXP}TransInfo/{DXP}CopMsgId")
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), wrapped)
        assert status == 202, body
        _, batch = await api.get(sb.token("customs"), "/v1/customs/outbox")
        env, inner = envelope_data(batch["items"][0]["envelope"])
        assert inner == data and env.findtext(f"{DXP}TransInfo/{DXP}CopMsgId") == cop
        r900 = samplegen.build_receipt("CEB900", {"oriCopMsgId": cop or ""}, status="-2")
        status, out = await api.post_xml(sb.token("customs"), customs_receipt(sb, r900, acc["dxp_id"]),
                                         path="/v1/customs/receipts")
        assert status == 200 and out["records"][0]["message_id"] == body["id"], out
        # a DxpMsg from someone else's DXP id is refused
        other = samplegen.build_dxp_msg(data, msg_type="CEB311Message", sender_id="DXPENT0000458763")
        status, err = await api.post_xml(sb.token(owner), other)
        assert (status, err["error"]["code"]) == (403, "CEBGW-AUTH-SENDER")


@aio
async def test_cursor_ack_and_long_poll(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", seed=11)
    keys = load_catalog()["CEB311"].business_keys(parse(data).root)[0]
    tok = sb.token(owner)
    async with running(sb.settings) as api:
        assert (await api.post_xml(tok, data))[0] == 202
        waiting = asyncio.create_task(api.get(tok, "/v1/receipts?wait=20"))
        await asyncio.sleep(0)  # let the poll start before the receipt arrives
        for n, status in enumerate(("2", "120")):
            r = samplegen.build_receipt("CEB312", dict(keys), status=status, seed=n)
            code, _ = await api.post_xml(sb.token("customs"), customs_receipt(sb, r, "DXPENT0000458762"),
                                         path="/v1/customs/receipts")
            assert code == 200
        status, first = await asyncio.wait_for(waiting, 10)
        assert status == 200 and first["items"]
        status, mail = await api.get(tok, "/v1/receipts")
        assert [i["status"] for i in mail["items"]] == ["2", "120"]
        c1 = mail["items"][0]["cursor"]
        assert (await api.post_json(tok, "/v1/receipts/ack", {"cursor": c1}))[0] == 200
        _, rest = await api.get(tok, "/v1/receipts")
        assert [i["status"] for i in rest["items"]] == ["120"]
        _, again = await api.get(tok, "/v1/receipts?after=0")
        assert len(again["items"]) == 2
        # another tenant acking does not touch this mailbox
        assert (await api.post_json(sb.token("payment"), "/v1/receipts/ack", {"cursor": 10**6}))[0] == 200
        _, still = await api.get(tok, "/v1/receipts")
        assert len(still["items"]) == 1
        _, empty = await api.get(tok, f"/v1/receipts?after={rest['cursor']}&wait=1")
        assert empty["items"] == [] and empty["cursor"] == rest["cursor"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@aio
async def test_unacked_envelope_is_redelivered_after_the_lease_expires(sb: Sandbox) -> None:
    clock = Clock()
    store = open_store(sb.settings.store_url, clock=clock)
    settings = sb.settings.with_(lease_timeout_s=30.0)
    owner, data = declaration(sb, "CEB311", seed=13)
    try:
        async with running(settings, store) as api:
            assert (await api.post_xml(sb.token(owner), data))[0] == 202
            customs = sb.token("customs")
            _, first = await api.get(customs, "/v1/customs/outbox")
            assert len(first["items"]) == 1 and first["items"][0]["attempts"] == 1
            _, leased = await api.get(customs, "/v1/customs/outbox")
            assert leased["items"] == []
            clock.now += 31
            _, second = await api.get(customs, "/v1/customs/outbox")
            assert [i["id"] for i in second["items"]] == [first["items"][0]["id"]]
            assert second["items"][0]["attempts"] == 2
            assert second["items"][0]["envelope"] == first["items"][0]["envelope"]
    finally:
        await store.close()


@aio
async def test_outbox_long_poll_wakes_on_submission(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", seed=17)
    async with running(sb.settings) as api:
        waiting = asyncio.create_task(api.get(sb.token("customs"), "/v1/customs/outbox?wait=20"))
        await asyncio.sleep(0.05)
        assert (await api.post_xml(sb.token(owner), data))[0] == 202
        status, batch = await asyncio.wait_for(waiting, 5)
        assert status == 200 and len(batch["items"]) == 1
