"""Start the configured transports beside a serving app, and stop them before the store closes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .. import pipeline
from ..accounts import Accounts
from ..catalog import Catalog
from ..config import Settings
from ..dsig import Registry
from ..store import Store
from .amqp import AmqpTransport
from .common import ReceiptTaker, TransportMetrics
from .folder import FolderTransport

log = logging.getLogger("gateway.transport")


@dataclass(frozen=True)
class Context:
    """What the transports look things up in (the serving app's own objects)."""

    settings: Settings
    store: Store
    catalog: Catalog
    registry: Registry
    accounts: Callable[[], Accounts]
    metrics: TransportMetrics
    on_record: Callable[[str, str], None]
    wait_for_outbox: Callable[[float], Awaitable[None]] | None = None


def configured(settings: Settings) -> bool:
    """Whether ``settings`` turn any transport on."""
    return settings.transport.amqp is not None or settings.transport.folder is not None


def start(ctx: Context) -> list[asyncio.Task[None]]:
    """One task per configured transport, running until cancelled."""
    s = ctx.settings
    limits = pipeline.Limits(s.max_body_bytes, s.max_depth)
    tasks: list[asyncio.Task[None]] = []

    def taker(customs_account: str) -> ReceiptTaker:
        return ReceiptTaker(ctx.catalog, ctx.registry, s.policy, ctx.store, ctx.accounts, limits,
                            s.require_customs_signature, customs_account, ctx.on_record)

    if s.transport.amqp is not None:
        a = s.transport.amqp
        t = AmqpTransport(a, ctx.store, taker(a.customs_account), ctx.metrics,
                          lease_timeout_s=s.lease_timeout_s, max_bytes=s.max_body_bytes,
                          wait_for_outbox=ctx.wait_for_outbox)
        tasks.append(asyncio.create_task(t.run(), name="transport-amqp"))
    if s.transport.folder is not None:
        f = s.transport.folder
        ft = FolderTransport(f, ctx.store, taker(f.customs_account), ctx.metrics,
                             lease_timeout_s=s.lease_timeout_s, max_bytes=s.max_body_bytes,
                             wait_for_outbox=ctx.wait_for_outbox)
        tasks.append(asyncio.create_task(ft.run(), name="transport-folder"))
    return tasks


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the transports and wait for them (what they held unacknowledged comes back later)."""
    for t in tasks:
        t.cancel()
    for t in tasks:
        try:
            await t
        except asyncio.CancelledError:
            pass
        except Exception:  # a transport that died is reported, and does not stop the shutdown
            log.exception("transport %s ended with an error", t.get_name())
