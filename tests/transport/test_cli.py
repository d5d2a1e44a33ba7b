"""``cebgw serve --sandbox --amqp URL`` / ``--folders DIR`` and ``cebgw customs answer --transport``,
as a person runs them: the server in its own process, the client commands in this one."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.envelope import RECEIVER_EXPORT, RECEIVER_IMPORT
from gateway.sandbox.transports import sandbox_amqp

from .kit import delete_names

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "valid" / "CEB311.xml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(data: Path, *extra: str) -> Iterator[tuple[str, dict[str, object]]]:
    port = _free_port()
    log = (data.parent / "serve.log").open("wb")
    argv = [sys.executable, "-m", "gateway.cli.main", "serve", "--sandbox", "--data", str(data),
            "--port", str(port), *extra]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((data.parent / "serve.log").read_text()) from None
                time.sleep(0.2)
        yield url, json.loads((data / "sandbox.json").read_text(encoding="utf-8"))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()


def _until(run: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not run():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _round_trip(cli: Callable[..., tuple[int, str, str]], url: str, info: dict[str, object],
                answer: list[str]) -> None:
    """Send the sample order, answer it as customs with ``cebgw customs answer ANSWER...``, and
    find both receipts in the sender's mailbox."""
    accounts = info["accounts"]
    assert isinstance(accounts, list)
    ecommerce = next(a for a in accounts if a["name"] == "ecommerce")
    code, out, err = cli("send", str(SAMPLE), "--url", url, "--token", ecommerce["token"])
    assert code == 0, err
    play = ("customs", "answer", *answer)
    said: list[str] = []

    def answered() -> bool:
        code, out, err = cli(*play)
        assert code == 0, err
        said.extend(out.splitlines())
        return bool(out)
    _until(answered, "the envelope to reach customs")
    assert said == ["CEB311 record 0: CEB312 status 2 sent", "CEB311 record 0: CEB312 status 120 sent"]
    got: list[str] = []

    def delivered() -> bool:
        code, out, _ = cli("receipts", "--url", url, "--token", ecommerce["token"], "--ack")
        got.extend(out.splitlines())
        return len(got) >= 2
    _until(delivered, "both receipts in the mailbox")
    assert len(got) == 2 and all("CEB312" in line for line in got), got


def _printed(tmp_path: Path, transport: str) -> list[str]:
    """The arguments of the ``cebgw customs answer`` line the sandbox printed for ``transport``."""
    start = f"cebgw customs answer {transport}"
    found: list[str] = []

    def printed() -> bool:  # with --workers 2 the other worker may answer /healthz before it prints
        text = (tmp_path / "serve.log").read_text(encoding="utf-8")
        found[:] = [line for line in text.splitlines() if start in line and not line.startswith("#")]
        return bool(found)
    _until(printed, "the sandbox's banner")
    words = shlex.split(found[0])
    return words[words.index("answer") + 1:]


# With --workers 2 every process runs the transports: each still happens once.
WORKERS = pytest.mark.parametrize("workers", ["1", "2"])


@WORKERS
def test_sandbox_over_amqp(amqp_url: str, tmp_path: Path, cli: Callable[..., tuple[int, str, str]],
                           workers: str) -> None:
    prefix = f"cebgw-test-{uuid.uuid4().hex[:10]}"
    try:
        for url, info in _serve(tmp_path / "sbx", "--amqp", amqp_url, "--amqp-prefix", prefix,
                                "--workers", workers):
            queues = {RECEIVER_IMPORT: f"{prefix}.customs.{RECEIVER_IMPORT}",
                      RECEIVER_EXPORT: f"{prefix}.customs.{RECEIVER_EXPORT}"}
            assert info["amqp"] == {"url": amqp_url, "exchange": prefix, "customs_queues": queues,
                                    "receipts_queue": f"{prefix}.receipts",
                                    "dead_letter_queue": f"{prefix}.receipts.dead"}
            _round_trip(cli, url, info, _printed(tmp_path, "--transport amqp"))
    finally:
        asyncio.run(delete_names(sandbox_amqp(amqp_url, prefix=prefix)))


@WORKERS
def test_sandbox_through_folders(tmp_path: Path, cli: Callable[..., tuple[int, str, str]],
                                 workers: str) -> None:
    root = tmp_path / "dxp"
    for url, info in _serve(tmp_path / "sbx", "--folders", str(root), "--workers", workers):
        assert info["folders"] == {"*": {"send": str(root / "send"), "receive": str(root / "receive")}}
        _round_trip(cli, url, info, _printed(tmp_path, "--transport folder"))
    assert len(os.listdir(root / "receive" / "done")) == 2


def test_transport_flags_need_the_sandbox(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    code, _, err = cli("serve", "--config", str(tmp_path / "x.toml"), "--amqp", "amqp://h/")
    assert code == 2 and "--amqp and --folders wire a sandbox" in err


def test_customs_answer_names_what_each_transport_needs(cli: Callable[..., tuple[int, str, str]]) -> None:
    base = ("customs", "answer", "--key", "k.pem")
    assert "--url and --token" in cli(*base)[2]
    assert "--amqp URL" in cli(*base, "--transport", "amqp")[2]
    assert "--send DIR and --receive DIR" in cli(*base, "--transport", "folder")[2]



def test_sandbox_on_an_unreachable_broker_says_so(cli: Callable[..., tuple[int, str, str]],
                                                  tmp_path: Path) -> None:
    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = cli("serve", "--sandbox", "--data", str(tmp_path / "sbx"),
                       "--amqp", f"amqp://guest:guest@127.0.0.1:{port}/")
    assert code == 2 and f"cannot declare the queues on amqp://guest@127.0.0.1:{port}/" in err, err
    assert "CEBGW-CONFIG" in err and "guest:guest" not in err   # the password stays out of it
