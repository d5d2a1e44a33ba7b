"""``cebgw audit verify --db sqlite:///…``: recompute every hash chain; exit 1 on a break."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ..errors import EXIT_INVALID, EXIT_OK
from ..store import AuditReport, open_store


async def _verify(url: str, tenant: str | None) -> AuditReport:
    store = open_store(url)
    try:
        return await store.audit_verify(tenant)
    finally:
        await store.close()


def _run(args: argparse.Namespace) -> int:
    report = asyncio.run(_verify(args.db, args.tenant))
    print(f"checked {report.messages_checked} message(s) in {report.chains} chain(s)")
    for (tenant, sender), head in sorted(report.heads.items()):
        print(f"  head {tenant}/{sender}: {head}")
    for b in report.breaks:
        print(f"BROKEN {b.tenant}/{b.sender_code} at message {b.message_id}: {b.problem} "
              f"(expected {b.expected}, found {b.found})")
    return EXIT_OK if report.ok else EXIT_INVALID


def register(subparsers: Any) -> None:
    """Add ``audit``."""
    p = subparsers.add_parser("audit", help="verify the store's hash chains")
    sub = p.add_subparsers(dest="action", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--db", required=True, help="store URL, e.g. sqlite:///var/sandbox/gateway.db")
    v.add_argument("--tenant")
    p.set_defaults(func=_run)
