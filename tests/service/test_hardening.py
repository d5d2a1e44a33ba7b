"""Issue 15, items 1, 2, 3 and 7, over HTTP against a real server that keeps serving afterwards.

1. A comment or PI inside a message splits a value: refused (CEBGW-PARSE-COMMENT/-PI); CDATA and
   character references are merged by the parser, so their values are read whole everywhere.
2. What one request may cost: attributes, namespaces and nodes per message, findings per answer,
   and large bodies are checked off the event loop.
3. UTF-8 only, decided from the bytes, the declaration and the Content-Type charset together.
7. Ids in ASCII digits only; header and body timeouts; JSON endpoints take application/json
   only; mailbox cursors per tenant.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

from gateway import pipeline
from gateway.pipeline import validate_bytes
from gateway.sandbox import samplegen

from .kit import Api, Sandbox, aio, customs_receipt, declaration, envelope_data, running
from .test_refusals import still_serving

RECEIPTS = "/v1/customs/receipts"


def _text(data: bytes, field: str) -> str:
    m = re.search(rf"<((?:ceb:)?){field}>([^<]*)<".encode(), data)
    assert m is not None, field
    return m.group(2).decode()


def _rewrite(data: bytes, field: str, content: str) -> bytes:
    """``data`` with the first ``field`` element's content replaced by ``content`` (markup allowed)."""
    new, n = re.subn(rf"<((?:ceb:)?{field})>[^<]*<".encode(), rf"<\1>{content}<".encode(), data, count=1)
    assert n == 1, field
    return new


def _split(data: bytes, field: str, marker: str) -> bytes:
    value = _text(data, field)
    cut = max(1, len(value) // 2)
    return _rewrite(data, field, value[:cut] + marker + value[cut:])


async def _outbox_count(api: Api, sb: Sandbox) -> int:
    _, batch = await api.get(sb.token("customs"), "/v1/customs/outbox?limit=100")
    return len(batch["items"])


# ------------------------------------------------------------------ 1. comments and PIs

@pytest.mark.parametrize("code,field,marker,want", [
    ("CEB311", "qty", "<!---->", "CEBGW-PARSE-COMMENT"),
    ("CEB311", "orderNo", "<!-- the rest -->", "CEBGW-PARSE-COMMENT"),
    ("CEB311", "buyerName", "<?pi split?>", "CEBGW-PARSE-PI"),
    ("CEB311", "ebpCode", "<!---->", "CEBGW-PARSE-COMMENT"),
    ("CEB621", "copNo", "<!---->", "CEBGW-PARSE-COMMENT"),       # signed: the comment comes after signing
    ("CEB621", "totalPrice", "<?x?>", "CEBGW-PARSE-PI"),
])
@aio
async def test_markup_inside_a_value_is_refused_with_its_code(sb: Sandbox, code: str, field: str,
                                                              marker: str, want: str) -> None:
    owner, data = declaration(sb, code, seed=151)
    bad = _split(data, field, marker)
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), bad)
        assert (status, body["error"]["code"]) == (400, want), body
        finding = body["error"]["errors"][0]
        assert finding["field"] == field and finding["path"].endswith(f"/{field}") and finding["line"]
        assert validate_bytes(body["ceb900"].encode()).valid and want in body["ceb900"]
        assert await _outbox_count(api, sb) == 0
        # the same message without the comment is accepted: nothing else was wrong with it
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body
        await still_serving(api, sb)


@pytest.mark.parametrize("where", ["signed-info", "signature-value", "between-elements", "after-signature"])
@aio
async def test_markup_anywhere_inside_a_signed_message_is_refused(sb: Sandbox, where: str) -> None:
    owner, data = declaration(sb, "CEB621", seed=152)
    edits = {
        "signed-info": (b"<ds:SignedInfo>", b"<ds:SignedInfo><!-- c -->"),
        "signature-value": (b"</ds:SignatureValue>", b"<!---->" + b"</ds:SignatureValue>"),
        "between-elements": (b"<ceb:InventoryHead>", b"<ceb:InventoryHead><?note?>"),
        "after-signature": (b"</ceb:CEB621Message>", b"<!-- signed? -->\n</ceb:CEB621Message>"),
    }
    old, new = edits[where]
    assert old in data
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data.replace(old, new, 1))
        assert status == 400 and body["error"]["code"] in ("CEBGW-PARSE-COMMENT", "CEBGW-PARSE-PI"), body
        await still_serving(api, sb)


