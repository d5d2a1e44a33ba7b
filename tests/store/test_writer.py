"""The group-commit writer: turns between processes through the file lock, the commit delay, one
event loop after another, hooks and callers that stop waiting; the checkpointer and the lock."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from storekit import aio, message

from gateway.errors import StoreError
from gateway.store.sqlite import SqliteStore, _Checkpointer
from gateway.store.writer import FileLock, GroupCommitWriter


@aio
@pytest.mark.sqlite_only
async def test_a_writer_waits_for_the_file_lock_another_process_holds(db: str) -> None:
    async with SqliteStore(db) as store:
        await store.put_message(message(1))
        fd = os.open(db + "-writelock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # what another worker's writer does around its commit
            pending = asyncio.ensure_future(store.put_message(message(2)))
            done, _ = await asyncio.wait({pending}, timeout=0.3)
            assert not done, "the write committed while another writer held the lock"
            fcntl.flock(fd, fcntl.LOCK_UN)
            put = await asyncio.wait_for(pending, 10)
        finally:
            os.close(fd)
        assert not put.duplicate and put.message_id == 2


@aio
@pytest.mark.sqlite_only
async def test_two_stores_on_one_file_interleave_without_losing_writes(db: str) -> None:
    async with SqliteStore(db) as a, SqliteStore(db) as b:
        puts = await asyncio.gather(*((a if n % 2 else b).put_message(message(n)) for n in range(60)))
        assert sorted(p.message_id for p in puts) == list(range(1, 61))
        assert await a.outbox_depth() == 60


def _writer(tmp_path: Path, delay: float = 0.0, lock_path: str | None = None) -> GroupCommitWriter:
    conn = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (x INTEGER)")
    w = GroupCommitWriter(conn, commit_delay_s=delay, lock_path=lock_path)
    w.start()
    return w


def _insert(x: int) -> Callable[[sqlite3.Connection], int]:
    return lambda c: c.execute("INSERT INTO t VALUES (?)", (x,)).rowcount


@aio
async def test_under_load_a_commit_waits_for_more_writes(tmp_path: Path) -> None:
    w = _writer(tmp_path, delay=1.0)
    try:
        await w.submit(_insert(0))            # a commit just now: the writer counts as busy
        first = asyncio.ensure_future(w.submit(_insert(1)))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(w.submit(_insert(2)))
        await asyncio.gather(first, second)
        assert (w.stats.batches, w.stats.jobs) == (2, 3)  # 1 and 2 shared one commit
    finally:
        await w.close()


@aio
async def test_an_isolated_write_does_not_wait_for_the_commit_delay(tmp_path: Path) -> None:
    w = _writer(tmp_path, delay=30.0)
    try:
        await asyncio.wait_for(w.submit(_insert(1)), 10)  # idle writer: commits without the 30 s delay
        assert w.stats.batches == 1
    finally:
        await w.close()


@aio
async def test_writes_queued_while_waiting_for_the_lock_join_the_batch(tmp_path: Path) -> None:
    lock = str(tmp_path / "w.db-writelock")
    w = _writer(tmp_path, lock_path=lock)
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another worker's writer is committing
        first = asyncio.ensure_future(w.submit(_insert(1)))
        await asyncio.sleep(0.1)  # the writer took job 1 and waits for the lock
        rest = [asyncio.ensure_future(w.submit(_insert(n))) for n in (2, 3, 4)]
        await asyncio.sleep(0.1)
        fcntl.flock(fd, fcntl.LOCK_UN)
        await asyncio.wait_for(asyncio.gather(first, *rest), 10)
        assert (w.stats.batches, w.stats.jobs) == (1, 4)
    finally:
        os.close(fd)
        await w.close()


@aio
async def test_the_lock_is_let_go_by_the_commit_not_by_the_loop(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process's writer gets its turn as soon as the COMMIT returns: the helper thread
    lets the lock go, not the loop once it resumes the writer (under load, a few requests'
    checking later).  Every batch, with a failed job or not, lets it go."""
    lock = str(tmp_path / "w.db-writelock")
    released_by: list[int] = []
    release = FileLock.release

    def recording(self: FileLock) -> None:
        released_by.append(threading.get_ident())
        release(self)

    monkeypatch.setattr(FileLock, "release", recording)
    w = _writer(tmp_path, lock_path=lock)
    fd = os.open(lock, os.O_RDWR)
    try:
        assert await w.submit(_insert(1)) == 1

        def bad(conn: sqlite3.Connection) -> int:
            raise sqlite3.OperationalError("no such table: nowhere")
        with pytest.raises(StoreError):
            await w.submit(bad)
        assert len(released_by) == 2 and threading.get_ident() not in released_by
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: nothing kept it
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
        await w.close()


