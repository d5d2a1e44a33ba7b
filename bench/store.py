"""Durable put_message throughput of the SQLite store with 1, 16 and 64 concurrent submitters.

Prints messages/s and the average group-commit batch size; asserts nothing.
Run: ``.venv/bin/python bench/store.py [--seconds 3] [--dir /path/on/the/real/disk]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from gateway.store import NewMessage
from gateway.store.sqlite import SqliteStore

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


if __name__ == "__main__":
    main()
