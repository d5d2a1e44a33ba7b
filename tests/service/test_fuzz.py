"""Structural fuzzer (issue 15): messages with comments, PIs, CDATA, character references,
attributes, namespaces and encodings placed anywhere, posted to a real server.

The property: the gateway either refuses with a typed 4xx code from the error table, or it
accepts a message whose stored business keys, rule results and forwarded bytes agree with an
independent reading of the same bytes: plain lxml's full-text reading of the canonical form.

Normal runs try a few dozen messages; ``make fuzz`` runs many more (``CEBGW_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.catalog import load as load_catalog
from gateway.dsig import signature_required
from gateway.errors import ERRORS, GatewayError
from gateway.pipeline import validate_bytes
from gateway.sandbox import datadir, samplegen
from gateway.service.app import build_app, runner_options
from gateway.xmlio import parse

from .kit import Sandbox

EXAMPLES = int(os.environ.get("CEBGW_FUZZ_EXAMPLES", "60"))
CODES = ("CEB311", "CEB621")
CATALOG = load_catalog()
DXP = "{http://www.chinaport.gov.cn/dxp}"


@dataclass
class Server:
    url: str
    sb: Sandbox

    def request(self, method: str, path: str, token: str | None, body: bytes | None = None,
                ctype: str = "application/xml") -> tuple[int, dict[str, Any]]:
        host, port = self.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            headers = {"Content-Type": ctype} if body is not None else {}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(sandbox_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for every example, on its own event loop in a thread."""
    info = datadir.ensure(sandbox_dir, url="http://127.0.0.1:0")
    store = tmp_path_factory.mktemp("fuzz") / "gw.db"
    s = datadir.settings_for(sandbox_dir).with_(store_url=f"sqlite:///{store}")
    loop = asyncio.new_event_loop()
    ready, port = threading.Event(), [0]
    stop: list[asyncio.Event] = []

    async def serve() -> None:
        runner = web.AppRunner(build_app(s), access_log=None, **runner_options(s))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port[0] = runner.addresses[0][1]
        stop.append(asyncio.Event())
        ready.set()
        await stop[0].wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(60)
    try:
        yield Server(f"http://127.0.0.1:{port[0]}", Sandbox(sandbox_dir, info, s))
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(60)
        loop.close()


# ------------------------------------------------------------------ generating messages

READ = {name.encode() for t in CATALOG for name in (*t.keys, *t.alt_keys)} | {
    b"qty", b"price", b"totalPrice", b"goodsValue", b"acturalPaid", b"freight", b"discount", b"taxTotal"}
LEAF = re.compile(rb"<((?:ceb:)?\w+)>([^<]+)</\1>")
START = re.compile(rb"<((?:ceb:|ds:)?\w+)([ >])")


@st.composite
def edits(draw: st.DrawFn) -> tuple[str, int, int, str]:
    # Value-level edits more often than the ones that refuse the whole message anyway.
    kind = draw(st.sampled_from([
        "comment", "comment", "comment", "pi", "pi", "cdata", "cdata", "cdata", "charref", "charref",
        "hexref", "amp", "attribute", "xmlns", "default-ns", "prolog-comment", "prolog-pi", "epilog",
        "spaces", "bom", "declare", "utf16", "gbk-value",
    ]))
    return kind, draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6)), draw(st.sampled_from(
        ["x", "1", "", "中", "-->", "?", "a b", "&lt;", "]]>"]))


