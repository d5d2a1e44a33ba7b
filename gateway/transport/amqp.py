"""The AMQP transport (RabbitMQ): the outbox's DXP envelopes out with publisher confirms,
customs' receipts in with manual acks.

Out: envelopes are leased from the outbox in batches (each sender's in its order), published
to ``exchange`` with the routing key of their receiver (``text/xml``, UTF-8, persistent,
``message_id`` = ``CopMsgId``, mandatory: a routing key no queue is bound to is returned, not
dropped), and acknowledged in the outbox only once the broker confirmed them, each sender's
confirmed prefix only.  What is not confirmed stays with the worker and is published again
once the broker is back: at least once, never lost; the receiver drops repeats by CopMsgId.

In: receipts (``DxpMsg``, ``DxpMsgSv`` or bare) are consumed from ``receipts_queue`` and run
through the same stages as ``POST /v1/customs/receipts``; a delivery is acked only after the
receipt is durably stored, or, for a message the stages refuse, after it was published (and
confirmed) to ``dead_letter_queue`` with the reason in its headers.  A store outage leaves
deliveries unacked (nacked for redelivery), so nothing is lost and nothing blocks the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import aiormq
from aiormq.abc import AbstractChannel, AbstractConnection, DeliveredMessage
from pamqp.commands import Basic

from ..errors import ConfigError, GatewayError
from ..transportconfig import AmqpSettings
from .common import (
    OutboxWorker,
    Outgoing,
    Refused,
    Retry,
    in_order_prefix,
    read_outgoing,
)

log = logging.getLogger("gateway.transport.amqp")
NAME = "amqp"
PERSISTENT = 2


def properties(cop_msg_id: str, headers: dict[str, object] | None = None) -> Basic.Properties:
    """The properties every envelope (and dead letter) is published with."""
    return Basic.Properties(content_type="text/xml", content_encoding="utf-8", delivery_mode=PERSISTENT,
                            message_id=cop_msg_id or None, headers=headers)  # type: ignore[arg-type]


async def declare(channel: AbstractChannel, s: AmqpSettings) -> None:
    """Declare (durable, idempotent) the exchange, the receipts and dead-letter queues, and the
    ``customs_queues`` bound to the exchange by their receivers' routing keys."""
    await channel.exchange_declare(s.exchange, exchange_type="direct", durable=True)
    for queue in (s.receipts_queue, s.dead_letter_queue):
        await channel.queue_declare(queue, durable=True)
    for receiver, queue in s.customs_queues.items():
        await channel.queue_declare(queue, durable=True)
        await channel.queue_bind(queue, s.exchange, routing_key=s.routing_key(receiver))


async def declare_now(s: AmqpSettings, *, timeout_s: float = 10.0) -> None:
    """Connect once and :func:`declare` (for a sandbox that must find its queues at once).
    Raises ConfigError naming the broker when it cannot be reached."""
    try:
        async with asyncio.timeout(timeout_s):
            conn = await aiormq.connect(s.url)
            try:
                await declare(await conn.channel(), s)
            finally:
                await conn.close()
    except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot declare the queues on {s.redacted_url()}: {exc or type(exc).__name__}",
                          field="url") from None


class _Lost(Exception):
    """The connection or channel went away under a publish; reconnect."""


