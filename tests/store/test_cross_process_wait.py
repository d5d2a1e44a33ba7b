"""Two stores on one file, as two ``serve --workers`` processes have: long polls see each other's mail."""

from __future__ import annotations

import asyncio

from storekit import aio, any_store, message, receipt


@aio
async def test_mailbox_wait_sees_a_delivery_made_by_another_store_on_the_same_file(db: str) -> None:
    async with any_store(db) as first, any_store(db) as second:
        put = await first.put_message(message(1))
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiting = asyncio.create_task(first.mailbox_wait("acme", None, 10, 20.0))
        await asyncio.sleep(0.05)
        await second.put_receipt(receipt("120", put.message_id, n=1))
        items = await asyncio.wait_for(waiting, 5)
        assert [i.status for i in items] == ["120"]
        assert loop.time() - started < 3  # within about a second, not the full wait
