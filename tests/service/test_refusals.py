"""Every kind of bad input gets a clear 4xx with the error body, and the service keeps serving."""

from __future__ import annotations

import asyncio
import re
import tomllib
from pathlib import Path

import pytest

from gateway.pipeline import validate_bytes
from gateway.sandbox import samplegen
from gateway.service.app import ROUTES
from gateway.service.openapi import document

from .kit import Api, Sandbox, aio, declaration, running

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
HOSTILE = tomllib.loads((SAMPLES / "hostile" / "manifest.toml").read_text())["files"]


async def still_serving(api: Api, sb: Sandbox) -> None:
    assert (await api.get(None, "/healthz"))[0] == 200
    owner, data = declaration(sb, "CEB311", seed=99)
    assert (await api.post_xml(sb.token(owner), data))[0] in (200, 202)


@pytest.mark.parametrize("name", sorted(HOSTILE))
@aio
async def test_hostile_input_gets_its_exact_code_and_a_valid_ceb900(sb: Sandbox, name: str) -> None:
    data = (SAMPLES / "hostile" / name).read_bytes()
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token("ecommerce"), data)
        assert status in (400, 422), body
        assert body["error"]["code"] == HOSTILE[name] and body["request_id"]
        assert body["error"]["errors"] and body["error"]["message_zh"]
        assert validate_bytes(body["ceb900"].encode()).valid
        await still_serving(api, sb)


@aio
async def test_refusals_carry_the_table_status_and_code(sb: Sandbox) -> None:
    tok = sb.token("ecommerce")
    _, signed_621 = declaration(sb, "CEB621")
    tampered = signed_621.replace(b"<ceb:copNo>", b"<ceb:copNo>X", 1)
    invalid = (SAMPLES / "invalid" / "CEB311-acturalpaid.xml").read_bytes()
    cases: list[tuple[bytes, str, int, str]] = [
        (b"hello", "application/xml", 400, "CEBGW-PARSE-SYNTAX"),
        (b"<a/>", "text/plain", 415, "CEBGW-MEDIA-TYPE"),
        (b'{"order": 1}', "application/json", 403, "CEBGW-AUTH-CUSTODY"),  # JSON: custody accounts only
        (samplegen.build_receipt("CEB312", {}), "application/xml", 422, "CEBGW-IDENT-UNKNOWN"),
        (invalid, "application/xml", 422, "CEBGW-RULE-ACTURALPAID"),
        (tampered, "text/xml", 422, "CEBGW-SIG-DIGEST"),
        (samplegen.build("CEB621"), "application/xml", 422, "CEBGW-XSD-MISSING"),  # XSD: Signature 1..1
        (declaration(sb, "CEB411")[1], "application/xml", 403, "CEBGW-AUTH-SENDER"),
    ]
    async with running(sb.settings) as api:
        for data, ctype, want_status, want_code in cases:
            status, body = await api.post_xml(tok, data, ctype)
            assert (status, body["error"]["code"]) == (want_status, want_code), (want_code, body)
            if want_status in (400, 422):
                assert validate_bytes(body["ceb900"].encode()).valid
            else:
                assert "ceb900" not in body
        # CEB607 needs a signature only with appStatus 2 (the XSD leaves it optional; a rule says so)
        status, body = await api.post_xml(sb.token("agent"), samplegen.build("CEB607"))
        assert (status, body["error"]["code"]) == (422, "CEBGW-RULE-SIGNATURE-DECLARED")
        _, body = await api.post_xml(tok, b"{}", "application/json")
        assert "does not let the gateway sign for it" in body["error"]["message"]
        _, body = await api.post_xml(tok, invalid)
        assert any(f["field"] == "acturalPaid" for f in body["error"]["errors"])
        assert "acturalPaid" in body["ceb900"] and "CEBGW-RULE-ACTURALPAID" in body["ceb900"]
        await still_serving(api, sb)