class AmqpTransport(OutboxWorker[AmqpSettings]):
    """One broker connection carrying the outbound publisher and the inbound consumer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: list[Outgoing] = []   # leased and not yet acked in the outbox, in lease order
        self.confirmed: set[int] = set()     # ids in pending the broker confirmed
        self.connection: AbstractConnection | None = None
        self.metrics.connected[NAME] = False
        self.metrics.start(NAME, ("connects", "published", "confirmed", "unroutable", "consumed",
                                  "redelivered", "stored", "dead_lettered", "retried"))

    async def run(self) -> None:
        """Connect, work, and on any connection loss wait (growing up to ``reconnect_max_s``) and
        connect again, until cancelled."""
        backoff = 0.5
        while True:
            try:
                await self._session()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except (aiormq.exceptions.AMQPError, ConnectionError, OSError, _Lost, TimeoutError) as exc:
                log.warning("amqp: %s: %s; reconnecting in %.1f s (%d envelope(s) held)",
                            self.s.redacted_url(), exc or type(exc).__name__, backoff, len(self.pending))
            except GatewayError as exc:   # the store, mostly: what is held stays held
                log.error("amqp: %s [%s]; retrying in %.1f s", exc.message, exc.code, backoff)
            except Exception:  # the outermost shell of this worker: report, and keep it alive
                log.exception("amqp: transport failed; retrying in %.1f s", backoff)
            finally:
                self.metrics.connected[NAME] = False
                conn, self.connection = self.connection, None
                if conn is not None and not conn.is_closed:
                    with contextlib.suppress(Exception):  # it is going away either way
                        await conn.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.s.reconnect_max_s)

    async def _session(self) -> None:
        conn = self.connection = await aiormq.connect(self.s.url)
        out = await conn.channel(publisher_confirms=True, on_return_raises=True)
        if self.s.declare:
            await declare(out, self.s)
        self.metrics.connected[NAME] = True
        self.metrics.count(NAME, "connects")
        log.info("amqp: connected to %s", self.s.redacted_url())
        tasks = [asyncio.ensure_future(conn.closing)]
        if self.s.consume:
            inbound = await conn.channel(publisher_confirms=True, on_return_raises=True)
            await inbound.basic_qos(prefetch_count=self.s.prefetch)
            await inbound.basic_consume(self.s.receipts_queue, lambda m: self._on_receipt(inbound, m),
                                        no_ack=False)
        if self.s.publish:
            tasks.append(asyncio.ensure_future(self._publisher(out)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # raises what ended it
            raise _Lost("connection closed")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ outbound

    async def _publisher(self, channel: AbstractChannel) -> None:
        while True:
            if not self.pending:
                if not await self._lease():
                    await self._wait(self.s.poll_interval_s)
                    continue
            # What the broker confirmed is on its queue: send again only the rest, and ack each
            # sender's confirmed prefix (the rest of it once its gap is confirmed too).
            done, returned = await self.publish(channel, [o for o in self.pending
                                                          if o.item.id not in self.confirmed])
            self.confirmed |= done
            acked = in_order_prefix(self.pending, self.confirmed)
            if acked:
                await self.store.ack_outbox(acked)
                self.metrics.count(NAME, "confirmed", len(acked))
                gone = set(acked)
                self.pending = [o for o in self.pending if o.item.id not in gone]
                self.confirmed -= gone
            if returned:
                # No queue is bound for a receiver: hold everything (in order) and try again.
                log.error("amqp: exchange %r has no queue bound for routing key(s) %s; "
                          "holding %d envelope(s)",
                          self.s.exchange, sorted(returned), len(self.pending))
                await asyncio.sleep(self.s.reconnect_max_s / 4)
            elif self.pending:
                raise _Lost(f"{len(self.pending)} envelope(s) not confirmed")

    async def _lease(self) -> bool:
        """Lease the next batch into ``pending``; False if there was nothing to lease.

        The lease is written by the store even if this task is cancelled meanwhile (the
        connection went away: :meth:`_session` cancels the publisher): what it leased is then
        still taken into ``pending``, to be published on the next connection, rather than left
        leased to nobody, and with it every later envelope of its senders, until the lease ran out.
        """
        lease = asyncio.ensure_future(self.store.lease_outbox(self.s.batch, self.lease_timeout_s))
        try:
            items = await asyncio.shield(lease)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # a lease that failed leased nothing
                self.pending = read_outgoing(await lease, self.max_bytes)
            raise
        self.pending = read_outgoing(items, self.max_bytes)
        return bool(items)

    async def publish(self, channel: AbstractChannel, batch: Sequence[Outgoing]) -> tuple[set[int], set[str]]:
        """Publish ``batch`` in order, all awaiting their confirms at once; returns the ids the
        broker confirmed (for every receiver) and the routing keys it returned as unroutable."""
        async def one(o: Outgoing, key: str) -> tuple[int, bool, str | None]:
            try:
                await channel.basic_publish(o.item.envelope, exchange=self.s.exchange, routing_key=key,
                                            properties=properties(o.trans.cop_msg_id), mandatory=True,
                                            timeout=self.s.confirm_timeout_s)
            except aiormq.exceptions.PublishError:
                self.metrics.count(NAME, "unroutable")
                return o.item.id, False, key
            except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError) as exc:
                log.debug("amqp: envelope %s not confirmed: %r", o.item.id, exc)
                return o.item.id, False, None
            return o.item.id, True, None

        # Tasks start in creation order and aiormq writes each publish whole under a FIFO lock:
        # the broker sees the batch in lease order, so each sender's order holds on the queue.
        tasks = []
        for o in batch:
            for receiver in o.trans.receiver_ids or ("",):
                tasks.append(asyncio.ensure_future(one(o, self.s.routing_key(receiver))))
        self.metrics.count(NAME, "published", len(tasks))
        results = await asyncio.gather(*tasks)
        failed = {i for i, ok, _ in results if not ok}
        return {i for i, ok, _ in results if ok and i not in failed}, {k for _, _, k in results if k}

    # ------------------------------------------------------------ inbound

    async def _on_receipt(self, channel: AbstractChannel, message: DeliveredMessage) -> None:
        tag = message.delivery_tag or 0
        self.metrics.count(NAME, "consumed")
        if isinstance(message.delivery, Basic.Deliver) and message.delivery.redelivered:
            self.metrics.count(NAME, "redelivered")
        try:
            taken = await self.receipts.take(message.body)
        except Retry as exc:
            log.warning("amqp: receipt %s kept for later: %s", message.header.properties.message_id, exc)
            self.metrics.count(NAME, "retried")
            await asyncio.sleep(1.0)  # do not spin on a store that is down
            await channel.basic_nack(tag, requeue=True)
            return
        except Exception as exc:  # the outermost shell of this delivery: never block the queue on it
            log.exception("amqp: receipt %s failed", message.header.properties.message_id)
            taken = Refused("CEBGW-TRANSPORT-INTERNAL", f"{type(exc).__name__}: {exc}")
        if isinstance(taken, Refused):
            try:
                await self._dead_letter(channel, message, taken)
            except (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError) as exc:
                log.warning("amqp: receipt %s could not be dead-lettered (%r); requeued",
                            message.header.properties.message_id, exc)
                with contextlib.suppress(aiormq.exceptions.AMQPError, ConnectionError, OSError):
                    await channel.basic_nack(tag, requeue=True)
                return
        else:
            self.metrics.count(NAME, "stored")
        await channel.basic_ack(tag)

    async def _dead_letter(self, channel: AbstractChannel, message: DeliveredMessage, why: Refused) -> None:
        props = message.header.properties
        headers: dict[str, object] = dict(props.headers or {})
        headers.update({"x-cebgw-error-code": why.code, "x-cebgw-error": why.reason[:1000],
                        "x-cebgw-queue": self.s.receipts_queue})
        out = Basic.Properties(content_type=props.content_type or "text/xml",
                               content_encoding=props.content_encoding, delivery_mode=PERSISTENT,
                               message_id=props.message_id, headers=headers)  # type: ignore[arg-type]
        # Confirmed before the original is acked: a crash in between leaves a copy in both, never neither.
        await channel.basic_publish(message.body, exchange="", routing_key=self.s.dead_letter_queue,
                                    properties=out, mandatory=True, timeout=self.s.confirm_timeout_s)
        self.metrics.count(NAME, "dead_lettered")
        log.warning("amqp: receipt %s dead-lettered to %s: %s [%s]", props.message_id,
                    self.s.dead_letter_queue, why.reason, why.code)
