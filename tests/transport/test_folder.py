"""The folder transport: round trip through a DXP client's folders, unfinished files, a crash."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from service.kit import DXP, Sandbox, aio, declaration, envelope_data, running

from gateway.dsig import load_key
from gateway.envelope import RECEIVER_IMPORT, wrap
from gateway.sandbox.customs import answers_to_envelope
from gateway.sandbox.transports import answer_folder
from gateway.store import open_store
from gateway.transport import folder as folder_mod
from gateway.transport.common import TransportMetrics
from gateway.transport.folder import FolderTransport, file_name
from gateway.transportconfig import FolderPair, FolderSettings, TransportSettings

from .kit import receipt_taker, submit


def folders(tmp_path: Path, dxp_id: str = "*") -> FolderSettings:
    pair = FolderPair(dxp_id, tmp_path / "dxp" / "send", tmp_path / "dxp" / "receive")
    return FolderSettings((pair,), poll_interval_s=0.05, settle_s=0.2)


async def until(check: Any, *, timeout_s: float = 30.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def customs_key(sb: Sandbox) -> Any:
    c = sb.account("customs")
    return load_key(c["key"], c["cert"])


@aio
async def test_customs_round_trip_through_folders(sb: Sandbox, tmp_path: Path) -> None:
    f = folders(tmp_path)
    pair = f.pairs[0]
    settings = sb.settings.with_(transport=TransportSettings(folder=f))
    owner, data = declaration(sb, "CEB311", seed=31)
    async with running(settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body

        async def written() -> bool:
            return any(pair.send.glob("*.xml"))
        await until(written, what="the envelope in the send folder")
        (path,) = list(pair.send.iterdir())   # no temporary file left behind
        env, inner = envelope_data(path.read_text(encoding="utf-8"))
        assert inner == data
        cop = env.findtext(f"{DXP}TransInfo/{DXP}CopMsgId") or ""
        assert path.name == f"CEB311Message_{cop}.xml"

        async def sent() -> bool:
            return (await api.get(sb.token(owner), f"/v1/messages/{body['id']}"))[1]["status"] == "sent"
        await until(sent, what="the outbox ack once the file was synced")

        played = answer_folder(pair.send, pair.receive, ["2", "120"], customs_key(sb),
                               report=lambda line: None)
        assert (played.envelopes, played.receipts, played.failed) == (1, 2, [])
        (pair.receive / "garbage.xml").write_bytes(b"<not xml")
        items: list[dict[str, Any]] = []

        async def both() -> bool:
            nonlocal items
            items = (await api.get(sb.token(owner), "/v1/receipts"))[1]["items"]
            return len(items) >= 2
        await until(both, what="both receipts in the sender's mailbox")
        assert [(i["message_id"], i["status"]) for i in items] == [(body["id"], "2"), (body["id"], "120")]

        async def failed() -> bool:
            return (pair.receive / "failed" / "garbage.xml.error.json").exists()
        await until(failed, what="the refused file in failed/")
        sidecar = json.loads((pair.receive / "failed" / "garbage.xml.error.json").read_text(encoding="utf-8"))
        assert sidecar["code"] == "CEBGW-PARSE-SYNTAX" and sidecar["file"] == "garbage.xml"
        assert (pair.receive / "failed" / "garbage.xml").read_bytes() == b"<not xml"
        assert len(list((pair.receive / "done").iterdir())) == 2
        assert [p.name for p in pair.receive.iterdir() if p.is_file() and not p.name.startswith(".")] == []
        status, text = await api.text("/metrics")
        assert 'cebgw_transport_stored_total{transport="folder"} 2' in text
        assert 'cebgw_transport_dead_lettered_total{transport="folder"} 1' in text


async def _receipt_for(sb: Sandbox, store: Any, seed: int) -> tuple[str, int, bytes]:
    owner, data = declaration(sb, "CEB311", seed=seed)
    accepted = await submit(sb.settings, store, owner, data)
    envelope = wrap(data, msg_type="CEB311Message", sender_id=sb.account(owner)["dxp_id"],
                    receiver_ids=(RECEIVER_IMPORT,))
    return owner, accepted.message_id, answers_to_envelope(envelope, ["2"], customs_key(sb))[0].data


@aio
async def test_a_file_still_being_written_is_not_read(sb: Sandbox, tmp_path: Path) -> None:
    f = folders(tmp_path)
    pair = f.pairs[0]
    store = open_store(sb.settings.store_url)
    try:
        owner, mid, receipt = await _receipt_for(sb, store, 41)
        t = FolderTransport(f, store, receipt_taker(sb.settings, store), TransportMetrics(),
                            lease_timeout_s=60, max_bytes=sb.settings.max_body_bytes)
        pair.receive.mkdir(parents=True)
        (pair.receive / "done").mkdir()
        path = pair.receive / "CEB312Message_1.xml"
        later = time.time() + 60   # long settled, as far as the clock goes
        half = len(receipt) // 2
        path.write_bytes(receipt[:half])
        assert await t.receive_once(pair, now=later) == 0          # first look
        with path.open("ab") as fh:                                 # the writer goes on
            fh.write(receipt[half:half + 10])
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
        assert await t.receive_once(pair, now=later) == 0          # it changed since
        with path.open("ab") as fh:
            fh.write(receipt[half + 10:])
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000))
        assert await t.receive_once(pair, now=time.time()) == 0    # seen, but not yet settled
        assert await t.receive_once(pair, now=time.time()) == 0
        # a rename-based writer's temporary file is never read, however long it stays
        (pair.receive / ".CEB312Message_2.xml.tmp").write_bytes(b"<half")
        (pair.receive / "CEB312Message_3.xml.part").write_bytes(b"<half")
        assert await t.receive_once(pair, now=later) == 1          # settled: taken, whole
        assert (pair.receive / "done" / path.name).read_bytes() == receipt
        assert (await store.mailbox(owner, None, 10))[0].message_id == mid
        assert await t.receive_once(pair, now=later + 10) == 0
        assert not (pair.receive / "failed").exists() or not any((pair.receive / "failed").iterdir())
    finally:
        await store.close()


@aio
async def test_a_crash_between_store_and_move_takes_the_file_again_and_stores_it_once(
        sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = folders(tmp_path)
    pair = f.pairs[0]
    store = open_store(sb.settings.store_url)
    try:
        owner, mid, receipt = await _receipt_for(sb, store, 51)
        pair.receive.mkdir(parents=True)
        (pair.receive / "done").mkdir()
        path = pair.receive / "CEB312Message_crash.xml"
        path.write_bytes(receipt)
        later = time.time() + 60

        def crash(p: Path, folder: Path) -> Path:
            raise OSError("power cut")

        first = FolderTransport(f, store, receipt_taker(sb.settings, store), TransportMetrics(),
                                lease_timeout_s=60, max_bytes=sb.settings.max_body_bytes)
        monkeypatch.setattr(folder_mod, "_move", crash)
        await first.receive_once(pair, now=later)
        with pytest.raises(OSError, match="power cut"):
            await first.receive_once(pair, now=later)
        assert path.exists()                                        # stored, not moved
        assert len(await store.mailbox(owner, None, 10)) == 1
        monkeypatch.undo()
        again = FolderTransport(f, store, receipt_taker(sb.settings, store), TransportMetrics(),
                                lease_timeout_s=60, max_bytes=sb.settings.max_body_bytes)
        await again.receive_once(pair, now=later)
        assert await again.receive_once(pair, now=later) == 1
        assert not path.exists() and (pair.receive / "done" / path.name).exists()
        mail = await store.mailbox(owner, None, 10)
        assert [(m.message_id, m.status) for m in mail] == [(mid, "2")]   # once
        assert sum((await store.metrics()).receipts.values()) == 1
    finally:
        await store.close()


def test_file_names_cannot_leave_the_folder() -> None:
    assert file_name("CEB311Message", "../../etc/passwd") == "CEB311Message_.._.._etc_passwd.xml"
    assert "/" not in file_name("CEB/311", "a/b") and not file_name(".x", "y").startswith(".")


@aio
async def test_an_envelope_with_no_folder_pair_stays_in_the_outbox(sb: Sandbox, tmp_path: Path) -> None:
    f = folders(tmp_path, dxp_id="DXPENT9999999999")
    store = open_store(sb.settings.store_url)
    try:
        owner, data = declaration(sb, "CEB311", seed=61)
        await submit(sb.settings, store, owner, data)
        metrics = TransportMetrics()
        t = FolderTransport(f, store, receipt_taker(sb.settings, store), metrics, lease_timeout_s=60,
                            max_bytes=sb.settings.max_body_bytes)
        f.pairs[0].send.mkdir(parents=True)
        assert await t.send_once() == 0
        assert await store.outbox_depth() == 1 and metrics.counts[("folder", "unroutable")] == 1
        assert list(f.pairs[0].send.iterdir()) == []
    finally:
        await store.close()


@aio
async def test_an_unreadable_outbox_envelope_is_held_and_the_others_go(
        sb: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from gateway.store import NewMessage
    f = folders(tmp_path)
    store = open_store(sb.settings.store_url)
    try:
        await store.put_message(NewMessage(tenant="t", sender_code="BAD", message_type="CEB311", guid="G0",
                                           data=b'<m guid="G0"/>', business_keys=[{"orderNo": "0"}],
                                           envelope=b"<damaged", cop_msg_id="C0"))
        owner, data = declaration(sb, "CEB311", seed=71)
        await submit(sb.settings, store, owner, data)
        t = FolderTransport(f, store, receipt_taker(sb.settings, store), TransportMetrics(),
                            lease_timeout_s=60, max_bytes=sb.settings.max_body_bytes)
        f.pairs[0].send.mkdir(parents=True)
        assert await t.send_once() == 1
        assert [p.name.startswith("CEB311Message_") for p in f.pairs[0].send.iterdir()] == [True]
        assert await store.outbox_depth() == 1
        assert "outbox envelope 1 (message 1) is unreadable" in caplog.text
    finally:
        await store.close()
