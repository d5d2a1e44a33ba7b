"""Envelopes moved from the outbox to customs per second: AMQP (published and confirmed by the
broker, then acked in the outbox), the DXP folders (written, synced, acked) and HTTP pull (leased
with GET /v1/customs/outbox, acked with POST /v1/customs/outbox/ack), in the same run, on the
same store and machine.

Each run fills a fresh SQLite store with ``--count`` envelopes (a real ~5 KB CEB621 envelope,
spread over 8 senders), then times the transport until the outbox is empty.  Prints the rates,
the CPU this process spent per envelope, and the machine; asserts nothing.

Run: ``.venv/bin/python bench/transport.py [--count 5000] [--amqp amqp://guest:guest@127.0.0.1:5672/]``
(without a reachable broker the AMQP run is skipped and says so).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import aiormq  # noqa: E402
from aiohttp import web  # noqa: E402

from gateway import pipeline, samplegen  # noqa: E402
from gateway.accounts import read_accounts  # noqa: E402
from gateway.catalog import load as load_catalog  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.dsig import load_registry  # noqa: E402
from gateway.envelope import RECEIVER_IMPORT, wrap  # noqa: E402
from gateway.sandbox import datadir  # noqa: E402
from gateway.sandbox.transports import sandbox_amqp  # noqa: E402
from gateway.service.app import build_app  # noqa: E402
from gateway.store import NewMessage, Store, open_store  # noqa: E402
from gateway.transport.amqp import AmqpTransport  # noqa: E402
from gateway.transport.common import ReceiptTaker, TransportMetrics  # noqa: E402
from gateway.transport.folder import FolderTransport  # noqa: E402
from gateway.transportconfig import AmqpSettings, FolderPair, FolderSettings  # noqa: E402

SENDERS = 8


async def fill(store: Store, count: int, inner: bytes) -> None:
    async def put(n: int) -> None:
        sender = n % SENDERS
        guid = str(uuid.uuid4()).upper()
        data = inner.replace(b'guid="', f'guid="{guid}" x="'.encode(), 1)
        cop = str(uuid.uuid4()).upper()
        env = wrap(data, msg_type="CEB621Message", sender_id=f"DXPENT000000000{sender}",
                   receiver_ids=(RECEIVER_IMPORT,), cop_msg_id=cop)
        await store.put_message(NewMessage(
            tenant=f"t{sender}", sender_code=f"S{sender}", message_type="CEB621", guid=guid, data=data,
            business_keys=[{"copNo": f"{n}"}], envelope=env, cop_msg_id=cop))
    for start in range(0, count, 64):
        await asyncio.gather(*(put(n) for n in range(start, min(start + 64, count))))


def taker(s: Settings, store: Store) -> ReceiptTaker:
    return ReceiptTaker(load_catalog(), load_registry(s.registry_path), s.policy, store,
                        lambda: read_accounts(s.accounts_path),
                        pipeline.Limits(s.max_body_bytes, s.max_depth), True, "customs")


async def drained(store: Store) -> None:
    while await store.outbox_depth():
        await asyncio.sleep(0.01)


async def run_amqp(s: Settings, store: Store, a: AmqpSettings) -> None:
    t = AmqpTransport(replace(a, consume=False), store, taker(s, store), TransportMetrics(),
                      lease_timeout_s=60, max_bytes=s.max_body_bytes)
    task = asyncio.create_task(t.run())
    try:
        await drained(store)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def run_folder(s: Settings, store: Store, root: Path) -> None:
    f = FolderSettings((FolderPair("*", root / "send", root / "receive"),), poll_interval_s=0.05)
    t = FolderTransport(f, store, taker(s, store), TransportMetrics(), lease_timeout_s=60,
                        max_bytes=s.max_body_bytes)
    task = asyncio.create_task(t.run())
    try:
        await drained(store)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def run_http(s: Settings, store: Store, token: str, limit: int) -> None:
    runner = web.AppRunner(build_app(s, store=store, transports=False), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            while True:
                async with http.get(f"{url}/v1/customs/outbox?limit={limit}") as r:
                    items = (await r.json())["items"]
                if not items:
                    break
                ids = {"ids": [i["id"] for i in items]}
                async with http.post(f"{url}/v1/customs/outbox/ack", json=ids) as r:
                    assert r.status == 200
    finally:
        await runner.cleanup()


async def delete(a: AmqpSettings) -> None:
    conn = await aiormq.connect(a.url)
    try:
        ch = await conn.channel()
        for q in (a.receipts_queue, a.dead_letter_queue, *a.customs_queues.values()):
            await ch.queue_delete(q)
        await ch.exchange_delete(a.exchange)
    finally:
        await conn.close()


def _reachable(url: str) -> bool:
    u = urlsplit(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 5672), timeout=2):
            return True
    except OSError:
        return False


def _machine() -> str:
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


async def main_async(args: argparse.Namespace) -> None:
    if args.dir is None:
        with tempfile.TemporaryDirectory(prefix="cebgw-bench-transport-") as tmp:
            await bench(args, Path(tmp))
    else:
        await bench(args, Path(tempfile.mkdtemp(prefix="cebgw-bench-transport-", dir=args.dir)))


async def bench(args: argparse.Namespace, work: Path) -> None:
    info = datadir.ensure(work / "sandbox", url="http://127.0.0.1:0")
    base = datadir.settings_for(work / "sandbox")
    inner = samplegen.build("CEB621", seed=1)
    print(f"machine: {_machine()}")
    size = len(wrap(inner, msg_type="CEB621Message", sender_id="X", receiver_ids=("Y",)))
    print(f"{args.count} envelopes of {size} bytes from {SENDERS} senders per run; store in {work}")
    runs: list[tuple[str, object]] = []
    if _reachable(args.amqp):
        a = replace(sandbox_amqp(args.amqp, prefix=f"cebgw-bench-{uuid.uuid4().hex[:8]}"), batch=args.batch)
        runs.append((f"amqp (batch {args.batch}, confirms)", a))
    else:
        print(f"amqp: skipped, no broker at {args.amqp}")
    runs.append((f"folder (batch {args.batch}, fsync)", work / "dxp"))
    runs.append((f"http pull (limit {args.batch})", info["customs"]["token"]))
    for i, (name, arg) in enumerate(runs):
        store = open_store(f"sqlite:///{work / f'run{i}.db'}")
        s = base.with_(store_url=f"sqlite:///{work / f'run{i}.db'}", outbox_max_batch=max(100, args.batch))
        try:
            await fill(store, args.count, inner)
            wall, cpu = time.perf_counter(), time.process_time()
            if isinstance(arg, AmqpSettings):
                await run_amqp(s, store, arg)
            elif isinstance(arg, Path):
                await run_folder(s, store, arg)
            else:
                await run_http(s, store, str(arg), args.batch)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            await store.close()
            if isinstance(arg, AmqpSettings):
                await delete(arg)
        print(f"{name:<32} {args.count / wall:8.0f} envelopes/s  "
              f"{cpu / args.count * 1e6:6.0f} µs CPU/envelope "
              "(this process; for http pull, server and client)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--batch", type=int, default=100, help="envelopes per lease (default 100)")
    p.add_argument("--amqp", default=os.environ.get("CEBGW_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    p.add_argument("--dir", default=None, help="where the stores and folders go (default: a temp dir)")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
