"""aio-pika against aiormq on the local RabbitMQ: the measurement behind the AMQP transport's choice.

For each library, on a fresh durable queue: publish ``--count`` persistent envelopes (a real
DXP envelope of about 3 KB) with publisher confirms, first pipelined (up to ``--window`` awaiting
their confirms at once, as the transport does), then one at a time (each confirm awaited before
the next publish); then consume them all with manual acks (prefetch ``--prefetch``).  Prints
messages/s and the client's CPU per message, with the machine; asserts nothing.

Run: ``.venv/bin/python bench/amqp_clients.py [--url amqp://guest:guest@127.0.0.1:5672/] [--count 5000]``.
Both libraries must be installed: aiormq is a dependency, aio-pika comes with the test extra
(``pip install -e '.[test]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aio_pika  # noqa: E402
import aiormq  # noqa: E402
from aiormq.abc import DeliveredMessage  # noqa: E402

from gateway import samplegen  # noqa: E402
from gateway.envelope import wrap  # noqa: E402


def _envelope() -> bytes:
    data = samplegen.build("CEB621", seed=1)
    return wrap(data, msg_type="CEB621Message", sender_id="DXPENT0000000001",
                receiver_ids=("DXPEDCCEB0000002",))


class Clock:
    """Wall time and this process's CPU time between start() and stop()."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self._w = self._c = 0.0

    def start(self) -> None:
        self._w, self._c = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.wall, self.cpu = time.perf_counter() - self._w, time.process_time() - self._c


async def _bounded(n: int, window: int, one: Callable[[int], Awaitable[None]]) -> None:
    sem = asyncio.Semaphore(window)

    async def run(i: int) -> None:
        try:
            await one(i)
        finally:
            sem.release()

    tasks = []
    for i in range(n):
        await sem.acquire()
        tasks.append(asyncio.ensure_future(run(i)))
    await asyncio.gather(*tasks)


async def bench_aiormq(url: str, body: bytes, count: int, window: int, serial: int,
                       prefetch: int) -> dict[str, Clock]:
    conn = await aiormq.connect(url)
    out: dict[str, Clock] = {}
    try:
        ch = await conn.channel(publisher_confirms=True)
        queue = f"bench-aiormq-{uuid.uuid4().hex[:8]}"
        await ch.queue_declare(queue, durable=True)

        def props(i: int) -> aiormq.spec.Basic.Properties:
            return aiormq.spec.Basic.Properties(content_type="text/xml", content_encoding="utf-8",
                                                delivery_mode=2, message_id=f"M{i}")

        async def publish(i: int) -> None:
            confirm = await ch.basic_publish(body, routing_key=queue, properties=props(i))
            if not isinstance(confirm, aiormq.spec.Basic.Ack):
                raise RuntimeError(f"not confirmed: {confirm!r}")

        c = out["publish pipelined"] = Clock()
        c.start()
        await _bounded(count, window, publish)
        c.stop()
        c = out["publish one by one"] = Clock()
        c.start()
        for i in range(serial):
            await publish(count + i)
        c.stop()

        total = count + serial
        got = 0
        done = asyncio.get_running_loop().create_future()
        consumer = await conn.channel()
        await consumer.basic_qos(prefetch_count=prefetch)

        async def on_message(msg: DeliveredMessage) -> None:
            nonlocal got
            await consumer.basic_ack(msg.delivery_tag or 0)
            got += 1
            if got == total and not done.done():
                done.set_result(None)

        c = out["consume"] = Clock()
        c.start()
        ok = await consumer.basic_consume(queue, on_message, no_ack=False)
        await done
        c.stop()
        await consumer.basic_cancel(ok.consumer_tag)
        await ch.queue_delete(queue)
    finally:
        await conn.close()
    return out


async def bench_aio_pika(url: str, body: bytes, count: int, window: int, serial: int,
                         prefetch: int) -> dict[str, Clock]:
    conn = await aio_pika.connect(url)
    out: dict[str, Clock] = {}
    try:
        ch = await conn.channel(publisher_confirms=True)
        queue_name = f"bench-aiopika-{uuid.uuid4().hex[:8]}"
        queue = await ch.declare_queue(queue_name, durable=True)

        async def publish(i: int) -> None:
            msg = aio_pika.Message(body, content_type="text/xml", content_encoding="utf-8",
                                   delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=f"M{i}")
            await ch.default_exchange.publish(msg, routing_key=queue_name)

        c = out["publish pipelined"] = Clock()
        c.start()
        await _bounded(count, window, publish)
        c.stop()
        c = out["publish one by one"] = Clock()
        c.start()
        for i in range(serial):
            await publish(count + i)
        c.stop()

        total = count + serial
        got = 0
        consumer = await conn.channel()
        await consumer.set_qos(prefetch_count=prefetch)
        cq = await consumer.get_queue(queue_name)
        c = out["consume"] = Clock()
        c.start()
        async with cq.iterator() as it:
            async for message in it:
                await message.ack()
                got += 1
                if got == total:
                    break
        c.stop()
        await queue.delete()
    finally:
        await conn.close()
    return out


def _machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("CEBGW_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    p.add_argument("--count", type=int, default=5000, help="envelopes published pipelined (default 5000)")
    p.add_argument("--serial", type=int, default=500, help="envelopes published one by one (default 500)")
    p.add_argument("--window", type=int, default=256, help="confirms awaited at once (default 256)")
    p.add_argument("--prefetch", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per library (default 2)")
    args = p.parse_args()
    body = _envelope()
    print(f"machine: {_machine()}")
    print(f"aio-pika {version('aio-pika')}, aiormq {version('aiormq')}; envelope {len(body)} bytes; "
          f"{args.count} pipelined (window {args.window}), {args.serial} one by one, "
          f"prefetch {args.prefetch}")
    runs: dict[str, Callable[..., Awaitable[dict[str, Clock]]]] = {
        "aiormq": bench_aiormq, "aio-pika": bench_aio_pika}
    for r in range(args.rounds):
        for name, fn in runs.items():
            res = asyncio.run(fn(args.url, body, args.count, args.window, args.serial, args.prefetch))
            for what, c in res.items():
                n = args.serial if what == "publish one by one" else (
                    args.count + args.serial if what == "consume" else args.count)
                print(f"round {r + 1} {name:<9} {what:<19} {n / c.wall:8.0f} msg/s  "
                      f"{c.cpu / n * 1e6:6.0f} µs CPU/msg (client)")


if __name__ == "__main__":
    main()
