"""Worker processes of ``cebgw serve --workers N``: keep N running, stop them all together.

The parent owns the workers: a service manager may signal only the parent, and orphaned
workers would keep serving.  A worker that dies is replaced; a crash loop (more than
``max_restarts`` deaths within ``window_s`` seconds) stops everything, and the exit code
says so (:data:`~gateway.errors.EXIT_CRASH_LOOP`), so a service manager or an operator can
tell it from a clean stop.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from ..errors import EXIT_CRASH_LOOP, EXIT_OK


class _Stop(Exception):
    """SIGTERM or Ctrl-C reached the parent."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Stop


class _Deaths:
    """Worker deaths within the last ``window_s`` seconds."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._times: list[float] = []

    def add(self) -> int:
        """Count one death now; returns how many fall within the window."""
        now = time.monotonic()
        self._times = [t for t in self._times if now - t < self.window_s] + [now]
        return len(self._times)


def supervise(start_worker: Callable[[], BaseProcess], count: int, *, grace_s: float = 30.0,
              max_restarts: int = 5, window_s: float = 60.0) -> int:
    """Run ``count`` workers made by ``start_worker`` until SIGTERM or Ctrl-C reaches this process,
    replacing each one that dies; then stop them all (SIGTERM, SIGKILL after ``grace_s``).

    Returns :data:`~gateway.errors.EXIT_OK` after a requested stop, or
    :data:`~gateway.errors.EXIT_CRASH_LOOP` once more than ``max_restarts`` workers died
    within ``window_s`` seconds.
    """
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    procs: list[BaseProcess] = []
    deaths = _Deaths(window_s)
    try:
        procs = [start_worker() for _ in range(count)]
        while True:
            wait([p.sentinel for p in procs])
            for i, p in enumerate(procs):
                if p.is_alive():
                    continue
                _say(f"worker {p.pid} exited with {p.exitcode}")
                if deaths.add() > max_restarts:
                    _say(f"more than {max_restarts} worker deaths within {window_s:.0f} s; stopping")
                    return EXIT_CRASH_LOOP
                procs[i] = start_worker()
    except (_Stop, KeyboardInterrupt):
        return EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_all(procs, grace_s)


def _stop_all(procs: list[BaseProcess], grace_s: float) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM: aiohttp finishes in-flight requests and closes the store
    for p in procs:
        if p.pid is not None:
            p.join(grace_s)
        if p.is_alive():
            p.kill()
            p.join()


def _say(text: str) -> None:
    print(f"cebgw serve: {text}", file=sys.stderr, flush=True)