def _apply(data: bytes, edit: tuple[str, int, int, str]) -> bytes:
    """One structural change somewhere in ``data`` (bytes in, bytes out)."""
    kind, a, b, word = edit
    leaves = list(LEAF.finditer(data))
    starts = [m for m in START.finditer(data) if not m.group(1).startswith(b"?")]
    if not leaves or not starts:  # re-encoded already: the markup is no longer ASCII to find
        return data
    # Half the time a field the stages read (a business key, a number a rule adds up).
    keyed = [m for m in leaves if m.group(1).rpartition(b":")[2] in READ]
    leaf = keyed[a % len(keyed)] if keyed and b % 2 == 0 else leaves[a % len(leaves)]
    value = leaf.group(2)
    cut = b % (len(value) + 1)
    safe = word.replace("-->", "--").replace("?", "").replace("]]>", "]]").replace("&lt;", "")

    def at(new_value: bytes) -> bytes:
        return data[:leaf.start(2)] + new_value + data[leaf.end(2):]

    if kind == "comment":
        return at(value[:cut] + f"<!--{safe.replace('--', '')}-->".encode() + value[cut:])
    if kind == "pi":
        return at(value[:cut] + f"<?p {safe}?>".encode() + value[cut:])
    if kind == "cdata":
        return at(value[:cut] + b"<![CDATA[" + value[cut:].replace(b"]]>", b"") + b"]]>")
    if kind in ("charref", "hexref"):
        text = value.decode("utf-8", "replace")
        i = cut % max(1, len(text))
        if not text:
            return data
        ref = f"&#{ord(text[i])};" if kind == "charref" else f"&#x{ord(text[i]):X};"
        return at((text[:i] + ref + text[i + 1:]).encode())
    if kind == "amp":
        return at(value[:cut] + b"&amp;" + value[cut:])
    if kind == "spaces":
        return at(b" " + value + b"\n")
    if kind == "attribute":
        start = starts[a % len(starts)]
        name = ["x", "a" + str(b % 50), "xsi:type", "ceb:guid", "xml:lang"][b % 5]
        return data[:start.end(1)] + f' {name}="{safe}"'.encode() + data[start.end(1):]
    if kind == "xmlns":
        start = starts[a % len(starts)]
        prefix = ["p", "ceb", "xsi", "ds"][b % 4]
        uri = ["urn:x", "http://www.chinaport.gov.cn/ceb", "http://www.w3.org/2001/XMLSchema-instance"][a % 3]
        return data[:start.end(1)] + f' xmlns:{prefix}="{uri}"'.encode() + data[start.end(1):]
    if kind == "default-ns":
        return re.sub(rb"(</?)ceb:", rb"\1", data).replace(b"xmlns:ceb=", b"xmlns=", 1)
    head_end = data.index(b"?>") + 2 if data.startswith(b"<?xml") else 0
    if kind == "prolog-comment":
        return data[:head_end] + f"\n<!--{safe.replace('-', '')}-->".encode() + data[head_end:]
    if kind == "prolog-pi":
        return data[:head_end] + f"\n<?p {safe}?>".encode() + data[head_end:]
    if kind == "epilog":
        return data + [b"<!-- end -->", b"<?end?>", b"\n\n"][a % 3]
    if kind == "bom":
        return data if data.startswith(b"\xef\xbb\xbf") else b"\xef\xbb\xbf" + data
    if kind == "declare":
        name = ["utf-8", "UTF8", "GBK", "ISO-8859-1", "UTF-16", "us-ascii"][a % 6]
        return re.sub(rb'encoding="[^"]*"', f'encoding="{name}"'.encode(), data, count=1)
    if kind == "utf16":
        codec = ["utf-16", "utf-16-le", "utf-32"][a % 3]
        return data.decode("utf-8", "replace").encode(codec)
    if kind == "gbk-value":
        return at(value[:cut] + "中".encode("gbk") + value[cut:])
    raise AssertionError(kind)


