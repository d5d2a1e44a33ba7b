"""The worker supervisor of ``cebgw serve --workers N``: replaces dead workers, stops on a crash
loop with its own exit code, and stops every worker when the parent is told to stop."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.process import BaseProcess

from gateway.errors import EXIT_CRASH_LOOP, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE
from gateway.service.supervisor import supervise

_CTX = multiprocessing.get_context("spawn")


def _stop_parent_then_wait() -> None:
    os.kill(os.getppid(), signal.SIGTERM)
    time.sleep(60)  # until the supervisor terminates it


def test_a_crash_loop_stops_everything_with_its_own_exit_code() -> None:
    started: list[BaseProcess] = []

    def start() -> BaseProcess:
        p = _CTX.Process(target=sys.exit, args=(3,))
        p.start()
        started.append(p)
        return p

    code = supervise(start, 2, max_restarts=3, window_s=60)
    assert code == EXIT_CRASH_LOOP and code not in (EXIT_OK, EXIT_USAGE, EXIT_INTERNAL)
    assert len(started) == 2 + 3  # the first two, then one replacement per death up to the limit
    assert not any(p.is_alive() for p in started)


def test_sigterm_to_the_parent_stops_every_worker_and_exits_ok() -> None:
    started: list[BaseProcess] = []

    def start() -> BaseProcess:
        # the first worker signals the parent, as a service manager would; the second just serves
        p = _CTX.Process(target=_stop_parent_then_wait if not started else time.sleep, args=() if not started
                         else (60,))
        p.start()
        started.append(p)
        return p

    previous = signal.getsignal(signal.SIGTERM)
    assert supervise(start, 2, grace_s=10) == EXIT_OK
    assert len(started) == 2 and not any(p.is_alive() for p in started)
    assert signal.getsignal(signal.SIGTERM) == previous  # the caller's handler is back
