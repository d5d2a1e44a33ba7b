"""The counts kept by triggers (``tally``) always equal the counts of the rows themselves.

``/metrics`` and ``/healthz`` read the kept counts; these tests drive the store through
random mixes of everything that changes them (submissions, leases, acks, receipts that
advance, go stale or dead-letter, reroutes, mailbox acks forward, backward and past the
end) and compare them with a full scan after every step.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from storekit import FakeClock, aio, any_store, message, receipt

from gateway.errors import NotFoundError
from gateway.state import State
from gateway.store.migrations import MIGRATIONS, migrate
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlops import Tally, tally, tally_by_scan

TENANTS = ("acme", "beta", "gamma")
STATUSES = ("2", "120", "100", "300", "500", "800", "899", "-301010")


def counts(db: str) -> tuple[Tally, Tally]:
    """The kept counts and a scan of the rows, of a SQLite file or a PostgreSQL schema."""
    if db.startswith("postgresql://"):
        import psycopg

        from gateway.store.postgres import PgConn
        with psycopg.connect(db, autocommit=True) as pg:
            c: Any = PgConn(pg)
            return tally(c), tally_by_scan(c)
    with sqlite3.connect(db, isolation_level=None) as conn:
        return tally(conn), tally_by_scan(conn)


async def _random_ops(store: SqliteStore, clock: FakeClock, rng: random.Random, steps: int,
                      db: str | None = None, first: int = 0) -> list[int]:
    """Random writes; after each (if ``db``) the kept counts must equal a scan."""
    declarations: list[tuple[int, str]] = []
    dead: list[int] = []
    n = first  # message numbers (and so guids) of their own
    for _ in range(steps):
        op = rng.choice(("put", "put", "lease", "ack", "receipt", "receipt", "dead", "reroute", "mail_ack"))
        n += 1
        if op == "put" or not declarations:
            tenant = rng.choice(TENANTS)
            put = await store.put_message(message(n, tenant=tenant, mtype=rng.choice(("CEB621", "CEB311"))))
            if not put.duplicate:
                declarations.append((put.message_id, tenant))
        elif op == "lease":
            await store.lease_outbox(rng.randint(1, 5), rng.choice((0.0, 30.0)))
            clock.advance(rng.choice((0, 60)))
        elif op == "ack":
            items = await store.lease_outbox(rng.randint(1, 4), 30.0)
            await store.ack_outbox([i.id for i in items if rng.random() < 0.7] + [10**6])
        elif op == "receipt":
            mid, _ = rng.choice(declarations)
            boxes = ("broker",) if rng.random() < 0.3 else ()
            await store.put_receipt(receipt(rng.choice(STATUSES), mid, n=n, mailboxes=boxes,
                                            mtype=rng.choice(("CEB622", "CEB312"))))
        elif op == "dead":
            dead.append((await store.put_receipt(receipt("120", None, n=n, reason="no match"))).receipt_id)
        elif op == "reroute" and dead:
            rid = dead.pop(rng.randrange(len(dead)))
            try:
                await store.reroute_dead_letter(rid, rng.choice(declarations)[0], ["broker"])
            except NotFoundError:
                pass
        elif op == "mail_ack":
            tenant = rng.choice((*TENANTS, "broker"))
            items = await store.mailbox(tenant, 0, 100)
            cursor = rng.choice([0, 10**9, *(i.cursor for i in items)])
            await store.ack_mailbox(tenant, cursor)
        if db is not None:
            kept, scanned = counts(db)
            assert kept == scanned, f"after {op}"
    return [mid for mid, _ in declarations]


@aio
async def test_kept_counts_equal_the_rows_after_every_kind_of_write(db: str, clock: FakeClock) -> None:
    for seed in range(3):
        async with any_store(db, clock=clock) as store:
            await _random_ops(store, clock, random.Random(seed), 120, db, first=seed * 1000)
            kept, _ = counts(db)
            metrics = await store.metrics()
            assert metrics.outbox_depth == await store.outbox_depth() == kept.outbox_pending
            assert metrics.declarations == kept.declarations
            assert metrics.dead_letters == kept.dead_letters_open
            assert metrics.mailbox_unacked == sum(kept.mailbox_unacked.values())
    assert kept.declarations and kept.receipts and kept.mailbox_unacked


_COPIED = ("message", "message_key", "subscriber", "declaration_state", "outbox", "assigned_key",
           "receipt_blob", "receipt", "receipt_key", "receipt_link", "dead_letter")


def as_version_4(src: str, dst: str) -> None:
    """A copy of store ``src`` as migration 4 left stores: no tally, mailbox cursors from one
    counter for every tenant and read marks in them (today's code writes only the newest schema)."""
    with sqlite3.connect(dst, isolation_level=None) as conn:
        migrate(conn, MIGRATIONS[:4])
        conn.execute("ATTACH DATABASE ? AS src", (src,))
        conn.execute("BEGIN")
        for table in _COPIED:
            cols = ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})"))
            conn.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM src.{table}")
        conn.execute("INSERT INTO main.mailbox (cursor, tenant, receipt_id, declaration_id, delivered_us)"
                     " SELECT cursor, tenant, receipt_id, declaration_id, delivered_us FROM src.mailbox")
        conn.execute("INSERT INTO main.mailbox_ack SELECT a.tenant, COALESCE((SELECT mb.cursor FROM"
                     " src.mailbox mb WHERE mb.tenant = a.tenant AND mb.seq = a.cursor), 0)"
                     " FROM src.mailbox_ack a")
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE src")


