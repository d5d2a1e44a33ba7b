"""The folder transport: a DXP transfer client's send and receive folders.

Out: each envelope leased from the outbox is written into the send folder of the client whose
identity is its ``SenderId`` (or of the ``*`` pair) as ``<MsgType>_<CopMsgId>.xml``: first to a
dot-named temporary file in the same folder, synced, then renamed into place and the folder
synced, so the client never sees half a file; only then is it acknowledged in the outbox.

In: files the client wrote into a receive folder are taken once finished (dot-named and
``.tmp``/``.part`` files never; any other file once its size and mtime held still for
``settle_s`` across two looks), run through the same stages as ``POST /v1/customs/receipts``,
then moved to ``done/`` (stored) or ``failed/`` with ``<name>.error.json`` saying why.  Nothing
is moved before it is stored: a crash in between leaves the file to be taken again, and the
store recognises the same receipt and keeps it once.  Each receive folder is worked by one
process at a time (an ``flock`` on ``.cebgw.lock`` in it), so every serving process may run this.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import GatewayError
from ..transportconfig import FolderPair, FolderSettings
from .common import (
    OutboxWorker,
    Outgoing,
    Refused,
    Retry,
    in_order_prefix,
    read_outgoing,
)

log = logging.getLogger("gateway.transport.folder")
NAME = "folder"
LOCK_FILE = ".cebgw.lock"
DONE, FAILED = "done", "failed"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_PARTIAL = (".tmp", ".part", ".partial", ".error.json")


def file_name(msg_type: str, cop_msg_id: str) -> str:
    """``<MsgType>_<CopMsgId>.xml``, with anything but letters, digits, ``.``, ``_`` and ``-``
    replaced (a CopMsgId is the sender's own string and must not name another folder)."""
    name = f"{_UNSAFE.sub('_', msg_type)}_{_UNSAFE.sub('_', cop_msg_id)}"
    return name.lstrip(".")[:200] + ".xml"


def write_atomically(folder: Path, name: str, data: bytes, *, sync_folder: bool = True) -> Path:
    """Write ``data`` to ``folder/name`` so that a reader sees all of it or nothing, durably
    (the rename is durable once the folder is synced: here, or by the caller for a batch)."""
    target = folder / name
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    if sync_folder:
        _sync_dir(folder)
    return target


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finished_candidates(folder: Path) -> Iterator[os.DirEntry[str]]:
    with os.scandir(folder) as it:
        for e in it:
            if (e.name.startswith(".") or e.name.lower().endswith(_PARTIAL)
                    or not e.is_file(follow_symlinks=False)):
                continue
            yield e


class FolderTransport(OutboxWorker[FolderSettings]):
    """Writes envelopes into the send folders and takes receipts from the receive folders."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seen: dict[Path, tuple[int, int]] = {}   # file -> (size, mtime_ns) at the last look
        self._warned: set[str] = set()
        self.metrics.start(NAME, ("written", "confirmed", "unroutable", "read", "stored", "dead_lettered",
                                  "retried"))

    async def run(self) -> None:
        """Create the folders, then send and receive until cancelled."""
        for p in self.s.pairs:
            for d in (p.send, p.receive, p.receive / DONE, p.receive / FAILED):
                d.mkdir(parents=True, exist_ok=True)
        await asyncio.gather(self._sender(), self._receiver())

    # ------------------------------------------------------------ outbound

    async def _sender(self) -> None:
        while True:
            try:
                sent = await self.send_once()
            except (OSError, GatewayError) as exc:
                log.error("folder: sending envelopes failed: %s; retrying", exc)
                sent = 0
                await asyncio.sleep(self.s.poll_interval_s)
            except Exception:  # the outermost shell of this worker: report, and keep it alive
                log.exception("folder: sending envelopes failed; retrying")
                sent = 0
                await asyncio.sleep(self.s.poll_interval_s)
            if not sent:
                await self._wait(self.s.poll_interval_s)

    async def send_once(self) -> int:
        """Lease a batch, write each envelope into its sender's send folder, ack what was written
        (each sender's written prefix); returns how many were acknowledged."""
        items = await self.store.lease_outbox(self.s.batch, self.lease_timeout_s)
        if not items:
            return 0
        batch = read_outgoing(items, self.max_bytes)
        written: list[int] = []
        folders: set[Path] = set()
        for o in batch:
            pair = self.s.pair_for(o.trans.sender_id)
            if pair is None:
                self._unroutable(o)
                continue
            name = file_name(o.trans.msg_type, o.trans.cop_msg_id)
            await asyncio.to_thread(write_atomically, pair.send, name, o.item.envelope, sync_folder=False)
            folders.add(pair.send)
            self.metrics.count(NAME, "written")
            written.append(o.item.id)
        for folder in folders:   # one sync per folder makes the batch's renames durable
            await asyncio.to_thread(_sync_dir, folder)
        acked = in_order_prefix(batch, written)
        if acked:
            await self.store.ack_outbox(acked)
            self.metrics.count(NAME, "confirmed", len(acked))
        return len(acked)

    def _unroutable(self, o: Outgoing) -> None:
        # Left leased, not acked: it comes back after the lease and is written once a pair exists.
        self.metrics.count(NAME, "unroutable")
        if o.trans.sender_id not in self._warned:
            self._warned.add(o.trans.sender_id)
            log.error("folder: no folder pair for SenderId %r (envelope %s held in the outbox)",
                      o.trans.sender_id, o.item.id)

    # ------------------------------------------------------------ inbound

    async def _receiver(self) -> None:
        while True:
            for pair in self.s.pairs:
                try:
                    await self.receive_once(pair)
                except (OSError, GatewayError) as exc:
                    log.error("folder: %s: %s", pair.receive, exc)
                except Exception:  # the outermost shell of this worker: report, and keep it alive
                    log.exception("folder: %s: taking receipts failed", pair.receive)
            await asyncio.sleep(self.s.poll_interval_s)

    async def receive_once(self, pair: FolderPair, *, now: float | None = None) -> int:
        """Take the finished files of ``pair``'s receive folder (oldest first), unless another
        process is at it; returns how many were taken (stored or failed)."""
        with _folder_lock(pair.receive) as mine:
            if not mine:
                return 0
            taken = 0
            for path in self._finished(pair.receive, time.time() if now is None else now):
                if await self._take(path):
                    taken += 1
            return taken

    def _finished(self, folder: Path, now: float) -> list[Path]:
        ready: list[tuple[int, str, Path]] = []
        seen: dict[Path, tuple[int, int]] = {}
        for e in _finished_candidates(folder):
            st = e.stat(follow_symlinks=False)
            path = Path(e.path)
            seen[path] = (st.st_size, st.st_mtime_ns)
            if self._seen.get(path) == seen[path] and now - st.st_mtime >= self.s.settle_s:
                ready.append((st.st_mtime_ns, e.name, path))
        # Forget what is gone; what changed waits for another look.
        self._seen = {p: v for p, v in self._seen.items() if p.parent != folder} | seen
        return [p for _, _, p in sorted(ready)][: self.s.batch]

    async def _take(self, path: Path) -> bool:
        try:
            data = await asyncio.to_thread(_read_limited, path, self.max_bytes)
        except FileNotFoundError:
            return False
        self.metrics.count(NAME, "read")
        if data is None:
            outcome: object = Refused("CEBGW-PARSE-TOO-LARGE",
                                      f"file exceeds the limit of {self.max_bytes} bytes")
        else:
            try:
                outcome = await self.receipts.take(data)
            except Retry as exc:
                self.metrics.count(NAME, "retried")
                log.warning("folder: %s kept for later: %s", path, exc)
                return False
            except Exception as exc:  # the outermost shell of this file: it must not hold up the others
                log.exception("folder: %s failed", path)
                outcome = Refused("CEBGW-TRANSPORT-INTERNAL", f"{type(exc).__name__}: {exc}")
        if isinstance(outcome, Refused):
            await asyncio.to_thread(_fail, path, outcome)
            self.metrics.count(NAME, "dead_lettered")
            log.warning("folder: %s refused: %s [%s]", path, outcome.reason, outcome.code)
        else:
            await asyncio.to_thread(_move, path, path.parent / DONE)
            self.metrics.count(NAME, "stored")
        self._seen.pop(path, None)
        return True


def _read_limited(path: Path, max_bytes: int) -> bytes | None:
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    return None if len(data) > max_bytes else data


def _move(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` (a name already there gets a time suffix), durably."""
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}.{time.time_ns()}{path.suffix}"
    os.replace(path, target)
    _sync_dir(folder)
    _sync_dir(path.parent)
    return target


def _fail(path: Path, why: Refused) -> None:
    target = _move(path, path.parent / FAILED)
    sidecar = {"file": path.name, "code": why.code, "reason": why.reason,
               "failed_at": datetime.now(UTC).isoformat(timespec="seconds")}
    write_atomically(target.parent, target.name + ".error.json",
                     json.dumps(sidecar, ensure_ascii=False, indent=2).encode("utf-8"))


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[bool]:
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock
