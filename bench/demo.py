#!/usr/bin/env python3
"""The demo's end-to-end rate: ``cebgw demo`` in this process (gateway on a temporary SQLite
store, the customs sandbox deciding for itself, the simulated enterprises), timed.

Prints parcels/s from the first document submitted to the last answer read (every parcel's
order, payment, waybill and list through the gateway, customs and back to every mailbox, export
parcels through departure and summary), next to the rate at which the enterprises submitted
documents meanwhile (plain submission, one client, one request at a time).  Asserts nothing.

    .venv/bin/python bench/demo.py [--parcels 200] [--runs 2] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.cli.demo import run_demo  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parcels", type=int, default=200)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--inconsistent", type=float, default=0.3)
    ap.add_argument("--export", type=float, default=0.25)
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPU(s), "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"demo: {args.parcels} parcels, {args.inconsistent:.0%} of the import ones inconsistent, "
          f"{args.export:.0%} export; one process (gateway, customs and enterprises share one event loop)")
    for n in range(args.runs):
        run, planned, problems, _ = asyncio.run(run_demo(args.parcels, args.inconsistent, args.export,
                                                         args.seed + n, quiet=True))
        docs, took = sum(len(p.docs) for p in planned), run.submit_seconds
        print(f"run {n + 1}: end to end {len(planned) / run.seconds:7.1f} parcels/s ({run.seconds:.2f} s); "
              f"submission {docs / took:7.1f} documents/s ({docs} in {took:.2f} s)"
              f"{'' if not problems else f'; {len(problems)} problem(s)'}")


if __name__ == "__main__":
    main()
