"""Group commit on the event loop: many writes share one transaction and one sync.

Callers hand a job (a function of the connection) to :meth:`GroupCommitWriter.submit`
and await it.  A flush task on the caller's event loop takes every job waiting (up to
``max_batch``), runs each inside its own SAVEPOINT of one transaction, and hands only
the COMMIT (the WAL write and the sync) to a helper thread; the callers' futures resolve
once it is durable.  A job that raises a :class:`~gateway.errors.GatewayError` or
:class:`sqlite3.Error` is rolled back to its savepoint and fails alone; the rest of the
batch commits.  If the commit fails, every job of the batch fails with StoreError.  A
job's ``after_commit`` hook runs after the commit even when its caller has stopped
waiting, so notifications (mailbox wake-ups) are never lost.

Why the statements run on the loop and not on a writer thread: a thread running them
takes and hands back the GIL at every statement, and the request thread paid for it —
measured in process with 32 concurrent submitters, about 145 µs more CPU per submission
on the request thread than with an idle thread, about 30 % of everything a submission
costs.  On the loop, a batch's statements take a fraction of a millisecond (the bulk path
below), and the thread is woken once per batch, for the part that waits on the disk.

Several processes (``cebgw serve --workers N``) each have a writer on the same file.
SQLite lets one of them write at a time and makes the others poll with growing sleeps
(up to 100 ms each), which shows as second-long tail latencies.  Given a ``lock_path``,
the writer takes an exclusive ``flock`` on it around each transaction instead, waiting
for it (when another process holds it) on the helper thread, never on the loop: the
kernel wakes it the moment the other commits, and writes queued meanwhile join the batch.

A job may also say how to run it in bulk (:class:`Bulk`): consecutive jobs of a batch
with the same bulk function run as one call inside one SAVEPOINT, which costs a few
statements per table instead of several per job.  The bulk function answers each job
with its result or the GatewayError it fails with; if it raises instead, its savepoint
is rolled back and the jobs run one by one, so a bulk path can only ever be faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import GatewayError, StoreError

T = TypeVar("T")
A = TypeVar("A")
log = logging.getLogger("gateway.store")

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
    future: asyncio.Future[T] | None = None
    after_commit: Callable[[T], None] | None = None


class FileLock:
    """An exclusive ``flock`` on ``path`` (created 0600), the turn-taking of every writer of one
    database: the group-commit writers of all processes and the checkpointer's RESTART."""

    def __init__(self, path: str) -> None:
        try:
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open the write lock {path}: {exc}") from exc

    def acquire(self, *, wait: bool = True) -> bool:
        """Take the lock (blocking unless ``wait`` is false); False if it is held elsewhere."""
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """The lock for the duration of a ``with`` block (blocking)."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class WriterStats:
    """Committed batches and the jobs they carried (their ratio is the average batch size)."""

    batches: int = 0
    jobs: int = 0


@dataclass
class GroupCommitWriter:
    """The write connection's owner; build with an open autocommit connection, then :meth:`start`.

    It serves one event loop at a time (the first to submit; another may take over once
    nothing is pending).  ``commit_delay_s``: under sustained load (the previous commit
    ended less than 50 ms ago) a batch waits this long for more writes to share its sync;
    an isolated write never waits.
    """

    conn: sqlite3.Connection
    max_batch: int = 1024
    lock_path: str | None = None
    commit_delay_s: float = 0.0
    stats: WriterStats = field(default_factory=WriterStats)
    _pending: list[_Job[Any]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _flusher: asyncio.Task[None] | None = None
    _pool: ThreadPoolExecutor | None = None
    _closed: bool = False
    _lock: FileLock | None = None
    _last_commit: float = 0.0

    def start(self) -> None:
        """Open the lock file and the helper thread. Raises StoreError if ``lock_path`` cannot be opened."""
        if self.lock_path is not None:
            self._lock = FileLock(self.lock_path)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="store-commit")

    async def submit(self, fn: Callable[[sqlite3.Connection], T],
                     after_commit: Callable[[T], None] | None = None,
                     bulk: Bulk[Any, T] | None = None) -> T:
        """Run ``fn`` in the next group transaction; returns its result once committed.
        ``bulk``: the same work, for running together with similar jobs of the batch.

        Raises what ``fn`` raised (its writes rolled back), StoreError if the commit
        failed or the writer is closed.
        """
        if self._closed or self._pool is None:
            raise StoreError("store is closed", code="CEBGW-STORE-CLOSED")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._pending or (self._flusher is not None and not self._flusher.done()):
                raise StoreError("the store is busy on another event loop")
            self._loop = loop
        job: _Job[T] = _Job(fn, bulk, future=loop.create_future(), after_commit=after_commit)
        self._pending.append(job)
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        assert job.future is not None
        return await job.future

    async def close(self) -> None:
        """Stop accepting jobs, commit what is queued, then close the connection."""
        if self._closed:
            return
        self._closed = True
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            if flusher.get_loop() is asyncio.get_running_loop():
                await flusher
            else:
                _fail_all(self._pending, StoreError("store closed from another event loop"))
                self._settle_all(self._pending)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.conn.close()
        if self._lock is not None:
            self._lock.close()

    async def _flush(self) -> None:
        """Commit batches until nothing is pending."""
        while self._pending:
            if self.commit_delay_s > 0 and time.monotonic() - self._last_commit < _BUSY_S:
                await asyncio.sleep(self.commit_delay_s)
            else:
                await asyncio.sleep(0)  # writes submitted in this turn of the loop join the batch
            batch: list[_Job[Any]] = []
            try:
                await self._take_lock()
                released = False
                try:
                    batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                    committed = False
                    if _begin_and_run(self.conn, batch):
                        commit = self._commit(batch)
                        released = True  # the helper thread lets the lock go as soon as COMMIT returns
                        committed = await commit
                finally:
                    if not released:
                        self._release_lock()
            except BaseException as exc:  # cancelled (the loop is stopping) or a bug: nobody may hang
                _fail_all(batch + self._pending, StoreError(f"store writer stopped: {type(exc).__name__}"))
                self._settle_all(batch + self._pending)
                self._pending = []
                raise
            self._last_commit = time.monotonic()
            if committed:
                self.stats.batches += 1
                self.stats.jobs += len(batch)
            self._settle_all(batch)

    async def _take_lock(self) -> None:
        if self._lock is not None and not self._lock.acquire(wait=False):
            # another process is committing: wait off the loop
            await asyncio.get_running_loop().run_in_executor(self._pool, self._lock.acquire)

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _commit(self, batch: list[_Job[Any]]) -> asyncio.Future[bool]:
        """COMMIT on the helper thread, which then releases the write lock itself: the other
        processes' writers get their turn when the data is durable, not when this loop next
        gets round to it (a few requests' checking later, under load)."""
        return asyncio.get_running_loop().run_in_executor(self._pool, _commit_releasing, self.conn, batch,
                                                          self._lock)

    @staticmethod
    def _settle_all(jobs: list[_Job[Any]]) -> None:
        for job in jobs:
            _settle(job)


def run_transaction(conn: sqlite3.Connection, batch: Sequence[Work[Any]]) -> bool:
    """Run ``batch`` in one transaction on ``conn`` (autocommit mode, the caller holding any
    cross-process lock), each job in its own savepoint or a run of them in bulk; True if it
    committed.  Sets each job's ``result`` or ``error``: a job's own GatewayError or SQLite
    error fails that job alone; a failed BEGIN or COMMIT, or a transaction SQLite aborted
    (disk full, I/O error), fails every job with StoreError."""
    return _begin_and_run(conn, batch) and _commit(conn, batch)


class _Aborted(Exception):
    """SQLite rolled the whole transaction back (disk full, I/O error): nothing of it stands."""


def _begin_and_run(conn: sqlite3.Connection, batch: Sequence[Work[Any]]) -> bool:
    """BEGIN, then run every job of ``batch``: a run of jobs sharing a bulk function in bulk,
    or one by one if the bulk write refused them.  True: the transaction is open, each job's
    ``result`` or ``error`` set.  False: nothing is open and every job failed with StoreError
    (the transaction could not begin, or SQLite aborted it)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        _fail_all(batch, StoreError(f"cannot begin a write transaction: {exc}"))
        return False
    try:
        for group in _groups(batch):
            if len(group) > 1 and _run_bulk(conn, group):
                continue
            for job in group:
                _run_one(conn, job)
    except _Aborted:
        _fail_all(batch, StoreError("write transaction aborted by the database"))
        return False
    return True


def _commit(conn: sqlite3.Connection, batch: Sequence[Work[Any]]) -> bool:
    """COMMIT what :func:`_begin_and_run` began; False (every job failed) if it could not."""
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        _fail_all(batch, StoreError(f"commit failed: {exc}"))
        return False
    return True


def _commit_releasing(conn: sqlite3.Connection, batch: Sequence[Work[Any]], lock: FileLock | None) -> bool:
    """:func:`_commit`, then the write lock released (when there is one), whatever happened."""
    try:
        return _commit(conn, batch)
    finally:
        if lock is not None:
            lock.release()


def _fail_all(batch: Sequence[Work[Any]], error: StoreError) -> None:
    for job in batch:
        job.result, job.error = None, error


def _run_one(conn: sqlite3.Connection, job: Work[Any]) -> None:
    """Run one job in its own savepoint, setting its ``result`` or ``error``. Raises _Aborted
    if the database aborted the transaction."""
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
        raise _Aborted
    if job.error is not None:
        conn.execute("ROLLBACK TO job")
    conn.execute("RELEASE job")


def _run_bulk(conn: sqlite3.Connection, group: list[Work[Any]]) -> bool:
    """Run ``group`` through its bulk function, setting each job's ``result`` or ``error``: True
    if it did; False if the bulk function raised (nothing written: the caller runs the jobs
    one by one). Raises _Aborted if the database aborted the transaction."""
    bulk = group[0].bulk
    assert bulk is not None
    conn.execute("SAVEPOINT bulk")
    try:
        outcomes = bulk.run(conn, [job.bulk.arg for job in group if job.bulk is not None])
        if len(outcomes) != len(group):
            raise StoreError(f"bulk write answered {len(outcomes)} of {len(group)} jobs")
    except (GatewayError, sqlite3.Error):
        if not conn.in_transaction:
            raise _Aborted from None
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


def _settle(job: _Job[Any]) -> None:
    """On the caller's loop: run the commit hook, then resolve the future (unless the caller
    stopped waiting)."""
    if job.error is None and job.after_commit is not None:
        try:
            job.after_commit(job.result)
        except Exception:  # a hook's bug must not stop the writer or leave its caller waiting
            log.exception("store after-commit hook failed")
    if job.future is None or job.future.done():
        return
    if job.error is not None:
        job.future.set_exception(job.error)
    else:
        job.future.set_result(job.result)
