"""Typed keys for the state the app and each request carry (no module globals)."""

from __future__ import annotations

import asyncio
import itertools
import os
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from ..accounts import Account, AccountFile, CustodyKeys
from ..catalog import Catalog
from ..config import Settings
from ..dsig import KeyProvider, Registry
from ..pipeline import SubmitDeps
from ..preflight import Preflight
from ..store import Store
from ..transport.common import TransportMetrics
from .metrics import Metrics


class RequestIds:
    """Request ids unique across processes and restarts: a random prefix per process and a
    counter, so a request costs no call into the kernel's random source (which, at thousands
    of requests per second, showed up in profiles)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):016x}"


class Signal:
    """Wakes long-polls in this process when something new is queued (other processes poll)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Return when notified or after ``timeout`` seconds, whichever is first."""
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass


SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
ACCOUNTS = web.AppKey("accounts", AccountFile)
REGISTRY = web.AppKey("registry", Registry)
CATALOG = web.AppKey("catalog", Catalog)
GATEWAY_KEY = web.AppKey("gateway_key", KeyProvider)  # present only when envelopes are signed
AUDIT_KEY = web.AppKey("audit_key", KeyProvider)      # signs audit checkpoints; absent without gateway_key
METRICS = web.AppKey("metrics", Metrics)
OUTBOX_SIGNAL = web.AppKey("outbox_signal", Signal)
# The one thread that parses and checks large bodies off the event loop (pipeline.off_loop).
CHECKER = web.AppKey("checker", ThreadPoolExecutor)
# The threads that sign DXP envelopes (sign_envelopes with sign_threads > 0; absent otherwise).
SIGNER = web.AppKey("signer", ThreadPoolExecutor)
CUSTODY = web.AppKey("custody", CustodyKeys)  # the keys accounts let the gateway sign with
TRANSPORT_METRICS = web.AppKey("transport_metrics", TransportMetrics)  # present when transports run
PREFLIGHT = web.AppKey("preflight", Preflight)  # the three-order comparison before customs
SUBMIT_DEPS = web.AppKey("submit_deps", SubmitDeps)  # what a submission is checked against: the app's own

ACCOUNT = web.RequestKey("account", Account)
REQUEST_ID = web.RequestKey("request_id", str)
REQUEST_IDS = web.AppKey("request_ids", RequestIds)
