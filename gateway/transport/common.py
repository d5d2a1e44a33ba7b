"""What every transport shares: the receipt stages, the outbox's envelopes read for routing,
the counters for ``/metrics``."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .. import pipeline
from ..accounts import Accounts
from ..catalog import Catalog
from ..dsig import Policy, Registry
from ..envelope import TransInfo, trans_info
from ..errors import ConfigError, GatewayError, StoreError, register
from ..store import OutboxItem, Store
from ..xmlio import parse

log = logging.getLogger("gateway.transport")

register("CEBGW-TRANSPORT-INTERNAL", 500, 2, "-3999", "the transport failed on this message",
         "传输通道处理该报文失败")
register("CEBGW-TRANSPORT-CUSTOMS-ACCOUNT", 500, 2, "-3999", "the transport's customs account is missing",
         "传输通道配置的海关账户不存在")

EVENTS = ("connects", "published", "confirmed", "unroutable", "consumed", "redelivered", "stored",
          "dead_lettered", "retried", "written", "read")


@dataclass
class TransportMetrics:
    """Counters per transport and whether each broker connection is up; one instance per app."""

    counts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    connected: dict[str, bool] = field(default_factory=dict)

    def count(self, transport: str, event: str, n: int = 1) -> None:
        self.counts[(transport, event)] += n

    def start(self, transport: str, events: Sequence[str]) -> None:
        """Show ``events`` of ``transport`` from the start (at 0), so a scrape finds them all."""
        for e in events:
            self.counts[(transport, e)] += 0

    def render(self) -> list[str]:
        """Prometheus lines: ``cebgw_transport_<event>_total{transport=…}`` and
        ``cebgw_transport_connected{transport=…}``."""
        out: list[str] = []
        names = sorted({t for t, _ in self.counts} | set(self.connected))
        for event in EVENTS:
            rows = [(t, self.counts.get((t, event), 0)) for t in names if (t, event) in self.counts]
            if not rows:
                continue
            name = f"cebgw_transport_{event}_total"
            out.append(f"# HELP {name} Transport messages {event.replace('_', ' ')}, this process.\n"
                       f"# TYPE {name} counter")
            out += [f'{name}{{transport="{t}"}} {n}' for t, n in rows]
        if self.connected:
            out.append("# HELP cebgw_transport_connected 1 while the transport's broker connection is up.\n"
                       "# TYPE cebgw_transport_connected gauge")
            out += [f'cebgw_transport_connected{{transport="{t}"}} {int(up)}'
                    for t, up in sorted(self.connected.items())]
        return out


@dataclass(frozen=True)
class Outgoing:
    """An outbox envelope with the routing header read from it."""

    item: OutboxItem
    trans: TransInfo


def read_outgoing(items: Sequence[OutboxItem], max_bytes: int) -> list[Outgoing]:
    """The envelopes with their headers, in order.  The outbox holds only envelopes this gateway
    built and checked, so one that cannot be read is a damaged store: it is logged and left
    leased (it comes back after the lease, and is logged again) rather than sent or dropped."""
    out: list[Outgoing] = []
    for item in items:
        try:
            trans = trans_info(parse(item.envelope, source=f"outbox {item.id}", max_bytes=max_bytes))
        except GatewayError as exc:
            log.error("transport: outbox envelope %s (message %s) is unreadable: %s [%s]",
                      item.id, item.message_id, exc.message, exc.code)
            continue
        out.append(Outgoing(item, trans))
    return out


def in_order_prefix(batch: Sequence[Outgoing], done: Iterable[int]) -> list[int]:
    """The ids of ``batch`` (lease order) that may be acknowledged: for each sender, the items
    before its first one not ``done``, so a failed envelope is re-sent before its successors
    are taken as delivered."""
    ok = set(done)
    stopped: set[str] = set()
    out: list[int] = []
    for o in batch:
        sender = o.trans.sender_id
        if sender in stopped or o.item.id not in ok:
            stopped.add(sender)
            continue
        out.append(o.item.id)
    return out


@dataclass(frozen=True)
class Refused:
    """A receipt message the stages cannot take at all (its error code and why): it goes
    wherever the transport puts poison (a dead-letter queue, a ``failed/`` folder)."""

    code: str
    reason: str


@dataclass(frozen=True)
class Taken:
    """A receipt message stored: its type and each record's outcome."""

    message_type: str
    outcomes: tuple[str, ...]


class Retry(Exception):
    """The message could not be taken for a reason outside it (store, configuration): keep it
    and try again later."""


@dataclass(frozen=True)
class ReceiptTaker:
    """Runs the receipt stages of ``POST /v1/customs/receipts`` for the transports, as the
    customs account ``customs_account``."""

    catalog: Catalog
    registry: Registry
    policy: Policy
    store: Store
    accounts: Callable[[], Accounts]
    limits: pipeline.Limits
    require_signature: bool
    customs_account: str
    on_record: Callable[[str, str], None] = lambda message_type, outcome: None

    async def take(self, data: bytes) -> Taken | Refused:
        """Store the receipt message ``data`` (each record delivered or filed as a dead letter),
        or say why it cannot be taken.  Raises :class:`Retry` when the fault is not the
        message's (the store is unavailable, the customs account is missing)."""
        accounts = self.accounts()
        customs = accounts.by_name(self.customs_account)
        if customs is None or not customs.is_customs:
            log.error("transport: customs account %r is missing or has no customs role", self.customs_account)
            raise Retry(ConfigError(f"customs account {self.customs_account!r} is missing",
                                    code="CEBGW-TRANSPORT-CUSTOMS-ACCOUNT"))
        deps = pipeline.ReceiptDeps(self.catalog, self.registry, self.policy, self.store, self.store,
                                    accounts, self.limits, self.require_signature)
        try:
            mtype, delivered = await pipeline.receive(data, deps, customs)
        except (StoreError, ConfigError) as exc:
            raise Retry(exc) from exc
        except GatewayError as exc:
            return Refused(exc.code, exc.message)
        outcomes = []
        for d in delivered:
            r = d.result
            outcome = "duplicate" if r.duplicate else "dead_letter" if r.dead_letter else "delivered"
            self.on_record(mtype, outcome)
            outcomes.append(outcome)
        return Taken(mtype, tuple(outcomes))


S = TypeVar("S")


class OutboxWorker(Generic[S]):
    """What every transport worker holds: its settings ``s``, the store whose outbox it empties,
    the receipt stages it feeds, its counters, and how long a lease lasts and a message may be."""

    def __init__(self, settings: S, store: Store, receipts: ReceiptTaker, metrics: TransportMetrics,
                 *, lease_timeout_s: float, max_bytes: int,
                 wait_for_outbox: Callable[[float], Awaitable[None]] | None = None) -> None:
        self.s = settings
        self.store = store
        self.receipts = receipts
        self.metrics = metrics
        self.lease_timeout_s = lease_timeout_s
        self.max_bytes = max_bytes
        self._wait = wait_for_outbox or asyncio.sleep