def test_a_writer_serves_one_loop_after_another(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    assert asyncio.run(w.submit(_insert(1))) == 1  # the first loop is gone once run() returns
    assert asyncio.run(w.submit(_insert(2))) == 1
    asyncio.run(w.close())
    conn = sqlite3.connect(tmp_path / "w.db")
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [1, 2]


@aio
async def test_a_failing_commit_hook_is_logged_and_fails_nothing(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    w = _writer(tmp_path)
    try:
        def hook(result: int) -> None:
            raise RuntimeError("hook bug")
        assert await w.submit(_insert(1), hook) == 1
        assert await w.submit(_insert(2)) == 1  # the writer still works
    finally:
        await w.close()
    assert "after-commit hook failed" in caplog.text


@aio
async def test_a_caller_that_stops_waiting_still_gets_its_write_and_hook(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    seen: list[int] = []
    try:
        job = asyncio.ensure_future(w.submit(_insert(7), seen.append))
        await asyncio.sleep(0)
        job.cancel()
        await w.submit(_insert(8))  # committed after 7's batch
    finally:
        await w.close()
    assert seen == [1]
    conn = sqlite3.connect(tmp_path / "w.db")
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [7, 8]


@aio
async def test_closing_commits_what_is_queued(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    jobs = [asyncio.ensure_future(w.submit(_insert(n))) for n in range(5)]
    await asyncio.sleep(0)
    await w.close()
    assert [j.result() for j in jobs] == [1] * 5
    with pytest.raises(StoreError):
        await w.submit(_insert(9))


class _Recording:
    """A connection that notes each statement (a checkpointer's are PRAGMAs)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.statements: list[str] = []

    def execute(self, sql: str) -> sqlite3.Cursor:
        self.statements.append(sql)
        return self.conn.execute(sql)

    def close(self) -> None:
        self.conn.close()


def test_a_restart_checkpoint_waits_for_the_writers_file_lock(tmp_path: Path) -> None:
    db, lock = str(tmp_path / "c.db"), str(tmp_path / "c.db-writelock")
    setup = sqlite3.connect(db, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("PRAGMA wal_autocheckpoint=0")
    setup.execute("CREATE TABLE t (x)")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a writer is in a transaction
    cp = _Checkpointer(db, interval_s=0.01, restart_frames=0, lock_path=lock)
    rec = _Recording(cp._conn)
    cp._conn = rec  # type: ignore[assignment]
    try:
        setup.execute("INSERT INTO t VALUES (1)")  # frames in the WAL: a RESTART is due
        time.sleep(0.3)
        assert any("PASSIVE" in s for s in rec.statements)
        assert not any("RESTART" in s for s in rec.statements), "RESTART ran while a writer held the lock"
        fcntl.flock(fd, fcntl.LOCK_UN)
        deadline = time.monotonic() + 5
        while not any("RESTART" in s for s in rec.statements) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert any("RESTART" in s for s in rec.statements)
    finally:
        os.close(fd)
        cp.close()
        setup.close()
