"""``cebgw dead-letters list|reroute``: look at and resolve receipts that matched nothing."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from ..errors import EXIT_INVALID, EXIT_OK
from .http import call, post_json


def record_id(text: str) -> int:
    """An id as the API takes it: ASCII digits only (``int`` would read "1_2" as 12, "１" as 1)."""
    if re.fullmatch(r"[0-9]{1,19}", text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (ASCII digits)")
    return int(text)


def _run(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    if args.action == "list":
        status, body = call("GET", f"{base}/v1/dead-letters?limit={args.limit}", args.token)
    else:
        status, body = post_json(f"{base}/v1/dead-letters/{args.id}/reroute", args.token,
                                 {"message_id": args.message_id})
    if status != 200:
        print(f"dead-letters: {status} {body.get('error', {}).get('message')}", file=sys.stderr)
        return EXIT_INVALID
    print(json.dumps(body, ensure_ascii=False, indent=2))
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``dead-letters``."""
    p = subparsers.add_parser("dead-letters", help="list or reroute unmatched receipts")
    sub = p.add_subparsers(dest="action", required=True)
    for name in ("list", "reroute"):
        q = sub.add_parser(name)
        q.add_argument("--url", required=True)
        q.add_argument("--token", required=True)
        if name == "list":
            q.add_argument("--limit", type=int, default=100)
        else:
            q.add_argument("id", type=record_id, help="dead letter (receipt) id")
            q.add_argument("--message-id", type=record_id, required=True, help="declaration to attach it to")
    p.set_defaults(func=_run)
