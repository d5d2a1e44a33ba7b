"""``cebgw serve --workers 2`` for real: two processes on one port and one store."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from gateway.sandbox import datadir
from gateway.store import open_store

from .kit import Sandbox, aio, declaration

REPO = Path(__file__).resolve().parents[2]
ACCEPTED = re.compile(r'^cebgw_messages_total\{[^}]*outcome="accepted"[^}]*\} (\d+)$', re.M)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    data, port = tmp_path / "sbx", _free_port()
    cmd = [sys.executable, "-m", "gateway.cli.main", "serve", "--sandbox", "--data", str(data),
           "--port", str(port), "--workers", "2"]
    log = (tmp_path / "serve.log").open("wb")  # a file, not a pipe nobody drains
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, f"http://127.0.0.1:{port}", data
    finally:
        try:  # only this test's own session: workers a failing test left behind go too
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(30)
        log.close()


async def _up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "cebgw serve exited"
            try:
                async with session.get(url + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the workers did not come up")


@aio
async def test_two_workers_share_the_port_and_the_store(sb: Sandbox, served: tuple[
        subprocess.Popen[bytes], str, Path]) -> None:
    proc, url, data = served
    await _up(url, proc)
    info = json.loads((data / "sandbox.json").read_text(encoding="utf-8"))
    token = next(a["token"] for a in info["accounts"] if a["name"] == "ecommerce")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
    ids: list[int] = []
    per_worker: set[int] = set()
    # A fresh connection per request lets the kernel spread them over both workers; each worker
    # counts what it accepted, so two different counts in /metrics show both took messages.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for seed in range(100, 160):
            owner, body = declaration(sb, "CEB311", seed=seed)
            assert owner == "ecommerce"
            async with session.post(url + "/v1/messages", data=body, headers=headers) as r:
                assert r.status == 202, await r.text()
                ids.append((await r.json())["id"])
            for _ in range(4):
                async with session.get(url + "/metrics") as r:
                    found = ACCEPTED.search(await r.text())
                    per_worker.add(int(found.group(1)) if found else 0)
            if len(ids) >= 6 and len({c for c in per_worker if c}) >= 2:
                break
        assert len({c for c in per_worker if c}) >= 2, "every message went to one worker"
        assert len(set(ids)) == len(ids)
    workers = [p for p in _children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
    assert len(workers) == 2
    proc.send_signal(signal.SIGTERM)  # the parent alone, as a service manager may do
    assert proc.wait(60) == 0
    assert not [p for p in workers if _running(p)], "workers outlived the parent"
    store = open_store(f"sqlite:///{data / 'gateway.db'}")
    try:
        for mid in ids:
            rec = await store.get_message(mid, "ecommerce")
            assert rec is not None and rec.state.value == "declared", mid
        assert await store.outbox_depth() == len(ids)
        assert (await store.audit_verify()).ok
    finally:
        await store.close()


def _workers(pid: int) -> list[int]:
    return [p for p in _children(pid)
            if _running(p) and "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]


@aio
async def test_a_dead_worker_is_replaced(served: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    proc, url, _ = served
    await _up(url, proc)
    deadline = time.monotonic() + 30
    while len(before := _workers(proc.pid)) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    while time.monotonic() < deadline:
        now = _workers(proc.pid)
        if len(now) == 2 and before[0] not in now:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"no replacement worker: {before} -> {_workers(proc.pid)}")
    assert proc.poll() is None
    await _up(url, proc)


@aio
async def test_db_names_the_store(tmp_path: Path) -> None:
    data, port, db = tmp_path / "sbx", _free_port(), tmp_path / "elsewhere.db"
    cmd = [sys.executable, "-m", "gateway.cli.main", "serve", "--sandbox", "--data", str(data),
           "--port", str(port), "--db", f"sqlite:///{db}"]
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        await _up(url, proc)
        info = json.loads((data / "sandbox.json").read_text())
        sb = Sandbox(data, info, datadir.settings_for(data))
        owner, body = declaration(sb, "CEB311", seed=5)
        async with aiohttp.ClientSession() as session, session.post(
                url + "/v1/messages", data=body, headers={"Authorization": f"Bearer {sb.token(owner)}",
                                                          "Content-Type": "application/xml"}) as r:
            assert r.status == 202, await r.text()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    store = open_store(f"sqlite:///{db}")
    try:
        assert await store.outbox_depth() == 1
    finally:
        await store.close()
    assert not (data / "gateway.db").exists()


def test_an_unusable_db_url_is_refused_before_serving(tmp_path: Path) -> None:
    for url, said in (("postgresql://gw:s3cret@unresolvable.invalid/test",
                       "cannot open the PostgreSQL store"),
                      ("mysql://x", "unsupported store URL 'mysql'")):
        done = subprocess.run([sys.executable, "-m", "gateway.cli.main", "serve", "--sandbox", "--data",
                               str(tmp_path / "sbx"), "--port", str(_free_port()), "--workers", "2",
                               "--db", url], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and said in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert "s3cret" not in done.stderr
