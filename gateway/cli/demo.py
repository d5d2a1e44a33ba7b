"""``cebgw demo`` (``make demo``): a gateway, the customs sandbox and the enterprises, end to end.

Starts a gateway on a temporary SQLite store (a throw-away sandbox data directory, on a free
port), the customs sandbox deciding for itself (:mod:`gateway.sandbox.player`) and the
simulated enterprises (:mod:`gateway.sandbox.demo`), which declare N parcels' documents in
random order, a share of them deliberately inconsistent.  Shows a progress bar, then a table;
exits 1 if any sender did not get exactly the receipts owed to it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ..accounts import PREFLIGHT_POLICIES, Accounts, read_accounts, write_accounts
from ..dsig import load_key, load_registry
from ..errors import EXIT_INVALID, EXIT_OK, UsageError
from ..sandbox import datadir
from ..sandbox.channels import default_rules
from ..sandbox.demo import Enterprises, Run, plan
from ..sandbox.demo_report import check, progress_bar, table
from ..sandbox.district import District
from ..sandbox.player import Player
from ..service.app import build_app


async def run_demo(parcels: int, inconsistent: float, export: float, seed: int, *,
                   preflight: str = "hold", quiet: bool = False,
                   data: Path | None = None) -> tuple[Run, list[Any], list[str], District]:
    """The whole demo in this process, the enterprises with the ``preflight`` policy; returns the
    run, the plan, the problems and customs' tally.  Uses ``data`` (default: a temporary
    directory, removed afterwards) for the store and accounts."""
    with tempfile.TemporaryDirectory(prefix="cebgw-demo-") as tmp:
        root = Path(data or tmp)
        info = datadir.ensure(root, url="http://127.0.0.1:0")
        accounts = root / "accounts.toml"
        write_accounts(accounts, Accounts(tuple(a if a.is_customs else replace(a, preflight=preflight)
                                                for a in read_accounts(accounts).accounts)))
        app = build_app(datadir.settings_for(root), transports=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            customs = info["customs"]
            district = District(default_rules(), seed=seed)
            player = Player(url, customs["token"], load_key(customs["key"], customs["cert"]),
                            load_registry(datadir.sandbox_certs() / "registry.toml"), district)
            planned = plan(parcels, inconsistent, export, seed)
            stop = asyncio.Event()
            async with aiohttp.ClientSession() as session:
                playing = asyncio.create_task(player.run(session, follow=True, wait=1, stop=stop))
                ents = Enterprises(info, url, seed=seed, progress=None if quiet else progress_bar())
                try:
                    run = await ents.play(session, planned, timeout=60 + parcels * 0.5)
                finally:
                    stop.set()
                    await playing
            problems = check(run, preflight)
            problems += [f"customs: {why}" for why in player.posted.refused + player.posted.unreadable]
            return run, planned, problems, district
        finally:
            await runner.cleanup()


def _share(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what} must be a share from 0 to 1, not {text!r}") from None
    if not 0 <= value <= 1:
        raise UsageError(f"{what} must be a share from 0 to 1")
    return value


def _run(args: argparse.Namespace) -> int:
    if args.parcels < 1:
        raise UsageError("--parcels must be at least 1")
    inconsistent = _share(args.inconsistent, "--inconsistent")
    export = _share(args.export, "--export")
    run, planned, problems, _ = asyncio.run(run_demo(args.parcels, inconsistent, export, args.seed,
                                                     preflight=args.preflight))
    print(table(run, planned, problems, preflight=args.preflight))
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    return EXIT_INVALID if problems else EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``demo``."""
    p = subparsers.add_parser("demo", help="a gateway, the customs sandbox and enterprises, end to end")
    p.add_argument("--parcels", type=int, default=60, metavar="N", help="parcels to declare (default 60)")
    p.add_argument("--inconsistent", default="0.3", metavar="P",
                   help="share of the import parcels made inconsistent, 0 to 1 (default 0.3)")
    p.add_argument("--export", default="0.25", metavar="E",
                   help="share of the parcels that are export parcels, 0 to 1 (default 0.25)")
    p.add_argument("--seed", type=int, default=1, help="fixes the parcels, their order and customs' choices")
    p.add_argument("--preflight", choices=PREFLIGHT_POLICIES, default="hold",
                   help="the enterprises' pre-flight policy (default hold: finding receipts, and lists "
                        "held back from customs until an operator sends them on)")
    p.set_defaults(func=_run)
