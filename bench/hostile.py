#!/usr/bin/env python3
"""What hostile and very large requests cost a running gateway, and whether others wait.

Starts ``cebgw serve --sandbox`` in a temporary directory, then sends, one at a time, the
review's attacks of issue 15 and the largest message the catalogue allows, while a prober asks
``/healthz`` every 20 ms.  Prints, per request: the answer's status, code and size, how long it
took, and the slowest ``/healthz`` answer while it ran.  Prints figures only; asserts nothing.

    .venv/bin/python bench/hostile.py
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway import samplegen  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cases() -> list[tuple[str, bytes]]:
    base = samplegen.build("CEB311", seed=1)
    attrs = b" ".join(b'a%d="1"' % i for i in range(200_000))
    empty = (b"<ceb:CEB311Message xmlns:ceb='http://www.chinaport.gov.cn/ceb'>" + b"<a/>" * 2_400_000
             + b"</ceb:CEB311Message>")
    largest = samplegen.build("CEB311", records=100, lines=99, seed=2)
    attack = base.replace(b"<ceb:OrderHead>", b"<ceb:OrderHead " + attrs + b">")
    return [
        ("200,000 attributes on one element", attack),
        ("10 MB of empty elements", empty),
        ("largest valid CEB311 (100 records x 99 lines)", largest),
        ("a small valid CEB311", samplegen.build("CEB311", seed=3)),
    ]


async def _probe(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, worst: list[float]) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        async with session.get(url + "/healthz") as r:
            await r.read()
        worst[0] = max(worst[0], time.perf_counter() - start)
        await asyncio.sleep(0.02)


async def _run(url: str, token: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        print(f"{'request':<48} {'bytes':>10} {'status':>6} {'code':<34} {'answer':>10} {'took':>8} "
              f"{'worst /healthz':>15}")
        for name, body in _cases():
            stop, worst = asyncio.Event(), [0.0]
            prober = asyncio.create_task(_probe(session, url, stop, worst))
            await asyncio.sleep(0.1)
            start = time.perf_counter()
            async with session.post(url + "/v1/messages", data=io.BytesIO(body), headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/xml"}) as r:
                raw = await r.read()
                status = r.status
            took = time.perf_counter() - start
            stop.set()
            await prober
            code = json.loads(raw).get("error", {}).get("code", "-") if status >= 400 else "-"
            print(f"{name:<48} {len(body):>10} {status:>6} {code:<34} {len(raw):>10} {took:>7.2f}s "
                  f"{worst[0] * 1000:>13.0f}ms")


def main() -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "gateway.cli.main", "serve", "--sandbox", "--data", tmp,
                "--port", str(port)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "listening" in line:
                    break
            info = json.loads((Path(tmp) / "sandbox.json").read_text())
            token = next(a["token"] for a in info["accounts"] if a["name"] == "ecommerce")
            time.sleep(0.5)
            asyncio.run(_run(f"http://127.0.0.1:{port}", token))
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
