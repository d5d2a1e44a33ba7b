"""``cebgw customs answer``: play the customs side against a gateway (sandbox, demos, tests).

Leases envelopes from ``/v1/customs/outbox`` as the customs account, posts for each the
receipts customs would send (:mod:`gateway.sandbox.customs`: one per record and status,
signed with the customs key), then acknowledges the envelopes.  Without ``--follow`` it
answers what is pending and stops; with it, it waits for more until interrupted.

``--transport amqp`` takes the envelopes from the customs queues and publishes the receipts
to the receipts queue; ``--transport folder`` takes them from a DXP client's send folder and
writes the receipts into its receive folder (:mod:`gateway.sandbox.transports`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from .. import pipeline
from ..catalog import load as load_catalog
from ..dsig import KeyProvider, load_key
from ..envelope import RECEIVER_EXPORT, RECEIVER_IMPORT
from ..errors import EXIT_INVALID, EXIT_OK, EnvelopeError, GatewayError, UsageError
from ..sandbox.customs import answers
from ..sandbox.transports import (
    RECEIPTS_QUEUE,
    Played,
    answer_amqp,
    answer_folder,
    customs_queue,
)
from ..xmlio import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH
from .http import call, post_json


def _answer(args: argparse.Namespace) -> int:
    if args.transport != "http":
        return _answer_over(args)
    if not args.url or not args.token:
        raise UsageError("--url and --token are required with --transport http")
    base = args.url.rstrip("/")
    key = load_key(args.key, args.cert)
    statuses = args.status or ["2", "120"]
    failed = 0
    while True:
        wait = args.wait if args.follow else 0
        status, body = call("GET", f"{base}/v1/customs/outbox?limit={args.limit}&wait={wait}", args.token,
                            timeout=wait + 60)
        if status != 200:
            print(f"customs: outbox: {status} {body.get('error', {}).get('message')}", file=sys.stderr)
            return EXIT_INVALID
        items = body.get("items", [])
        if not items and not args.follow:
            return EXIT_INVALID if failed else EXIT_OK
        done: list[int] = []
        for item in items:
            ok = _answer_one(base, args.token, item, statuses, key, args.info)
            failed += not ok
            if ok:
                done.append(int(item["id"]))
        if done:
            status, body = post_json(f"{base}/v1/customs/outbox/ack", args.token, {"ids": done})
            if status != 200:
                print(f"customs: ack: {status} {body.get('error', {}).get('message')}", file=sys.stderr)
                return EXIT_INVALID
        if failed and not args.follow:
            return EXIT_INVALID  # what failed stays leased and comes back: do not loop on it


def _answer_over(args: argparse.Namespace) -> int:
    """Customs over AMQP or the folders: one round, or rounds every second with ``--follow``."""
    if args.transport == "amqp" and not args.amqp:
        raise UsageError("--amqp URL is required with --transport amqp")
    if args.transport == "folder" and (not args.send or not args.receive):
        raise UsageError("--send DIR and --receive DIR are required with --transport folder")
    key = load_key(args.key, args.cert)
    statuses = args.status or ["2", "120"]
    if args.transport == "amqp":
        queues = args.queue or [customs_queue(RECEIVER_IMPORT), customs_queue(RECEIVER_EXPORT)]

        def once() -> Played:
            return asyncio.run(answer_amqp(args.amqp, queues, args.receipts_queue, statuses, key,
                                           info=args.info))
    else:
        send, receive = Path(args.send), Path(args.receive)

        def once() -> Played:
            return answer_folder(send, receive, statuses, key, info=args.info)
    failed = False
    while True:
        played = once()
        for why in played.failed:
            print(f"customs: cannot answer {why}", file=sys.stderr)
        failed = failed or bool(played.failed)
        if not args.follow:
            return EXIT_INVALID if failed else EXIT_OK
        if not played.envelopes:
            time.sleep(1.0)


def _answer_one(base: str, token: str, item: dict[str, Any], statuses: list[str], key: KeyProvider,
                info: str | None) -> bool:
    """Post the receipts for one envelope; False (it is not acknowledged) if any was refused."""
    where = f"envelope {item.get('id')} (message {item.get('message_id')})"
    try:
        opened = _open(str(item["envelope"]).encode("utf-8"))
        assert opened.envelope is not None  # the outbox holds DxpMsg envelopes only; _open checks
        found = answers(opened.ident, opened.envelope.trans, statuses, key, info=info)
    except (GatewayError, KeyError) as exc:
        print(f"customs: {where}: cannot answer it: {exc}", file=sys.stderr)
        return False
    if not found:
        print(f"message {item.get('message_id')}: no receipt type answers it; acknowledged without one")
    for a in found:
        status, body = call("POST", f"{base}/v1/customs/receipts", token, body=a.data,
                            content_type="application/xml")
        if status != 200:
            err = body.get("error", {})
            print(f"customs: {where}: {a.receipt_type} status {a.status} refused: {status} "
                  f"{err.get('message')} [{err.get('code')}]", file=sys.stderr)
            return False
        for rec in body.get("records", []):
            to = ", ".join(rec.get("delivered_to") or []) or "nobody"
            print(f"{a.declaration_type} message {rec.get('message_id')} record {a.record_no}: "
                  f"{a.receipt_type} status {a.status} -> {rec.get('outcome')}, state {rec.get('state')}"
                  f" (to {to})")
    return True


def _open(envelope: bytes) -> pipeline.Opened:
    """The declaration in an outbox envelope, opened by the pipeline's own stages. Raises
    InputError for anything but a DxpMsg around a declaration."""
    limits = pipeline.Limits(DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH)
    catalog = load_catalog()
    ident = pipeline.identify(pipeline.parse_body(envelope, limits, source="outbox envelope"), catalog)
    if not ident.type.is_envelope:
        raise EnvelopeError("an outbox item is a DxpMsg envelope", field="DxpMsg")
    return pipeline.require_kind(pipeline.open_envelope(ident, catalog, limits), "declaration")


def register(subparsers: Any) -> None:
    """Add ``customs``."""
    p = subparsers.add_parser("customs", help="play the customs side (sandbox, demos, integration tests)")
    sub = p.add_subparsers(dest="customs_command", metavar="ACTION", required=True)
    a = sub.add_parser("answer", help="answer pending declarations with signed receipts, then ack them")
    a.add_argument("--transport", choices=("http", "amqp", "folder"), default="http",
                   help="how customs is reached (default http: the gateway's outbox and receipts API)")
    a.add_argument("--url", help="the gateway (--transport http)")
    a.add_argument("--token", help="the customs account's token (--transport http)")
    a.add_argument("--amqp", metavar="URL", help="the broker (--transport amqp)")
    a.add_argument("--queue", nargs="+", metavar="QUEUE",
                   help="customs queues to answer (--transport amqp; default the sandbox's two)")
    a.add_argument("--receipts-queue", default=RECEIPTS_QUEUE,
                   help=f"where receipts go (--transport amqp; default {RECEIPTS_QUEUE})")
    a.add_argument("--send", metavar="DIR", help="the DXP client's send folder (--transport folder)")
    a.add_argument("--receive", metavar="DIR", help="the DXP client's receive folder (--transport folder)")
    a.add_argument("--key", required=True, help="customs signing key (PEM, or .p12 with --cert omitted)")
    a.add_argument("--cert", help="customs certificate (PEM)")
    a.add_argument("--status", nargs="+", metavar="CODE",
                   help="returnStatus of each receipt, in order (default: 2 120; e.g. 2 120 800, or 100)")
    a.add_argument("--info", help="returnInfo text (default: one typical of each status)")
    a.add_argument("--limit", type=int, default=100, help="envelopes per lease (default 100)")
    a.add_argument("--follow", action="store_true", help="keep waiting for new declarations")
    a.add_argument("--wait", type=int, default=20, help="long-poll seconds with --follow (default 20)")
    a.set_defaults(func=_answer)
