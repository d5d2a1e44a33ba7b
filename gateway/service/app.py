"""The aiohttp application: the route table in one place, state under typed keys.

:func:`build_app` takes checked :class:`~gateway.config.Settings`; the store,
registry, accounts and keys are opened on start-up and closed on clean-up.  Tests
may pass their own ``store`` (it is then not closed by the app).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypedDict

from aiohttp import web

from .. import audit, pipeline
from ..accounts import AccountFile, CustodyKeys
from ..catalog import load as load_catalog
from ..config import Settings
from ..dsig import KeyProvider, load_key, load_registry
from ..errors import GatewayError
from ..preflight import Preflight
from ..reconcile import Limits
from ..store import Store, open_store
from ..transport import workers as transport_workers
from ..transport.common import TransportMetrics
from ..validate import overlay, xsd
from . import handlers as h
from .keys import (
    ACCOUNTS,
    AUDIT_KEY,
    CATALOG,
    CHECKER,
    CUSTODY,
    GATEWAY_KEY,
    METRICS,
    OUTBOX_SIGNAL,
    PREFLIGHT,
    REGISTRY,
    REQUEST_IDS,
    SETTINGS,
    SIGNER,
    STORE,
    SUBMIT_DEPS,
    TRANSPORT_METRICS,
    RequestIds,
    Signal,
)
from .metrics import Metrics
from .middleware import MIDDLEWARES, quiet_malformed_http
from .openapi import document

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GC_THRESHOLD = 20_000  # allocations between young-generation collections (CPython's default: 700)

# method, path, handler: the whole API surface (``/openapi.json`` documents exactly these).
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/v1/messages", h.post_message),
    ("GET", "/v1/messages/{id}", h.get_message),
    ("GET", "/v1/receipts", h.get_receipts),
    ("GET", "/v1/schemas/{type}", h.get_schema),
    ("POST", "/v1/receipts/ack", h.ack_receipts),
    ("GET", "/v1/customs/outbox", h.get_outbox),
    ("POST", "/v1/customs/outbox/ack", h.ack_outbox),
    ("POST", "/v1/customs/receipts", h.post_receipts),
    ("GET", "/v1/parcels/{ebpCode}/{orderNo}", h.get_parcel),
    ("GET", "/v1/held", h.get_held),
    ("POST", "/v1/held/{id}/release", h.release_held),
    ("GET", "/v1/dead-letters", h.get_dead_letters),
    ("POST", "/v1/dead-letters/{id}/reroute", h.reroute_dead_letter),
    ("GET", "/healthz", h.healthz),
    ("GET", "/metrics", h.metrics),
)


async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this API."""
    return web.json_response(document())


def build_app(settings: Settings, *, store: Store | None = None, transports: bool = True) -> web.Application:
    """The application for ``settings`` (already checked). Raises ConfigError for unusable files.
    With ``transports``, the AMQP and folder transports the settings configure run beside it."""
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=settings.max_body_bytes + 1)
    quiet_malformed_http()
    app[SETTINGS] = settings
    app[CATALOG] = load_catalog()
    _preload()  # compile the schemas and derive the overlays now: no request pays for it
    app[REGISTRY] = load_registry(settings.registry_path)
    app[ACCOUNTS] = AccountFile(settings.accounts_path, check_interval_s=settings.accounts_check_interval_s)
    app[METRICS] = Metrics()
    app[CUSTODY] = CustodyKeys()
    app[REQUEST_IDS] = RequestIds()
    if settings.gateway_key is not None and settings.gateway_cert is not None:
        key = load_key(settings.gateway_key, settings.gateway_cert)
        app[AUDIT_KEY] = key
        if settings.sign_envelopes:
            app[GATEWAY_KEY] = key
    app.cleanup_ctx.append(_audit_checkpoints)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_get("/openapi.json", openapi_json)
    app[OUTBOX_SIGNAL] = Signal()
    app[PREFLIGHT] = Preflight(app[ACCOUNTS].current, app[CATALOG],
                               Limits(settings.single_limit, settings.annual_limit))
    # One thread: large bodies are few, and it keeps the compiled schemas to two copies (its
    # own and the event loop's, see xmlio.per_thread_cache), made before the first request.
    app[CHECKER] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cebgw-check")
    app[CHECKER].submit(_preload)  # its first task, so it compiles in the background before any check
    if settings.sign_threads and settings.sign_envelopes:  # else envelopes are signed on the loop
        app[SIGNER] = ThreadPoolExecutor(max_workers=settings.sign_threads, thread_name_prefix="cebgw-sign")
    app.on_cleanup.append(_stop_checker)
    if store is None:
        store = open_store(settings.store_url, commit_delay_s=settings.commit_delay_ms / 1000,
                           cache_mb=settings.cache_mb)
        app.on_cleanup.append(_close_store)
    app[STORE] = store
    # Everything a submission is checked against is the app's, fixed from here on: built once,
    # not per request (the accounts, which may change, are looked up per request).
    app[SUBMIT_DEPS] = pipeline.SubmitDeps(
        app[CATALOG], app[REGISTRY], settings.policy, store, pipeline.limits_of(settings),
        app.get(GATEWAY_KEY), editions=settings.accept_editions, times=pipeline.time_policy_of(settings),
        executor=app[CHECKER], signer=app.get(SIGNER), custody=app[CUSTODY], preflight=app[PREFLIGHT])
    if transports and transport_workers.configured(settings):
        app[TRANSPORT_METRICS] = TransportMetrics()
        app.cleanup_ctx.append(_transports)   # stopped before the store closes
    return app


