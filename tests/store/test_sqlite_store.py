"""The SQLite store: idempotency, isolation, outbox, receipts, mailboxes, audit, durability."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from storekit import FakeClock, aio, any_store, message, receipt

from gateway.envelope import wrap
from gateway.errors import ConfigError, ConflictError, NotFoundError, StoreError
from gateway.state import State
from gateway.store import Subscriber, open_store
from gateway.store.migrations import MIGRATIONS, Migration
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlops import chain_hash

HERE = Path(__file__).parent
REPO = HERE.parent.parent


def raw(db: str) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


# ---------------------------------------------------------------- declarations

@aio
async def test_put_then_get_returns_exact_bytes_keys_and_state(db: str, clock: FakeClock) -> None:
    m = message(1, keys=[{"copNo": "C1", "ebpCode": "E1"}, {"copNo": "C2"}],
                subscribers=(Subscriber("DXPENT0000000001", "RET"),))
    async with any_store(db, clock=clock) as store:
        put = await store.put_message(m)
        got = await store.get_message(put.message_id, "acme")
    assert not put.duplicate and len(put.chain_hash) == 64
    assert got is not None
    assert got.data == m.data
    assert got.business_keys == ({"copNo": "C1", "ebpCode": "E1"}, {"copNo": "C2"})
    assert got.subscribers == (Subscriber("DXPENT0000000001", "RET"),)
    assert (got.state, got.message_type, got.guid, got.sender_code) == (State.DECLARED, "CEB621", m.guid,
                                                                       "3301960001")
    assert got.received_at.timestamp() == clock.now and got.timeline == ()


@aio
async def test_same_bytes_twice_is_one_message_queued_once(db: str) -> None:
    async with any_store(db) as store:
        first = await store.put_message(message(1))
        again = await store.put_message(message(1))
        assert (again.message_id, again.duplicate, again.chain_hash) == (first.message_id, True,
                                                                         first.chain_hash)
        assert await store.outbox_depth() == 1
        assert [i.message_id for i in await store.lease_outbox(10, 30)] == [first.message_id]


@aio
async def test_same_bytes_in_one_batch_are_one_message(db: str) -> None:
    async with any_store(db) as store:
        results = await asyncio.gather(*(store.put_message(message(7)) for _ in range(20)))
        assert len({r.message_id for r in results}) == 1
        assert sum(not r.duplicate for r in results) == 1
        assert await store.outbox_depth() == 1


@aio
async def test_same_bytes_for_another_tenant_is_another_message(db: str) -> None:
    async with any_store(db) as store:
        a = await store.put_message(message(1, tenant="acme"))
        b = await store.put_message(message(1, tenant="other"))
        assert a.message_id != b.message_id and not b.duplicate


@aio
async def test_guid_reused_with_other_content_conflicts_and_stores_nothing(db: str) -> None:
    async with any_store(db) as store:
        await store.put_message(message(1, guid="G-1"))
        with pytest.raises(ConflictError) as info:
            await store.put_message(message(2, guid="G-1"))
        assert info.value.code == "CEBGW-CONFLICT-GUID" and info.value.http_status == 409
        assert await store.outbox_depth() == 1


@aio
async def test_a_failing_write_does_not_fail_its_batch(db: str) -> None:
    async with any_store(db) as store:
        await store.put_message(message(0, guid="G-X"))
        jobs = [store.put_message(message(n)) for n in range(1, 30)]
        jobs.insert(10, store.put_message(message(99, guid="G-X")))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        assert [type(r) for r in results].count(ConflictError) == 1
        assert await store.outbox_depth() == 30
        assert (await store.audit_verify()).ok


@aio
async def test_other_tenants_message_is_invisible(db: str) -> None:
    async with any_store(db) as store:
        put = await store.put_message(message(1, tenant="acme"))
        assert await store.get_message(put.message_id, "other") is None
        assert await store.get_message(put.message_id + 1000, "acme") is None


@aio
@pytest.mark.sqlite_only
async def test_message_rows_refuse_update_and_delete(db: str) -> None:
    async with SqliteStore(db) as store:
        await store.put_message(message(1))
    with raw(db) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE message SET data = x'00'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM message")


# ---------------------------------------------------------------- outbox

@aio
@pytest.mark.sqlite_only
async def test_envelope_carrying_the_message_is_stored_around_its_bytes(db: str) -> None:
    m = message(1)
    real = replace(m, envelope=wrap(m.data, msg_type="CEB621Message", sender_id="DXPENT0000000001",
                                    receiver_ids=("DXPEDCCEB0000002",), cop_msg_id="C1",
                                    created="2026-11-23T10:00:00"))
    other = message(2)  # an envelope that does not carry base64 of the bytes is kept whole
    async with SqliteStore(db) as store:
        await store.put_message(real)
        await store.put_message(other)
        leased = await store.lease_outbox(10, 30)
    assert [i.envelope for i in leased] == [real.envelope, other.envelope]
    with raw(db) as conn:
        rows = conn.execute("SELECT length(envelope), envelope_head IS NULL FROM outbox"
                            " ORDER BY id").fetchall()
    assert rows == [(0, 0), (len(other.envelope), 1)]


@aio
async def test_lease_ack_and_redelivery_after_timeout(db: str, clock: FakeClock) -> None:
    async with any_store(db, clock=clock) as store:
        a = await store.put_message(message(1, sender="A"))
        b = await store.put_message(message(2, sender="B"))
        first = await store.lease_outbox(10, 0.2)
        assert [(i.message_id, i.attempts) for i in first] == [(a.message_id, 1), (b.message_id, 1)]
        assert first[0].envelope.startswith(b"<dxp:DxpMsg>")
        assert await store.lease_outbox(10, 0.2) == []          # leased: invisible
        assert await store.ack_outbox([first[1].id]) == 1
        assert await store.ack_outbox([first[1].id]) == 0       # acking twice counts once
        clock.advance(0.1)
        assert await store.lease_outbox(10, 0.2) == []
        clock.advance(0.11)                                      # a's lease expired
        again = await store.lease_outbox(10, 0.2)
        assert [(i.id, i.attempts) for i in again] == [(first[0].id, 2)]
        assert await store.outbox_depth() == 1
        await store.ack_outbox([again[0].id])
        assert await store.outbox_depth() == 0
        got = await store.get_message(a.message_id, "acme")
        assert got is not None and got.state == State.SENT


@aio
async def test_per_sender_order_is_kept(db: str, clock: FakeClock) -> None:
    async with any_store(db, clock=clock) as store:
        a = [(await store.put_message(message(n, sender="A"))).message_id for n in range(3)]
        b = (await store.put_message(message(10, sender="B"))).message_id
        a.append((await store.put_message(message(11, sender="A"))).message_id)

        batch = await store.lease_outbox(2, 5)
        assert [i.message_id for i in batch] == a[:2]           # consecutive items of A, in order
        batch2 = await store.lease_outbox(10, 5)
        assert [i.message_id for i in batch2] == [b]            # A is blocked while it has a lease
        await store.ack_outbox([batch[1].id])                   # acked out of order: a0 still out
        assert await store.lease_outbox(10, 5) == []
        await store.ack_outbox([batch[0].id])
        batch3 = await store.lease_outbox(10, 5)
        assert [i.message_id for i in batch3] == [a[2], a[3]]

        clock.advance(6)                                         # b, a2, a3 expire together
        redo = await store.lease_outbox(1, 5)
        assert [i.message_id for i in redo] == [a[2]]            # oldest pending first (a2 before b)
        nxt = await store.lease_outbox(10, 5)
        assert [i.message_id for i in nxt] == [b]                # a3 waits for a2


# ---------------------------------------------------------------- receipts and mailboxes

@aio
async def test_receipts_build_timeline_state_and_mail(db: str) -> None:
    subs = (Subscriber("DXPENT0000000009", "RET"),)
    async with any_store(db) as store:
        put = await store.put_message(message(1, keys=[{"copNo": "COP1", "ebpCode": "E1"}], subscribers=subs))
        refs = await store.find_declarations("CEB621", {"copNo": "COP1"})
        assert [(r.message_id, r.record_no, r.subscribers) for r in refs] == [(put.message_id, 0, subs)]
        r2 = await store.put_receipt(receipt("2", put.message_id, n=1, return_time="20240101120000001",
                                             mailboxes=("broker",)))
        assert (r2.state_before, r2.state_after, r2.outcome) == (State.DECLARED, State.DECLARING, "advanced")
        assert r2.delivered_to == ("acme", "broker")
        await store.put_receipt(receipt("120", put.message_id, n=1, return_time="20240101120005000"))
        late = await store.put_receipt(receipt("2", put.message_id, n=2, return_time="20240101120000000"))
        assert (late.state_after, late.outcome) == (State.ACCEPTED, "stale")

        got = await store.get_message(put.message_id, "acme")
        assert got is not None and got.state == State.ACCEPTED
        assert [(t.status, t.return_time) for t in got.timeline] == [
            ("2", "20240101120000000"), ("2", "20240101120000001"), ("120", "20240101120005000")]
        acme = await store.mailbox("acme", None, 10)
        assert [i.status for i in acme] == ["2", "120", "2"]
        assert acme[0].data.startswith(b"<ceb:CEB622Message>") and acme[0].business_keys == {"copNo": "COP1"}
        assert acme[0].declaration_guid == got.guid
        assert [i.status for i in await store.mailbox("broker", None, 10)] == ["2"]
        assert await store.mailbox("nobody", None, 10) == []


@aio
async def test_same_receipt_twice_is_stored_and_delivered_once(db: str) -> None:
    async with any_store(db) as store:
        put = await store.put_message(message(1))
        first = await store.put_receipt(receipt("120", put.message_id))
        again = await store.put_receipt(receipt("120", put.message_id))
        assert (again.receipt_id, again.duplicate, again.delivered_to) == (first.receipt_id, True, ("acme",))
        assert len(await store.mailbox("acme", None, 10)) == 1


@aio
async def test_receipt_for_missing_declaration_is_not_found(db: str) -> None:
    async with any_store(db) as store:
        with pytest.raises(NotFoundError):
            await store.put_receipt(receipt("120", 12345))
        assert await store.dead_letters(10) == []


@aio
async def test_find_declarations_matches_within_one_record_newest_first(db: str) -> None:
    keys = [{"ebpCode": "A", "orderNo": "1"}, {"ebpCode": "B", "orderNo": "2"}]
    async with any_store(db) as store:
        old = await store.put_message(message(1, mtype="CEB311", keys=keys))
        new = await store.put_message(message(2, mtype="CEB311", keys=[{"ebpCode": "B", "orderNo": "2"}]))
        assert await store.find_declarations("CEB311", {"ebpCode": "A", "orderNo": "2"}) == []
        found = await store.find_declarations("CEB311", {"ebpCode": "B", "orderNo": "2"})
        assert [(f.message_id, f.record_no) for f in found] == [(new.message_id, 0), (old.message_id, 1)]
        assert await store.find_declarations("CEB511", {"ebpCode": "B"}) == []
        with pytest.raises(ValueError):
            await store.find_declarations("CEB311", {})


@aio
async def test_dead_letter_then_reroute(db: str) -> None:
    async with any_store(db) as store:
        put = await store.put_message(message(1))
        dead = await store.put_receipt(receipt("120", None, keys={"copNo": "LOST"}, reason="no match"))
        assert dead.dead_letter and dead.delivered_to == ()
        letters = await store.dead_letters(10)
        assert [(d.receipt_id, d.reason, d.business_keys) for d in letters] == [
            (dead.receipt_id, "no match", {"copNo": "LOST"})]
        assert await store.mailbox("acme", None, 10) == []
        moved = await store.reroute_dead_letter(dead.receipt_id, put.message_id, ["broker"])
        assert (moved.state_after, moved.delivered_to) == (State.ACCEPTED, ("acme", "broker"))
        assert await store.dead_letters(10) == []
        assert [i.receipt_id for i in await store.mailbox("broker", None, 10)] == [dead.receipt_id]
        with pytest.raises(NotFoundError):
            await store.reroute_dead_letter(dead.receipt_id, put.message_id)
        other = await store.put_receipt(receipt("800", None, n=5))
        with pytest.raises(NotFoundError):
            await store.reroute_dead_letter(other.receipt_id, 999)
        assert [d.receipt_id for d in await store.dead_letters(10)] == [other.receipt_id]  # not lost


@aio
async def test_mailbox_cursor_ack_is_at_least_once_and_per_tenant(db: str) -> None:
    async with any_store(db) as store:
        a = await store.put_message(message(1, tenant="acme"))
        b = await store.put_message(message(2, tenant="beta"))
        for n in range(3):
            await store.put_receipt(receipt(str([2, 120, 800][n]), a.message_id, n=n))
        await store.put_receipt(receipt("2", b.message_id, n=9))
        items = await store.mailbox("acme", None, 2)
        assert len(items) == 2 and items[0].cursor < items[1].cursor
        assert await store.mailbox("acme", None, 2) == items           # unacked: comes again
        await store.ack_mailbox("acme", items[0].cursor)
        rest = await store.mailbox("acme", None, 10)
        assert [i.cursor for i in rest] == [items[1].cursor, rest[1].cursor]
        assert [i.status for i in await store.mailbox("acme", items[1].cursor, 10)] == ["800"]
        await store.ack_mailbox("acme", 0)                              # never moves back
        assert len(await store.mailbox("acme", None, 10)) == 2
        await store.ack_mailbox("acme", 10**9)                         # clamped to acme's newest
        assert await store.mailbox("acme", None, 10) == []
        assert [i.status for i in await store.mailbox("beta", None, 10)] == ["2"]   # beta untouched
        new = await store.put_receipt(receipt("899", a.message_id, n=4))
        assert [i.receipt_id for i in await store.mailbox("acme", None, 10)] == [new.receipt_id]
        assert (await store.metrics()).mailbox_unacked == 2


@aio
async def test_long_poll_wakes_on_receipt(db: str) -> None:
    async with any_store(db) as store:
        put = await store.put_message(message(1))
        waiter = asyncio.create_task(store.mailbox_wait("acme", None, 10, wait_s=30))
        other = asyncio.create_task(store.mailbox_wait("beta", None, 10, wait_s=0.3))
        await asyncio.sleep(0)  # let both start waiting
        await store.put_receipt(receipt("120", put.message_id))
        got = await asyncio.wait_for(waiter, timeout=5)
        assert [i.status for i in got] == ["120"]
        assert await other == []                                        # beta was not woken with mail


@aio
async def test_long_poll_times_out_empty_and_returns_at_once_when_mail_waits(db: str) -> None:
    async with any_store(db) as store:
        assert await store.mailbox_wait("acme", None, 10, wait_s=0.05) == []
        put = await store.put_message(message(1))
        await store.put_receipt(receipt("2", put.message_id))
        assert len(await asyncio.wait_for(store.mailbox_wait("acme", None, 10, wait_s=30), 5)) == 1


# ---------------------------------------------------------------- audit

async def _three_senders(store: SqliteStore) -> list[int]:
    ids = []
    for n in range(9):
        ids.append((await store.put_message(message(n, sender=f"S{n % 3}"))).message_id)
    return ids


@aio
async def test_audit_passes_on_untouched_chains(db: str) -> None:
    async with any_store(db) as store:
        await _three_senders(store)
        await store.put_message(message(1, tenant="beta"))
        report = await store.audit_verify()
        assert report.ok and (report.messages_checked, report.chains) == (10, 4)
        assert (await store.audit_verify("beta")).messages_checked == 1


@aio
@pytest.mark.sqlite_only
async def test_audit_finds_tampered_bytes(db: str) -> None:
    async with SqliteStore(db) as store:
        ids = await _three_senders(store)
    with raw(db) as conn:
        conn.execute("DROP TRIGGER message_no_update")  # an attacker with raw access
        conn.execute("UPDATE message SET data = CAST(? AS BLOB) WHERE id = ?", (b"<forged/>", ids[4]))
    async with SqliteStore(db) as store:
        report = await store.audit_verify()
    assert not report.ok
    (brk,) = report.breaks
    assert (brk.message_id, brk.sender_code, brk.problem) == (ids[4], "S1", "data")
    assert brk.expected != brk.found


@aio
@pytest.mark.sqlite_only
async def test_audit_finds_a_consistently_rewritten_row_at_the_next_link(db: str) -> None:
    async with SqliteStore(db) as store:
        ids = await _three_senders(store)   # sender S1 holds ids[1], ids[4], ids[7]
    forged = b"<forged/>"
    with raw(db) as conn:
        conn.execute("DROP TRIGGER message_no_update")
        conn.execute("UPDATE message SET data = ?, sha256 = ? WHERE id = ?",
                     (forged, hashlib.sha256(forged).hexdigest(), ids[4]))
    async with SqliteStore(db) as store:
        (brk,) = (await store.audit_verify()).breaks
    assert (brk.message_id, brk.problem) == (ids[4], "hash")
    with raw(db) as conn:  # also recompute the row's own chain hash: only the next link can tell
        row = conn.execute("SELECT prev_chain, sha256, tenant, sender_code, message_type, guid, cop_msg_id,"
                           " received_us FROM message WHERE id = ?", (ids[4],)).fetchone()
        conn.execute("UPDATE message SET chain_hash = ? WHERE id = ?", (chain_hash(*row), ids[4]))
    async with SqliteStore(db) as store:
        report = await store.audit_verify()
    (brk,) = report.breaks
    assert (brk.message_id, brk.problem, brk.sender_code) == (ids[7], "link", "S1")


# ---------------------------------------------------------------- schema, lifecycle, durability

@aio
@pytest.mark.sqlite_only
async def test_migrations_apply_once_and_new_versions_apply_on_open(db: str) -> None:
    async with SqliteStore(db):
        pass
    async with SqliteStore(db):
        pass
    with raw(db) as conn:
        versions = conn.execute("SELECT version FROM schema_version").fetchall()
        assert versions == [(m.version,) for m in MIGRATIONS]
    nxt = MIGRATIONS[-1].version + 1
    extra = (*MIGRATIONS, Migration(nxt, "test column", ("CREATE TABLE extra_test (x INTEGER)",)))
    async with SqliteStore(db, migrations=extra) as store:
        await store.put_message(message(1))
    with raw(db) as conn:
        assert [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")] == [
            *(m.version for m in MIGRATIONS), nxt]
    with pytest.raises(StoreError) as info:
        SqliteStore(db)                                   # this code is older than the database
    assert info.value.code == "CEBGW-STORE-SCHEMA"


@aio
@pytest.mark.sqlite_only
async def test_write_connection_cache_size_is_configurable(db: str) -> None:
    def size(c: sqlite3.Connection) -> int:
        return int(c.execute("PRAGMA cache_size").fetchone()[0])

    async with SqliteStore(db) as store:
        assert await store._writer.submit(size) == -2000          # SQLite's default: 2,000 KiB
    async with SqliteStore(db, cache_mb=32) as store:
        assert await store._writer.submit(size) == -32 * 1024


@aio
async def test_concurrent_puts_are_all_durable_and_batched(db: str) -> None:
    async with any_store(db) as store:
        puts = (store.put_message(message(n, sender=f"S{n % 5}")) for n in range(300))
        results = await asyncio.gather(*puts)
        metrics = await store.metrics()
    assert len({r.message_id for r in results}) == 300
    assert metrics.write_jobs >= 300 and metrics.write_batches < metrics.write_jobs
    async with any_store(db) as store:
        assert await store.outbox_depth() == 300
        assert (await store.audit_verify()).messages_checked == 300
        m = await store.metrics()
        assert m.declarations == {("CEB621", "declared"): 300} and m.dead_letters == 0


@aio
async def test_closed_store_refuses_work(db: str) -> None:
    store = any_store(db)
    await store.close()
    await store.close()
    with pytest.raises(StoreError) as info:
        await store.put_message(message(1))
    assert info.value.code == "CEBGW-STORE-CLOSED"
    with pytest.raises(StoreError):
        await store.outbox_depth()


@aio
async def test_open_store_urls(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the PostgreSQL store") as refused:
        open_store("postgresql://user:s3cret@unresolvable.invalid/db")
    assert "s3cret" not in str(refused.value)
    with pytest.raises(ConfigError):
        open_store("mysql://x")
    mem = open_store("sqlite://:memory:")
    put = await mem.put_message(message(1))
    await mem.put_receipt(receipt("120", put.message_id))
    got = await mem.get_message(put.message_id, "acme")
    assert got is not None and got.state == State.ACCEPTED
    assert len(await mem.mailbox_wait("acme", None, 5, 1)) == 1
    await mem.close()
    path = tmp_path / "sub" / "x.db"
    path.parent.mkdir()
    disk = open_store(f"sqlite:///{path}")
    await disk.put_message(message(1))
    await disk.close()
    assert path.exists()


@pytest.mark.sqlite_only
def test_acknowledged_puts_survive_sigkill(db: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)])}
    acked: list[int] = []
    with subprocess.Popen([sys.executable, str(HERE / "crash_writer.py"), db],
                          stdout=subprocess.PIPE, env=env, text=True) as child:
        assert child.stdout is not None
        try:
            while len(acked) < 400:
                line = child.stdout.readline()
                if not line:
                    break
                acked.append(int(line))
        finally:
            child.send_signal(signal.SIGKILL)
            tail = child.stdout.read()
            acked += [int(x) for x in tail.splitlines(keepends=True) if x.endswith("\n")]  # whole lines
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert len(acked) >= 400, "child stopped before enough writes"

    async def check() -> None:
        async with SqliteStore(db) as store:
            for mid in acked:
                assert await store.get_message(mid, "acme") is not None, mid
            assert (await store.audit_verify()).ok
    asyncio.run(check())
    with raw(db) as conn:
        queued = dict(conn.execute("SELECT message_id, COUNT(*) FROM outbox GROUP BY message_id").fetchall())
        stored = conn.execute("SELECT COUNT(*) FROM message").fetchone()[0]
    assert all(queued.get(mid) == 1 for mid in acked)
    assert len(queued) == stored >= len(set(acked)) == len(acked)


@aio
async def test_the_writer_keeps_savepoint_journals_in_memory(tmp_path: Path) -> None:
    # a group commit's savepoint journal passes 64 KiB with a dozen messages: on disk it would be a
    # temporary file created, written and deleted per transaction (issue 14); the reading
    # connections' sorts, which can be as large as the store, keep SQLite's default
    async with SqliteStore(str(tmp_path / "t.db")) as store:
        assert store._checkpointer is not None
        assert store._writer.conn.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
        others = [*store._reader_conns, store._checkpointer._conn]
        assert [c.execute("PRAGMA temp_store").fetchone()[0] for c in others] == [0] * len(others)  # default
        results = await asyncio.gather(*(store.put_message(message(i, body="x" * 12_000))
                                         for i in range(24)))
        assert len({r.message_id for r in results}) == 24
