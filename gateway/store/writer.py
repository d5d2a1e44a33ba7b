"""Group commit: one thread owns the write connection and commits many writes with one sync.

Callers hand a job (a function of the connection) to :meth:`GroupCommitWriter.submit`
and await it.  The thread takes every job waiting in its queue (up to ``max_batch``),
runs each inside its own SAVEPOINT of one transaction, commits once and only then
resolves the callers' futures on their event loops.  A job that raises a
:class:`~gateway.errors.GatewayError` or :class:`sqlite3.Error` is rolled back to its
savepoint and fails alone; the rest of the batch commits.  If the commit fails, every
job of the batch fails with StoreError.  A job's ``after_commit`` hook runs on the
event loop after the commit even when its caller has stopped waiting, so
notifications (mailbox wake-ups) are never lost.

Several processes (``cebgw serve --workers N``) each have a writer on the same file.
SQLite lets one of them write at a time and makes the others poll with growing sleeps
(up to 100 ms each), which shows as second-long tail latencies.  Given a ``lock_path``,
the writer takes an exclusive ``flock`` on it around each transaction instead: a waiting
writer is woken by the kernel the moment the other commits, and meanwhile its queue
fills, so its next batch is larger.

A job may also say how to run it in bulk (:class:`Bulk`): consecutive jobs of a batch
with the same bulk function run as one call inside one SAVEPOINT, which costs a few
statements per table instead of several per job.  The bulk function answers each job
with its result or the GatewayError it fails with; if it raises instead, its savepoint
is rolled back and the jobs run one by one, so a bulk path can only ever be faster.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import GatewayError, StoreError

T = TypeVar("T")
A = TypeVar("A")

_BUSY_S = 0.05  # a commit this recent means requests are streaming in: worth waiting for more


BulkFn = Callable[[sqlite3.Connection, list[A]], list[T | GatewayError]]


@dataclass(frozen=True)
class Bulk(Generic[A, T]):
    """How to run a job together with others: ``run(conn, args)`` must do what running each
    job's own function in order would, and answer each (a result or a GatewayError)."""

    run: BulkFn[A, T]
    arg: A


@dataclass
class Work(Generic[T]):
    """One write of a batch: ``fn`` (or ``bulk``) runs in the transaction, which sets
    ``result`` or ``error``."""

    fn: Callable[[sqlite3.Connection], T]
    bulk: Bulk[Any, T] | None = None
    result: T | None = None
    error: BaseException | None = None


@dataclass
class _Job(Work[T]):
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[T] | None = None
    after_commit: Callable[[T], None] | None = None


@dataclass
class WriterStats:
    """Committed batches and the jobs they carried (their ratio is the average batch size)."""

    batches: int = 0
    jobs: int = 0


@dataclass
class GroupCommitWriter:
    """The single writer thread; build with an open autocommit connection, then :meth:`start`."""

    conn: sqlite3.Connection
    max_batch: int = 1024
    lock_path: str | None = None
    commit_delay_s: float = 0.0
    stats: WriterStats = field(default_factory=WriterStats)
    _queue: queue.SimpleQueue[_Job[Any] | None] = field(default_factory=queue.SimpleQueue)
    _thread: threading.Thread | None = None
    _closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _lock_fd: int | None = None
    _last_commit: float = 0.0

    def start(self) -> None:
        """Start the writer thread (once). Raises StoreError if ``lock_path`` cannot be opened."""
        if self.lock_path is not None:
            try:
                self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise StoreError(f"cannot open the write lock {self.lock_path}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    async def submit(self, fn: Callable[[sqlite3.Connection], T],
                     after_commit: Callable[[T], None] | None = None,
                     bulk: Bulk[Any, T] | None = None) -> T:
        """Run ``fn`` in the next group transaction; returns its result once committed.
        ``bulk``: the same work, for running together with similar jobs of the batch.

        Raises what ``fn`` raised (its writes rolled back), StoreError if the commit
        failed or the writer is closed.
        """
        loop = asyncio.get_running_loop()
        job: _Job[T] = _Job(fn, bulk, loop=loop, future=loop.create_future(), after_commit=after_commit)
        with self._lock:
            if self._closed:
                raise StoreError("store is closed", code="CEBGW-STORE-CLOSED")
            self._queue.put(job)
        assert job.future is not None
        return await job.future

    def close(self) -> None:
        """Stop accepting jobs, let queued jobs commit, and wait for the thread (blocking)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if self._thread is not None:
            self._thread.join()
        self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _run(self) -> None:
        batch: list[_Job[Any]] = []
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = self._gather(batch)
                stop = self._commit_batch(batch, stop) or stop
                self._last_commit = time.monotonic()
                batch = []
                if stop:
                    return
        finally:
            # Only reached with work left if the thread dies on a bug: fail everyone still
            # waiting rather than leave them hanging; the exception itself propagates.
            leftovers = batch + self._drain()
            for job in leftovers:
                if job.error is None:
                    job.error = StoreError("store writer stopped")
                self._resolve(job)

    def _gather(self, batch: list[_Job[Any]]) -> bool:
        """Add waiting jobs to ``batch``; True if the close marker came. Under sustained load
        (the previous commit ended less than ``_BUSY_S`` ago) wait up to ``commit_delay_s``
        for more, so one sync serves several requests; an isolated request never waits."""
        if self.commit_delay_s > 0 and time.monotonic() - self._last_commit < _BUSY_S:
            deadline = time.monotonic() + self.commit_delay_s
            while len(batch) < self.max_batch and (remaining := deadline - time.monotonic()) > 0:
                try:
                    nxt = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if nxt is None:
                    return True
                batch.append(nxt)
        return self._take_waiting(batch)

    def _drain(self) -> list[_Job[Any]]:
        with self._lock:
            self._closed = True
        out: list[_Job[Any]] = []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return out
            if job is not None:
                out.append(job)

    def _commit_batch(self, batch: list[_Job[Any]], stopping: bool) -> bool:
        """Commit ``batch`` under the cross-process lock; True if the close marker came.
        Jobs that arrived while this writer waited for the lock join the batch (unless the
        close marker already came): the other process's commit is time this batch can grow."""
        if self._lock_fd is None:
            self._transaction(batch)
            return False
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # blocks this thread only; the GIL is released
        try:
            stop = False if stopping else self._take_waiting(batch)
            self._transaction(batch)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        return stop

    def _take_waiting(self, batch: list[_Job[Any]]) -> bool:
        """Add the jobs queued right now to ``batch``; True if the close marker was among them."""
        while len(batch) < self.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                return False
            if nxt is None:
                return True
            batch.append(nxt)
        return False

    def _transaction(self, batch: list[_Job[Any]]) -> None:
        if run_transaction(self.conn, batch):
            self.stats.batches += 1
            self.stats.jobs += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
        for job in batch:
            if job.loop is not None:
                by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():  # one wake-up per loop and batch, not one per job
            try:
                loop.call_soon_threadsafe(_settle_all, jobs)
            except RuntimeError:
                pass  # the caller's loop is closed: nobody is left to tell

    @staticmethod
    def _resolve(job: _Job[Any]) -> None:
        if job.loop is None:
            return
        try:
            job.loop.call_soon_threadsafe(_settle, job)
        except RuntimeError:
            pass  # the caller's loop is closed: nobody is left to tell