@aio
async def test_oversize_bodies_get_413(sb: Sandbox) -> None:
    settings = sb.settings.with_(max_body_bytes=4096)
    _, data = declaration(sb, "CEB311", seed=1)
    big = data.replace(b"</ceb:CEB311Message>", b"<!--" + b"x" * 8000 + b"-->\n</ceb:CEB311Message>")
    async with running(settings) as api:
        status, body = await api.post_xml(sb.token("ecommerce"), big)
        assert (status, body["error"]["code"]) == (413, "CEBGW-PARSE-TOO-LARGE")
        assert (await api.get(None, "/healthz"))[0] == 200


@aio
async def test_a_client_that_stops_mid_body_is_a_refusal_not_an_internal_error(
        sb: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    _, data = declaration(sb, "CEB311", seed=2)
    async with running(sb.settings) as api:
        host, port = api.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/xml\r\n"
                     f"Authorization: Bearer {sb.token('ecommerce')}\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode() + data[:100])
        writer.write_eof()  # the client stops sending 100 bytes in
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
        await still_serving(api, sb)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


@aio
async def test_credentials_and_roles(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", seed=21)
    async with running(sb.settings) as api:
        assert (await api.post_xml(None, data))[0] == 401
        status, body = await api.post_xml("wrong-token", data)
        assert (status, body["error"]["code"]) == (401, "CEBGW-AUTH-MISSING")
        assert (await api.get("nope", "/v1/receipts"))[0] == 401
        status, acc = await api.post_xml(sb.token(owner), data)
        assert status == 202
        # another tenant cannot read it, and cannot tell it exists
        status, body = await api.get(sb.token("payment"), f"/v1/messages/{acc['id']}")
        assert (status, body["error"]["code"]) == (404, "CEBGW-NOT-FOUND")
        assert (await api.get(sb.token("payment"), "/v1/messages/999999"))[0] == 404
        assert (await api.get(sb.token(owner), "/v1/messages/abc"))[0] == 404
        # only customs pulls the outbox and posts receipts
        assert (await api.get(sb.token(owner), "/v1/customs/outbox"))[0] == 403
        assert (await api.post_json(sb.token(owner), "/v1/customs/outbox/ack", {"ids": [1]}))[0] == 403
        r = samplegen.build_receipt("CEB312", {})
        assert (await api.post_xml(sb.token(owner), r, path="/v1/customs/receipts"))[0] == 403
        # customs cannot declare
        assert (await api.post_xml(sb.token("customs"), data))[0] == 403
        # unsigned receipts are refused when customs signatures are required
        status, body = await api.post_xml(sb.token("customs"), r, path="/v1/customs/receipts")
        assert (status, body["error"]["code"]) == (422, "CEBGW-SIG-MISSING")
        # a receipt envelope signed by an enterprise is not a customs receipt
        from .kit import customs_receipt  # noqa: PLC0415 - local helper
        env = samplegen.build_dxp_msg(r, msg_type="CEB312Message", sender_id=sb.account("payment")["dxp_id"],
                                      receiver_ids=["DXPENT0000458762"])
        status, body = await api.post_xml(sb.token("customs"), sb.sign_as("payment", env),
                                          path="/v1/customs/receipts")
        assert (status, body["error"]["code"]) == (422, "CEBGW-SIG-CERT-UNREGISTERED")
        assert customs_receipt  # the signed-by-customs form is exercised in test_flow
        # bad JSON and unknown routes
        assert (await api.post_json(sb.token(owner), "/v1/receipts/ack", {"cursor": "x"}))[0] == 400
        status, body = await api.get(sb.token(owner), "/v1/nothing")
        assert (status, body["error"]["code"]) == (404, "CEBGW-NOT-FOUND")


@aio
async def test_same_guid_with_other_content_is_409_and_same_bytes_200(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", seed=23)
    changed = data.replace(b"<ceb:freight>15.00</ceb:freight>", b"<ceb:freight>15.00</ceb:freight>", 1)
    changed = changed.replace(b"<ceb:buyerName>", b"<ceb:buyerName>\xe7\x8e\x8b", 1)
    async with running(sb.settings) as api:
        s1, first = await api.post_xml(sb.token(owner), data)
        s2, again = await api.post_xml(sb.token(owner), data)
        assert (s1, s2) == (202, 200) and again == first
        status, body = await api.post_xml(sb.token(owner), changed)
        assert (status, body["error"]["code"]) == (409, "CEBGW-CONFLICT-GUID")
        _, batch = await api.get(sb.token("customs"), "/v1/customs/outbox?limit=10")
        assert len(batch["items"]) == 1


def test_openapi_documents_exactly_the_routes() -> None:
    doc = document()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routed = {(m, p) for m, p, _ in ROUTES} | {("GET", "/openapi.json")}
    assert documented == routed
    assert doc["openapi"].startswith("3.1")


_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+Inf]+$')


@aio
async def test_metrics_text_parses_and_counts(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", seed=25)
    async with running(sb.settings) as api:
        await api.post_xml(sb.token(owner), data)
        await api.post_xml(sb.token(owner), b"junk")
        status, doc = await api.get(None, "/openapi.json")
        assert status == 200 and "/v1/messages" in doc["paths"]
        status, text = await api.text("/metrics")
    assert status == 200
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or _SAMPLE.match(line), line
    assert 'cebgw_messages_total{type="CEB311",outcome="accepted"} 1' in text
    assert 'outcome="rejected"' in text and "cebgw_outbox_depth 1" in text
    assert 'cebgw_request_seconds_count{route="/v1/messages",method="POST"} 2' in text


@aio
async def test_ids_beyond_64_bits_are_not_found_or_refused_never_an_internal_error(sb: Sandbox) -> None:
    """Found by schemathesis: ids SQLite cannot hold made the store raise OverflowError (500)."""
    huge, customs, tok = 2**64 + 7, sb.info["customs"]["token"], sb.token("ecommerce")
    async with running(sb.settings) as api:
        for path in (f"/v1/messages/{huge}", f"/v1/messages/-{huge}", "/v1/messages/9223372036854775808"):
            status, body = await api.get(tok, path)
            assert (status, body["error"]["code"]) == (404, "CEBGW-NOT-FOUND"), path
        cases = [
            (customs, "/v1/customs/outbox/ack", {"ids": [1, huge]}, "ids"),
            (customs, "/v1/customs/outbox/ack", {"ids": [-1]}, "ids"),
            (tok, "/v1/receipts/ack", {"cursor": huge}, "cursor"),
            (customs, f"/v1/dead-letters/{huge}/reroute", {"message_id": 1}, None),
            (customs, "/v1/dead-letters/1/reroute", {"message_id": huge}, "message_id"),
        ]
        for token, path, payload, field in cases:
            status, body = await api.post_json(token, path, payload)
            if field is None:
                assert status == 404, (path, body)
            else:
                assert status == 400 and body["error"]["errors"][0]["field"] == field, (path, body)
                assert "9223372036854775807" in body["error"]["message"]
        status, body = await api.post_json(customs, "/v1/customs/outbox/ack", {"ids": [2**63 - 1]})
        assert (status, body) == (200, {"acked": 0})
        await still_serving(api, sb)


@aio
async def test_malformed_http_is_a_one_line_warning(sb: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp answers unparsable requests with 400 itself and logs them with a traceback."""
    async with running(sb.settings) as api:
        host, port = api.url.removeprefix("http://").split(":")
        for raw in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Probe: \x00\r\n\r\n",
                    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n"):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(raw)
            await writer.drain()
            answer = await reader.read(200)
            writer.close()
            assert answer.split(b" ", 2)[1] == b"400", answer
        records = [r for r in caplog.records if r.name == "aiohttp.server"]
        assert len(records) == 2 and all(r.levelname == "WARNING" and not r.exc_info for r in records)
        assert "malformed HTTP request from 127.0.0.1 refused (400)" in records[0].getMessage()
        await still_serving(api, sb)