@aio
async def test_markup_in_an_envelope_and_in_a_receipt_is_refused(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", seed=153)
    env = samplegen.build_dxp_msg(data, msg_type="CEB311Message", sender_id=sb.account(owner)["dxp_id"],
                                  receiver_ids=["DXPEDCCEB0000002"])
    b64 = base64.b64encode(data)
    split_data = env.replace(b64, b64[:40] + b"<!---->" + b64[40:], 1)
    assert split_data != env
    order_no = _text(data, "orderNo")
    receipt = samplegen.build_receipt("CEB312", {"orderNo": order_no, "ebpCode": _text(data, "ebpCode"),
                                                 "ebcCode": _text(data, "ebcCode")}, status="2")
    split_receipt = _split(receipt, "orderNo", "<!---->")
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), split_data)
        assert (status, body["error"]["code"]) == (400, "CEBGW-PARSE-COMMENT"), body
        assert body["error"]["errors"][0]["field"] == "Data"
        wrapped = sb.sign_as("customs", samplegen.build_dxp_msg(
            split_receipt, msg_type="CEB312Message", sender_id="DXPEDCCEB0000002",
            receiver_ids=[sb.account(owner)["dxp_id"]]))
        status, body = await api.post_xml(sb.token("customs"), wrapped, path=RECEIPTS)
        assert (status, body["error"]["code"]) == (400, "CEBGW-PARSE-COMMENT"), body
        status, body = await api.post_xml(sb.token("customs"), split_receipt, path=RECEIPTS)
        assert (status, body["error"]["code"]) == (400, "CEBGW-PARSE-COMMENT"), body
        _, dead = await api.get(sb.token("customs"), "/v1/dead-letters")
        assert dead["items"] == []
        await still_serving(api, sb)


@aio
async def test_cdata_and_character_references_are_read_whole_everywhere(sb: Sandbox) -> None:
    """The parser merges them into the text: stored keys, rules and the forwarded bytes agree."""
    owner, data = declaration(sb, "CEB311", seed=154)
    order_no = _text(data, "orderNo")
    refs = "".join(f"&#{ord(c)};" for c in order_no[5:])
    spelled = order_no[:2] + "<![CDATA[" + order_no[2:5] + "]]>" + refs
    odd = _rewrite(data, "orderNo", spelled)
    qty = _text(data, "qty")
    qty_spelled = f"&#x{ord(qty[0]):x};<![CDATA[{qty[1:]}]]>" if len(qty) > 1 else f"&#{ord(qty)};"
    odd = _rewrite(odd, "qty", qty_spelled)
    wrong_total = _rewrite(data, "qty", f"<![CDATA[{qty}]]>0")  # ten times the quantity: totals disagree
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), odd)
        assert status == 202, body
        assert body["business_keys"][0]["orderNo"] == order_no
        _, stored = await api.get(sb.token(owner), f"/v1/messages/{body['id']}")
        assert stored["business_keys"][0]["orderNo"] == order_no
        _, batch = await api.get(sb.token("customs"), "/v1/customs/outbox")
        assert envelope_data(batch["items"][0]["envelope"])[1] == odd
        status, body = await api.post_xml(sb.token(owner), wrong_total)
        assert status == 422 and body["error"]["code"].startswith("CEBGW-RULE-"), body
        await still_serving(api, sb)


@pytest.mark.parametrize("prolog,epilog", [
    (b"<!-- exported by ERP -->\n", b""),
    (b"<?xml-stylesheet href='x'?>\n", b"\n<!-- end -->\n"),
    (b"", b"<?trailer?>"),
])
@aio
async def test_comments_and_pis_outside_the_root_carry_no_value_and_are_allowed(
        sb: Sandbox, prolog: bytes, epilog: bytes) -> None:
    owner, data = declaration(sb, "CEB311", seed=155)
    decl_end = data.index(b"?>") + 2
    odd = data[:decl_end] + b"\n" + prolog + data[decl_end:].lstrip() + epilog
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), odd)
        assert status == 202, body
        assert body["business_keys"][0]["orderNo"] == _text(data, "orderNo")


