"""The group-commit writer: turns between processes through the file lock, and the commit delay."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from storekit import aio, message

from gateway.store.sqlite import SqliteStore
from gateway.store.writer import GroupCommitWriter


@aio
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
        await asyncio.to_thread(w.close)


@aio
async def test_an_isolated_write_does_not_wait_for_the_commit_delay(tmp_path: Path) -> None:
    w = _writer(tmp_path, delay=30.0)
    try:
        await asyncio.wait_for(w.submit(_insert(1)), 10)  # idle writer: commits without the 30 s delay
        assert w.stats.batches == 1
    finally:
        await asyncio.to_thread(w.close)


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
        await asyncio.to_thread(w.close)
