"""Cross-cutting concerns: request ids, authentication, latency, and error rendering.

Every :class:`~gateway.errors.GatewayError` becomes
``{"error": {code, message, message_zh, errors: [...]}, "request_id"}`` with the
status from the error table (a rejected declaration adds ``ceb900``).  This is the
only place with ``except Exception``: it logs the request id and the exception type,
never the payload.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..accounts import der_fingerprint
from ..errors import AuthError, GatewayError, MediaTypeError, NotFoundError, UsageError
from ..pipeline import Rejected
from .keys import ACCOUNT, ACCOUNTS, METRICS, REQUEST_ID, REQUEST_IDS

log = logging.getLogger("gateway.service")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC = frozenset({"/healthz", "/metrics", "/openapi.json"})
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def error_response(exc: GatewayError, request_id: str) -> web.Response:
    """The JSON body and status every client sees for ``exc``."""
    body: dict[str, object] = {"error": exc.as_dict(), "request_id": request_id}
    if isinstance(exc, Rejected):
        body["ceb900"] = exc.ceb900.decode("utf-8")
    resp = web.json_response(body, status=exc.http_status, dumps=_dumps)
    if isinstance(exc, AuthError) and exc.http_status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="cebgw"'
    return resp


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


@web.middleware
async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take a well-formed ``X-Request-Id`` or make one; echo it on the response."""
    given = request.headers.get("X-Request-Id", "")
    rid = given if _SAFE_ID.match(given) else request.app[REQUEST_IDS].next()
    request[REQUEST_ID] = rid
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = rid
        raise
    resp.headers["X-Request-Id"] = rid
    return resp


def _http_error(status: int) -> GatewayError | None:
    """aiohttp's own refusals (no route, wrong method) in our error shape."""
    if status == 404:
        return NotFoundError("no such resource")
    if status == 405:
        return UsageError("method not allowed for this resource")
    if status == 413:
        return GatewayError("body exceeds the size limit", code="CEBGW-PARSE-TOO-LARGE")
    if status == 415:
        return MediaTypeError("unsupported media type")
    return None


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure as the JSON error body; unknown exceptions become 500."""
    rid = request.get(REQUEST_ID, "-")
    try:
        return await handler(request)
    except GatewayError as exc:
        return error_response(exc, rid)
    except web.HTTPException as exc:
        mapped = _http_error(exc.status)
        if mapped is None:
            raise
        resp = error_response(mapped, rid)
        resp.set_status(exc.status)
        return resp
    except Exception as exc:  # the outermost layer: log the id and type, never the payload
        log.error("request %s failed: %s", rid, type(exc).__name__, exc_info=True)
        return web.json_response({"error": {"code": "CEBGW-INTERNAL", "message": "internal error",
                                            "message_zh": "内部错误", "errors": []},
                                  "request_id": rid}, status=500)


def client_cert_fingerprint(request: web.Request) -> str | None:
    """SHA-256 hex of the mutual-TLS client certificate, if the connection has one."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return der_fingerprint(der) if der else None


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``Authorization: Bearer <token>`` (or a registered client certificate) → the account; else 401."""
    if request.path in PUBLIC:
        return await handler(request)
    accounts = request.app[ACCOUNTS].current()
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    account = None
    if scheme.lower() == "bearer" and token.strip():
        account = accounts.by_token(token.strip())
    elif not header:
        fp = client_cert_fingerprint(request)
        account = accounts.by_client_cert(fp) if fp else None
    if account is None:
        raise AuthError("missing or invalid credentials (Authorization: Bearer <token>)")
    request[ACCOUNT] = account
    return await handler(request)


@web.middleware
async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency per route template (unmatched paths share one label, so labels stay bounded)."""
    start = time.perf_counter()
    try:
        return await handler(request)
    finally:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        request.app[METRICS].observe(name, request.method, time.perf_counter() - start)


MIDDLEWARES = (request_id, errors, timing, auth)


class MalformedHttpFilter(logging.Filter):
    """aiohttp answers a request it cannot parse (bad header bytes, broken framing) with 400
    itself and logs it as an error with a traceback: one line per bad request from the
    Internet, each looking like a crash.  This turns those records into a one-line warning
    naming the client and what was wrong; other records pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            what = " ".join(str(exc.message).split())[:200]
            record.msg = "malformed HTTP request from %s refused (%s): %s"
            record.args = (remote, exc.code, what)
            record.exc_info, record.exc_text = None, None
        return True


def quiet_malformed_http() -> None:
    """Install :class:`MalformedHttpFilter` on aiohttp's server logger (once)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedHttpFilter) for f in logger.filters):
        logger.addFilter(MalformedHttpFilter())
