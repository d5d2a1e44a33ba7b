"""Finding a declaration by the CopMsgId of its envelope (how a CEB900 is correlated)."""

from __future__ import annotations

import pytest
from storekit import FakeClock, aio, message

from gateway.store import Subscriber, open_store


@aio
@pytest.mark.sqlite_only
async def test_find_by_cop_msg_id_returns_the_declaration_or_none(db: str, clock: FakeClock) -> None:
    store = open_store(f"sqlite:///{db}", clock=clock)
    try:
        put = await store.put_message(message(7, subscribers=(Subscriber("DXPENT0000000009", "RET"),)))
        ref = await store.find_by_cop_msg_id("MSG7")
        assert ref is not None
        assert (ref.message_id, ref.tenant, ref.message_type) == (put.message_id, "acme", "CEB621")
        assert ref.subscribers == (Subscriber("DXPENT0000000009", "RET"),)
        assert await store.find_by_cop_msg_id("MSG8") is None
    finally:
        await store.close()
