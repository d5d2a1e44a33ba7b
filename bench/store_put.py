#!/usr/bin/env python3
"""The store alone: declarations stored per second and CPU per declaration, SQLite next to
PostgreSQL, in one process (no HTTP, no validation).

32 concurrent callers store ``--count`` distinct declarations (50 senders, 3 business keys
each) through ``Store.put_message``, as the service's requests do, so each store's group commit
batches them.  Prints the rate, the gateway process's CPU per declaration, the batches, and for
PostgreSQL the CPU of the server's processes per declaration (every ``postgres`` process on the
machine, so other users' work counts too).  Asserts nothing; the machine may be shared.

    .venv/bin/python bench/store_put.py [--db postgresql://postgres@127.0.0.1/test] [--count 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.store import NewMessage, open_store  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def _postgres_cpu_s() -> float:
    total = 0.0
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() == "postgres":
                    fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                    total += (int(fields[11]) + int(fields[12])) / _TICK
            except OSError:
                continue
    return total


def _message(i: int) -> NewMessage:
    guid = f"00000000-0000-4000-8000-{i:012d}"
    data = (f'<ceb:CEB621Message xmlns:ceb="http://www.chinaport.gov.cn/ceb" guid="{guid}">'
            f"<n>{i}</n>{'<x>filler</x>' * 40}</ceb:CEB621Message>").encode()
    return NewMessage(tenant="acme", sender_code=f"S{i % 50}", message_type="CEB621", guid=guid, data=data,
                      business_keys=[{"copNo": f"C{i}", "orderNo": f"O{i}", "ebcCode": "3301960A7Z"}],
                      envelope=b"<dxp:DxpMsg>" + data + b"</dxp:DxpMsg>", cop_msg_id=f"M{i}")


async def _run(url: str, count: int) -> str:
    store = open_store(url)
    try:
        messages = [_message(i) for i in range(count)]
        todo = iter(messages)

        async def caller() -> None:
            for m in todo:
                await store.put_message(m)
        pg0, cpu0, t0 = _postgres_cpu_s(), time.process_time(), time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(32)))
        wall, cpu, pg = time.perf_counter() - t0, time.process_time() - cpu0, _postgres_cpu_s() - pg0
        batches = (await store.metrics()).write_batches
    finally:
        await store.close()
    line = (f"{count / wall:7.0f} declarations/s   gateway CPU {cpu / count * 1e6:5.0f} µs each   "
            f"{batches} batches")
    if url.startswith("postgres"):
        line += f"   PostgreSQL server CPU {pg / count * 1e6:5.0f} µs each"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args()
    import psycopg

    print(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"{args.count} declarations, 32 concurrent callers; machine shared with other work")
    schema = f"cebgw_storebench_{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="cebgw-storebench-") as tmp:
        print(f"{'SQLite':<12}", asyncio.run(_run(f"sqlite:///{tmp}/gw.db", args.count)))
    sep = "&" if "?" in args.db else "?"
    try:
        print(f"{'PostgreSQL':<12}",
              asyncio.run(_run(f"{args.db}{sep}options=-csearch_path%3D{schema}", args.count)))
    finally:
        with psycopg.connect(args.db, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


if __name__ == "__main__":
    main()