@aio
@pytest.mark.sqlite_only
async def test_upgrading_a_store_counts_what_it_already_holds(db: str, clock: FakeClock,
                                                              tmp_path: Path) -> None:
    source = str(tmp_path / "source.db")
    async with SqliteStore(source, clock=clock) as store:
        await _random_ops(store, clock, random.Random(7), 150)
    _, scanned = counts(source)
    as_version_4(source, db)
    with sqlite3.connect(db, isolation_level=None) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'tally'").fetchone() == (0,)
    async with SqliteStore(db, clock=clock) as store:                  # migrations 5 to 7 run here
        kept, again = counts(db)
        assert kept == again == scanned
        assert (await store.metrics()).outbox_depth == scanned.outbox_pending
        await _random_ops(store, clock, random.Random(8), 60, db, first=1000)  # and kept from then on


@aio
@pytest.mark.sqlite_only
async def test_migration_7_numbers_each_tenants_mail_in_its_old_order(db: str, clock: FakeClock,
                                                                      tmp_path: Path) -> None:
    """Cursors from one global counter become each tenant's 1, 2, 3 ... in the same order; read
    marks cover the same items as before; the counts stay right."""
    source = str(tmp_path / "source.db")
    async with SqliteStore(source, clock=clock) as store:
        await _random_ops(store, clock, random.Random(11), 200)
        want = {t: await store.mailbox(t, 0, 1000) for t in (*TENANTS, "broker")}
        unread = {t: await store.mailbox(t, None, 1000) for t in want}
    as_version_4(source, db)
    with sqlite3.connect(db, isolation_level=None) as conn:
        old = {t: [r for (r,) in conn.execute(
            "SELECT cursor FROM mailbox WHERE tenant = ? ORDER BY cursor", (t,))] for t in want}
    assert sum(map(len, want.values())) > 20 and any(o != list(range(1, len(o) + 1)) for o in old.values())
    async with SqliteStore(db, clock=clock) as store:
        for t, items in want.items():
            got = await store.mailbox(t, 0, 1000)
            assert [i.receipt_id for i in got] == [i.receipt_id for i in items], t
            assert [i.cursor for i in got] == list(range(1, len(got) + 1)), t
            still = await store.mailbox(t, None, 1000)
            assert [i.receipt_id for i in still] == [i.receipt_id for i in unread[t]], t
        kept, scanned = counts(db)
        assert kept == scanned


@aio
async def test_a_state_that_empties_is_no_longer_reported(db: str) -> None:
    async with any_store(db) as store:
        put = await store.put_message(message(1))
        assert (await store.metrics()).declarations == {("CEB621", "declared"): 1}
        await store.put_receipt(receipt("120", put.message_id))
        assert (await store.metrics()).declarations == {("CEB621", State.ACCEPTED.value): 1}
        kept, scanned = counts(db)
        assert kept == scanned


@aio
@pytest.mark.sqlite_only
async def test_a_store_that_got_later_migrations_first_still_gets_7(db: str, clock: FakeClock) -> None:
    """Migration 7 was written beside 8 and 9: a store that has those but not 7 gets it on open."""
    without_7 = tuple(m for m in MIGRATIONS if m.version != 7)
    async with SqliteStore(db, clock=clock, migrations=without_7):
        pass
    with sqlite3.connect(db, isolation_level=None) as conn:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(mailbox)")}
        assert "seq" not in cols
    async with SqliteStore(db, clock=clock) as store:
        await _random_ops(store, clock, random.Random(5), 80, db)
    with sqlite3.connect(db, isolation_level=None) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == [m.version for m in MIGRATIONS]
