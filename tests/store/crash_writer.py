"""Crash-test child: put_message in a loop from several tasks, printing each acknowledged id.

Usage: ``python crash_writer.py DB_PATH``.  The parent kills it with SIGKILL; every id
printed must survive.  Not a test module (no ``test_`` prefix).
"""

from __future__ import annotations

import asyncio
import sys

from storekit import message

from gateway.store.sqlite import SqliteStore


async def main(path: str) -> None:
    store = SqliteStore(path)
    counter = iter(range(10**9))

    async def worker() -> None:
        while True:
            result = await store.put_message(message(next(counter), body="crash"))
            sys.stdout.write(f"{result.message_id}\n")
            sys.stdout.flush()

    await asyncio.gather(*(worker() for _ in range(8)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
