"""The CLI shells against a server running in a background thread."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from gateway.cli.send import _described
from gateway.sandbox import datadir
from gateway.service.app import build_app

from .kit import Sandbox, declaration


@pytest.fixture
def server(sb: Sandbox) -> Iterator[str]:
    """The app on a free port in its own thread and loop."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, object] = {}

    async def start() -> None:
        runner = web.AppRunner(build_app(sb.settings), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"], box["url"] = runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()),
                              daemon=True)
    thread.start()
    assert started.wait(10)
    yield str(box["url"])
    runner = box["runner"]
    assert isinstance(runner, web.AppRunner)
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_send_receipts_and_audit(sb: Sandbox, server: str, tmp_path: Path,
                                 cli: Callable[..., tuple[int, str, str]]) -> None:
    owner, data = declaration(sb, "CEB311", seed=31)
    good = tmp_path / "good.xml"
    good.write_bytes(data)
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<oops")
    code, out, err = cli("send", str(good), "--url", server, "--token", sb.token(owner))
    assert code == 0 and "CEB311 id=1" in out and "status=declared" in out
    code, out, err = cli("send", str(good), str(bad), "--url", server, "--token", sb.token(owner))
    assert code == 1 and "already accepted" in out and "CEBGW-PARSE-SYNTAX" in err
    code, out, _ = cli("receipts", "--url", server, "--token", sb.token(owner), "--ack")
    assert code == 0 and out == ""
    code, out, err = cli("dead-letters", "list", "--url", server, "--token", sb.token("customs"))
    assert code == 0 and json.loads(out)["items"] == []
    code, _, err = cli("dead-letters", "list", "--url", server, "--token", sb.token(owner))
    assert code == 1 and "403" in err
    code, out, _ = cli("audit", "verify", "--db", sb.settings.store_url)
    assert code == 0 and "checked 1 message(s)" in out


def test_sandbox_dir_is_created_once_and_reused(tmp_path: Path) -> None:
    first = datadir.ensure(tmp_path / "sbx", url="http://127.0.0.1:1")
    again = datadir.ensure(tmp_path / "sbx", url="http://127.0.0.1:2")
    assert again["url"] == "http://127.0.0.1:2"
    assert again["customs"]["token"] == first["customs"]["token"]
    names = {a["name"] for a in first["accounts"]}
    assert names == {"platform", "ecommerce", "payment", "logistics", "agent", "site_operator"}
    assert all(Path(a["key"]).is_absolute() and Path(a["cert"]).exists() for a in first["accounts"])
    assert "cebgw_" not in (tmp_path / "sbx" / "accounts.toml").read_text()
    settings = datadir.settings_for(tmp_path / "sbx")
    assert settings.store_url.endswith("gateway.db") and settings.require_customs_signature


def test_customs_answer_plays_the_customs_side(sb: Sandbox, server: str, tmp_path: Path,
                                               cli: Callable[..., tuple[int, str, str]]) -> None:
    customs = sb.account("customs")
    play = ("customs", "answer", "--url", server, "--token", customs["token"], "--key", customs["key"],
            "--cert", customs["cert"])
    files = []
    for code in ("CEB311", "CEB621"):
        owner, data = declaration(sb, code, seed=77)
        (tmp_path / f"{code}.xml").write_bytes(data)
        files.append((owner, tmp_path / f"{code}.xml"))
        assert cli("send", str(tmp_path / f"{code}.xml"), "--url", server, "--token", sb.token(owner))[0] == 0
    code, out, err = cli(*play, "--status", "2", "120")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 4 and all("-> delivered" in line for line in lines), out
    assert "CEB311 message 1 record 0: CEB312 status 120 -> delivered, state accepted" in out
    assert "CEB621 message 2 record 0: CEB622 status 120 -> delivered, state accepted" in out
    for owner in {o for o, _ in files}:   # each sender finds two receipts per declaration in its mailbox
        code, out, _ = cli("receipts", "--url", server, "--token", sb.token(owner), "--ack")
        mine = sum(o == owner for o, _ in files)
        assert code == 0 and len(out.strip().splitlines()) == 2 * mine, out
    assert cli(*play)[1] == ""                            # nothing left: the envelopes were acknowledged
    code, out, err = cli(*play[:4], "--token", sb.token("ecommerce"), *play[6:])
    assert code == 1 and "403" in err                     # only customs may play customs


def test_send_names_a_findings_field_once() -> None:
    assert _described({"field": "appTime", "message": "appTime 20261123100722 (Beijing time) is far"}) \
        == "appTime 20261123100722 (Beijing time) is far"
    assert _described({"field": "orderNo", "message": "is required"}) == "orderNo is required"
    assert _described({"field": "app", "message": "appTime is far"}) == "app appTime is far"
    assert _described({"field": None, "message": "no field"}) == "no field"