# ------------------------------------------------------------------ 2. what one request may cost

def _many_attributes(data: bytes, n: int, on: bytes = b"<ceb:OrderHead>") -> bytes:
    attrs = b" ".join(b'a%d="1"' % i for i in range(n))
    return data.replace(on, on[:-1] + b" " + attrs + b">", 1)


@pytest.mark.parametrize("n,on", [
    (200_000, b"<ceb:OrderHead>"),   # the review's attack: 2.3 MB, once a 49 MB answer
    (33, b"<ceb:OrderHead>"),
    (500, b"<ceb:orderNo>"),
])
@aio
async def test_attributes_per_element_are_bounded_and_the_answer_stays_small(
        sb: Sandbox, n: int, on: bytes) -> None:
    owner, data = declaration(sb, "CEB311", seed=156)
    bad = _many_attributes(data, n, on)
    async with running(sb.settings) as api:
        async with api.session.post(api.url + "/v1/messages", data=io.BytesIO(bad), headers={
                "Authorization": f"Bearer {sb.token(owner)}", "Content-Type": "application/xml"}) as r:
            raw = await r.read()
            status = r.status
        body = json.loads(raw)
        assert (status, body["error"]["code"]) == (400, "CEBGW-PARSE-TOO-MANY-ATTRIBUTES"), body["error"]
        assert body["error"]["errors"][0]["field"] == on[5:-1].decode()
        assert len(body["error"]["errors"]) == 1 and body["error"]["errors_omitted"] == 0
        # the CEB900 carries the message once (JSON-escaped); nothing grows per attribute
        assert len(raw) < 2 * len(bad) + 20_000
        await still_serving(api, sb)


@pytest.mark.parametrize("shape", ["empty-elements", "attributes-spread", "comments-in-cdata"])
@aio
async def test_nodes_per_message_are_bounded(sb: Sandbox, shape: str) -> None:
    settings = sb.settings.with_(max_nodes=5000)
    owner, data = declaration(sb, "CEB311", seed=157)
    pad = {
        "empty-elements": b"<ceb:x/>" * 6000,
        "attributes-spread": b"".join(b'<ceb:x %s/>' % b" ".join(b'a%d="1"' % i for i in range(30))
                                      for _ in range(200)),
        "comments-in-cdata": b"<ceb:x><![CDATA[" + b"<" * 6000 + b"]]></ceb:x>",
    }[shape]
    bad = data.replace(b"</ceb:CEB311Message>", pad + b"</ceb:CEB311Message>")
    async with running(settings) as api:
        status, body = await api.post_xml(sb.token(owner), bad)
        assert (status, body["error"]["code"]) == (400, "CEBGW-PARSE-TOO-MANY-NODES"), body["error"]
        await still_serving(api, sb)


@aio
async def test_namespaces_in_scope_are_bounded(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", seed=158)
    decls = b" ".join(b'xmlns:p%d="urn:p:%d"' % (i, i) for i in range(20_000))
    bad = data.replace(b"<ceb:Order>", b"<ceb:Order " + decls + b">", 1)
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), bad)
        assert (status, body["error"]["code"]) == (400, "CEBGW-PARSE-TOO-MANY-NAMESPACES"), body["error"]
        await still_serving(api, sb)


def _with_bogus_attributes(data: bytes, fields: list[str]) -> bytes:
    for f in fields:
        data = data.replace(f"<ceb:{f}>".encode(), f'<ceb:{f} bogus="1">'.encode(), 1)
    return data


