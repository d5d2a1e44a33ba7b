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
from ..sandbox.transports import amqp_info, folders_info, sandbox_amqp, sandbox_folders
from ..service.app import build_app, runner_options, settle_heap, ssl_context
from ..service.supervisor import supervise
from ..store import open_store
from ..transport.amqp import declare_now
from ..transportconfig import TransportSettings


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
                    access_log=None, loop=_event_loop(), **runner_options(settings))
    except OSError as exc:  # binding is the only socket work run_app itself does
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _run(args: argparse.Namespace) -> int:
    if args.sandbox and args.config:
        raise UsageError("--sandbox and --config exclude each other")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if (args.amqp or args.folders) and not args.sandbox:
        raise UsageError("--amqp and --folders wire a sandbox; a deployment sets [transport] in its settings")
    if args.sandbox:
        data = Path(args.data)
        transport, entries = _sandbox_transports(args)
        info = datadir.ensure(data, url=f"http://{args.host}:{args.port}", transports=entries)
        settings = datadir.settings_for(data).with_(transport=transport)
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
    asyncio.run(_open_once(settings.store_url))  # refused here, not N times by dying workers
    ctx = multiprocessing.get_context("spawn")
    first = [announce]  # the first worker to listen says so; replacements say nothing

    def start_worker() -> BaseProcess:
        text = first.pop() if first else None
        proc = ctx.Process(target=_serve, args=(settings, args.host, args.port, True, text), daemon=False)
        proc.start()
        return proc

    return supervise(start_worker, args.workers)


async def _open_once(url: str) -> None:
    """Open (and so migrate) the store once before the workers start; raises StoreError."""
    await open_store(url).close()


def _sandbox_transports(args: argparse.Namespace) -> tuple[TransportSettings, dict[str, Any]]:
    """``--amqp URL`` and ``--folders DIR``: the sandbox's transports (queues declared now, durable,
    so they are there for customs from the start) and their ``sandbox.json`` entries."""
    amqp = sandbox_amqp(args.amqp, prefix=args.amqp_prefix) if args.amqp else None
    folders = sandbox_folders(Path(args.folders).resolve()) if args.folders else None
    entries: dict[str, Any] = {}
    if amqp is not None:
        asyncio.run(declare_now(amqp))
        entries["amqp"] = amqp_info(amqp)
    if folders is not None:
        entries["folders"] = folders_info(folders)
    return TransportSettings(amqp=amqp, folder=folders), entries


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
    p.add_argument("--amqp", metavar="URL",
                   help="with --sandbox: carry envelopes and receipts over RabbitMQ at URL (default names, "
                        "declared durable, listed in sandbox.json)")
    p.add_argument("--amqp-prefix", default="cebgw", metavar="NAME",
                   help="with --amqp: the exchange's name, and the queues' prefix (default cebgw)")
    p.add_argument("--folders", metavar="DIR",
                   help="with --sandbox: a DXP client's send and receive folders under DIR")
    p.set_defaults(func=_run)
