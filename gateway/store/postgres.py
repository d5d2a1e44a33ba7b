"""The PostgreSQL store: several gateway nodes on one database.

The statements are :mod:`~gateway.store.sqlops`' and :mod:`~gateway.store.journal`'s, run on a
psycopg 3 connection through :class:`PgConn` (which speaks the few SQLite-isms they use in
PostgreSQL's dialect), so both stores keep one set of SQL and one behaviour; the schema is
:mod:`~gateway.store.pgschema`.  Calls run on pooled connections in worker threads (psycopg's
synchronous pool: the statement functions are synchronous; see docs/deploy.md for the measured
choice), each in its own transaction.

Across nodes:

* Every write that moves the audit journal, a sender's hash chain or the kept counts takes one
  transaction-level advisory lock of the store's schema first: the journal is one chain and each
  sender's chain is one chain, so their writers take turns, as SQLite's do at its file lock.  Each
  node groups the declarations waiting meanwhile into one transaction (group commit per node), so
  the turn is taken once per batch, not per message.
* Leasing the outbox takes no such lock: it locks each sender's oldest pending envelope with
  ``FOR UPDATE SKIP LOCKED`` and leases only senders it locked, so two nodes never hand out one
  envelope and a sender's envelopes go out in order.
* A delivery sends ``NOTIFY`` (committed with it); each node LISTENs, so a long poll on one node
  wakes when a receipt arrives through another.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from types import TracebackType
from typing import Any, TypeVar

from ..errors import GatewayError, StoreError
from . import (
    MAX_ID,
    AuditReport,
    CheckpointClaim,
    Clock,
    DeadLetter,
    DeclarationRef,
    HeldList,
    MailItem,
    MessageRecord,
    NewMessage,
    NewReceipt,
    OutboxItem,
    ParcelOutcome,
    ParcelVersion,
    PutResult,
    ReceiptResult,
    StoreMetrics,
    auditcheck,
    journal,
    parcelops,
    sqlops,
)
from .pgschema import LOCK_CLASS, migrate, schema_of

T = TypeVar("T")
log = logging.getLogger("gateway.store")

try:
    import psycopg
    import psycopg_pool
    from psycopg_pool import ConnectionPool
except ImportError:  # pragma: no cover - the optional extra is missing
    psycopg = None  # type: ignore[assignment]


# ---------------------------------------------------------------- the dialect


@lru_cache(maxsize=512)
def dialect(statement: str) -> str:
    """A statement of :mod:`sqlops`/:mod:`journal` in PostgreSQL's dialect: ``?`` parameters as
    ``%s``, ``INSERT OR IGNORE`` as ``ON CONFLICT DO NOTHING``, SQLite's two-argument ``MAX`` of
    the read-mark upsert as ``GREATEST``.  (The statements hold no ``?`` or ``%`` in literals.)"""
    # ``? IS NULL``: PostgreSQL cannot type a parameter from that alone (parcelops' optional tenant)
    out = statement.replace("%", "%%").replace("? IS NULL", "CAST(? AS TEXT) IS NULL").replace("?", "%s")
    if "INSERT OR IGNORE INTO" in out:
        out = out.replace("INSERT OR IGNORE INTO", "INSERT INTO") + " ON CONFLICT DO NOTHING"
    return out.replace("MAX(cursor, excluded.cursor)", "GREATEST(mailbox_ack.cursor, excluded.cursor)")


@lru_cache(maxsize=128)
def _copy_of(statement: str) -> tuple[str, int] | None:
    """``INSERT INTO t (a, b) VALUES (?, ?), (?, ?), …`` (sqlops' many rows per statement, good
    for SQLite) as ``COPY t (a, b) FROM STDIN`` and the values per row, else ``None``: psycopg
    parses a long statement anew each time (it caches short ones only), and a row sent by COPY
    costs a fraction of a row sent as a statement (measured: the store's CPU per declaration
    stored, 32 concurrent callers, fell from about 430 µs to about 220 µs, SQLite's level)."""
    head, sep, values = statement.partition(" VALUES ")
    if not sep or not head.startswith("INSERT INTO ") or "(" not in head or "), (" not in values:
        return None
    first = values[:values.index(")") + 1]
    if values != ", ".join([first] * (values.count("), (") + 1)):
        return None
    return f"COPY {head[len('INSERT INTO '):]} FROM STDIN", first.count("?")


class PgConn:
    """The part of :class:`sqlite3.Connection` the statement functions use, on a psycopg connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        copy = _copy_of(statement) if params else None
        if copy is not None:
            command, width = copy
            flat = list(params)
            cur = self._conn.cursor()
            with cur.copy(command) as sink:
                for at in range(0, len(flat), width):
                    sink.write_row(flat[at:at + width])
            return cur
        return self._conn.execute(dialect(statement), tuple(params) if params else None)

    def executemany(self, statement: str, rows: Any) -> Any:
        cur = self._conn.cursor()
        rows = [tuple(r) for r in rows]
        if rows:
            cur.executemany(dialect(statement), rows)
        return cur


def _sq(conn: Any) -> Any:
    """``conn`` as the statement functions' parameter type (they are typed for sqlite3)."""
    return PgConn(conn)


# ---------------------------------------------------------------- leasing across nodes

_LOCK_HEADS = """SELECT id, sender FROM outbox WHERE id = ANY(%s) AND acked_us IS NULL
    AND (lease_until_us IS NULL OR lease_until_us <= %s) ORDER BY id FOR UPDATE SKIP LOCKED"""
_LIVE = """SELECT DISTINCT sender FROM outbox
    WHERE sender = ANY(%s) AND acked_us IS NULL AND lease_until_us > %s"""
_TAKE = """WITH l AS (UPDATE outbox SET attempts = attempts + 1, lease_until_us = %s
        WHERE id = ANY(%s) AND acked_us IS NULL AND NOT EXISTS (SELECT 1 FROM outbox_hold h
            WHERE h.message_id = outbox.message_id AND h.released_us IS NULL)
        RETURNING id, message_id, envelope, attempts, envelope_head, envelope_tail)
    SELECT l.id, l.message_id, l.envelope, l.attempts, l.envelope_head, l.envelope_tail, m.data
    FROM l JOIN message m ON m.id = l.message_id ORDER BY l.id"""


def lease_outbox(conn: Any, limit: int, now_us: int, lease_us: int) -> list[OutboxItem]:
    """:func:`sqlops.lease_outbox` for several nodes: a sender is leased only by the transaction
    holding the row lock of its oldest pending envelope (others skip it), and only if none of its
    envelopes is out on a live lease (checked after the lock, on a fresh snapshot)."""
    if limit < 1:
        return []
    senders = sqlops._LEASABLE_SENDERS.format(held=sqlops._NOT_HELD.format(t="q"))
    candidates = [(s, first) for s, first in conn.execute(dialect(senders), (now_us,)) if first is not None]
    if not candidates:
        return []
    locked = conn.execute(_LOCK_HEADS, ([first for _, first in candidates], now_us)).fetchall()
    live = {s for (s,) in conn.execute(_LIVE, ([s for _, s in locked], now_us))}
    heads = [(first, sender) for first, sender in locked if sender not in live][:limit]
    if not heads:
        return []
    bound = heads[-1][0] if len(heads) == limit else MAX_ID
    ids: list[int] = []
    for _, sender in heads:
        ids += [i for (i,) in conn.execute(
            "SELECT id FROM outbox o WHERE sender = %s AND acked_us IS NULL AND id <= %s"
            f" {sqlops._NOT_HELD.format(t='o')} ORDER BY id LIMIT %s", (sender, bound, limit))]
    ids = sorted(ids)[:limit]
    rows = conn.execute(_TAKE, (now_us + lease_us, ids)).fetchall()
    return [OutboxItem(r[0], r[1], sqlops._envelope(r[2], r[4], r[5], r[6]), r[3]) for r in rows]


# ---------------------------------------------------------------- the store


class PostgresStore:
    """A :class:`~gateway.store.Store` in the schema a PostgreSQL URL's ``search_path`` names.

    Opening connects, creates the schema if needed and applies pending migrations (blocking
    briefly: do it at start-up).  ``pool_size``: connections (and worker threads) of this node;
    one more is kept for LISTEN.  Raises StoreError when the server cannot be reached or the
    schema is newer than this code.
    """

    def __init__(self, url: str, *, clock: Clock | None = None, pool_size: int = 8,
                 max_batch: int = 512) -> None:
        if psycopg is None:
            raise StoreError("the PostgreSQL store needs psycopg: pip install 'ceb-gateway[postgres]'")
        self._clock: Clock = clock or time.time
        self._url = url
        self._max_batch = max_batch
        try:  # one connection first: an unreachable server fails here at once, not after retries
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                migrate(conn)
                self._schema = schema_of(conn)
                (self._key,) = conn.execute("SELECT hashtext(%s)", (self._schema,)).fetchone() or (0,)
            self._pool: Any = ConnectionPool(url, min_size=min(2, pool_size), max_size=pool_size,
                                             kwargs={"autocommit": True}, open=False)
            self._pool.open(wait=True, timeout=15)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the PostgreSQL store: {_reason(exc)}") from exc
        except psycopg_pool.PoolTimeout as exc:
            self._pool.close()
            raise StoreError(f"cannot open the PostgreSQL store's connection pool: {_reason(exc)}") from exc
        self._channel = "cebgw_mail_" + hashlib.sha256(self._schema.encode()).hexdigest()[:20]
        # Envelopes queued on any node: customs' long-polls on every node wake on it.
        self._outbox_channel = "cebgw_outbox_" + hashlib.sha256(self._schema.encode()).hexdigest()[:20]
        self._outbox_event: asyncio.Event | None = None  # made on the loop, see outbox_wait
        self._threads = ThreadPoolExecutor(pool_size, thread_name_prefix="store-pg")
        self._pending: list[tuple[tuple[NewMessage, int, sqlops.Digested], asyncio.Future[PutResult]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._mail_events: dict[str, asyncio.Event] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening: asyncio.Event | None = None  # made on the loop, see _ensure_listener
        self._batches = self._jobs = 0
        self._closed = False

    # ------------------------------------------------------------ plumbing

    def _now_us(self) -> int:
        return round(self._clock() * 1_000_000)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed", code="CEBGW-STORE-CLOSED")

    def _in_thread(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._threads, fn)

    def _run_read(self, fn: Callable[[Any], T]) -> T:
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                return fn(_sq(conn))
        except psycopg.Error as exc:
            raise StoreError(f"read failed: {_reason(exc)}") from exc

    def _run_write(self, fn: Callable[[Any], T], *, serial: bool = True) -> T:
        """``fn`` in one transaction; ``serial``: after the store's write lock (journal, chains, counts)."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                if serial:
                    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, self._key))
                return fn(conn)
        except psycopg.Error as exc:
            raise StoreError(f"write failed: {_reason(exc)}") from exc

    async def _read(self, fn: Callable[[Any], T]) -> T:
        self._check_open()
        return await self._in_thread(lambda: self._run_read(fn))

    async def _write(self, fn: Callable[[Any], T], *, serial: bool = True) -> T:
        self._check_open()
        return await self._in_thread(lambda: self._run_write(fn, serial=serial))

    # ------------------------------------------------------------ declarations and outbox

    async def put_message(self, m: NewMessage) -> PutResult:
        """See :meth:`gateway.store.Store.put_message`; joins this node's next group commit."""
        self._check_open()
        future: asyncio.Future[PutResult] = asyncio.get_running_loop().create_future()
        self._pending.append(((m, self._now_us(), sqlops.digest(m)), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:self._max_batch], self._pending[self._max_batch:]
            items = [item for item, _ in batch]
            try:
                results: list[PutResult | BaseException] = await self._in_thread(
                    functools.partial(self._put, items))
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
                results = [exc] * len(batch)
            self._batches += 1
            self._jobs += len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _put(self, items: list[tuple[NewMessage, int, sqlops.Digested]]) -> list[PutResult | BaseException]:
        """One transaction for the batch; if it fails as a whole, each item in its own."""
        try:
            return list(self._run_write(lambda c: self._queued(c, journal.put_messages(_sq(c), items))))
        except (GatewayError, psycopg.Error, StoreError):
            pass
        out: list[PutResult | BaseException] = []
        for item in items:
            try:
                out.append(self._run_write(functools.partial(self._put_one_queued, item)))
            except GatewayError as exc:
                out.append(exc)
        return out

    @staticmethod
    def _put_one(item: tuple[NewMessage, int, sqlops.Digested], conn: Any) -> PutResult:
        return journal.put_message(_sq(conn), *item)

    def _put_one_queued(self, item: tuple[NewMessage, int, sqlops.Digested], conn: Any) -> PutResult:
        return self._queued(conn, self._put_one(item, conn))

    async def get_message(self, message_id: int, tenant: str) -> MessageRecord | None:
        """See :meth:`gateway.store.Store.get_message`."""
        return await self._read(lambda c: sqlops.get_message(c, message_id, tenant))

    async def lease_outbox(self, limit: int, visibility_timeout_s: float) -> list[OutboxItem]:
        """See :meth:`gateway.store.Store.lease_outbox`; ``FOR UPDATE SKIP LOCKED``, so nodes
        leasing at once get different senders."""
        now, lease = self._now_us(), round(visibility_timeout_s * 1_000_000)
        return await self._write(lambda c: lease_outbox(c, limit, now, lease), serial=False)

    async def ack_outbox(self, ids: Sequence[int]) -> int:
        """See :meth:`gateway.store.Store.ack_outbox`."""
        now, ids = self._now_us(), tuple(ids)
        return await self._write(lambda c: sqlops.ack_outbox(_sq(c), ids, now))

    async def outbox_depth(self) -> int:
        """See :meth:`gateway.store.Store.outbox_depth`."""
        return await self._read(sqlops.outbox_depth)

    # ------------------------------------------------------------ receipts

    async def find_declarations(self, message_type: str, keys: dict[str, str]) -> list[DeclarationRef]:
        """See :meth:`gateway.store.Store.find_declarations`; ValueError when ``keys`` is empty."""
        keys = dict(keys)
        return await self._read(lambda c: sqlops.find_declarations(c, message_type, keys))

    async def declaration(self, message_id: int) -> DeclarationRef | None:
        """See :meth:`gateway.store.Store.declaration`."""
        return await self._read(lambda c: sqlops.declaration(c, message_id))

    async def declarations_by_cop_msg_id(self, cop_msg_id: str) -> list[DeclarationRef]:
        """See :meth:`gateway.store.Store.declarations_by_cop_msg_id`."""
        return await self._read(lambda c: sqlops.declarations_by_cop_msg_id(c, cop_msg_id))

    async def find_by_cop_msg_id(self, cop_msg_id: str) -> DeclarationRef | None:
        """See :meth:`gateway.store.Store.find_by_cop_msg_id`."""
        return await self._read(lambda c: sqlops.find_by_cop_msg_id(c, cop_msg_id))

    def _queued(self, conn: Any, result: T) -> T:
        """NOTIFY every node (sent at commit) that the outbox may hold new envelopes."""
        conn.execute("SELECT pg_notify(%s, '')", (self._outbox_channel,))
        return result

    async def outbox_wait(self, timeout_s: float) -> bool:
        """See :meth:`gateway.store.Store.outbox_wait`; woken by NOTIFY from any node."""
        listening = await self._ensure_listener()  # first: a (re)connecting listener wakes everyone
        if self._outbox_event is None:
            self._outbox_event = asyncio.Event()
        event = self._outbox_event
        try:
            await asyncio.wait_for(event.wait(), timeout_s if listening.is_set() else min(timeout_s, 1.0))
        except TimeoutError:
            return False
        return True

    def _outbox_changed(self) -> None:
        if self._outbox_event is not None:
            self._outbox_event.set()
            self._outbox_event = asyncio.Event()

    def _delivered(self, conn: Any, result: ReceiptResult) -> ReceiptResult:
        """NOTIFY every node (sent at commit) that ``result``'s mailboxes have new mail."""
        for tenant in result.delivered_to:
            conn.execute("SELECT pg_notify(%s, %s)", (self._channel, tenant))
        return result

    def _wake(self, result: ReceiptResult) -> ReceiptResult:
        for tenant in result.delivered_to:
            event = self._mail_events.pop(tenant, None)
            if event is not None:
                event.set()
        return result

    async def put_receipt(self, r: NewReceipt) -> ReceiptResult:
        """See :meth:`gateway.store.Store.put_receipt`; wakes mailbox waiters on every node."""
        now = self._now_us()
        return self._wake(await self._write(
            lambda c: self._delivered(c, journal.put_receipt(_sq(c), r, now))))

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        """See :meth:`gateway.store.Store.dead_letters`."""
        return await self._read(lambda c: sqlops.dead_letters(c, limit))

    async def reroute_dead_letter(self, receipt_id: int, message_id: int,
                                  mailboxes: Sequence[str] = (), assign: Sequence[str] = ()) -> ReceiptResult:
        """See :meth:`gateway.store.Store.reroute_dead_letter`."""
        now, boxes, names = self._now_us(), tuple(mailboxes), tuple(assign)
        return self._wake(await self._write(lambda c: self._delivered(
            c, journal.reroute_dead_letter(_sq(c), receipt_id, message_id, boxes, now, names))))

    # ------------------------------------------------------------ mailboxes

    async def mailbox(self, tenant: str, after: int | None, limit: int) -> list[MailItem]:
        """See :meth:`gateway.store.Store.mailbox`."""
        return await self._read(lambda c: sqlops.mailbox(c, tenant, after, limit))

    async def mailbox_wait(self, tenant: str, after: int | None, limit: int, wait_s: float) -> list[MailItem]:
        """See :meth:`gateway.store.Store.mailbox_wait`; woken by NOTIFY from any node."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        listening = await self._ensure_listener()
        while True:
            event = self._mail_events.get(tenant) or self._mail_events.setdefault(tenant, asyncio.Event())
            items = await self.mailbox(tenant, after, limit)
            remaining = deadline - loop.time()
            if items or remaining <= 0:
                return items
            # Without a LISTEN connection (lost, reconnecting) look again each second.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining if listening.is_set() else min(remaining, 1.0))

    async def _ensure_listener(self) -> asyncio.Event:
        if self._listening is None:
            self._listening = asyncio.Event()
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen(self._listening))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listening.wait(), 5.0)
        return self._listening

    async def _listen(self, listening: asyncio.Event) -> None:
        """LISTEN on the store's channel and wake the tenants' waiters; reconnect when it drops."""
        while not self._closed:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {self._channel}")
                    await conn.execute(f"LISTEN {self._outbox_channel}")
                    listening.set()
                    for event in self._mail_events.values():
                        event.set()  # anything sent while no one listened: look again
                    self._outbox_changed()
                    async for note in conn.notifies():
                        if note.channel == self._outbox_channel:
                            self._outbox_changed()
                            continue
                        woken = self._mail_events.pop(note.payload, None)
                        if woken is not None:
                            woken.set()
            except psycopg.Error as exc:
                log.warning("store LISTEN connection lost (%s); reconnecting", _reason(exc))
            listening.clear()
            await asyncio.sleep(1.0)

    async def ack_mailbox(self, tenant: str, cursor: int) -> None:
        """See :meth:`gateway.store.Store.ack_mailbox`."""
        await self._write(lambda c: sqlops.ack_mailbox(_sq(c), tenant, cursor))

    # ------------------------------------------------------------ audit and metrics

    async def audit_verify(self, tenant: str | None = None,
                           claims: Sequence[tuple[str, CheckpointClaim]] = ()) -> AuditReport:
        """See :meth:`gateway.store.Store.audit_verify`.  PostgreSQL has no file to check, and its
        sequences skip numbers on rollback, so the end of the journal is vouched for by signed
        checkpoints only (SQLite's store also reads its counter)."""
        claims = tuple(claims)

        def audit(c: Any) -> AuditReport:
            checked, breaks, heads = sqlops.audit(c, tenant)
            check = auditcheck.verify(c, [claim.entry_id for _, claim in claims])
            chains = auditcheck.chain_links_at(c, [mid for _, cl in claims for mid, _ in cl.chains.values()])
            problems = [p for label, claim in claims
                        for p in auditcheck.compare(c, claim, label, check, chains)]
            problems += check.problems
            since = check.head[0] - max(cl.entry_id for _, cl in claims) if claims else None
            return AuditReport(checked, len(heads), tuple(breaks), heads, tuple(problems), check.entries,
                               check.head, len(claims), since)
        return await self._read(audit)

    async def audit_state(self) -> CheckpointClaim:
        """See :meth:`gateway.store.Store.audit_state`."""
        now = self._now_us()
        return await self._read(lambda c: journal.state(c, now))

    async def put_checkpoint(self, claim: CheckpointClaim, document: bytes) -> int:
        """See :meth:`gateway.store.Store.put_checkpoint`."""
        return await self._write(lambda c: journal.put_checkpoint(_sq(c), claim, document))

    async def checkpoints(self) -> list[tuple[int, int, bytes]]:
        """See :meth:`gateway.store.Store.checkpoints`."""
        return await self._read(journal.checkpoints)

    async def metrics(self) -> StoreMetrics:
        """See :meth:`gateway.store.Store.metrics`."""
        t = await self._read(sqlops.tally)
        return StoreMetrics(t.declarations, t.receipts, t.outbox_pending, sum(t.mailbox_unacked.values()),
                            t.dead_letters_open, self._batches, self._jobs)

    # ------------------------------------------------------------ parcels (issue 11)

    async def parcel_versions(self, ebp_code: str, order_no: str) -> list[ParcelVersion]:
        """See :meth:`gateway.store.Store.parcel_versions`."""
        return await self._read(lambda c: parcelops.parcel_versions(c, ebp_code, order_no))

    async def put_parcel_outcome(self, ebp_code: str, order_no: str, basis: int, findings: str) -> bool:
        """See :meth:`gateway.store.Store.put_parcel_outcome`."""
        now = self._now_us()
        return await self._write(
            lambda c: parcelops.put_parcel_outcome(_sq(c), ebp_code, order_no, basis, findings, now))

    async def parcel_outcome(self, ebp_code: str, order_no: str) -> ParcelOutcome | None:
        """See :meth:`gateway.store.Store.parcel_outcome`."""
        return await self._read(lambda c: parcelops.parcel_outcome(c, ebp_code, order_no))

    async def set_hold(self, message_id: int, held: bool, by: str = "") -> bool:
        """See :meth:`gateway.store.Store.set_hold`; under the write lock, so a lease on another
        node and the hold see each other."""
        now = self._now_us()
        def hold(c: Any) -> bool:
            # the envelope's row first: a lease on another node holds it while it takes it
            c.execute("SELECT 1 FROM outbox WHERE message_id = %s FOR UPDATE", (message_id,))
            return parcelops.set_hold(_sq(c), message_id, held, by, now)
        return await self._write(hold)

    async def held_lists(self, tenant: str | None, limit: int) -> list[HeldList]:
        """See :meth:`gateway.store.Store.held_lists`."""
        return await self._read(lambda c: parcelops.held_lists(c, tenant, limit))

    async def record_spending(self, buyer_id: str, year: int, ebp_code: str, order_no: str,
                              amount: str) -> None:
        """See :meth:`gateway.store.Store.record_spending`."""
        await self._write(
            lambda c: parcelops.record_spending(_sq(c), buyer_id, year, ebp_code, order_no, amount))

    async def buyer_spent(self, buyer_id: str, year: int, ebp_code: str, order_no: str) -> str:
        """See :meth:`gateway.store.Store.buyer_spent`."""
        return await self._read(lambda c: parcelops.buyer_spent(c, buyer_id, year, ebp_code, order_no))

    # ------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Commit what is queued, stop listening and close the pool; idempotent."""
        if self._closed:
            return
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
        await asyncio.to_thread(self._pool.close)
        self._threads.shutdown(wait=True)

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


_PASSWORD = re.compile(r"(password=|://[^:/@]*:)[^@\s]*")


def _reason(exc: BaseException) -> str:
    """The driver's message on one line, any password in it left out."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return _PASSWORD.sub(r"\1***", text)

