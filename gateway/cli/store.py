"""``cebgw store``: the store's schema and moving a store.

``migrate --db URL`` applies the migrations the store lacks (creating it if needed) and says
which; ``copy --from sqlite:///… --to postgresql://…`` copies a SQLite store into an empty
PostgreSQL one and verifies the copy's hash chains and audit journal against the source's.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ..errors import EXIT_INVALID, EXIT_OK
from ..store import admin


def _run_migrate(args: argparse.Namespace) -> int:
    applied, newest = admin.migrate_url(args.db)
    if applied:
        print(f"applied migration(s) {', '.join(map(str, applied))}; the store is at version {newest}")
    else:
        print(f"the store is up to date (version {newest})")
    return EXIT_OK


def _run_copy(args: argparse.Namespace) -> int:
    report = asyncio.run(admin.copy_store(args.source, args.target))
    for table, n in report.rows.items():
        print(f"{table:18} {n} row(s)")
    c = report.copy
    print(f"copy: {c.messages_checked} message(s) in {c.chains} chain(s), journal of {c.journal_entries} "
          f"entries (head {c.journal_head[0]} {c.journal_head[1][:16]}…)")
    if report.ok:
        print("verified: every chain and the journal recompute, heads equal to the source's")
        return EXIT_OK
    for b in c.breaks:
        print(f"BROKEN chain {b.tenant}/{b.sender_code} at message {b.message_id} ({b.problem})")
    for p in c.problems:
        print(f"PROBLEM {p.kind} {p.where}: {p.detail}")
    if c.heads != report.source.heads or c.journal_head != report.source.journal_head:
        print("MISMATCH: the copy's chain or journal heads differ from the source's")
    return EXIT_INVALID


def register(subparsers: Any) -> None:
    """Add ``store`` with ``migrate`` and ``copy``."""
    p = subparsers.add_parser("store", help="store schema migrations and copying a store")
    sub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    m = sub.add_parser("migrate", help="apply the migrations the store lacks (creating it if needed)")
    m.add_argument("--db", required=True, metavar="URL",
                   help="sqlite:///path.db or postgresql://…?options=-csearch_path%%3DSCHEMA")
    m.set_defaults(func=_run_migrate)
    c = sub.add_parser("copy", help="copy a SQLite store into an empty PostgreSQL store and verify it")
    c.add_argument("--from", dest="source", required=True, metavar="URL", help="sqlite:///path.db")
    c.add_argument("--to", dest="target", required=True, metavar="URL", help="postgresql://…")
    c.set_defaults(func=_run_copy)
