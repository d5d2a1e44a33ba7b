"""Leasing sender by sender gives exactly what the plain definition gives.

The definition: the ``limit`` oldest pending envelopes (by outbox id) among senders that
have no envelope on a live lease.  It is written here as the one-statement query the store
used before migration 6 (which walked the pending outbox in id order); the store's
:func:`~gateway.store.sqlops.lease_outbox` must choose the same envelopes and leave the
table in the same state, on random outboxes with leases live, expired and acknowledged.
"""

from __future__ import annotations

import random
import sqlite3

from gateway.store import migrations
from gateway.store.sqlops import lease_outbox

_DEFINITION = (
    "SELECT o.id FROM outbox o WHERE o.acked_us IS NULL AND NOT EXISTS (SELECT 1 FROM outbox b"
    " WHERE b.sender = o.sender AND b.acked_us IS NULL AND b.lease_until_us > ?) ORDER BY o.id LIMIT ?")


def _enqueue(conn: sqlite3.Connection, i: int, sender: str) -> None:
    conn.execute("INSERT INTO message VALUES (?, 't', ?, 'CEB621', ?, ?, 'x', ?, 0, '', '')",
                 (i, sender, f"g{i}", f"c{i}", b"<m/>"))
    conn.execute("INSERT INTO outbox (id, message_id, sender, envelope, enqueued_us) VALUES (?, ?, ?, ?, 0)",
                 (i, i, sender, b"<env/>"))


def _outbox(rng: random.Random) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrations.migrate(conn)
    senders = [f"S{k}" for k in range(rng.randint(1, 12))]
    weights = [rng.random() ** 3 for _ in senders]  # a few big senders, many small ones
    conn.execute("BEGIN")
    for i in range(1, rng.randint(1, 400)):
        sender = rng.choices(senders, weights)[0]
        _enqueue(conn, i, sender)
    conn.execute("COMMIT")
    return conn


def _state(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return conn.execute("SELECT id, attempts, lease_until_us, acked_us FROM outbox ORDER BY id").fetchall()


def test_lease_takes_the_oldest_envelopes_of_senders_without_a_live_lease() -> None:
    for seed in range(150):
        rng = random.Random(seed)
        conn = _outbox(rng)
        now = 1_000
        for _ in range(rng.randint(1, 12)):
            limit = rng.choice((1, 2, 5, 10, 100, 1000))
            expected = [i for (i,) in conn.execute(_DEFINITION, (now, limit))]
            before = _state(conn)
            conn.execute("BEGIN")
            got = lease_outbox(conn, limit, now, lease_us=rng.choice((1, 50, 500)))
            conn.execute("COMMIT")
            assert [item.id for item in got] == expected, f"seed {seed}"
            after = {r[0]: r for r in _state(conn)}
            for row in before:   # leased: attempts + 1 and a new lease; everything else untouched
                if row[0] in expected:
                    assert after[row[0]][1] == row[1] + 1 and after[row[0]][2] is not None
                else:
                    assert after[row[0]] == row
            # customs acknowledges some of what it holds, and time moves on
            for item in got:
                if rng.random() < 0.5:
                    conn.execute("UPDATE outbox SET acked_us = ?, lease_until_us = NULL WHERE id = ?",
                                 (now, item.id))
            now += rng.choice((0, 10, 100, 1000))


def test_a_leased_big_sender_does_not_hide_the_others() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrations.migrate(conn)
    for i in range(1, 2001):
        sender = "BIG" if i <= 1990 else f"small{i % 3}"
        _enqueue(conn, i, sender)
    first = lease_outbox(conn, 100, 0, 10**9)
    assert [i.id for i in first] == list(range(1, 101))           # the big sender's oldest, in order
    second = lease_outbox(conn, 100, 1, 10**9)
    assert [i.id for i in second] == list(range(1991, 2001))       # the small senders, at once
    assert lease_outbox(conn, 100, 2, 10**9) == []
    assert lease_outbox(conn, 0, 2, 10**9) == []
