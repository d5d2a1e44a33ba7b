#!/usr/bin/env python3
"""The peer servers bench/gateway.py drives with the same wrk script as ``cebgw serve``.

``empty``: an aiohttp handler that reads the body and answers 202, nothing else: the ceiling of
any aiohttp server on this machine with this client.  It counts its answers in ``--counter FILE``
(one 8-byte slot per worker, mmap'd), which the bench reads instead of a database.

    python bench/peers.py empty --port P --counter FILE [--workers 2]

``signxml``: what a plain aiohttp + signxml server does for a signed submission: check the
bearer token, parse the body (lxml, hardened), verify its signature with signxml against the
sender's certificate, INSERT it into SQLite (WAL, synchronous=FULL) and answer 202 only after
the commit is on disk.  Commits are grouped (``--commit group``: one writer thread commits every
submission waiting, as the gateway does) or one per request (``--commit each``); with several
workers their transactions take turns through an flock on DB.lock (as the gateway's writers do;
SQLite's own busy handler sleeps up to 100 ms).  It does not do what the gateway does on top:
schema validation, rules, duplicate detection, the outbox, the audit journal.

    python bench/peers.py signxml --port P --cert CERT --db FILE [--token T] [--workers 2]

``--workers N`` (N > 1) starts N processes sharing the port (SO_REUSEPORT), like
``cebgw serve --workers``.  Both serve GET /healthz (the wrk script recognises its answer).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import hmac
import mmap
import multiprocessing
import os
import sqlite3
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web
from cryptography import x509
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

SCHEMA = ("CREATE TABLE IF NOT EXISTS submissions"
          " (id INTEGER PRIMARY KEY, received REAL NOT NULL, body BLOB NOT NULL)")
HEALTH = {"status": "ok", "outbox_depth": None}  # the wrk script skips answers holding "outbox_depth"


def _loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed, as ``cebgw serve`` uses: the comparison is of the work, not the loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(HEALTH)


# ---------------------------------------------------------------- empty

def empty_app(counter: Path, slot: int) -> web.Application:
    fd = os.open(counter, os.O_RDWR)
    mm = mmap.mmap(fd, 0)
    answered = 0

    async def submit(request: web.Request) -> web.Response:
        nonlocal answered
        await request.read()
        answered += 1
        struct.pack_into("q", mm, 8 * slot, answered)
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/v1/messages", submit)
    app.router.add_get("/healthz", healthz)
    return app


# ---------------------------------------------------------------- signxml + SQLite

class Writer:
    """INSERT + COMMIT (synchronous=FULL) on one thread; callers await their row's id."""

    def __init__(self, db: Path, grouped: bool) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.lock = os.open(f"{db}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        self.grouped = grouped
        self.pending: list[tuple[bytes, asyncio.Future[int]]] = []
        self.flushing = False
        self.thread = ThreadPoolExecutor(1)

    async def insert(self, body: bytes) -> int:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pending.append((body, fut))
        if not self.flushing:
            self.flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                if self.grouped:
                    batch, self.pending = self.pending, []
                else:
                    batch = [self.pending.pop(0)]
                try:
                    ids = await loop.run_in_executor(self.thread, self._commit, [b for b, _ in batch])
                except Exception as exc:  # every request of the batch fails with it
                    for _, fut in batch:
                        fut.set_exception(exc)
                    continue
                for (_, fut), row_id in zip(batch, ids, strict=True):
                    fut.set_result(row_id)
        finally:
            self.flushing = False

    def _commit(self, bodies: list[bytes]) -> list[int]:
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                ids = [int(self.conn.execute("INSERT INTO submissions (received, body) VALUES (?, ?)",
                                             (now, body)).lastrowid or 0) for body in bodies]
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
        return ids


# The customs profile signs rsa-sha1, which signxml refuses unless told to expect it.
EXPECT = SignatureConfiguration(
    signature_methods=frozenset({SignatureMethod.RSA_SHA1, SignatureMethod.RSA_SHA256}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA1, DigestAlgorithm.SHA256}))


def signxml_app(cert_path: Path, db: Path, token: str | None, grouped: bool) -> web.Application:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    verifier = XMLVerifier()
    writer = Writer(db, grouped)
    expected = f"Bearer {token}".encode() if token else None

    async def submit(request: web.Request) -> web.Response:
        if expected is not None and not hmac.compare_digest(
                request.headers.get("Authorization", "").encode(), expected):
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.read()
        try:
            root = etree.fromstring(body, parser)
            verifier.verify(root, x509_cert=cert, expect_config=EXPECT)
        except etree.XMLSyntaxError as exc:
            return web.json_response({"error": f"not well-formed: {exc}"}, status=400)
        except SignXMLException as exc:
            return web.json_response({"error": f"signature: {exc}"}, status=400)
        row_id = await writer.insert(body)
        return web.json_response({"id": row_id}, status=202)

    app = web.Application(client_max_size=10 * 1024 * 1024)
    app.router.add_post("/v1/messages", submit)
    app.router.add_get("/healthz", healthz)
    return app


# ---------------------------------------------------------------- processes

def _serve(args: argparse.Namespace, slot: int, reuse_port: bool) -> None:
    if args.kind == "empty":
        app = empty_app(Path(args.counter), slot)
    else:
        app = signxml_app(Path(args.cert), Path(args.db), args.token, args.commit == "group")
    web.run_app(app, host=args.host, port=args.port, reuse_port=reuse_port, access_log=None,
                print=None, loop=_loop())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["empty", "signxml"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--counter", help="empty: the answer counter file (created)")
    parser.add_argument("--cert", help="signxml: the sender's certificate (PEM)")
    parser.add_argument("--db", help="signxml: the SQLite file (created)")
    parser.add_argument("--token", help="signxml: the sender's bearer token (default: not checked)")
    parser.add_argument("--commit", choices=["group", "each"], default="group")
    args = parser.parse_args()
    if args.kind == "empty":
        if not args.counter:
            parser.error("empty needs --counter")
        Path(args.counter).write_bytes(bytes(8 * args.workers))
    else:
        if not (args.cert and args.db):
            parser.error("signxml needs --cert and --db")
        with sqlite3.connect(args.db) as conn:  # once, before the workers race to create it
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(SCHEMA)
    if args.workers == 1:
        _serve(args, 0, reuse_port=False)
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_serve, args=(args, i, True)) for i in range(args.workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
