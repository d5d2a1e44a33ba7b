"""Request handlers: read the request, call the pipeline or the store, shape the answer.

They stay short; the stages live in :mod:`gateway.pipeline`, errors are rendered by
the middleware.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any, TypeGuard

from aiohttp import web

from .. import pipeline, preflight
from ..accounts import Account
from ..catalog import Catalog
from ..errors import (
    ForbiddenError,
    GatewayError,
    MediaTypeError,
    NotFoundError,
    ParseError,
    RequestTimeout,
    UsageError,
)
from ..reconcile import PARCEL_TYPES, ParcelKey
from ..store import MAX_ID, MailItem, MessageRecord, Store
from .keys import (
    ACCOUNT,
    ACCOUNTS,
    CATALOG,
    CHECKER,
    METRICS,
    OUTBOX_SIGNAL,
    PREFLIGHT,
    REGISTRY,
    SETTINGS,
    STORE,
    SUBMIT_DEPS,
    TRANSPORT_METRICS,
    Signal,
)

XML_TYPES = frozenset({"application/xml", "text/xml"})


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _json(body: object, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


def _limits(request: web.Request) -> pipeline.Limits:
    return pipeline.limits_of(request.app[SETTINGS])


async def read_xml(request: web.Request, *, json_ok: bool = False) -> bytes:
    """The XML body (or, with ``json_ok``, a JSON one), refusing other media types (415),
    charsets other than UTF-8 (400) and oversize bodies (413) before reading them, and bodies
    that do not arrive in time (408)."""
    ctype = request.content_type
    if ctype == "application/json" and not json_ok:
        raise MediaTypeError("this endpoint takes CEB XML only (Content-Type: application/xml); "
                             "JSON declarations go to POST /v1/messages")
    if ctype not in XML_TYPES and not (json_ok and ctype == "application/json"):
        raise MediaTypeError(f"Content-Type {ctype!r} is not accepted; use application/xml or text/xml")
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        # For text/xml the charset parameter overrides the XML declaration (RFC 7303): a
        # second statement of the encoding, so it must say UTF-8 too.
        raise ParseError(f"Content-Type charset {charset!r}; CEB messages must be UTF-8",
                         code="CEBGW-PARSE-ENCODING", field="Content-Type")
    limit = request.app[SETTINGS].max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    return await _read_body(request, limit, length)


async def _read_body(request: web.Request, limit: int, length: int | None) -> bytes:
    content = request.content
    timeout = request.app[SETTINGS].body_timeout_s
    # the whole body arrived with its headers (the usual small request): no timer needed
    arrived = length is not None and content.is_eof() and content.total_bytes == length
    try:
        async with contextlib.nullcontext() if arrived else asyncio.timeout(timeout):
            if length is not None:
                return await content.readexactly(length) if length else b""
            chunks: list[bytes] = []
            size = 0
            async for chunk in content.iter_chunked(65536):
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            return b"".join(chunks)
    except TimeoutError:
        # A client trickling its body would hold the connection (and the memory so far) forever.
        raise RequestTimeout(f"the request body did not arrive within {timeout:g} s") from None
    except (asyncio.IncompleteReadError, ConnectionResetError):
        # The client stopped sending: no answer will reach it, but the mistake is its own,
        # not the gateway's, so no internal-error log.
        raise ParseError("the request body ended early (the client stopped sending)") from None


def _too_large(limit: int) -> ParseError:
    return ParseError(f"body exceeds the limit of {limit} bytes", code="CEBGW-PARSE-TOO-LARGE")


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise MediaTypeError(f"Content-Type {request.content_type!r} is not accepted; use application/json")
    limit = request.app[SETTINGS].max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    raw = await _read_body(request, limit, length)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise UsageError("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise UsageError("the body must be a JSON object")
    return body


_DIGITS = re.compile(r"[0-9]{1,19}")  # int() would also take "1_2", " 1", "+1" and "１"


def _path_id(request: web.Request, what: str) -> int:
    """The ``{id}`` of the path; one that cannot name a row is simply not found."""
    raw = request.match_info["id"]
    if _DIGITS.fullmatch(raw) is None:
        raise NotFoundError(f"no such {what}")
    value = int(raw)
    if not 0 < value <= MAX_ID:
        raise NotFoundError(f"no such {what}")
    return value


def _is_id(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID


def _int_param(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if re.fullmatch(r"[0-9]{1,30}", raw) is None:
        raise UsageError(f"{name} must be a whole number written in ASCII digits", field=name)
    return max(lo, min(int(raw), hi))


def _message_view(rec: MessageRecord) -> dict[str, object]:
    return {"id": rec.id, "guid": rec.guid, "message_type": rec.message_type, "edition": rec.edition,
            "status": rec.state.value,
            "business_keys": list(rec.business_keys), "received_at": rec.received_at.isoformat(),
            "timeline": [{"receipt_id": t.receipt_id, "message_type": t.message_type, "status": t.status,
                          "return_time": t.return_time, "info": t.info,
                          "received_at": t.received_at.isoformat()} for t in rec.timeline]}


# ---------------------------------------------------------------- enterprises

async def post_message(request: web.Request) -> web.Response:
    """Submit one declaration: 202 once durable, 200 for the same bytes again."""
    app, account = request.app, request[ACCOUNT]
    data = await read_xml(request, json_ok=True)
    deps = app[SUBMIT_DEPS]
    metrics = app[METRICS]
    try:
        if request.content_type == "application/json":  # mapped and signed, then the XML path
            accepted = await pipeline.submit_json(data, account, deps,
                                                  message_type=request.headers.get("X-Message-Type") or None)
        else:
            accepted = await pipeline.submit(data, account, deps)
    except pipeline.Rejected as exc:
        metrics.message(exc.message_type or "unknown", "rejected")
        raise
    except GatewayError as exc:
        outcome = {403: "forbidden", 409: "conflict"}.get(exc.http_status, "rejected")
        metrics.message(pipeline.message_type_of(data, deps.catalog, deps.limits) or "unknown", outcome)
        raise
    metrics.message(accepted.message_type, "duplicate" if accepted.duplicate else "accepted")
    status = "declared"
    if accepted.duplicate:
        first = await app[STORE].get_message(accepted.message_id, account.name)
        status = first.state.value if first is not None else status
    else:
        app[OUTBOX_SIGNAL].notify()
    body: dict[str, object] = {
        "id": accepted.message_id, "guid": accepted.guid, "message_type": accepted.message_type,
        "status": status, "edition": accepted.edition, "business_keys": list(accepted.business_keys),
        "warnings": [f.as_dict() for f in accepted.warnings]}
    if app[PREFLIGHT].policy(account.name) != "off":  # the comparison, for enterprises that asked for it
        body["preflight"] = [_evaluation_view(e) for e in accepted.preflight]
    return _json(body, status=200 if accepted.duplicate else 202)


def _evaluation_view(e: preflight.Evaluation) -> dict[str, object]:
    return {"ebpCode": e.key.ebp_code, "orderNo": e.key.order_no,
            "missing": [c for c in PARCEL_TYPES if c not in e.versions],
            "findings": [f.as_dict() for f in e.findings], "held": list(e.held), "released": list(e.released)}


async def get_message(request: web.Request) -> web.Response:
    """One of the account's declarations with its state and receipt timeline (404 otherwise)."""
    mid = _path_id(request, "message")
    rec = await request.app[STORE].get_message(mid, request[ACCOUNT].name)
    if rec is None:
        raise NotFoundError("no such message")
    return _json(_message_view(rec))


def _mail_view(item: MailItem, as_json: bool, catalog: Catalog) -> dict[str, object]:
    view: dict[str, object] = {
        "cursor": item.cursor, "receipt_id": item.receipt_id, "message_id": item.message_id,
        "declaration_type": item.declaration_type, "declaration_guid": item.declaration_guid,
        "message_type": item.message_type, "status": item.status, "return_time": item.return_time,
        "info": item.info, "business_keys": item.business_keys, "delivered_at": item.delivered_at.isoformat(),
        "xml": item.data.decode("utf-8", "replace")}
    if as_json:
        view["record"] = pipeline.stored_record(item.data, item.record_no, catalog)
        view["json"] = pipeline.receipt_json(item.data, item.record_no, catalog)
    return view


async def get_receipts(request: web.Request) -> web.Response:
    """The account's mailbox after ``after`` (default: after its acknowledged cursor), long-polling."""
    s, store, account = request.app[SETTINGS], request.app[STORE], request[ACCOUNT]
    after = _int_param(request, "after", None, 0, 2**62)
    limit = _int_param(request, "limit", 100, 1, s.mailbox_max_batch) or 100
    wait = _int_param(request, "wait", 0, 0, int(s.long_poll_max_s)) or 0
    fmt = request.query.get("format", "xml")
    if fmt not in ("xml", "json"):
        raise UsageError("format must be xml or json", field="format")
    if wait > 0:
        items = await store.mailbox_wait(account.name, after, limit, float(wait))
    else:
        items = await store.mailbox(account.name, after, limit)
    cursor = items[-1].cursor if items else after
    views = [_mail_view(i, fmt == "json", request.app[CATALOG]) for i in items]
    return _json({"items": views, "cursor": cursor})


async def ack_receipts(request: web.Request) -> web.Response:
    """Mark the account's mail read up to ``cursor``."""
    body = await _json_body(request)
    cursor = body.get("cursor")
    if not _is_id(cursor):
        raise UsageError(f"cursor must be an integer from 0 to {MAX_ID}", field="cursor")
    await request.app[STORE].ack_mailbox(request[ACCOUNT].name, cursor)
    return _json({"acked": cursor})


async def get_schema(request: web.Request) -> web.Response:
    """The JSON Schema (or ``format=markdown|xsd``) of a message type's JSON, in ``edition``."""
    fmt = request.query.get("format", "json-schema")
    text, ctype = pipeline.describe(request.match_info["type"], request.query.get("edition") or None, fmt,
                                    request.app[CATALOG])
    if ctype == "application/json":
        return web.Response(text=text, content_type="application/schema+json", charset="utf-8")
    return web.Response(text=text, content_type=ctype, charset="utf-8")


# ---------------------------------------------------------------- customs

def _require_customs(account: Account) -> None:
    if not account.is_customs:
        raise ForbiddenError("only the customs account may do this")


async def get_outbox(request: web.Request) -> web.Response:
    """Lease a batch of DXP envelopes for the customs intranet, waiting up to ``wait`` seconds."""
    _require_customs(request[ACCOUNT])
    s, store = request.app[SETTINGS], request.app[STORE]
    limit = _int_param(request, "limit", 10, 1, s.outbox_max_batch) or 10
    wait = _int_param(request, "wait", 0, 0, int(s.long_poll_max_s)) or 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        items = await store.lease_outbox(limit, s.lease_timeout_s)
        remaining = deadline - loop.time()
        if items or remaining <= 0:
            break
        # Wakes at once for submissions in this process; for other processes and nodes when the
        # store can tell (PostgreSQL's NOTIFY), else within a second.
        await _outbox_news(request.app[OUTBOX_SIGNAL], store, remaining)
    return _json({"items": [{"id": i.id, "message_id": i.message_id, "attempts": i.attempts,
                             "envelope": i.envelope.decode("utf-8")} for i in items]})


async def _outbox_news(signal: Signal, store: Store, remaining: float) -> None:
    """Return when this process or (where the store can tell) another queued an envelope."""
    local = asyncio.ensure_future(signal.wait(remaining))
    remote = asyncio.ensure_future(store.outbox_wait(remaining))
    done, _ = await asyncio.wait((local, remote), return_when=asyncio.FIRST_COMPLETED)
    if remote in done and not remote.result() and not local.done():
        await asyncio.wait((local,), timeout=min(remaining, 1.0))  # the store cannot tell: look again soon
    for task in (local, remote):
        task.cancel()


async def ack_outbox(request: web.Request) -> web.Response:
    """Acknowledge delivered envelopes (their declarations become ``sent``)."""
    _require_customs(request[ACCOUNT])
    ids = (await _json_body(request)).get("ids")
    if not isinstance(ids, list) or not all(_is_id(i) for i in ids):
        raise UsageError(f"ids must be a list of integers from 0 to {MAX_ID}", field="ids")
    return _json({"acked": await request.app[STORE].ack_outbox(ids)})


async def post_receipts(request: web.Request) -> web.Response:
    """Take a receipt message from customs and deliver each record (or dead-letter it)."""
    _require_customs(request[ACCOUNT])
    app, s = request.app, request.app[SETTINGS]
    data = await read_xml(request)
    deps = pipeline.ReceiptDeps(app[CATALOG], app[REGISTRY], s.policy, app[STORE], app[STORE],
                                app[ACCOUNTS].current(), _limits(request), s.require_customs_signature,
                                times=pipeline.time_policy_of(s), executor=app[CHECKER])
    mtype, delivered = await pipeline.receive(data, deps, request[ACCOUNT])
    out = []
    for d in delivered:
        r = d.result
        outcome = "duplicate" if r.duplicate else "dead_letter" if r.dead_letter else "delivered"
        app[METRICS].receipt(mtype, outcome)
        out.append({"record": d.record.record_no, "status": d.record.status, "outcome": outcome,
                    "receipt_id": r.receipt_id, "message_id": r.declaration_id,
                    "delivered_to": list(r.delivered_to),
                    "state": r.state_after.value if r.state_after is not None else None})
    return _json({"message_type": mtype, "records": out})


# ---------------------------------------------------------------- operators

def _require_operator(account: Account) -> None:
    if not account.is_operator:
        raise ForbiddenError("only customs or operator accounts may handle dead letters")


async def get_dead_letters(request: web.Request) -> web.Response:
    """Receipts that matched no declaration, oldest first."""
    _require_operator(request[ACCOUNT])
    limit = _int_param(request, "limit", 100, 1, 1000) or 100
    items = await request.app[STORE].dead_letters(limit)
    return _json({"items": [{"id": d.receipt_id, "message_type": d.message_type, "guid": d.guid,
                             "status": d.status, "return_time": d.return_time, "info": d.info,
                             "business_keys": d.business_keys, "reason": d.reason,
                             "received_at": d.received_at.isoformat()} for d in items]})


async def reroute_dead_letter(request: web.Request) -> web.Response:
    """Attach a dead letter to a declaration and deliver it to that declaration's tenant and
    its ALL/RET subscribers."""
    _require_operator(request[ACCOUNT])
    rid = _path_id(request, "dead letter")
    mid = (await _json_body(request)).get("message_id")
    if not _is_id(mid):
        raise UsageError(f"message_id must be an integer from 0 to {MAX_ID}", field="message_id")
    r = await pipeline.reroute(rid, mid, request.app[STORE], request.app[ACCOUNTS].current(),
                               request.app[CATALOG])
    return _json({"receipt_id": r.receipt_id, "message_id": r.declaration_id,
                  "delivered_to": list(r.delivered_to),
                  "state": r.state_after.value if r.state_after is not None else None})


# ---------------------------------------------------------------- parcels (pre-flight comparison)

async def get_parcel(request: web.Request) -> web.Response:
    """The documents of one parcel, their versions, states, receipts and findings; 404 unless the
    account sent one of them."""
    key = ParcelKey(request.match_info["ebpCode"], request.match_info["orderNo"])
    view = await preflight.parcel_view(key, request[ACCOUNT].name, request.app[STORE])
    if view is None:
        raise NotFoundError("no such parcel")
    return _json(view)


async def get_held(request: web.Request) -> web.Response:
    """Inventory lists held back from customs: the account's own (operators and customs: all)."""
    account = request[ACCOUNT]
    limit = _int_param(request, "limit", 100, 1, 1000) or 100
    items = await request.app[STORE].held_lists(None if account.is_operator else account.name, limit)
    return _json({"items": [{"message_id": i.message_id, "tenant": i.tenant, "ebpCode": i.ebp_code,
                             "orderNo": i.order_no, "held_at": i.held_at.isoformat()} for i in items]})


async def release_held(request: web.Request) -> web.Response:
    """An operator sends a held inventory list on to customs as it is."""
    account = request[ACCOUNT]
    if not account.is_operator:
        raise ForbiddenError("only customs or operator accounts may release a held inventory list")
    mid = _path_id(request, "held list")
    if not await request.app[STORE].set_hold(mid, False, account.name):
        raise NotFoundError("no such held list")
    request.app[OUTBOX_SIGNAL].notify()
    return _json({"message_id": mid, "released_by": account.name})


# ---------------------------------------------------------------- public

async def healthz(request: web.Request) -> web.Response:
    """Liveness and store reachability."""
    depth = await request.app[STORE].outbox_depth()
    return _json({"status": "ok", "outbox_depth": depth})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text."""
    store_metrics = await request.app[STORE].metrics()
    text = request.app[METRICS].render(store_metrics)
    if TRANSPORT_METRICS in request.app:
        text += "".join(f"{line}\n" for line in request.app[TRANSPORT_METRICS].render())
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Format": "prometheus-0.0.4"})

