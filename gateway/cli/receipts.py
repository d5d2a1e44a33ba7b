"""``cebgw receipts --url URL --token T [--follow] [--ack] [--format json]``: print the account's receipts
(``--format json``: one JSON document per line, each receipt record as :mod:`gateway.mapping` decodes it)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import EXIT_INVALID, EXIT_OK
from .http import call, post_json


def _run(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    cursor: int | None = None
    while True:
        query = f"limit={args.limit}&wait={args.wait if args.follow else 0}"
        if args.format == "json":
            query += "&format=json"
        if cursor is not None:
            query += f"&after={cursor}"
        status, body = call("GET", f"{base}/v1/receipts?{query}", args.token, timeout=args.wait + 30)
        if status != 200:
            print(f"receipts: {status} {body.get('error', {}).get('message')}", file=sys.stderr)
            return EXIT_INVALID
        for item in body["items"]:
            if args.format == "json":
                print(json.dumps({"cursor": item["cursor"], "message_id": item["message_id"], **item["json"]},
                                 ensure_ascii=False), flush=True)
                continue
            print(f"{item['cursor']}\t{item['message_type']}\t{item['status']}\t{item['return_time']}\t"
                  f"message={item['message_id']}\t{item['info']}", flush=True)
        if body["items"]:
            cursor = body["cursor"]
            if args.ack:
                post_json(f"{base}/v1/receipts/ack", args.token, {"cursor": cursor})
        if not args.follow:
            return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``receipts``."""
    p = subparsers.add_parser("receipts", help="print (and follow, acknowledge) your receipts")
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--follow", action="store_true", help="keep long-polling for new receipts")
    p.add_argument("--ack", action="store_true", help="acknowledge what was printed")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--wait", type=int, default=25, help="long-poll seconds with --follow")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: one line per receipt record, as JSON (returnInfo as code and text)")
    p.set_defaults(func=_run)
