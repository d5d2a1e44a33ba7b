"""``cebgw send FILE... --url URL --token T``: submit declarations; exit 1 if any was rejected."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import EXIT_INVALID, EXIT_OK, IOFailure
from .http import call


def _run(args: argparse.Namespace) -> int:
    worst = EXIT_OK
    for name in args.files:
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            raise IOFailure(f"{name}: {exc}") from None
        status, body = call("POST", f"{args.url.rstrip('/')}/v1/messages", args.token, body=data,
                            content_type="application/xml")
        if status in (200, 202):
            again = " (already accepted)" if status == 200 else ""
            edition = f" edition={body['edition']}" if body.get("edition") else ""
            print(f"{name}: {body['message_type']} id={body['id']} guid={body['guid']} "
                  f"status={body['status']}{edition}{again}")
            for f in body.get("warnings", []):
                where = f":{f['line']}" if f.get("line") else ""
                print(f"  {name}{where}: {_described(f)} [{f['code']}] (warning)")
            continue
        worst = EXIT_INVALID
        err = body.get("error", {})
        print(f"{name}: rejected {status} {err.get('code')}: {err.get('message')}", file=sys.stderr)
        for f in err.get("errors", []):
            where = f":{f['line']}" if f.get("line") else ""
            print(f"  {name}{where}: {_described(f)} [{f['code']}]", file=sys.stderr)
    return worst


def _described(finding: dict[str, Any]) -> str:
    """A finding's field and message, the field left out when the message starts with it
    ("appTime 2026... is more than 1 day before", not "appTime appTime 2026...")."""
    field, message = finding.get("field") or "", str(finding["message"])
    return message if not field or message.startswith(f"{field} ") else f"{field} {message}"


def register(subparsers: Any) -> None:
    """Add ``send``."""
    p = subparsers.add_parser("send", help="submit declarations to a gateway")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.set_defaults(func=_run)