@pytest.mark.parametrize("limit", [1, 5, 12])
@aio
async def test_findings_per_answer_are_capped_with_a_count_of_the_rest(sb: Sandbox, limit: int) -> None:
    settings = sb.settings.with_(max_findings=limit)
    owner, data = declaration(sb, "CEB311", seed=159)
    fields = ["guid", "appType", "appTime", "appStatus", "orderType", "orderNo", "ebpCode", "ebpName",
              "ebcCode", "ebcName", "goodsValue", "freight", "discount", "taxTotal", "acturalPaid",
              "currency"]
    bad = _with_bogus_attributes(data, fields)
    total = len(validate_bytes(bad, limits=pipeline.Limits(max_findings=1000)).findings)
    assert total >= len(fields)
    async with running(settings) as api:
        status, body = await api.post_xml(sb.token(owner), bad)
        assert status == 422 and body["error"]["code"].startswith("CEBGW-XSD-"), body
        assert len(body["error"]["errors"]) == limit
        assert body["error"]["errors_omitted"] == total - limit
        assert f"{total - limit} more" in body["ceb900"]
        assert validate_bytes(body["ceb900"].encode()).valid
        await still_serving(api, sb)


@pytest.mark.parametrize("route", ["declaration", "receipt"])
@aio
async def test_a_large_body_is_checked_off_the_event_loop(sb: Sandbox, monkeypatch: pytest.MonkeyPatch,
                                                          route: str) -> None:
    """While a large body's checks run, the server answers other requests (the checks are held
    until /healthz has answered: on the event loop, they would hold it too)."""
    entered, release = threading.Event(), threading.Event()
    original: Callable[..., Any] = pipeline.validate_receipt if route == "receipt" else pipeline.validate

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "validate_receipt" if route == "receipt" else "validate", held)
    owner, data = declaration(sb, "CEB311", seed=160)
    pad = b"\n" * (sb.settings.offload_bytes + 1)  # whitespace after the root: a large, valid body
    async with running(sb.settings) as api:
        if route == "receipt":
            receipt = samplegen.build_receipt("CEB312", {"orderNo": _text(data, "orderNo")}, status="2")
            post = api.post_xml(sb.token("customs"), customs_receipt(sb, receipt, "DXPENT0000458762") + pad,
                                path=RECEIPTS)
        else:
            post = api.post_xml(sb.token(owner), data + pad)
        task = asyncio.create_task(post)
        assert await asyncio.to_thread(entered.wait, 30)
        health = await asyncio.wait_for(api.get(None, "/healthz"), 30)
        assert health[0] == 200 and not task.done()
        release.set()
        status, body = await task
        assert status == 200 if route == "receipt" else status == 202, body


# ------------------------------------------------------------------ 3. encodings

def _declared(data: bytes, name: str) -> bytes:
    return data.replace(b'encoding="UTF-8"', f'encoding="{name}"'.encode(), 1)


@pytest.mark.parametrize("variant", [
    "utf16-le-bom", "utf16-be-bom", "utf32-bom", "utf16-no-bom", "utf8-bom-gbk", "utf8-bom-latin1",
    "gbk-declared", "invalid-byte-in-value", "overlong-utf8", "surrogate-utf8",
])
@aio
async def test_anything_but_utf8_is_refused(sb: Sandbox, variant: str) -> None:
    owner, data = declaration(sb, "CEB311", seed=161)
    text = data.decode("utf-8")
    bad = {
        "utf16-le-bom": b"\xff\xfe" + _declared(data, "UTF-16").decode().encode("utf-16-le"),
        "utf16-be-bom": b"\xfe\xff" + _declared(data, "UTF-16").decode().encode("utf-16-be"),
        "utf32-bom": _declared(data, "UTF-32").decode().encode("utf-32"),
        "utf16-no-bom": text.encode("utf-16-le"),
        "utf8-bom-gbk": b"\xef\xbb\xbf" + _declared(data, "GBK"),
        "utf8-bom-latin1": b"\xef\xbb\xbf" + _declared(data, "ISO-8859-1"),
        "gbk-declared": _declared(data, "GB18030"),
        "invalid-byte-in-value": _rewrite(data, "buyerName", "\ufffd").replace("\ufffd".encode(), b"\xff", 1),
        "overlong-utf8": _rewrite(data, "buyerName", "x").replace(b">x<", b">\xc0\xaf<", 1),
        "surrogate-utf8": _rewrite(data, "buyerName", "x").replace(b">x<", b">\xed\xa0\x80<", 1),
    }[variant]
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), bad)
        assert (status, body["error"]["code"]) == (400, "CEBGW-PARSE-ENCODING"), body["error"]
        assert validate_bytes(body["ceb900"].encode()).valid
        assert await _outbox_count(api, sb) == 0
        await still_serving(api, sb)


