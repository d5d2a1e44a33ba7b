"""Service test kit: a running server on a free port, a small client, sandbox messages."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from lxml import etree

from gateway.catalog import load as load_catalog
from gateway.config import Settings
from gateway.dsig import load_key, sign, signature_required
from gateway.sandbox import samplegen
from gateway.service.app import build_app, runner_options
from gateway.store import Store
from gateway.xmlio import parse

DXP = "{http://www.chinaport.gov.cn/dxp}"


def aio(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))
    return run


@dataclass(frozen=True)
class Sandbox:
    """The session's sandbox data directory (certs, accounts, tokens)."""

    root: Path
    info: dict[str, Any]
    settings: Settings

    def account(self, name: str) -> dict[str, Any]:
        if name == "customs":
            return {"name": "customs", **self.info["customs"]}
        return next(a for a in self.info["accounts"] if a["name"] == name)

    def token(self, name: str) -> str:
        return str(self.account(name)["token"])

    def owner_of(self, cop_code: str) -> str:
        return next(a["name"] for a in self.info["accounts"] if cop_code in a["codes"])

    def sign_as(self, name: str, data: bytes) -> bytes:
        acc = self.account(name)
        return sign(data, load_key(acc["key"], acc["cert"]))


@dataclass
class Api:
    """A client bound to one server."""

    session: aiohttp.ClientSession
    url: str

    async def post_xml(self, token: str | None, data: bytes, ctype: str = "application/xml",
                       path: str = "/v1/messages") -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": ctype}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.post(self.url + path, data=data, headers=headers) as r:
            return r.status, await r.json()

    async def get(self, token: str | None, path: str) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(self.url + path, headers=headers) as r:
            return r.status, await r.json()

    async def post_json(self, token: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.session.post(self.url + path, data=json.dumps(body),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"}) as r:
            return r.status, await r.json()

    async def text(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.url + path) as r:
            return r.status, await r.text()


@asynccontextmanager
async def running(settings: Settings, store: Store | None = None) -> AsyncIterator[Api]:
    """The real app on 127.0.0.1 and a free port, with a client; torn down afterwards."""
    app = build_app(settings, store=store)
    runner = web.AppRunner(app, access_log=None, **runner_options(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(session, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def declaration(sb: Sandbox, code: str, *, seed: int = 0, sign_it: bool | None = None) -> tuple[str, bytes]:
    """A valid declaration of ``code`` and the sandbox account that owns its copCode (signed if
    the catalogue requires it, or if ``sign_it``)."""
    data = samplegen.build(code, seed=seed)
    ident = load_catalog().identify(parse(data))
    cop = ident.root.findtext("{http://www.chinaport.gov.cn/ceb}BaseTransfer/{http://www.chinaport.gov.cn/ceb}copCode")
    owner = sb.owner_of(cop or "")
    if sign_it or (sign_it is None and signature_required(ident.type, ident.root)):
        data = sb.sign_as(owner, data)
    return owner, data


def envelope_data(envelope_xml: str) -> tuple[etree._Element, bytes]:
    """The parsed DxpMsg and the exact bytes in its Data."""
    root = parse(envelope_xml.encode()).root
    return root, base64.b64decode(root.findtext(f"{DXP}Data") or "")


def customs_receipt(sb: Sandbox, receipt: bytes, receiver_dxp: str, *, signed: bool = True) -> bytes:
    """A receipt wrapped in a DxpMsg from the customs system, signed with the sandbox customs key."""
    msg_type = parse(receipt).root.tag.rpartition("}")[2]
    env = samplegen.build_dxp_msg(receipt, msg_type=msg_type, sender_id="DXPEDCCEB0000002",
                                  receiver_ids=[receiver_dxp])
    return sb.sign_as("customs", env) if signed else env
