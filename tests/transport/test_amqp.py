"""The AMQP transport against the local RabbitMQ: round trip, a dropped connection, poison, volume."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import replace
from typing import Any

import aiormq
import pytest
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from service.kit import DXP, Api, Sandbox, aio, declaration, envelope_data, running

from gateway import pipeline
from gateway.accounts import read_accounts
from gateway.catalog import load as load_catalog
from gateway.dsig import load_key, load_registry
from gateway.envelope import RECEIVER_IMPORT, wrap
from gateway.sandbox.transports import answer_amqp, sandbox_amqp
from gateway.store import NewMessage, open_store
from gateway.transport.amqp import AmqpTransport
from gateway.transport.common import ReceiptTaker, TransportMetrics
from gateway.transportconfig import AmqpSettings, TransportSettings


async def take(s: AmqpSettings, queue: str, n: int, *, timeout_s: float = 30.0) -> list[DeliveredMessage]:
    """Up to ``n`` messages from ``queue`` (acked), waiting up to ``timeout_s`` for them."""
    conn = await aiormq.connect(s.url)
    out: list[DeliveredMessage] = []
    try:
        ch = await conn.channel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(out) < n and loop.time() < deadline:
            got = await ch.basic_get(queue, no_ack=True)
            if isinstance(got.delivery, Basic.GetOk):
                out.append(got)
            else:
                await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return out


async def publish(s: AmqpSettings, queue: str, *bodies: bytes) -> None:
    conn = await aiormq.connect(s.url)
    try:
        ch = await conn.channel(publisher_confirms=True)
        for i, body in enumerate(bodies):
            await ch.basic_publish(body, routing_key=queue, properties=Basic.Properties(
                content_type="text/xml", delivery_mode=2, message_id=f"test-{i}"))
    finally:
        await conn.close()


async def queue_depth(s: AmqpSettings, queue: str) -> int:
    conn = await aiormq.connect(s.url)
    try:
        ch = await conn.channel()
        ok = await ch.queue_declare(queue, passive=True)
        return int(ok.message_count or 0)
    finally:
        await conn.close()


async def until(check: Any, *, timeout_s: float = 30.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def metric(api: Api, name: str) -> int:
    status, text = await api.text("/metrics")
    m = re.search(rf'^{re.escape(name)}{{transport="amqp"}} (\d+)$', text, re.M)
    return int(m.group(1)) if m else 0


async def connected(api: Api) -> None:
    """Wait until the transport is connected (and so has declared its queues)."""
    async def up() -> bool:
        return await metric(api, "cebgw_transport_connected") == 1
    await until(up, what="the transport's broker connection")


@aio
async def test_customs_round_trip_over_amqp(sb: Sandbox, amqp: AmqpSettings) -> None:
    settings = sb.settings.with_(transport=TransportSettings(amqp=amqp))
    owner, data = declaration(sb, "CEB311", seed=11)
    async with running(settings) as api:
        await connected(api)
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body
        queue = amqp.customs_queues[RECEIVER_IMPORT]
        conn = await aiormq.connect(amqp.url)
        ch = await conn.channel()
        got: DeliveredMessage | None = None
        for _ in range(400):
            got = await ch.basic_get(queue, no_ack=False)
            if isinstance(got.delivery, Basic.GetOk):
                break
            await asyncio.sleep(0.05)
        assert got is not None and isinstance(got.delivery, Basic.GetOk), "no envelope on the customs queue"
        env, inner = envelope_data(got.body.decode("utf-8"))
        assert inner == data  # the submitted bytes, exactly
        props = got.header.properties
        assert props.message_id == env.findtext(f"{DXP}TransInfo/{DXP}CopMsgId")
        assert (props.content_type, props.content_encoding, props.delivery_mode) == ("text/xml", "utf-8", 2)
        assert got.delivery.routing_key == RECEIVER_IMPORT and got.delivery.exchange == amqp.exchange
        await ch.basic_nack(got.delivery.delivery_tag or 0, requeue=True)  # customs takes it below
        await conn.close()

        async def sent() -> bool:
            return (await api.get(sb.token(owner), f"/v1/messages/{body['id']}"))[1]["status"] == "sent"
        await until(sent, what="the outbox ack after the broker's confirm")

        customs = sb.account("customs")
        played = await answer_amqp(amqp.url, [queue], amqp.receipts_queue, ["2", "120"],
                                   load_key(customs["key"], customs["cert"]), report=lambda line: None)
        assert (played.envelopes, played.receipts, played.failed) == (1, 2, [])
        items: list[dict[str, Any]] = []

        async def both() -> bool:
            nonlocal items
            items = (await api.get(sb.token(owner), "/v1/receipts"))[1]["items"]
            return len(items) >= 2
        await until(both, what="both receipts in the sender's mailbox")
        assert [(i["message_id"], i["message_type"], i["status"]) for i in items] == [
            (body["id"], "CEB312", "2"), (body["id"], "CEB312", "120")]
        assert await metric(api, "cebgw_transport_confirmed_total") == 1
        assert await metric(api, "cebgw_transport_stored_total") == 2
        assert await metric(api, "cebgw_transport_connected") == 1
        status, text = await api.text("/metrics")
        assert 'cebgw_transport_redelivered_total{transport="amqp"} 0' in text   # shown before it happens
        assert 'cebgw_transport_consumed_total{transport="amqp"} 2' in text


def _close_from_broker(connection_name: str) -> None:
    """Close the named client connection from the broker's side (rabbitmqctl)."""
    listed = subprocess.run(["rabbitmqctl", "list_connections", "-q", "pid", "client_properties"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    pids = [line.split("\t", 1)[0] for line in listed.splitlines() if connection_name in line]
    assert pids, f"no broker connection named {connection_name}"
    for pid in pids:
        subprocess.run(["rabbitmqctl", "close_connection", pid, "test: connection dropped"],
                       capture_output=True, timeout=60, check=True)


def _rabbitmqctl_usable() -> str | None:
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not installed"
    try:
        subprocess.run(["rabbitmqctl", "list_connections", "-q", "pid"], capture_output=True, timeout=60,
                       check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"rabbitmqctl cannot reach the broker ({exc})"
    return None


@aio
async def test_connection_closed_by_the_broker_mid_run_loses_nothing(sb: Sandbox, amqp: AmqpSettings) -> None:
    why = await asyncio.to_thread(_rabbitmqctl_usable)
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI must close a connection from the broker's side")
        pytest.skip(why)
    name = f"{amqp.exchange}-gw"
    s = replace(amqp, url=amqp.url.split("?")[0] + f"?name={name}", batch=5, consume=False)
    settings = sb.settings.with_(transport=TransportSettings(amqp=s))
    guids: list[str] = []
    async with running(settings) as api:
        await connected(api)
        killed = asyncio.Event()

        async def submitter() -> None:
            seed, after = 100, 0
            while after < 20:
                owner, data = declaration(sb, "CEB311", seed=seed)
                status, body = await api.post_xml(sb.token(owner), data)
                assert status == 202, body
                guids.append(body["guid"])
                seed += 1
                after += killed.is_set()

        async def killer() -> None:
            await until(lambda: _at_least(api, 10), what="ten confirmed envelopes")
            await asyncio.to_thread(_close_from_broker, name)
            killed.set()

        await asyncio.gather(submitter(), killer())

        async def drained() -> bool:
            return (await api.get(None, "/healthz"))[1]["outbox_depth"] == 0
        await until(drained, timeout_s=60, what="the outbox to drain after the reconnect")
        assert await metric(api, "cebgw_transport_connects_total") >= 2
        assert await metric(api, "cebgw_transport_connected") == 1
    got = await take(amqp, amqp.customs_queues[RECEIVER_IMPORT], 10**6, timeout_s=1.0)
    seen: list[str] = []
    for m in got:
        root, inner = envelope_data(m.body.decode())
        guid = re.search(rb'guid="([^"]+)"', inner)
        assert guid is not None
        if guid.group(1).decode() not in seen:
            seen.append(guid.group(1).decode())
    assert seen == guids  # every one arrived, first arrivals in submission order (one sender)


async def _at_least(api: Api, n: int) -> bool:
    return await metric(api, "cebgw_transport_confirmed_total") >= n


@aio
async def test_poison_receipts_go_to_the_dead_letter_queue_with_their_reason(sb: Sandbox,
                                                                             amqp: AmqpSettings) -> None:
    settings = sb.settings.with_(transport=TransportSettings(amqp=replace(amqp, publish=False)))
    owner, data = declaration(sb, "CEB311", seed=21)
    customs = sb.account("customs")
    key = load_key(customs["key"], customs["cert"])
    async with running(settings) as api:
        await connected(api)
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body
        from gateway.sandbox.customs import answers_to_envelope
        envelope = wrap(data, msg_type="CEB311Message", sender_id=sb.account(owner)["dxp_id"],
                        receiver_ids=(RECEIVER_IMPORT,))
        good = answers_to_envelope(envelope, ["2"], key)[0].data
        unsigned = base64.b64decode(envelope_data(good.decode())[0].findtext(f"{DXP}Data") or "")
        await publish(amqp, amqp.receipts_queue, b"<not xml", data, unsigned, good)
        dead = await take(amqp, amqp.dead_letter_queue, 3)
        reasons = {m.body: (m.header.properties.headers or {}) for m in dead}
        assert set(reasons) == {b"<not xml", data, unsigned}
        assert reasons[b"<not xml"]["x-cebgw-error-code"] == "CEBGW-PARSE-SYNTAX"
        assert reasons[data]["x-cebgw-error-code"] == "CEBGW-IDENT-UNKNOWN"
        assert "receipt" in str(reasons[data]["x-cebgw-error"])
        assert reasons[unsigned]["x-cebgw-error-code"] == "CEBGW-SIG-MISSING"
        assert all(h["x-cebgw-queue"] == amqp.receipts_queue for h in reasons.values())
        # the good receipt behind them was not blocked
        status, mail = await api.get(sb.token(owner), "/v1/receipts?wait=10")
        assert [(i["message_id"], i["status"]) for i in mail["items"]] == [(body["id"], "2")]
        assert await queue_depth(amqp, amqp.receipts_queue) == 0
        assert await metric(api, "cebgw_transport_dead_lettered_total") == 3


@aio
async def test_two_thousand_envelopes_confirmed_and_in_order_per_sender(
        sb: Sandbox, amqp: AmqpSettings, tmp_path: Any) -> None:
    senders, per_sender = 4, 500
    store = open_store(f"sqlite:///{tmp_path / 'bulk.db'}")
    metrics = TransportMetrics()
    s = sb.settings
    taker = ReceiptTaker(load_catalog(), load_registry(s.registry_path), s.policy, store,
                         lambda: read_accounts(s.accounts_path),
                         pipeline.Limits(s.max_body_bytes, s.max_depth), True, "customs")
    transport = AmqpTransport(replace(amqp, consume=False, batch=200), store, taker, metrics,
                              lease_timeout_s=60, max_bytes=s.max_body_bytes)
    try:
        async def put(sender: int, seq: int) -> None:
            guid = str(uuid.uuid4()).upper()
            data = f'<m guid="{guid}" sender="{sender}" seq="{seq}"/>'.encode()
            cop = str(uuid.uuid4()).upper()
            env = wrap(data, msg_type="CEB311Message", sender_id=f"DXPENT000000000{sender}",
                       receiver_ids=(RECEIVER_IMPORT,), cop_msg_id=cop)
            await store.put_message(NewMessage(
                tenant=f"t{sender}", sender_code=f"S{sender}", message_type="CEB311", guid=guid, data=data,
                business_keys=[{"orderNo": f"{sender}-{seq}"}], envelope=env, cop_msg_id=cop))

        for seq in range(per_sender):
            await asyncio.gather(*(put(sender, seq) for sender in range(senders)))
        task = asyncio.create_task(transport.run())

        async def drained() -> bool:  # acked in the outbox, and counted (the count follows the ack)
            return (await store.outbox_depth() == 0
                    and metrics.counts[("amqp", "confirmed")] == senders * per_sender)
        await until(drained, timeout_s=90, what="2,000 confirmed envelopes")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await store.close()
    assert metrics.counts[("amqp", "confirmed")] == senders * per_sender
    got = await take(amqp, amqp.customs_queues[RECEIVER_IMPORT], senders * per_sender, timeout_s=10)
    order: dict[str, list[int]] = {}
    for m in got:
        inner = envelope_data(m.body.decode())[1]
        found = re.search(rb'sender="(\d)" seq="(\d+)"', inner)
        assert found is not None
        order.setdefault(found.group(1).decode(), []).append(int(found.group(2)))
    assert order == {str(i): list(range(per_sender)) for i in range(senders)}


@aio
async def test_an_envelope_no_queue_is_bound_for_is_held_not_dropped(sb: Sandbox, amqp: AmqpSettings,
                                                                     tmp_path: Any) -> None:
    from gateway.envelope import RECEIVER_EXPORT
    only_import = replace(amqp, consume=False,
                          customs_queues={RECEIVER_IMPORT: amqp.customs_queues[RECEIVER_IMPORT]})
    store = open_store(f"sqlite:///{tmp_path / 'held.db'}")
    metrics = TransportMetrics()
    s = sb.settings
    taker = ReceiptTaker(load_catalog(), load_registry(s.registry_path), s.policy, store,
                         lambda: read_accounts(s.accounts_path),
                         pipeline.Limits(s.max_body_bytes, s.max_depth), True, "customs")
    transport = AmqpTransport(only_import, store, taker, metrics, lease_timeout_s=60,
                              max_bytes=s.max_body_bytes)
    try:
        cop = str(uuid.uuid4()).upper()
        data = b'<m guid="G1"/>'
        env = wrap(data, msg_type="CEB303Message", sender_id="DXPENT0000000001",
                   receiver_ids=(RECEIVER_EXPORT,), cop_msg_id=cop)
        await store.put_message(NewMessage(tenant="t", sender_code="S", message_type="CEB303", guid="G1",
                                           data=data, business_keys=[{"orderNo": "1"}], envelope=env,
                                           cop_msg_id=cop))
        task = asyncio.create_task(transport.run())

        async def returned() -> bool:
            return metrics.counts.get(("amqp", "unroutable"), 0) >= 2
        await until(returned, what="the broker to return the envelope twice")
        assert await store.outbox_depth() == 1 and metrics.counts.get(("amqp", "confirmed"), 0) == 0
        conn = await aiormq.connect(amqp.url)   # customs binds its export queue at last
        ch = await conn.channel()
        export_queue = amqp.customs_queues[RECEIVER_EXPORT]
        await ch.queue_declare(export_queue, durable=True)
        await ch.queue_bind(export_queue, amqp.exchange, routing_key=RECEIVER_EXPORT)
        await conn.close()

        async def drained() -> bool:
            return await store.outbox_depth() == 0
        await until(drained, what="the held envelope to be confirmed")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await store.close()
    (got,) = await take(amqp, export_queue, 2, timeout_s=1.0)
    assert got.body == env and got.header.properties.message_id == cop


@aio
async def test_a_lease_granted_as_the_connection_drops_is_kept_not_orphaned(sb: Sandbox,
                                                                            tmp_path: Any) -> None:
    """The connection goes away while the publisher waits for its lease: the store grants the
    lease anyway, and the worker keeps what it leased for the next connection (before, the
    envelopes stayed leased to nobody, and their senders' queues stood still for the lease's
    60 s).  No broker needed: the publisher is cancelled before it would publish."""
    db = tmp_path / "lease.db"
    store = open_store(f"sqlite:///{db}")
    s = sb.settings
    taker = ReceiptTaker(load_catalog(), load_registry(s.registry_path), s.policy, store,
                         lambda: read_accounts(s.accounts_path),
                         pipeline.Limits(s.max_body_bytes, s.max_depth), True, "customs")
    settings = sandbox_amqp("amqp://guest:guest@127.0.0.1:5672/", prefix="unused")
    transport = AmqpTransport(settings, store, taker, TransportMetrics(), lease_timeout_s=60,
                              max_bytes=s.max_body_bytes)
    fd = os.open(f"{db}-writelock", os.O_RDWR)
    try:
        cop = str(uuid.uuid4()).upper()
        env = wrap(b'<m guid="G1"/>', msg_type="CEB311Message", sender_id="DXPENT0000000001",
                   receiver_ids=(RECEIVER_IMPORT,), cop_msg_id=cop)
        put = await store.put_message(NewMessage(
            tenant="t", sender_code="S", message_type="CEB311", guid="G1", data=b'<m guid="G1"/>',
            business_keys=[{"orderNo": "1"}], envelope=env, cop_msg_id=cop))
        fcntl.flock(fd, fcntl.LOCK_EX)  # another worker is committing: the lease waits for its turn
        publisher = asyncio.create_task(transport._publisher(None))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        assert not publisher.done()
        publisher.cancel()  # what _session does when the connection closes
        await asyncio.sleep(0.05)
        fcntl.flock(fd, fcntl.LOCK_UN)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(publisher, 10)
        assert [o.item.message_id for o in transport.pending] == [put.message_id]
        assert await store.lease_outbox(10, 60) == []  # leased, to this worker
    finally:
        os.close(fd)
        await store.close()
