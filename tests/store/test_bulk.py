"""The writer's bulk path: ``sqlops.put_messages`` must write exactly what ``put_message`` one by
one writes, and a bulk function that fails must leave the jobs to run one by one."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest
from storekit import aio, message

from gateway.errors import ConflictError, GatewayError, StoreError
from gateway.store import NewMessage, PutResult, Subscriber, sqlops
from gateway.store.migrations import migrate
from gateway.store.sqlite import SqliteStore
from gateway.store.writer import Bulk, Work, run_transaction

TABLES = ("message", "message_key", "subscriber", "declaration_state", "outbox")


def _conn(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    return conn


def _dump(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}


def _one_by_one(conn: sqlite3.Connection, items: list[tuple[NewMessage, int, sqlops.Digested]]
                ) -> list[PutResult | GatewayError]:
    """What the writer's single path does: each put in its own savepoint."""
    out: list[PutResult | GatewayError] = []
    conn.execute("BEGIN IMMEDIATE")
    for m, now, d in items:
        conn.execute("SAVEPOINT job")
        try:
            out.append(sqlops.put_message(conn, m, now, d))
        except GatewayError as exc:
            conn.execute("ROLLBACK TO job")
            out.append(exc)
        conn.execute("RELEASE job")
    conn.execute("COMMIT")
    return out


def _same(a: PutResult | GatewayError, b: PutResult | GatewayError) -> bool:
    if isinstance(a, GatewayError) or isinstance(b, GatewayError):
        return type(a) is type(b) and str(a) == str(b)
    return a == b


def _mix(rng: random.Random, n: int) -> list[NewMessage]:
    """Fresh messages from two tenants and three senders, with same-bytes repeats and reused
    guids both against earlier batches and within the batch."""
    out: list[NewMessage] = []
    for i in range(n):
        roll = rng.random()
        if out and roll < 0.15:
            out.append(rng.choice(out))                                   # the same bytes again
        elif out and roll < 0.25:
            prev = rng.choice(out)                                        # its guid, other content
            out.append(message(10_000 + i, tenant=prev.tenant, sender=prev.sender_code, guid=prev.guid))
        else:
            subs = tuple(Subscriber(f"DXPENT{k:010d}", rng.choice(("ALL", "RET", "DATA")))
                         for k in range(rng.randrange(3)))
            keys = [{"copNo": f"C{i}", "orderNo": f"O{i}"} for _ in range(rng.randrange(1, 3))]
            out.append(message(i, tenant=rng.choice(("acme", "beta")), sender=rng.choice(("S1", "S2", "S3")),
                               keys=keys, subscribers=subs))
    return out


@pytest.mark.parametrize("rows_per_insert", [256, 2])
@pytest.mark.parametrize("seed", range(6))
def test_bulk_writes_what_one_by_one_writes(tmp_path: Path, seed: int, rows_per_insert: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlops, "_ROWS_PER_INSERT", rows_per_insert)  # 2: every table's rows in chunks
    rng = random.Random(seed)
    a, b = _conn(tmp_path / "a.db"), _conn(tmp_path / "b.db")
    now = 1_700_000_000_000_000
    seen: list[PutResult | GatewayError] = []
    for _ in range(4):  # several batches: later ones meet earlier ones' guids and chain heads
        batch = [(m, now + k, sqlops.digest(m)) for k, m in enumerate(_mix(rng, rng.randrange(10, 40)))]
        now += 1_000
        single = _one_by_one(a, batch)
        b.execute("BEGIN IMMEDIATE")
        bulk = sqlops.put_messages(b, batch)
        b.execute("COMMIT")
        assert len(bulk) == len(single)
        assert all(_same(x, y) for x, y in zip(single, bulk, strict=True)), (single, bulk)
        seen += single
    assert _dump(a) == _dump(b)
    assert any(isinstance(x, ConflictError) for x in seen), "the mix made no reused guid"
    assert any(isinstance(x, PutResult) and x.duplicate for x in seen), "the mix made no repeat"


def _work(value: int, bulk: Bulk[int, int] | None) -> Work[int]:
    return Work(lambda c: c.execute("INSERT INTO t VALUES (?)", (value,)).lastrowid or 0, bulk)


