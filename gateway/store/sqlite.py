"""The SQLite store: WAL with ``synchronous=FULL``, one group-commit writer thread, pooled readers.

Writes go through :class:`~gateway.store.writer.GroupCommitWriter`, so many concurrent
requests share one sync and each returns only once its transaction is durable.
Reads run on separate read-only connections in a small thread pool (WAL lets them
proceed while the writer commits).  An in-memory store (``":memory:"``) has a single
connection, so its reads go through the writer too.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

from ..errors import StoreError
from . import (
    AuditProblem,
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
from .migrations import MIGRATIONS, Migration, migrate
from .writer import Bulk, FileLock, GroupCommitWriter

T = TypeVar("T")


def _snapshot_read(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(conn)`` on one read snapshot (BEGIN ... COMMIT); SQLite errors as StoreError."""
    try:
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"read failed: {exc}") from exc


def _connect(path: str, *, read_only: bool) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        if path != ":memory:":
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{path}: cannot switch to WAL journal mode (got {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        if read_only:
            conn.execute("PRAGMA query_only=ON")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {path}: {exc}") from exc
    return conn


def _audit(conn: sqlite3.Connection, tenant: str | None,
           claims: Sequence[tuple[str, CheckpointClaim]]) -> AuditReport:
    """The whole audit on one read snapshot: SQLite's integrity check, the sender chains, the
    journal, the claims of signed checkpoints, and entries deleted from the journal's end."""
    problems = auditcheck.integrity(conn)
    try:
        checked, breaks, heads = sqlops.audit(conn, tenant)
        check = auditcheck.verify(conn, [claim.entry_id for _, claim in claims])
        heads_claimed = [mid for _, claim in claims for mid, _ in claim.chains.values()]
        chains = auditcheck.chain_links_at(conn, heads_claimed)
        for label, claim in claims:
            problems += auditcheck.compare(conn, claim, label, check, chains)
        tail = auditcheck.tail_deleted(conn)
    except sqlite3.DatabaseError as exc:  # a damaged file: say so rather than fail the audit
        problems.append(AuditProblem("integrity", "database file", f"cannot be read through: {exc}"))
        return AuditReport(0, 0, (), {}, tuple(problems))
    problems += check.problems + ([tail] if tail is not None else [])
    since = check.head[0] - max(c.entry_id for _, c in claims) if claims else None
    return AuditReport(checked, len(heads), tuple(breaks), heads, tuple(problems), check.entries, check.head,
                       len(claims), since)


class _Checkpointer:
    """Copies the WAL into the database from its own thread, so commits never pay for it.

    The writer connection has automatic checkpoints off.  Every ``interval_s`` this
    thread runs a PASSIVE checkpoint (never blocks the writer); when the WAL holds more
    than ``restart_frames`` frames it runs a RESTART checkpoint, which waits for the
    current commit and lets the writer start the WAL file over instead of growing it.
    A RESTART holds SQLite's write lock while it copies, so it takes the writers' file
    lock (``lock_path``) first: writers then wait for it off their event loops.
    """

    def __init__(self, path: str, interval_s: float = 0.25, restart_frames: int = 20_000,
                 lock_path: str | None = None) -> None:
        self._lock = FileLock(lock_path) if lock_path is not None else None
        self._conn = _connect(path, read_only=False)
        self._interval = interval_s
        self._restart_frames = restart_frames
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                _, frames, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if frames > self._restart_frames:
                    with self._locked():
                        self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            except sqlite3.Error:
                continue  # busy or I/O trouble: the next round tries again; the WAL keeps the data

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return self._lock.held() if self._lock is not None else contextlib.nullcontext()

    def close(self) -> None:
        """Stop the thread, checkpoint what is left and close its connection (blocking)."""
        self._stop.set()
        self._thread.join()
        try:
            with self._locked():
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            pass  # the WAL stays and is replayed on the next open; nothing is lost
        self._conn.close()
        if self._lock is not None:
            self._lock.close()


class SqliteStore:
    """A :class:`~gateway.store.Store` on one SQLite file (or in memory).

    Opening creates the file if needed and applies pending migrations; it blocks
    briefly, so do it at start-up.  ``clock`` (seconds since the epoch) stamps
    receipt times and leases.  ``commit_delay_s``: under sustained load the writer waits
    this long for more writes to share a sync (see :class:`GroupCommitWriter`).  ``cache_mb``:
    the write connection's page cache in MiB (None: SQLite's default, 2 MB).  Raises
    StoreError if the file cannot be opened or its schema is newer than this code.
    """

    def __init__(self, path: str, *, clock: Clock | None = None, readers: int = 4,
                 max_batch: int = 1024, migrations: Sequence[Migration] = MIGRATIONS,
                 checkpoint_thread: bool = True, commit_delay_s: float = 0.0,
                 cache_mb: int | None = None) -> None:
        self._clock: Clock = clock or time.time
        self._path = path
        # Writes are journaled (migration 8); a store held at an older schema (upgrade tests) is not.
        self._ops: Any = journal if any(m.version == journal.MIGRATION for m in migrations) else sqlops
        self._memory = path == ":memory:"
        self._parcels = any(m.version == 10 for m in migrations)  # record guids, parcels, holds
        conn = _connect(path, read_only=False)
        try:
            if cache_mb is not None:
                conn.execute(f"PRAGMA cache_size=-{int(cache_mb) * 1024}")  # negative: KiB
            migrate(conn, migrations)
            # The writer runs each job in a savepoint, which keeps the original of every page it
            # changes in a sub-journal; SQLite spills that to a temporary file (created, written
            # and deleted per transaction) once it passes 64 KiB, which a group commit of a dozen
            # 12 KB messages always does.  In memory it costs a copy and no system calls (issue 14:
            # +5 % flat out), and it holds nothing durable.  Only here, after the migrations: a
            # group commit's temporary data is small, an index built over a large table is not,
            # nor are the sorts of the reading connections.
            conn.execute("PRAGMA temp_store=MEMORY")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot migrate store {path}: {exc}") from exc
        self._checkpointer: _Checkpointer | None = None
        lock_path = None if self._memory else path + "-writelock"
        if lock_path is not None and checkpoint_thread:
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = _Checkpointer(path, lock_path=lock_path)
        self._writer = GroupCommitWriter(conn, max_batch=max_batch, lock_path=lock_path,
                                         commit_delay_s=commit_delay_s)
        self._writer.start()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._reader_conns: list[sqlite3.Connection] = []
        self._pool: ThreadPoolExecutor | None = None
        if not self._memory:
            self._reader_conns = [_connect(path, read_only=True) for _ in range(readers)]
            for rc in self._reader_conns:
                self._readers.put(rc)
            self._pool = ThreadPoolExecutor(readers, thread_name_prefix="store-read")
        self._mail_events: dict[str, asyncio.Event] = {}
        self._closed = False
        self._local = threading.local()  # each thread's connection for lookups (_lookup)
        self._lookup_conns: list[sqlite3.Connection] = []
        self._lookup_guard = threading.Lock()

    # ------------------------------------------------------------ plumbing

    def _now_us(self) -> int:
        return round(self._clock() * 1_000_000)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed", code="CEBGW-STORE-CLOSED")

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()
        if self._pool is None:
            return await self._writer.submit(fn)
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run_read, fn)

    async def _lookup(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A read of a few rows by index (finding a declaration by its keys): here, on the
        calling thread, with a connection of that thread's own.  Handing it to a reader thread
        and back costs several times what such a read does (docs/performance.md); reads that
        may be long (lists, audits, bodies) go through :meth:`_read`."""
        self._check_open()
        if self._pool is None:  # in memory: every read goes through the writer's connection
            return await self._writer.submit(fn)
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self._path, read_only=True)
            with self._lookup_guard:
                self._lookup_conns.append(conn)
        return _snapshot_read(conn, fn)

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._readers.get()
        try:
            return _snapshot_read(conn, fn)
        finally:
            self._readers.put(conn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T],
                     after_commit: Callable[[T], None] | None = None, bulk: Bulk[Any, T] | None = None) -> T:
        self._check_open()
        return await self._writer.submit(fn, after_commit, bulk)

    def _mail_event(self, tenant: str) -> asyncio.Event:
        event = self._mail_events.get(tenant)
        if event is None:
            event = self._mail_events[tenant] = asyncio.Event()
        return event

    def _notify(self, result: ReceiptResult) -> None:
        for tenant in result.delivered_to:
            event = self._mail_events.pop(tenant, None)
            if event is not None:
                event.set()

    # ------------------------------------------------------------ declarations and outbox

    async def put_message(self, m: NewMessage) -> PutResult:
        """See :meth:`gateway.store.Store.put_message`."""
        now, d = self._now_us(), sqlops.digest(m)  # here, not while the writer holds the lock
        ops = self._ops
        return await self._write(lambda c: ops.put_message(c, m, now, d),
                                 bulk=Bulk(ops.put_messages, (m, now, d)))

    async def get_message(self, message_id: int, tenant: str) -> MessageRecord | None:
        """See :meth:`gateway.store.Store.get_message`."""
        return await self._read(lambda c: sqlops.get_message(c, message_id, tenant))

    async def lease_outbox(self, limit: int, visibility_timeout_s: float) -> list[OutboxItem]:
        """See :meth:`gateway.store.Store.lease_outbox`; the lease is durable like any write."""
        now, lease = self._now_us(), round(visibility_timeout_s * 1_000_000)
        return await self._write(lambda c: sqlops.lease_outbox(c, limit, now, lease, self._parcels))

    async def ack_outbox(self, ids: Sequence[int]) -> int:
        """See :meth:`gateway.store.Store.ack_outbox`; acknowledged declarations become ``sent``."""
        now, ids = self._now_us(), tuple(ids)
        return await self._write(lambda c: sqlops.ack_outbox(c, ids, now))

    async def outbox_depth(self) -> int:
        """See :meth:`gateway.store.Store.outbox_depth`."""
        return await self._read(sqlops.outbox_depth)

    # ------------------------------------------------------------ receipts

    async def find_declarations(self, message_type: str, keys: dict[str, str]) -> list[DeclarationRef]:
        """See :meth:`gateway.store.Store.find_declarations`; ValueError when ``keys`` is empty."""
        keys = dict(keys)
        return await self._lookup(lambda c: sqlops.find_declarations(c, message_type, keys, self._parcels))

    async def declaration(self, message_id: int) -> DeclarationRef | None:
        """See :meth:`gateway.store.Store.declaration`."""
        return await self._lookup(lambda c: sqlops.declaration(c, message_id))

    async def declarations_by_cop_msg_id(self, cop_msg_id: str) -> list[DeclarationRef]:
        """See :meth:`gateway.store.Store.declarations_by_cop_msg_id`."""
        return await self._lookup(lambda c: sqlops.declarations_by_cop_msg_id(c, cop_msg_id))

    async def find_by_cop_msg_id(self, cop_msg_id: str) -> DeclarationRef | None:
        """See :meth:`gateway.store.Store.find_by_cop_msg_id`."""
        return await self._lookup(lambda c: sqlops.find_by_cop_msg_id(c, cop_msg_id))

    async def put_receipt(self, r: NewReceipt) -> ReceiptResult:
        """See :meth:`gateway.store.Store.put_receipt`; wakes mailbox waiters once committed."""
        now = self._now_us()
        return await self._write(lambda c: self._ops.put_receipt(c, r, now), self._notify)

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        """See :meth:`gateway.store.Store.dead_letters`."""
        return await self._read(lambda c: sqlops.dead_letters(c, limit))

    async def reroute_dead_letter(self, receipt_id: int, message_id: int,
                                  mailboxes: Sequence[str] = (), assign: Sequence[str] = ()) -> ReceiptResult:
        """See :meth:`gateway.store.Store.reroute_dead_letter`."""
        now, boxes, names = self._now_us(), tuple(mailboxes), tuple(assign)
        return await self._write(
            lambda c: self._ops.reroute_dead_letter(c, receipt_id, message_id, boxes, now, names),
            self._notify)

    # ------------------------------------------------------------ mailboxes

    async def mailbox(self, tenant: str, after: int | None, limit: int) -> list[MailItem]:
        """See :meth:`gateway.store.Store.mailbox`."""
        return await self._read(lambda c: sqlops.mailbox(c, tenant, after, limit))

    async def outbox_wait(self, timeout_s: float) -> bool:
        """See :meth:`gateway.store.Store.outbox_wait`: other processes on the same file raise no
        event here, so this does not wait (the caller looks again within a second)."""
        return False

    async def mailbox_wait(self, tenant: str, after: int | None, limit: int, wait_s: float) -> list[MailItem]:
        """See :meth:`gateway.store.Store.mailbox_wait`; returns ``[]`` when ``wait_s`` passes.
        Deliveries by this store wake it at once, by another process within a second."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            event = self._mail_event(tenant)  # taken before reading, so no delivery slips between
            items = await self.mailbox(tenant, after, limit)
            remaining = deadline - loop.time()
            if items or remaining <= 0:
                return items
            try:
                # Deliveries by other processes on the same file raise no event here: look again
                # at least once a second (as the outbox long poll does).
                await asyncio.wait_for(event.wait(), min(remaining, 1.0))
            except TimeoutError:
                continue

    async def ack_mailbox(self, tenant: str, cursor: int) -> None:
        """See :meth:`gateway.store.Store.ack_mailbox`."""
        await self._write(lambda c: sqlops.ack_mailbox(c, tenant, cursor))

    # ------------------------------------------------------------ audit and metrics

    async def audit_verify(self, tenant: str | None = None,
                           claims: Sequence[tuple[str, CheckpointClaim]] = ()) -> AuditReport:
        """See :meth:`gateway.store.Store.audit_verify`; a damaged file is reported, not raised."""
        claims = tuple(claims)
        if self._memory:
            return await self._read(lambda c: _audit(c, tenant, claims))
        self._check_open()
        return await asyncio.to_thread(self._audit_alone, tenant, claims)

    def _audit_alone(self, tenant: str | None, claims: Sequence[tuple[str, CheckpointClaim]]) -> AuditReport:
        """The audit on a connection of its own: on a damaged file even the end of a read
        transaction can fail, and the pooled readers must not be left in that state."""
        try:
            conn = _connect(self._path, read_only=True)
        except StoreError as exc:
            return AuditReport(0, 0, (), {}, (AuditProblem("integrity", "database file", exc.message),))
        try:
            conn.execute("BEGIN")
            return _audit(conn, tenant, claims)
        except sqlite3.Error as exc:
            return AuditReport(0, 0, (), {}, (AuditProblem("integrity", "database file", f"{exc}"),))
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            conn.close()

    async def audit_state(self) -> CheckpointClaim:
        """See :meth:`gateway.store.Store.audit_state`."""
        now = self._now_us()
        return await self._read(lambda c: journal.state(c, now))

    async def put_checkpoint(self, claim: CheckpointClaim, document: bytes) -> int:
        """See :meth:`gateway.store.Store.put_checkpoint`."""
        return await self._write(lambda c: journal.put_checkpoint(c, claim, document))

    async def checkpoints(self) -> list[tuple[int, int, bytes]]:
        """See :meth:`gateway.store.Store.checkpoints`."""
        return await self._read(journal.checkpoints)

    async def metrics(self) -> StoreMetrics:
        """See :meth:`gateway.store.Store.metrics`."""
        def q(c: sqlite3.Connection) -> StoreMetrics:
            t = sqlops.tally(c)  # kept by triggers: a few rows, not a count of every row
            stats = self._writer.stats
            return StoreMetrics(t.declarations, t.receipts, t.outbox_pending, sum(t.mailbox_unacked.values()),
                                t.dead_letters_open, stats.batches, stats.jobs)
        return await self._read(q)

    # ------------------------------------------------------------ parcels

    async def parcel_versions(self, ebp_code: str, order_no: str) -> list[ParcelVersion]:
        """See :meth:`gateway.store.Store.parcel_versions`."""
        return await self._read(lambda c: parcelops.parcel_versions(c, ebp_code, order_no))

    async def put_parcel_outcome(self, ebp_code: str, order_no: str, basis: int, findings: str) -> bool:
        """See :meth:`gateway.store.Store.put_parcel_outcome`."""
        now = self._now_us()
        return await self._write(
            lambda c: parcelops.put_parcel_outcome(c, ebp_code, order_no, basis, findings, now))

    async def parcel_outcome(self, ebp_code: str, order_no: str) -> ParcelOutcome | None:
        """See :meth:`gateway.store.Store.parcel_outcome`."""
        return await self._read(lambda c: parcelops.parcel_outcome(c, ebp_code, order_no))

    async def set_hold(self, message_id: int, held: bool, by: str = "") -> bool:
        """See :meth:`gateway.store.Store.set_hold`."""
        now = self._now_us()
        return await self._write(lambda c: parcelops.set_hold(c, message_id, held, by, now))

    async def held_lists(self, tenant: str | None, limit: int) -> list[HeldList]:
        """See :meth:`gateway.store.Store.held_lists`."""
        return await self._read(lambda c: parcelops.held_lists(c, tenant, limit))

    async def record_spending(self, buyer_id: str, year: int, ebp_code: str, order_no: str,
                              amount: str) -> None:
        """See :meth:`gateway.store.Store.record_spending`."""
        await self._write(lambda c: parcelops.record_spending(c, buyer_id, year, ebp_code, order_no, amount))

    async def buyer_spent(self, buyer_id: str, year: int, ebp_code: str, order_no: str) -> str:
        """See :meth:`gateway.store.Store.buyer_spent`."""
        return await self._read(lambda c: parcelops.buyer_spent(c, buyer_id, year, ebp_code, order_no))

    # ------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Commit what is queued, then close every connection; idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._writer.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for rc in self._reader_conns:
            rc.close()
        with self._lookup_guard:
            for lc in self._lookup_conns:
                lc.close()
            self._lookup_conns.clear()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.close)

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