def _message(sb: Sandbox, code: str, seed: int, before: list[Any], after: list[Any]) -> tuple[str, bytes]:
    """A fresh declaration (new guid) with ``before`` edits, signed where required, then ``after``."""
    data = samplegen.build(code, seed=seed)
    guid = str(uuid.uuid4()).upper()
    data = re.sub(rb'(Message [^>]*guid=")[^"]+"', f"\\g<1>{guid}\"".encode(), data, count=1)
    ident = CATALOG.identify(parse(data))
    owner = sb.owner_of(ident.root.findtext(f"{{{ident.type.namespace}}}BaseTransfer/"
                                            f"{{{ident.type.namespace}}}copCode") or "")
    for e in before:
        data = _apply(data, e)
    if signature_required(ident.type, ident.root):
        try:
            data = sb.sign_as(owner, data)
        except GatewayError:
            pass  # the signer refuses what the gateway's parser refuses: sent unsigned, refused as such
    for e in after:
        data = _apply(data, e)
    return owner, data


# ------------------------------------------------------------------ the independent reading

def _canonical(data: bytes) -> etree._Element:
    """Plain lxml reading (no gateway code), canonicalized without comments, read again."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    c14n = etree.tostring(etree.fromstring(data, parser).getroottree(), method="c14n", with_comments=False)
    return etree.fromstring(c14n, parser)


def _keys(root: etree._Element) -> list[dict[str, str]]:
    """Each record's key fields, read as the full text of the element."""
    t = CATALOG.identify(parse(etree.tostring(root))).type
    out = []
    for rec in root.iterchildren(t.q(t.record)):
        head = rec.find(t.q(t.head)) if t.head else rec
        keys = {}
        for name in t.keys + t.alt_keys:
            el = head.find(t.q(name)) if head is not None else None
            text = "".join(el.itertext()).strip() if el is not None else ""
            if text:
                keys[name] = text
        out.append(keys)
    return out


def _forwarded(server: Server, message_id: int) -> bytes | None:
    """The bytes in the DXP envelope customs receives for ``message_id`` (leases and acks the outbox)."""
    customs = server.sb.token("customs")
    status, batch = server.request("GET", "/v1/customs/outbox?limit=100", customs)
    assert status == 200, batch
    found = None
    for item in batch["items"]:
        if item["message_id"] == message_id:
            root = parse(item["envelope"].encode()).root
            found = base64.b64decode(root.findtext(f"{DXP}Data") or "")
    ids = json.dumps({"ids": [i["id"] for i in batch["items"]]}).encode()
    assert server.request("POST", "/v1/customs/outbox/ack", customs, ids, "application/json")[0] == 200
    return found


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(code=st.sampled_from(CODES), seed=st.integers(0, 10**6),
       before=st.lists(edits(), max_size=2), after=st.lists(edits(), max_size=3))
def test_refused_with_a_typed_code_or_read_the_same_everywhere(server: Server, code: str, seed: int,
                                                               before: list[Any], after: list[Any]) -> None:
    owner, data = _message(server.sb, code, seed, before, after)
    status, body = server.request("POST", "/v1/messages", server.sb.token(owner), data)
    if status >= 400:
        err = body["error"]
        assert 400 <= status < 500, body
        assert err["code"] in ERRORS and ERRORS[err["code"]].http == status, err
        assert err["errors"] and all(f["code"] in ERRORS for f in err["errors"])
        if err["code"].startswith(("CEBGW-XSD-", "CEBGW-RULE-")):
            # refused for its content: the content as the canonical form reads it is what is wrong
            report = validate_bytes(etree.tostring(_canonical(data), xml_declaration=True, encoding="UTF-8"))
            assert {f.code for f in report.errors} == {f["code"] for f in err["errors"]
                                                       if f["severity"] == "error"}, err
        return
    assert status in (200, 202), body
    canonical = _canonical(data)
    assert body["business_keys"] == _keys(canonical)
    status, stored = server.request("GET", f"/v1/messages/{body['id']}", server.sb.token(owner))
    assert status == 200 and stored["business_keys"] == body["business_keys"]
    report = validate_bytes(etree.tostring(canonical, xml_declaration=True, encoding="UTF-8"))
    assert report.errors == [], report.errors
    if status == 202:
        assert _forwarded(server, body["id"]) == data
