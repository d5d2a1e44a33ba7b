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
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import GatewayError, StoreError

T = TypeVar("T")

_BUSY_S = 0.05  # a commit this recent means requests are streaming in: worth waiting for more


@dataclass
class _Job(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    after_commit: Callable[[T], None] | None
    result: T | None = None
    error: BaseException | None = None


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
                     after_commit: Callable[[T], None] | None = None) -> T:
        """Run ``fn`` in the next group transaction; returns its result once committed.

        Raises what ``fn`` raised (its writes rolled back), StoreError if the commit
        failed or the writer is closed.
        """
        loop = asyncio.get_running_loop()
        job: _Job[T] = _Job(fn, loop, loop.create_future(), after_commit)
        with self._lock:
            if self._closed:
                raise StoreError("store is closed", code="CEBGW-STORE-CLOSED")
            self._queue.put(job)
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
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for job in batch:
                job.error = StoreError(f"cannot begin a write transaction: {exc}")
                self._resolve(job)
            return
        for job in batch:
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
                # SQLite rolled the whole transaction back (disk full, I/O error): the batch is lost.
                for other in batch:
                    other.error = other.error or StoreError("write transaction aborted by the database")
                    self._resolve(other)
                return
            if job.error is not None:
                conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for job in batch:
                job.error = StoreError(f"commit failed: {exc}")
        else:
            self.stats.batches += 1
            self.stats.jobs += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
        for job in batch:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():  # one wake-up per loop and batch, not one per job
            try:
                loop.call_soon_threadsafe(_settle_all, jobs)
            except RuntimeError:
                pass  # the caller's loop is closed: nobody is left to tell

    @staticmethod
    def _resolve(job: _Job[Any]) -> None:
        try:
            job.loop.call_soon_threadsafe(_settle, job)
        except RuntimeError:
            pass  # the caller's loop is closed: nobody is left to tell


def _settle_all(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        _settle(job)


def _settle(job: _Job[Any]) -> None:
    """On the caller's loop: run the commit hook, then resolve the future."""
    if job.error is None and job.after_commit is not None:
        job.after_commit(job.result)
    if job.future.done():
        return
    if job.error is not None:
        job.future.set_exception(job.error)
    else:
        job.future.set_result(job.result)