def test_a_bulk_function_that_raises_leaves_the_jobs_to_run_one_by_one(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("CREATE TABLE t (x INTEGER)")

    def broken(c: sqlite3.Connection, args: list[int]) -> list[int | GatewayError]:
        c.executemany("INSERT INTO t VALUES (?)", [(a,) for a in args])  # written, then rolled back
        raise sqlite3.OperationalError("bulk path broke")

    jobs = [_work(n, Bulk(broken, n)) for n in range(5)]
    assert run_transaction(conn, jobs)
    assert [j.error for j in jobs] == [None] * 5
    assert sorted(r[0] for r in conn.execute("SELECT x FROM t")) == [0, 1, 2, 3, 4]


def test_a_bulk_answer_of_the_wrong_length_is_not_trusted(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("CREATE TABLE t (x INTEGER)")

    def short(c: sqlite3.Connection, args: list[int]) -> list[int | GatewayError]:
        return [1]

    jobs = [_work(n, Bulk(short, n)) for n in range(3)]
    assert run_transaction(conn, jobs)
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [0, 1, 2]


def test_bulk_answers_fail_only_their_own_jobs(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("CREATE TABLE t (x INTEGER)")

    def odd_fail(c: sqlite3.Connection, args: list[int]) -> list[int | GatewayError]:
        c.executemany("INSERT INTO t VALUES (?)", [(a,) for a in args if a % 2 == 0])
        return [a if a % 2 == 0 else ConflictError(f"odd {a}") for a in args]

    jobs = [_work(n, Bulk(odd_fail, n)) for n in range(4)]
    assert run_transaction(conn, jobs)
    assert [j.result for j in jobs] == [0, None, 2, None]
    assert [str(j.error) if j.error else None for j in jobs] == [None, "odd 1", None, "odd 3"]


def test_jobs_without_a_bulk_function_split_the_runs(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("CREATE TABLE t (x INTEGER)")
    calls: list[list[int]] = []

    def record(c: sqlite3.Connection, args: list[int]) -> list[int | GatewayError]:
        calls.append(list(args))
        c.executemany("INSERT INTO t VALUES (?)", [(a,) for a in args])
        return list(args)

    jobs = [_work(0, Bulk(record, 0)), _work(1, Bulk(record, 1)), _work(2, None),
            _work(3, Bulk(record, 3)), _work(4, Bulk(record, 4)), _work(5, Bulk(record, 5))]
    assert run_transaction(conn, jobs)
    assert calls == [[0, 1], [3, 4, 5]]
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY rowid")] == [0, 1, 2, 3, 4, 5]


def test_a_failed_commit_fails_every_job(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE t (x INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)")
    conn.execute("PRAGMA foreign_keys=ON")
    jobs = [_work(n, None) for n in range(3)]  # no parent rows: the deferred check fails at COMMIT
    assert not run_transaction(conn, jobs)
    assert all(isinstance(j.error, StoreError) and j.result is None for j in jobs)
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0


@aio
async def test_a_busy_store_answers_through_the_bulk_path(tmp_path: Path) -> None:
    """Through the writer with a commit delay, so concurrent puts share batches."""
    async with SqliteStore(str(tmp_path / "gw.db"), commit_delay_s=0.01) as store:
        await store.put_message(message(0))
        await store.put_message(message(0, guid="G-TAKEN"))
        jobs = [store.put_message(message(n)) for n in range(1, 60)]
        jobs += [store.put_message(message(3)), store.put_message(message(500, guid="G-TAKEN"))]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        assert isinstance(results[-1], ConflictError)
        again, first = results[-2], results[2]
        assert isinstance(again, PutResult) and isinstance(first, PutResult)
        assert again.message_id == first.message_id and again.duplicate and not first.duplicate
        assert [r.duplicate for r in results[:-1] if isinstance(r, PutResult)].count(True) == 1
        metrics = await store.metrics()
        assert metrics.write_jobs / metrics.write_batches > 2, "the puts did not share batches"
        assert await store.outbox_depth() == 61
        assert (await store.audit_verify()).ok


def test_statements_come_in_a_few_sizes_only() -> None:
    for n in range(0, 700):
        pieces = list(sqlops._chunks(list(range(n)), 256))
        assert [x for p in pieces for x in p] == list(range(n))
        assert all(len(p) & (len(p) - 1) == 0 and len(p) <= 256 for p in pieces)
    sizes = {len(p) for n in range(1, 1025) for p in sqlops._chunks(list(range(n)), 256)}
    assert sizes == {1, 2, 4, 8, 16, 32, 64, 128, 256}
