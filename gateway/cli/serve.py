"""``cebgw serve``: run the gateway service.

``--sandbox`` creates (first time) or reuses a data directory with a SQLite store and
accounts with fresh tokens (keys and registry: the committed ``certs/sandbox``); once it
listens it prints the URL, the tokens and the commands to try it (:mod:`gateway.sandbox.banner`);
settings, store, registry and port are all checked before anything is printed.
``--config FILE`` runs a real deployment; ``--workers N`` starts N processes sharing the port
(SO_REUSEPORT), each with its own app on the same store (their store writers take turns
through a file lock, see gateway/store/writer.py).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from aiohttp import web

from ..config import Settings
from ..config import load as load_settings
from ..errors import EXIT_OK, UsageError
from ..sandbox import banner, datadir
from ..service.app import build_app, settle_heap, ssl_context
from ..service.supervisor import supervise


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux, macOS), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _serve(settings: Settings, host: str, port: int, reuse_port: bool, announce: str | None = None) -> None:
    """Serve until interrupted; ``announce`` is printed once the app is built (store open,
    registry and keys loaded) and the port is bound, so a bad setting prints nothing else."""
    app = build_app(settings)
    tls = ssl_context(settings)
    settle_heap()
    try:
        web.run_app(app, host=host, port=port, ssl_context=tls, reuse_port=reuse_port,
                    print=(lambda _: print(announce, flush=True)) if announce else None,
                    access_log=None, loop=_event_loop())
    except OSError as exc:  # binding is the only socket work run_app itself does
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _run(args: argparse.Namespace) -> int:
    if args.sandbox and args.config:
        raise UsageError("--sandbox and --config exclude each other")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.sandbox:
        data = Path(args.data)
        info = datadir.ensure(data, url=f"http://{args.host}:{args.port}")
        settings = datadir.settings_for(data)
        if args.db:
            settings = settings.with_(store_url=args.db)
        announce = banner.render(info, info_path=data / datadir.INFO_FILE)
    elif args.config:
        settings = load_settings(args.config)
        if args.db:
            settings = settings.with_(store_url=args.db)
        announce = f"ceb-gateway listening on {args.host}:{args.port} with {args.workers} worker(s)"
    else:
        raise UsageError("give --sandbox or --config FILE")
    if args.workers == 1:
        _serve(settings, args.host, args.port, reuse_port=False, announce=announce)
        return EXIT_OK
    ctx = multiprocessing.get_context("spawn")
    first = [announce]  # the first worker to listen says so; replacements say nothing

    def start_worker() -> BaseProcess:
        text = first.pop() if first else None
        proc = ctx.Process(target=_serve, args=(settings, args.host, args.port, True, text), daemon=False)
        proc.start()
        return proc

    return supervise(start_worker, args.workers)


def register(subparsers: Any) -> None:
    """Add ``serve``."""
    p = subparsers.add_parser("serve", help="run the gateway service")
    p.add_argument("--sandbox", action="store_true",
                   help="sandbox accounts and store in --data; keys and registry: certs/sandbox")
    p.add_argument("--data", default="var/sandbox", help="sandbox data directory (default var/sandbox)")
    p.add_argument("--config", help="settings TOML for a real deployment")
    p.add_argument("--db", metavar="URL",
                   help="the store, e.g. sqlite:///var/cebgw/gateway.db (default: the settings' store_url;"
                        " with --sandbox, DATA/gateway.db)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8631)
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    p.set_defaults(func=_run)