def run_transaction(conn: sqlite3.Connection, batch: Sequence[Work[Any]]) -> bool:
    """Run ``batch`` in one transaction on ``conn`` (autocommit mode, the caller holding any
    cross-process lock), each job in its own savepoint or a run of them in bulk; True if it
    committed.  Sets each job's ``result`` or ``error``: a job's own GatewayError or SQLite
    error fails that job alone; a failed BEGIN or COMMIT, or a transaction SQLite aborted
    (disk full, I/O error), fails every job with StoreError."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        _fail_all(batch, StoreError(f"cannot begin a write transaction: {exc}"))
        return False
    for group in _groups(batch):
        ran = _run_bulk(conn, group) if len(group) > 1 else False
        if ran is None or (not ran and not all(_run_one(conn, job) for job in group)):
            _fail_all(batch, StoreError("write transaction aborted by the database"))
            return False
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        _fail_all(batch, StoreError(f"commit failed: {exc}"))
        return False
    return True


def _fail_all(batch: Sequence[Work[Any]], error: StoreError) -> None:
    for job in batch:
        job.result, job.error = None, error


def _run_one(conn: sqlite3.Connection, job: Work[Any]) -> bool:
    """Run one job in its own savepoint; False if the database aborted the transaction."""
    conn.execute("SAVEPOINT job")
    try:
        job.result = job.fn(conn)
    except GatewayError as exc:
        job.error = exc
    except sqlite3.Error as exc:
        job.error = StoreError(f"write failed: {exc}")
        job.error.__cause__ = exc
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if not conn.in_transaction:
        return False
    if job.error is not None:
        conn.execute("ROLLBACK TO job")
    conn.execute("RELEASE job")
    return True


def _run_bulk(conn: sqlite3.Connection, group: list[Work[Any]]) -> bool | None:
    """Run ``group`` through its bulk function: True if it did, False (nothing written) if
    it raised, so the caller runs the jobs one by one, None if the database aborted the
    transaction."""
    bulk = group[0].bulk
    assert bulk is not None
    conn.execute("SAVEPOINT bulk")
    try:
        outcomes = bulk.run(conn, [job.bulk.arg for job in group if job.bulk is not None])
        if len(outcomes) != len(group):
            raise StoreError(f"bulk write answered {len(outcomes)} of {len(group)} jobs")
    except (GatewayError, sqlite3.Error):
        if not conn.in_transaction:
            return None
        conn.execute("ROLLBACK TO bulk")
        conn.execute("RELEASE bulk")
        return False
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("RELEASE bulk")
    for job, outcome in zip(group, outcomes, strict=True):
        if isinstance(outcome, GatewayError):
            job.error = outcome
        else:
            job.result = outcome
    return True


def _groups(batch: Sequence[Work[Any]]) -> list[list[Work[Any]]]:
    """``batch`` cut into runs of consecutive jobs that share a bulk function (a job without
    one is a run of its own), in order."""
    out: list[list[Work[Any]]] = []
    for job in batch:
        last = out[-1][-1] if out else None
        if (job.bulk is not None and last is not None and last.bulk is not None
                and last.bulk.run is job.bulk.run):
            out[-1].append(job)
        else:
            out.append([job])
    return out


def _settle_all(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        _settle(job)


def _settle(job: _Job[Any]) -> None:
    """On the caller's loop: run the commit hook, then resolve the future."""
    if job.error is None and job.after_commit is not None:
        job.after_commit(job.result)
    if job.future is None or job.future.done():
        return
    if job.error is not None:
        job.future.set_exception(job.error)
    else:
        job.future.set_result(job.result)
