"""``cebgw serve``: run the gateway service.

``--sandbox`` creates (first time) or reuses a data directory with a SQLite store,
accounts with fresh tokens and sandbox keys, then prints the URL, the tokens and a
``curl`` line.  ``--config FILE`` runs a real deployment; ``--workers N`` starts N
processes sharing the port (SO_REUSEPORT), each with its own app on the same store
(their store writers take turns through a file lock, see gateway/store/writer.py).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from aiohttp import web

from ..config import Settings
from ..config import load as load_settings
from ..errors import EXIT_OK, EXIT_USAGE, UsageError
from ..sandbox import datadir
from ..service.app import build_app, runner_options, settle_heap, ssl_context

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "valid" / "CEB311.xml"


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux, macOS), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _serve(settings: Settings, host: str, port: int, reuse_port: bool) -> None:
    app = build_app(settings)
    settle_heap()
    web.run_app(app, host=host, port=port, ssl_context=ssl_context(settings),
                reuse_port=reuse_port, print=None, access_log=None, loop=_event_loop(),
                **runner_options(settings))


def _print_sandbox(info: dict[str, Any]) -> None:
    url = info["url"]
    print(f"ceb-gateway sandbox listening on {url}")
    print(f"  sandbox details (tokens, keys): {info.get('_path', '')}")
    for acc in info["accounts"]:
        print(f"  {acc['name']:<14} codes={','.join(acc['codes'])} token={acc['token']}")
    print(f"  {'customs':<14} token={info['customs']['token']}")
    ecommerce = next((a for a in info["accounts"] if a["name"] == "ecommerce"), info["accounts"][0])
    print("\nSubmit a sample order:")
    print(f"  curl -sS -X POST {url}/v1/messages -H 'Authorization: Bearer {ecommerce['token']}' "
          f"-H 'Content-Type: application/xml' --data-binary @{SAMPLE}")
    customs = info["customs"]
    print(f"Answer it as customs (the sandbox plays customs; signed CEB312 receipts, statuses 2 and 120):\n"
          f"  cebgw customs answer --url {url} --token {customs['token']} --key {customs['key']} "
          f"--cert {customs['cert']}")
    print(f"Then poll receipts:\n  curl -sS '{url}/v1/receipts?wait=20' "
          f"-H 'Authorization: Bearer {ecommerce['token']}'", flush=True)


def _run(args: argparse.Namespace) -> int:
    if args.sandbox and args.config:
        raise UsageError("--sandbox and --config exclude each other")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.sandbox:
        data = Path(args.data)
        scheme = "http"
        info = datadir.ensure(data, url=f"{scheme}://{args.host}:{args.port}")
        info["_path"] = str((data / datadir.INFO_FILE).resolve())
        settings = datadir.settings_for(data)
        _print_sandbox(info)
    elif args.config:
        settings = load_settings(args.config)
        print(f"ceb-gateway listening on {args.host}:{args.port} with {args.workers} worker(s)", flush=True)
    else:
        raise UsageError("give --sandbox or --config FILE")
    if args.db:
        settings = settings.with_(store_url=args.db)
    if args.workers == 1:
        _serve(settings, args.host, args.port, reuse_port=False)
        return EXIT_OK
    ctx = multiprocessing.get_context("spawn")

    def start_worker() -> BaseProcess:
        proc = ctx.Process(target=_serve, args=(settings, args.host, args.port, True), daemon=False)
        proc.start()
        return proc

    return _supervise(start_worker, args.workers)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _supervise(start_worker: Callable[[], BaseProcess], count: int, *, grace_s: float = 30.0,
               max_restarts: int = 5, window_s: float = 60.0) -> int:
    """Run ``count`` workers until SIGTERM or Ctrl-C to this process, then stop them all (a
    service manager may signal only the parent, and orphaned workers would keep serving).

    A worker that dies is replaced; more than ``max_restarts`` deaths within ``window_s``
    seconds is a crash loop: everything stops and the exit code says so.
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)
    procs: list[BaseProcess] = []
    deaths: list[float] = []
    code = EXIT_OK
    try:
        procs = [start_worker() for _ in range(count)]
        while True:
            wait([p.sentinel for p in procs])
            for i, p in enumerate(procs):
                if p.is_alive():
                    continue
                now = time.monotonic()
                deaths = [t for t in deaths if now - t < window_s] + [now]
                print(f"cebgw serve: worker {p.pid} exited with {p.exitcode}", file=sys.stderr, flush=True)
                if len(deaths) > max_restarts:
                    print(f"cebgw serve: {len(deaths)} worker deaths within {window_s:.0f} s; stopping",
                          file=sys.stderr, flush=True)
                    return EXIT_USAGE
                procs[i] = start_worker()
    except KeyboardInterrupt:
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: aiohttp finishes in-flight requests and closes the store
        for p in procs:
            if p.pid is not None:
                p.join(grace_s)
            if p.is_alive():
                p.kill()
                p.join()


def register(subparsers: Any) -> None:
    """Add ``serve``."""
    p = subparsers.add_parser("serve", help="run the gateway service")
    p.add_argument("--sandbox", action="store_true", help="sandbox accounts, keys and store in --data")
    p.add_argument("--data", default="var/sandbox", help="sandbox data directory (default var/sandbox)")
    p.add_argument("--config", help="settings TOML for a real deployment")
    p.add_argument("--db", metavar="URL",
                   help="the store, e.g. sqlite:///var/cebgw/gateway.db (default: the settings' store_url;"
                        " with --sandbox, DATA/gateway.db)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8631)
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    p.set_defaults(func=_run)
