"""``cebgw sandbox`` as a command, against a gateway served in another thread; the channel
rules file an operator edits while it runs."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web

from gateway.errors import ConfigError
from gateway.sandbox import samplegen
from gateway.sandbox.channels import RulesFile, parse_rules
from gateway.service.app import build_app
from tests.service.kit import Sandbox


@contextmanager
def served(sb: Sandbox) -> Iterator[str]:
    """The gateway of ``sb`` on a free port, served by an event loop in another thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, object] = {}

    async def start() -> None:
        runner = web.AppRunner(build_app(sb.settings), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"], box["url"] = runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
        ready.set()

    def serve() -> None:
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield str(box["url"])
    finally:
        runner = box["runner"]
        assert isinstance(runner, web.AppRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def post(url: str, token: str, data: bytes) -> int:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
    req = urllib.request.Request(f"{url}/v1/messages", data=data, method="POST", headers=headers)
    with urllib.request.urlopen(req) as r:
        return int(json.loads(r.read())["id"])


def mail(url: str, token: str) -> list[dict[str, object]]:
    req = urllib.request.Request(f"{url}/v1/receipts", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req) as r:
        items: list[dict[str, object]] = json.loads(r.read())["items"]
        return items


def test_cebgw_sandbox_decides_and_names_what_it_did(sb: Sandbox, tmp_path: Path,
                                                     cli: Callable[..., tuple[int, str, str]]) -> None:
    docs = samplegen.build_parcel("CLI1", seed=61)
    rules = tmp_path / "rules.toml"
    rules.write_text('manual_review = ["CLI1"]\n', encoding="utf-8")
    customs = sb.account("customs")
    with served(sb) as url:
        owners = {"CEB311": "ecommerce", "CEB411": "payment", "CEB511": "logistics", "CEB621": "ecommerce"}
        ids = {code: post(url, sb.token(owner), sb.sign_as(owner, docs[code]))
               for code, owner in owners.items()}
        argv = ["sandbox", "--url", url, "--token", sb.token("customs"), "--key", customs["key"],
                "--cert", customs["cert"], "--rules", str(rules), "--seed", "3", "--rate", "1000"]
        code, out, err = cli(*argv)
        assert code == 0, err
        assert "CEB621 COP" in out and "CEB622 300 -> delivered (to ecommerce)" in out
        assert "manual review 1" in out
        # the operator takes the list off manual review: the next run releases it
        rules.write_text("manual_review = []\n", encoding="utf-8")
        os.utime(rules, ns=(1, 1))
        code, out, err = cli(*argv)
        assert code == 0, err
        statuses = [i["status"] for i in mail(url, sb.token("ecommerce")) if i["message_id"] == ids["CEB621"]]
        assert statuses == ["2", "120", "300"]  # a second process knows nothing of the first's held list
        code, out, err = cli("sandbox", "--url", url, "--token", "wrong", "--key", customs["key"],
                             "--cert", customs["cert"])
        assert code != 0 and "refused the customs outbox: 401" in err


def test_the_rules_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('inspection_rate = 0.5\nmanual_review = ["A"]\n', encoding="utf-8")
    rules = RulesFile(path)
    assert rules.current().inspection_rate == 0.5 and rules.current().manual_review == {"A"}
    path.write_text("inspection_rate = 0.25\n[red]\nhs_codes = [\"8509\"]\n", encoding="utf-8")
    os.utime(path, ns=(2, 2))
    assert rules.current().inspection_rate == 0.25 and rules.current().hs_codes == ("8509",)
    assert RulesFile(path, inspection_rate=1.0).current().inspection_rate == 1.0
    assert RulesFile(None).current().hs_codes  # the shipped rules


@pytest.mark.parametrize(("text", "named"), [
    ("inspection_rate = 2\n", "inspection_rate"),
    ("return_rate = \"x\"\n", "return_rate"),
    ("[red]\nhs_codes = [1]\n", "hs_codes"),
    ("[red]\ncolours = []\n", "red"),
    ("inspections = 1\n", "inspections"),
    ("manual_review = \n", "rules"),
])
def test_bad_rules_are_refused_naming_the_setting(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_rules(text, "rules")
    assert named in e.value.message
