"""``cebgw sandbox``: play the customs intranet against a gateway, deciding for itself.

A shell over :mod:`gateway.sandbox.player` (lease the outbox, verify, decide, post signed
receipts, acknowledge) and :mod:`gateway.sandbox.district` (the three-order comparison,
channels, the export flow to the summary result).  Give the customs account's token, key and
certificate as ``sandbox.json`` lists them.  Without ``--follow`` it answers what is pending and
stops; with it, it waits for more until interrupted.  ``cebgw customs answer`` stays as the
manual override (the statuses you name, nothing compared).
"""

from __future__ import annotations

import argparse
import asyncio
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import aiohttp

from .. import reconcile
from ..dsig import load_key, load_registry
from ..errors import EXIT_INVALID, EXIT_OK, UsageError
from ..sandbox import datadir
from ..sandbox.channels import RulesFile
from ..sandbox.district import District
from ..sandbox.player import Player


def _amount(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise UsageError(f"{what} must be an amount in CNY, not {text!r}") from None
    if value <= 0:
        raise UsageError(f"{what} must be positive")
    return value


def _run(args: argparse.Namespace) -> int:
    if args.rate < 0:
        raise UsageError("--rate must be 0 (unpaced) or more declarations a second")
    if args.inspection_rate is not None and not 0 <= args.inspection_rate <= 1:
        raise UsageError("--inspection-rate must be from 0 to 1")
    rules = RulesFile(args.rules, inspection_rate=args.inspection_rate)
    current = rules.current()
    registry = load_registry(args.registry or datadir.sandbox_certs() / "registry.toml")
    limits = reconcile.Limits(_amount(args.single_limit, "--single-limit"),
                              _amount(args.annual_limit, "--annual-limit"))
    district = District(current, seed=args.seed, limits=limits)
    player = Player(args.url, args.token, load_key(args.key, args.cert), registry, district, rules=rules,
                    rate=args.rate, limit=args.limit, report=lambda line: print(line, flush=True))

    async def play() -> int:
        async with aiohttp.ClientSession() as session:
            posted = await player.run(session, follow=args.follow, wait=args.wait)
        t = district.tally
        print(f"customs: {posted.declarations} declaration(s) in {posted.envelopes} envelope(s), "
              f"{posted.receipts} answer(s) posted; released {t.released}, inspected {t.inspected}, "
              f"returned {t.returned}, manual review {t.manual_review}, waiting {t.waiting}, "
              f"rejected {sum(t.rejected.values())}")
        for why in posted.refused + posted.unreadable:
            print(f"customs: {why}")
        return EXIT_INVALID if posted.refused or posted.unreadable else EXIT_OK
    try:
        return asyncio.run(play())
    except aiohttp.ClientError as exc:
        raise UsageError(f"cannot reach the gateway at {args.url}: {exc}") from None


def register(subparsers: Any) -> None:
    """Add ``sandbox``."""
    p = subparsers.add_parser("sandbox", help="play customs against a gateway, deciding for itself "
                                              "(three-order comparison, channels, export to the summary)")
    p.add_argument("--url", required=True, help="the gateway, e.g. http://127.0.0.1:8631")
    p.add_argument("--token", required=True, help="the customs account's token (sandbox.json: customs.token)")
    p.add_argument("--key", required=True, help="customs signing key (sandbox.json: customs.key)")
    p.add_argument("--cert", help="customs certificate (sandbox.json: customs.cert)")
    p.add_argument("--registry", type=Path,
                   help="certificates of the enterprises it verifies (default: certs/sandbox/registry.toml)")
    p.add_argument("--seed", type=int, default=0, help="fixes every random choice (default 0)")
    p.add_argument("--inspection-rate", type=float, metavar="R",
                   help="share of lists inspected at random, 0 to 1 (default: the rules' inspection_rate)")
    p.add_argument("--rules", metavar="FILE",
                   help="channel rules TOML, reread when it changes (default gateway/sandbox/channels.toml)")
    p.add_argument("--single-limit", default=str(reconcile.DEFAULT_SINGLE_LIMIT), metavar="CNY",
                   help=f"single-transaction limit (default {reconcile.DEFAULT_SINGLE_LIMIT})")
    p.add_argument("--annual-limit", default=str(reconcile.DEFAULT_ANNUAL_LIMIT), metavar="CNY",
                   help=f"annual limit per buyer (default {reconcile.DEFAULT_ANNUAL_LIMIT})")
    p.add_argument("--rate", type=float, default=0.0, metavar="N",
                   help="take at most N declarations a second, like a busy district (default: unpaced)")
    p.add_argument("--limit", type=int, default=100, help="envelopes per lease (default 100)")
    p.add_argument("--follow", action="store_true", help="keep waiting for new declarations")
    p.add_argument("--wait", type=int, default=20, help="long-poll seconds with --follow (default 20)")
    p.set_defaults(func=_run)
