"""Durable put_message throughput of the SQLite store with 1, 16 and 64 concurrent submitters,
and how long an outbox lease takes behind a deep queue.

Prints messages/s and the average group-commit batch size, then the lease times; asserts nothing.
Run: ``.venv/bin/python bench/store.py [--seconds 3] [--dir /path/on/the/real/disk]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

# bench/ is sys.path[0] when this runs as a script, and bench/gateway.py would shadow the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.store import NewMessage, migrations, sqlops  # noqa: E402
from gateway.store.sqlite import SqliteStore  # noqa: E402

BODY = "<ceb:InventoryList><ceb:gnum>1</ceb:gnum></ceb:InventoryList>" * 20   # ~1.3 KB like a small 621


def _message(worker: int, n: int) -> NewMessage:
    guid = str(uuid.uuid4()).upper()
    data = (f'<ceb:CEB621Message xmlns:ceb="http://www.chinaport.gov.cn/ceb" guid="{guid}" version="1.0">'
            f"<ceb:Inventory><ceb:copNo>W{worker}N{n}</ceb:copNo>{BODY}</ceb:Inventory></ceb:CEB621Message>"
            ).encode()
    return NewMessage(tenant=f"t{worker % 8}", sender_code=f"S{worker % 8}", message_type="CEB621", guid=guid,
                      data=data, business_keys=[{"copNo": f"W{worker}N{n}", "ebcCode": "E1"}],
                      envelope=data + b"<envelope/>", cop_msg_id=guid)


async def _run(path: Path, submitters: int, seconds: float, bg: bool) -> tuple[int, float, float]:
    store = SqliteStore(str(path), checkpoint_thread=bg)
    try:
        stop = time.perf_counter() + seconds
        done = 0

        async def submit(worker: int) -> None:
            nonlocal done
            n = 0
            while time.perf_counter() < stop:
                await store.put_message(_message(worker, n))
                n += 1
                done += 1

        before = await store.metrics()
        start = time.perf_counter()
        await asyncio.gather(*(submit(w) for w in range(submitters)))
        elapsed = time.perf_counter() - start
        after = await store.metrics()
        batches = after.write_batches - before.write_batches
        jobs = after.write_jobs - before.write_jobs
        return done, elapsed, jobs / batches if batches else 0.0
    finally:
        await store.close()


def _lease_times(path: Path, depth: int) -> tuple[float, float, float]:
    """ms for: leasing the oldest 100 (all one big sender's), leasing again while those are out
    (the big sender is skipped: the other senders' 100), and once more (nothing is leasable)."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(conn)
    conn.execute("BEGIN")
    for i in range(1, depth + 1):
        sender = "BIG" if i <= depth - 100 else f"small{i % 10}"
        conn.execute("INSERT INTO message VALUES (?, 't', ?, 'CEB621', ?, ?, 'x', x'00', 0, '', '')",
                     (i, sender, f"g{i}", f"c{i}"))
        conn.execute("INSERT INTO outbox (id, message_id, sender, envelope, enqueued_us)"
                     " VALUES (?, ?, ?, x'00', 0)", (i, i, sender))
    conn.execute("COMMIT")
    times = []
    for k in range(3):
        start = time.perf_counter()
        conn.execute("BEGIN")
        sqlops.lease_outbox(conn, 100, k + 1, 10**12)
        conn.execute("COMMIT")
        times.append((time.perf_counter() - start) * 1000)
    conn.close()
    return times[0], times[1], times[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--inline-checkpoint", action="store_true",
                        help="let commits run WAL checkpoints instead of the background thread")
    parser.add_argument("--dir", default=None, help="directory for the database (default: a temp dir)")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
    print("WAL, synchronous=FULL; each put_message returns only after its commit is synced")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"database directory: {tmp}")
        print(f"{'submitters':>10} {'messages':>9} {'msg/s':>9} {'avg batch':>10}")
        for submitters in (1, 16, 64):
            path = Path(tmp) / f"bench-{submitters}.db"
            done, elapsed, batch = asyncio.run(_run(path, submitters, args.seconds,
                                                   not args.inline_checkpoint))
            print(f"{submitters:>10} {done:>9} {done / elapsed:>9.0f} {batch:>10.1f}")
        print()
        print("outbox lease of 100, ms: first (the big sender's oldest), again while those are out,")
        print("once more (nothing leasable); the queue is one big sender and 100 envelopes of 10 others")
        for depth in (10_000, 100_000, 1_000_000):
            first, again, empty = _lease_times(Path(tmp) / f"lease-{depth}.db", depth)
            print(f"{depth:>10} pending  {first:7.1f} {again:7.1f} {empty:7.1f}")


if __name__ == "__main__":
    main()
