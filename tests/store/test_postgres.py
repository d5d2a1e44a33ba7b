"""The PostgreSQL store as several nodes see it: two stores on one schema in one process (each
is what one gateway node opens), plus what only PostgreSQL has (its triggers, its CLI copy).
The behaviour both stores share is tested on both by the rest of this suite."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from pgkit import fresh_schema
from storekit import aio, message, receipt

from gateway.errors import ConflictError
from gateway.store import PutResult
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore


@pytest.fixture
def pg() -> Iterator[str]:
    with fresh_schema("pg") as url:
        yield url


def _sql(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


@aio
async def test_declarations_and_the_journal_refuse_update_delete_and_truncate(pg: str) -> None:
    import psycopg

    async with PostgresStore(pg) as store:
        await store.put_message(message(1))
    for statement in ("UPDATE message SET guid = 'X'", "DELETE FROM message", "TRUNCATE message CASCADE",
                      "DELETE FROM audit_entry", "TRUNCATE audit_entry"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            _sql(pg, statement)


@aio
async def test_audit_finds_bytes_changed_behind_the_triggers(pg: str) -> None:
    async with PostgresStore(pg) as store:
        for i in range(3):
            await store.put_message(message(i))
        assert (await store.audit_verify()).ok
        _sql(pg, "ALTER TABLE message DISABLE TRIGGER message_no_change;"
                 " UPDATE message SET data = 'x'::bytea WHERE id = 2;"
                 " ALTER TABLE message ENABLE TRIGGER message_no_change")
        report = await store.audit_verify()
    assert [(b.message_id, b.problem) for b in report.breaks] == [(2, "data")]
    assert any(p.kind == "changed" and "stored bytes" in p.detail for p in report.problems)


@aio
async def test_two_nodes_never_lease_one_envelope_twice_and_keep_each_senders_order(pg: str) -> None:
    async with PostgresStore(pg) as a, PostgresStore(pg) as b:
        for i in range(40):
            await (a if i % 2 else b).put_message(message(i, sender=f"S{i % 5}"))
        sender_of = {i + 1: f"S{i % 5}" for i in range(40)}
        order: list[int] = []
        while True:
            got_a, got_b = await asyncio.gather(a.lease_outbox(3, 60), b.lease_outbox(3, 60))
            ids_a, ids_b = [o.id for o in got_a], [o.id for o in got_b]
            if not ids_a and not ids_b:
                break
            assert not set(ids_a) & set(ids_b)
            # a sender out on a lease with one node is not leased by the other
            assert not {sender_of[i] for i in ids_a} & {sender_of[i] for i in ids_b}
            order += ids_a + ids_b
            await asyncio.gather(a.ack_outbox(ids_a), b.ack_outbox(ids_b))
    assert sorted(order) == list(range(1, 41))
    for s in {f"S{i}" for i in range(5)}:
        mine = [i for i in order if sender_of[i] == s]
        assert mine == sorted(mine), s


@aio
async def test_the_same_bytes_at_two_nodes_at_once_are_stored_once(pg: str) -> None:
    async with PostgresStore(pg) as a, PostgresStore(pg) as b:
        for n in range(10):
            first, second = await asyncio.gather(a.put_message(message(n)), b.put_message(message(n)))
            assert first.message_id == second.message_id and sorted([first.duplicate, second.duplicate]) == [
                False, True]
        other = replace(message(100), data=message(100).data + b" ")
        results = await asyncio.gather(a.put_message(message(100)), b.put_message(other),
                                       return_exceptions=True)
        assert sorted(type(r).__name__ for r in results) == ["ConflictError", "PutResult"]
        with pytest.raises(ConflictError):
            await a.put_message(other if isinstance(results[0], PutResult) else message(100))
        assert await a.outbox_depth() == 11
        assert (await b.audit_verify()).ok


@aio
async def test_a_long_poll_is_woken_by_a_delivery_through_another_node_without_polling(pg: str) -> None:
    async with PostgresStore(pg) as a, PostgresStore(pg) as b:
        put = await a.put_message(message(1))
        reads = 0
        plain: Callable[..., Any] = a.mailbox

        async def counted(*args: Any) -> Any:
            nonlocal reads
            reads += 1
            return await plain(*args)

        a.mailbox = counted  # type: ignore[method-assign]
        waiting = asyncio.create_task(a.mailbox_wait("acme", None, 10, 30.0))
        await asyncio.sleep(1.5)  # long enough for a once-a-second poll to show
        await b.put_receipt(receipt("120", put.message_id, n=1))
        items = await asyncio.wait_for(waiting, 10)
    assert [i.status for i in items] == ["120"]
    assert reads == 2  # once before waiting, once when NOTIFY woke it


@aio
async def test_customs_long_poll_is_woken_by_a_submission_through_another_node(pg: str) -> None:
    async with PostgresStore(pg) as a, PostgresStore(pg) as b:
        waiting = asyncio.create_task(a.outbox_wait(30.0))
        await asyncio.sleep(1.5)  # past the one second a store that cannot tell would wait
        assert not waiting.done()
        await b.put_message(message(1))
        assert await asyncio.wait_for(waiting, 10) is True  # woken by NOTIFY, not a time-out
        assert await a.outbox_wait(0.2) is False  # nothing new since


@aio
async def test_sqlite_cannot_tell_and_says_so(tmp_path: Any) -> None:
    async with SqliteStore(str(tmp_path / "g.db")) as store:
        assert await store.outbox_wait(5.0) is False


def test_nodes_starting_together_migrate_once(pg: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        async def run() -> None:
            async with PostgresStore(pg) as store:
                await store.outbox_depth()
        try:
            asyncio.run(run())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_store_copy_moves_a_sqlite_store_and_verifies_it(pg: str, tmp_path: Any,
                                                         cli: Callable[..., tuple[int, str, str]]) -> None:
    db = str(tmp_path / "gw.db")

    async def fill() -> None:
        async with SqliteStore(db) as s:
            puts = [await s.put_message(message(i, sender=f"S{i % 3}")) for i in range(12)]
            leased = await s.lease_outbox(5, 30)
            await s.ack_outbox([o.id for o in leased])
            for i, p in enumerate(puts[:4]):
                await s.put_receipt(receipt("120", p.message_id, n=i, mailboxes=("other",)))
            await s.put_receipt(receipt("399", None, n=9, reason="no match"))
            await s.ack_mailbox("acme", 2)
    asyncio.run(fill())

    async def metrics(store: Any) -> Any:
        async with store:
            return replace(await store.metrics(), write_batches=0, write_jobs=0)

    code, out, err = cli("store", "copy", "--from", f"sqlite:///{db}", "--to", pg)
    assert code == 0, out + err
    assert "message            12 row(s)" in out and "verified" in out
    assert asyncio.run(metrics(PostgresStore(pg))) == asyncio.run(metrics(SqliteStore(db)))
    code, out, _ = cli("audit", "verify", "--db", pg)
    assert code == 0 and "checked 12 message(s) in 3 chain(s)" in out
    code, out, _ = cli("store", "migrate", "--db", pg)
    assert code == 0 and "up to date (version 10)" in out
    code, _, err = cli("store", "copy", "--from", f"sqlite:///{db}", "--to", pg)
    assert code != 0 and "not empty" in err

    async def more() -> None:  # the copy goes on from the copied ids
        async with PostgresStore(pg) as store:
            put = await store.put_message(message(50))
            assert put.message_id == 13
            assert (await store.put_receipt(receipt("120", put.message_id, n=50))).receipt_id == 6
            assert [i.cursor for i in await store.mailbox("acme", 2, 10)] == [3, 4, 5]
            assert (await store.audit_verify()).ok
    asyncio.run(more())


def test_store_migrate_creates_a_schema(cli: Callable[..., tuple[int, str, str]]) -> None:
    with fresh_schema("migrate") as url:
        code, out, _ = cli("store", "migrate", "--db", url)
        assert code == 0 and "applied migration(s) 1, 2, 3, 4, 5, 6, 7, 8, 9, 10" in out
