"""``cebgw certs list|check|add|init-sandbox``: the certificate registry from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..dsig import certgen, registry
from ..errors import EXIT_INVALID, EXIT_OK, IOFailure, UsageError

DEFAULT_REGISTRY = "certs/registry.toml"


def registry_path(given: str | None) -> str:
    """``--registry``, else ``$CEBGW_REGISTRY``, else ``certs/registry.toml`` (relative to the cwd)."""
    return given or os.environ.get("CEBGW_REGISTRY") or DEFAULT_REGISTRY


def _describe(e: registry.Entry) -> dict[str, Any]:
    return {
        "name": e.name,
        "file": str(e.path),
        "family": e.key.family,
        "serial": e.key_name,
        "fingerprint": e.fingerprint,
        "codes": sorted(e.codes),
        "dxp_ids": sorted(e.dxp_ids),
        "not_before": e.not_before.isoformat(),
        "not_after": e.not_after.isoformat(),
        "subject": e.certificate.subject.rfc4514_string(),
    }


def _list(args: argparse.Namespace) -> int:
    reg = registry.load(registry_path(args.registry))
    rows = [_describe(e) for e in reg.entries]
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return EXIT_OK
    for r in rows:
        print(
            f"{r['name']:<22} {r['family']:<4} {r['serial']:<18} until {r['not_after'][:10]}  "
            f"{' '.join(r['codes'] + r['dxp_ids'])}"
        )
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    reg = registry.load(registry_path(args.registry))
    now = datetime.now(UTC)
    soon = reg.expiring(now, args.days)
    for e in soon:
        state = "EXPIRED" if e.not_after < now else "expires"
        print(f"{e.name}: {state} {e.not_after.isoformat()} (serial {e.key_name})")
    if not soon:
        days = reg.warn_days if args.days is None else args.days
        print(f"{len(reg.entries)} certificates, none expiring within {days} days")
    return EXIT_INVALID if soon else EXIT_OK


def _add(args: argparse.Namespace) -> int:
    if not args.codes and not args.dxp_id:
        raise UsageError("give at least one --codes or --dxp-id")
    cert = Path(args.cert)
    if not cert.is_file():
        raise IOFailure(f"cannot read {cert}")
    name = args.name or cert.name.removesuffix(".pem").removesuffix(".cert").removesuffix(".crt")
    entry = registry.add_entry(
        registry_path(args.registry), cert, name=name, codes=args.codes or [], dxp_ids=args.dxp_id or []
    )
    print(
        f"added {entry.name} (serial {entry.key_name}, {entry.key.family}) to {registry_path(args.registry)}"
    )
    return EXIT_OK


def _init_sandbox(args: argparse.Namespace) -> int:
    try:
        path = certgen.init_sandbox(args.dir, days=args.days)
    except FileExistsError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise IOFailure(f"cannot write {args.dir}: {exc}") from None
    print(f"sandbox CA and certificates written; registry {path}", file=sys.stderr)
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``certs`` and its sub-commands."""
    p = subparsers.add_parser("certs", help="list, check and add registered signing certificates")
    sub = p.add_subparsers(dest="certs_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", help=f"registry file (default $CEBGW_REGISTRY or {DEFAULT_REGISTRY})")

    ls = sub.add_parser("list", parents=[common], help="list registered certificates")
    ls.add_argument("--format", choices=("text", "json"), default="text")
    ls.set_defaults(func=_list)

    ck = sub.add_parser("check", parents=[common], help="list certificates expiring soon; exit 1 if any")
    ck.add_argument("--days", type=int, default=None, help="look this many days ahead (default: warn_days)")
    ck.set_defaults(func=_check)

    add = sub.add_parser(
        "add", parents=[common], help="register a certificate for enterprise codes / DXP ids"
    )
    add.add_argument("cert", help="certificate file (PEM or DER)")
    add.add_argument("--codes", nargs="+", default=[], help="enterprise codes it may sign for")
    add.add_argument("--dxp-id", action="append", default=[], help="DXP id it may sign for (repeatable)")
    add.add_argument("--name", help="entry name (default: from the file name)")
    add.set_defaults(func=_add)

    sb = sub.add_parser("init-sandbox", help="create the sandbox CA, keys, certificates and registry")
    sb.add_argument("--dir", default="certs/sandbox")
    sb.add_argument("--days", type=int, default=3650, help="validity from today (default 3650)")
    sb.set_defaults(func=_init_sandbox)
