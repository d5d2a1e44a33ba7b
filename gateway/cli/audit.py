"""``cebgw audit verify|checkpoint|export``: check the store's log, sign a checkpoint, export one.

``verify`` recomputes every sender's hash chain and the audit journal from the stored rows,
runs SQLite's integrity check, and checks every signed checkpoint (kept in the store, and any
``--checkpoint FILE`` exported earlier) against the gateway's certificate; exit 1 on any finding.
``checkpoint`` signs one now with the gateway's key; ``export`` writes the newest to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from cryptography import x509

from .. import audit
from ..config import load as load_settings
from ..dsig import KeyProvider, load_key
from ..errors import EXIT_INVALID, EXIT_OK, UsageError
from ..sandbox import datadir
from ..store import open_store


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror}") from None


def _certificate(path: str) -> x509.Certificate:
    data = _read(path, "--cert")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise UsageError(f"--cert {path}: not a PEM or DER certificate") from None


def _deployment(args: argparse.Namespace) -> tuple[str | None, str | None, str | None]:
    """Store URL, gateway key and certificate from --config or --sandbox (each may be None)."""
    if args.config and args.sandbox:
        raise UsageError("--config and --sandbox exclude each other")
    settings = None
    if args.config:
        settings = load_settings(args.config)
    elif args.sandbox:
        settings = datadir.settings_for(Path(args.sandbox))
    if settings is None:
        return None, None, None
    key, cert = settings.gateway_key, settings.gateway_cert
    return settings.store_url, str(key) if key else None, str(cert) if cert else None


def _db(args: argparse.Namespace) -> str:
    url = args.db or _deployment(args)[0]
    if not url:
        raise UsageError("give --db URL (or --config FILE / --sandbox DIR)")
    return str(url)


async def _verify(args: argparse.Namespace) -> audit.Audit:
    cert_path = args.cert or _deployment(args)[2]
    trusted = _certificate(cert_path) if cert_path else None
    files = [(f, _read(f, "--checkpoint")) for f in args.checkpoint]
    store = open_store(_db(args))
    try:
        return await audit.verify(store, trusted=trusted, files=files, tenant=args.tenant)
    finally:
        await store.close()


def _print_text(a: audit.Audit) -> None:
    r = a.report
    print(f"checked {r.messages_checked} message(s) in {r.chains} chain(s); "
          f"journal: {r.journal_entries} entr{'y' if r.journal_entries == 1 else 'ies'}, "
          f"head #{r.journal_head[0]} {r.journal_head[1]}")
    if a.checkpoints:
        since = r.entries_since_checkpoint
        pinned = "pinned" if a.pinned else "not pinned"
        print(f"checked {a.checkpoints} signed checkpoint(s) against certificate {a.signer} ({pinned}); "
              f"{since} journal entr{'y' if since == 1 else 'ies'} since the newest")
    for (tenant, sender), head in sorted(r.heads.items()):
        print(f"  head {tenant}/{sender}: {head}")
    for b in r.breaks:
        print(f"BROKEN {b.tenant}/{b.sender_code} at message {b.message_id}: {b.problem} "
              f"(expected {b.expected}, found {b.found})")
    for p in r.problems:
        print(f"PROBLEM [{p.kind}] {p.where}: {p.detail}")
    for note in a.notes:
        print(f"note: {note}")


def _print_json(a: audit.Audit) -> None:
    r = a.report
    print(json.dumps({
        "ok": a.ok, "messages_checked": r.messages_checked, "chains": r.chains,
        "journal": {"entries": r.journal_entries,
                    "head": {"id": r.journal_head[0], "link": r.journal_head[1]}},
        "checkpoints": {"checked": a.checkpoints, "signer": a.signer, "pinned": a.pinned,
                        "entries_since_newest": r.entries_since_checkpoint},
        "breaks": [{"tenant": b.tenant, "sender_code": b.sender_code, "message_id": b.message_id,
                    "problem": b.problem, "expected": b.expected, "found": b.found} for b in r.breaks],
        "problems": [{"kind": p.kind, "where": p.where, "detail": p.detail} for p in r.problems],
        "notes": list(a.notes)}, ensure_ascii=False))


def _run_verify(args: argparse.Namespace) -> int:
    result = asyncio.run(_verify(args))
    (_print_json if args.format == "json" else _print_text)(result)
    return EXIT_OK if result.ok else EXIT_INVALID


def _key(args: argparse.Namespace) -> KeyProvider:
    _, key, cert = _deployment(args)
    key, cert = args.key or key, args.cert or cert
    if not key or not cert:
        raise UsageError("signing a checkpoint needs the gateway's key: --key and --cert "
                         "(or --config FILE with gateway_key/gateway_cert, or --sandbox DIR)")
    return load_key(key, cert)


async def _checkpoint(args: argparse.Namespace) -> tuple[int, int]:
    key = _key(args)
    store = open_store(_db(args))
    try:
        claim = await audit.checkpoint(store, key)
        assert claim is not None  # unless_at not given: always written
        return claim.entry_id, len(claim.chains)
    finally:
        await store.close()


def _run_checkpoint(args: argparse.Namespace) -> int:
    entry, chains = asyncio.run(_checkpoint(args))
    print(f"signed checkpoint of journal entry {entry} and {chains} chain head(s)")
    return EXIT_OK


async def _latest(url: str) -> bytes | None:
    store = open_store(url)
    try:
        return await audit.latest(store)
    finally:
        await store.close()


def _run_export(args: argparse.Namespace) -> int:
    doc = asyncio.run(_latest(_db(args)))
    if doc is None:
        print("the store keeps no checkpoint yet (cebgw audit checkpoint makes one)", file=sys.stderr)
        return EXIT_INVALID
    if args.out in (None, "-"):
        sys.stdout.buffer.write(doc)
    else:
        Path(args.out).write_bytes(doc)
        print(f"wrote the newest checkpoint to {args.out}", file=sys.stderr)
    return EXIT_OK


def _where(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="store URL, e.g. sqlite:///var/sandbox/gateway.db")
    p.add_argument("--config", help="settings TOML of the deployment (store_url, gateway_key, gateway_cert)")
    p.add_argument("--sandbox", metavar="DIR", help="a sandbox data directory (e.g. var/sandbox)")


def register(subparsers: Any) -> None:
    """Add ``audit``."""
    p = subparsers.add_parser("audit", help="verify the store's hash chains and signed checkpoints")
    sub = p.add_subparsers(dest="action", required=True)
    v = sub.add_parser("verify", help="recompute chains and journal, check integrity and signed checkpoints")
    _where(v)
    v.add_argument("--tenant", help="recompute only this tenant's sender chains (the journal: always whole)")
    v.add_argument("--cert", help="the gateway's certificate the checkpoints must be signed with")
    v.add_argument("--checkpoint", action="append", default=[], metavar="FILE",
                   help="an exported checkpoint kept elsewhere (repeatable)")
    v.add_argument("--format", choices=("text", "json"), default="text")
    v.set_defaults(func=_run_verify)
    c = sub.add_parser("checkpoint", help="sign a checkpoint of every chain head now")
    _where(c)
    c.add_argument("--key", help="the gateway's private key (PEM)")
    c.add_argument("--cert", help="the gateway's certificate (PEM)")
    c.set_defaults(func=_run_checkpoint)
    e = sub.add_parser("export", help="write the newest signed checkpoint to a file to keep elsewhere")
    _where(e)
    e.add_argument("--out", help="file to write (default: standard output)")
    e.set_defaults(func=_run_export)