@pytest.mark.parametrize("ctype,want", [
    ("text/xml; charset=GBK", 400),
    ("application/xml; charset=iso-8859-1", 400),
    ("application/xml; charset=utf-8", 202),
    ("text/xml; charset=UTF8", 202),
])
@aio
async def test_the_content_type_charset_must_say_utf8_too(sb: Sandbox, ctype: str, want: int) -> None:
    owner, data = declaration(sb, "CEB311", seed=162)
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data, ctype)
        assert status == want, body
        if want == 400:
            assert body["error"]["code"] == "CEBGW-PARSE-ENCODING"


@pytest.mark.parametrize("variant", ["bom-utf8", "utf8-lowercase", "utf8-alias", "no-declaration"])
@aio
async def test_utf8_spelt_any_allowed_way_is_accepted(sb: Sandbox, variant: str) -> None:
    owner, data = declaration(sb, "CEB311", seed=163)
    body_only = data[data.index(b"?>") + 2:].lstrip()
    good = {
        "bom-utf8": b"\xef\xbb\xbf" + data,
        "utf8-lowercase": _declared(data, "utf-8"),
        "utf8-alias": _declared(data, "UTF8"),
        "no-declaration": body_only,
    }[variant]
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), good)
        assert status == 202, body


# ------------------------------------------------------------------ 7. ids, timeouts, media types, cursors

@aio
async def test_ids_are_ascii_digits_only_in_paths_and_queries(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", seed=164)
    tok = sb.token(owner)
    async with running(sb.settings) as api:
        status, first = await api.post_xml(tok, data)
        assert status == 202 and first["id"] == 1
        for good in ("1", "01"):
            assert (await api.get(tok, f"/v1/messages/{good}"))[0] == 200, good
        for odd in ("%EF%BC%91", "1_", "_1", "0_1", "+1", "%201", "1%20", "%D9%A1", "1.0", "0x1"):
            status, body = await api.get(tok, f"/v1/messages/{odd}")
            assert (status, body["error"]["code"]) == (404, "CEBGW-NOT-FOUND"), odd
        for query in ("after=1_0", "after=%EF%BC%91", "limit=%EF%BC%95", "wait=+1", "after=-1"):
            status, body = await api.get(tok, f"/v1/receipts?{query}")
            assert (status, body["error"]["code"]) == (400, "CEBGW-USAGE"), query
        customs = sb.token("customs")
        for path in ("/v1/dead-letters/1_0/reroute", "/v1/dead-letters/%EF%BC%91/reroute"):
            status, body = await api.post_json(customs, path, {"message_id": 1})
            assert status == 404, (path, body)
        for raw in (b'{"cursor": "1"}', b'{"cursor": 1.0}', b'{"cursor": true}', b'{"cursor": \xd9\xa1}'):
            async with api.session.post(api.url + "/v1/receipts/ack", data=raw, headers={
                    "Authorization": f"Bearer {tok}", "Content-Type": "application/json"}) as r:
                assert r.status == 400, raw
        await still_serving(api, sb)


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/xml", "application/x-www-form-urlencoded",
                                   "application/jsonx"])
@aio
async def test_json_endpoints_take_application_json_only(sb: Sandbox, ctype: str | None) -> None:
    tok, customs = sb.token("ecommerce"), sb.token("customs")
    async with running(sb.settings) as api:
        for token, path, body in ((tok, "/v1/receipts/ack", b'{"cursor": 0}'),
                                  (customs, "/v1/customs/outbox/ack", b'{"ids": []}'),
                                  (customs, "/v1/dead-letters/1/reroute", b'{"message_id": 1}')):
            headers = {"Authorization": f"Bearer {token}"}
            if ctype is not None:
                headers["Content-Type"] = ctype
            async with api.session.post(api.url + path, data=body, headers=headers) as r:
                answer = await r.json()
                assert (r.status, answer["error"]["code"]) == (415, "CEBGW-MEDIA-TYPE"), (path, answer)
        status, _ = await api.post_json(tok, "/v1/receipts/ack", {"cursor": 0})
        assert status == 200
        async with api.session.post(api.url + "/v1/receipts/ack", data=b'{"cursor": 0}', headers={
                "Authorization": f"Bearer {tok}", "Content-Type": "application/json; charset=utf-8"}) as r:
            assert r.status == 200


async def _closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (guarded: a server that never
    closes fails the test instead of hanging it)."""
    return await asyncio.wait_for(reader.read(), 30)


@pytest.mark.parametrize("head", [
    b"",                                                 # connects and says nothing
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n",        # headers never finished
    b"GET /healthz HTTP/1.1\r\nHo",                      # cut inside a header
])
@aio
async def test_a_client_that_never_finishes_its_headers_is_disconnected(sb: Sandbox, head: bytes) -> None:
    settings = sb.settings.with_(header_timeout_s=0.5)
    async with running(settings) as api:
        host, port = api.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(head)
        await writer.drain()
        assert await _closed(reader) == b""
        writer.close()
        assert (await api.get(None, "/healthz"))[0] == 200


@pytest.mark.parametrize("path,ctype", [("/v1/messages", "application/xml"),
                                        ("/v1/receipts/ack", "application/json")])
@aio
async def test_a_client_that_trickles_its_body_gets_408(sb: Sandbox, path: str, ctype: str) -> None:
    settings = sb.settings.with_(body_timeout_s=0.5)
    async with running(settings) as api:
        host, port = api.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ctype}\r\n"
                     f"Authorization: Bearer {sb.token('ecommerce')}\r\n"
                     "Content-Length: 5000\r\n\r\n<a>".encode())
        await writer.drain()
        answer = await _closed(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"CEBGW-TIMEOUT" in answer
        await still_serving(api, sb)


@aio
async def test_mailbox_cursors_are_each_tenants_own(sb: Sandbox) -> None:
    """Receipts for two tenants, interleaved: each sees 1, 2, 3, ... and nothing of the other."""
    codes = ["CEB311", "CEB411"]
    owners = {code: declaration(sb, code, seed=170)[0] for code in codes}
    assert len(set(owners.values())) == 2, owners
    declared: dict[str, list[bytes]] = {code: [] for code in codes}
    async with running(sb.settings) as api:
        for i in range(3):
            for code in codes:
                owner, data = declaration(sb, code, seed=170 + i)
                status, body = await api.post_xml(sb.token(owner), data)
                assert status == 202, body
                declared[code].append(data)
        for i in range(3):
            for code in codes:
                data = declared[code][i]
                if code == "CEB311":
                    keys = {k: _text(data, k) for k in ("orderNo", "ebpCode")}
                    receipt = samplegen.build_receipt("CEB312", keys, status="2")
                else:
                    keys = {k: _text(data, k) for k in ("payCode", "payTransactionId")}
                    receipt = samplegen.build_receipt("CEB412", keys, status="2")
                signed = sb.sign_as("customs", receipt)
                status, out = await api.post_xml(sb.token("customs"), signed, path=RECEIPTS)
                assert status == 200 and out["records"][0]["outcome"] == "delivered", out
        for t in owners.values():
            _, mail = await api.get(sb.token(t), "/v1/receipts")
            assert [item["cursor"] for item in mail["items"]] == [1, 2, 3], (t, mail)
            assert mail["cursor"] == 3
            _, page = await api.get(sb.token(t), "/v1/receipts?after=1&limit=1")
            assert [item["cursor"] for item in page["items"]] == [2]
            assert (await api.post_json(sb.token(t), "/v1/receipts/ack", {"cursor": 2}))[0] == 200
            _, rest = await api.get(sb.token(t), "/v1/receipts")
            assert [item["cursor"] for item in rest["items"]] == [3]
        await still_serving(api, sb)
