"""Crash safety: a 202 means durable.

A real ``cebgw serve --sandbox`` process takes a burst of signed CEB621 declarations from
concurrent clients and is SIGKILLed mid-burst.  After a restart on the same data directory
every acknowledged declaration must be readable by its sender, must be in the customs
outbox exactly once with the exact submitted bytes, and the audit chains must verify.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.dsig import load_key, sign
from gateway.sandbox import samplegen

from .kit import aio, envelope_data

MESSAGES = 400
KILL_AFTER = 150
CLIENTS = 6
CEBGW = [sys.executable, "-m", "gateway.cli.main"]
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(data: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``cebgw serve --sandbox`` on a free port; killed and reaped on exit whatever happened."""
    port = _free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([*CEBGW, "serve", "--sandbox", "--port", str(port), "--data", str(data)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


async def _wait_healthy(session: aiohttp.ClientSession, proc: subprocess.Popen[bytes], url: str,
                        log: Path, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            async with session.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status == 200:
                    return
        except (TimeoutError, aiohttp.ClientError):
            pass
        await asyncio.sleep(0.05)
    pytest.fail(f"server not healthy after {timeout_s:.0f} s:\n{log.read_text(errors='replace')}")


def _declarations(info: dict[str, Any]) -> tuple[str, list[bytes]]:
    """The ecommerce account's token and MESSAGES distinct signed 10-item CEB621 (its copCode is
    samplegen's default ebcCode; guid, orderNo and copNo all vary with the seed)."""
    acc = next(a for a in info["accounts"] if a["name"] == "ecommerce")
    key = load_key(acc["key"], acc["cert"])
    bodies = [sign(samplegen.build("CEB621", lines=10, seed=seed), key, alg="rsa-sha1")
              for seed in range(MESSAGES)]
    return str(acc["token"]), bodies


async def _burst(session: aiohttp.ClientSession, url: str, token: str, bodies: list[bytes],
                 proc: subprocess.Popen[bytes]) -> dict[int, bytes]:
    """Submit from CLIENTS concurrent tasks; SIGKILL the server at the KILL_AFTER-th 202.
    Returns every acknowledged message id with the bytes it acknowledged."""
    acked: dict[int, bytes] = {}
    pending = list(reversed(bodies))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}

    async def client() -> None:
        while pending:
            body = pending.pop()
            try:
                async with session.post(url + "/v1/messages", data=body, headers=headers) as r:
                    status, answer = r.status, await r.json()
            except (TimeoutError, aiohttp.ClientError):
                return  # the server is gone
            assert status == 202, answer
            acked[int(answer["id"])] = body
            if len(acked) == KILL_AFTER:
                os.kill(proc.pid, signal.SIGKILL)

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return acked


async def _drain_outbox(session: aiohttp.ClientSession, url: str, token: str) -> list[tuple[int, str]]:
    """Lease and acknowledge the whole customs outbox; (message_id, envelope) per item."""
    headers = {"Authorization": f"Bearer {token}"}
    seen: list[tuple[int, str]] = []
    while True:
        async with session.get(url + "/v1/customs/outbox?limit=100", headers=headers) as r:
            assert r.status == 200, await r.text()
            items = (await r.json())["items"]
        if not items:
            return seen
        seen.extend((int(i["message_id"]), str(i["envelope"])) for i in items)
        async with session.post(url + "/v1/customs/outbox/ack", headers=headers,
                                json={"ids": [i["id"] for i in items]}) as r:
            assert r.status == 200, await r.text()


@aio
async def test_acknowledged_messages_survive_sigkill(tmp_path: Path) -> None:
    data, log = tmp_path / "sandbox", tmp_path / "server.log"
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with _server(data, log) as (proc, url):
            await _wait_healthy(session, proc, url, log)
            info = json.loads((data / "sandbox.json").read_text(encoding="utf-8"))
            token, bodies = _declarations(info)
            acked = await _burst(session, url, token, bodies, proc)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        assert KILL_AFTER <= len(acked) < MESSAGES, f"{len(acked)} acknowledged: the kill was not mid-burst"

        with _server(data, log) as (proc, url):
            await _wait_healthy(session, proc, url, log)
            for mid, body in acked.items():
                async with session.get(f"{url}/v1/messages/{mid}",
                                       headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status == 200, f"acknowledged message {mid} lost: {await r.text()}"
                    assert (await r.json())["guid"] in body.decode()

            outbox = await _drain_outbox(session, url, info["customs"]["token"])
            counts = Counter(mid for mid, _ in outbox)
            assert not [m for m, n in counts.items() if n > 1], f"delivered twice: {counts.most_common(5)}"
            missing = sorted(set(acked) - set(counts))
            assert not missing, f"acknowledged but not in the outbox: {missing}"
            envelopes = dict(outbox)
            for mid, body in acked.items():
                assert envelope_data(envelopes[mid])[1] == body, f"the outbox envelope of {mid} differs"
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)

    audit = subprocess.run([*CEBGW, "audit", "verify", "--db", f"sqlite:///{data / 'gateway.db'}"],
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert audit.returncode == 0, audit.stdout + audit.stderr