async def _transports(app: web.Application) -> AsyncIterator[None]:
    ctx = transport_workers.Context(app[SETTINGS], app[STORE], app[CATALOG], app[REGISTRY],
                                    app[ACCOUNTS].current, app[TRANSPORT_METRICS], app[METRICS].receipt,
                                    app[OUTBOX_SIGNAL].wait)
    tasks: list[asyncio.Task[None]] = transport_workers.start(ctx)
    yield
    await transport_workers.stop(tasks)


def settle_heap() -> None:
    """For a serving process, once its app is built: move what start-up made (schemas,
    catalogue, registry, code) out of the cyclic collector's sight and let it run less often.
    A request allocates thousands of short-lived objects, so at CPython's default threshold
    a young-generation pass ran every few requests."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


log = logging.getLogger("gateway.audit")


async def _checkpoint(store: Store, key: KeyProvider, last: int | None) -> int | None:
    """One signed checkpoint unless the journal has not moved since entry ``last``; a failure is
    logged (the next round tries again), never raised into the service."""
    try:
        claim = await audit.checkpoint(store, key, unless_at=last)
    except GatewayError as exc:
        log.warning("audit checkpoint failed: %s [%s]", exc.message, exc.code)
        return last
    return claim.entry_id if claim is not None else last


async def _audit_checkpoints(app: web.Application) -> AsyncIterator[None]:
    """Sign a checkpoint of the audit chains every ``audit_checkpoint_s`` and once more on
    shutdown (before the store closes: cleanup contexts run before the cleanup hooks)."""
    key = app.get(AUDIT_KEY)
    if key is None:
        log.warning("no gateway_key/gateway_cert: audit checkpoints are not signed")
        yield
        return
    store, interval = app[STORE], app[SETTINGS].audit_checkpoint_s
    last: int | None = None

    async def every_interval() -> None:
        nonlocal last
        while True:
            await asyncio.sleep(interval)
            last = await _checkpoint(store, key, last)

    task = asyncio.create_task(every_interval()) if interval > 0 else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await _checkpoint(store, key, last)


async def _close_store(app: web.Application) -> None:
    await app[STORE].close()


def _preload() -> None:
    xsd.preload()
    overlay.preload()


async def _stop_checker(app: web.Application) -> None:
    app[CHECKER].shutdown(wait=True)
    if SIGNER in app:
        app[SIGNER].shutdown(wait=True)


class RunnerOptions(TypedDict):
    keepalive_timeout: float


def runner_options(settings: Settings) -> RunnerOptions:
    """Options for aiohttp's runner (``web.run_app``, ``web.AppRunner``): the header timeout.

    aiohttp closes a connection whose request head is incomplete (or that is idle between
    requests) when its keep-alive timer runs out, so that timer is the header timeout.
    """
    return {"keepalive_timeout": settings.header_timeout_s}


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS for the listener when configured; with ``tls_client_ca`` client certificates are
    requested (optional: bearer tokens keep working) and mapped to accounts by fingerprint."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    if settings.tls_client_ca is not None:
        ctx.load_verify_locations(cafile=str(settings.tls_client_ca))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx
