"""The store's parcel tables (migration 10): document versions, held envelopes the outbox passes
over, outcomes kept by basis, buyers' totals as exact decimals."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import uuid

import pytest
from storekit import FakeClock, aio, any_store

from gateway.store import NewMessage, ParcelDoc
from gateway.store.sqlite import SqliteStore


def _doc(code: str, ebp: str, order_no: str, *, held: bool = False, sender: str = "S1",
         tenant: str = "t1") -> NewMessage:
    guid = str(uuid.uuid4()).upper()
    data = f'<CEB{code[3:]}Message guid="{guid}"/>'.encode()
    head = {"guid": guid + "-H", "orderNo": order_no, "ebpCode": ebp}
    return NewMessage(tenant=tenant, sender_code=sender, message_type=code, guid=guid, data=data,
                      business_keys=[{"orderNo": order_no}], envelope=data + b"<env/>", cop_msg_id=guid,
                      record_guids=[guid + "-H"],
                      parcel_docs=[ParcelDoc(0, ebp, order_no, json.dumps({"head": head, "lines": []}))],
                      held=held)


@aio
async def test_versions_of_a_parcel_with_waybills_by_order_number(db: str, clock: FakeClock) -> None:
    async with any_store(db, clock=clock) as store:
        order = await store.put_message(_doc("CEB311", "E1", "O1"))
        waybill = await store.put_message(_doc("CEB511", "", "O1", sender="S2", tenant="t2"))
        await store.put_message(_doc("CEB311", "E2", "O1"))  # another platform's parcel
        versions = await store.parcel_versions("E1", "O1")
        assert [(v.message_id, v.message_type, v.tenant) for v in versions] == [
            (order.message_id, "CEB311", "t1"), (waybill.message_id, "CEB511", "t2")]
        assert versions[0].guid.endswith("-H") and not versions[0].held and not versions[0].sent
        assert {v.message_type for v in await store.parcel_versions("", "O1")} == {"CEB311", "CEB511"}
        assert len(await store.parcel_versions("", "O1")) == 3
        refs = await store.find_declarations("CEB311", {"orderNo": "O1"})
        assert len(refs) == 2 and all(r.record_guid == r.guid + "-H" for r in refs)


@aio
async def test_a_held_envelope_is_not_leased_until_released(db: str, clock: FakeClock) -> None:
    async with any_store(db, clock=clock) as store:
        held = await store.put_message(_doc("CEB621", "E1", "O1", held=True))
        after = await store.put_message(_doc("CEB311", "E1", "O2"))
        assert [h.message_id for h in await store.held_lists(None, 10)] == [held.message_id]
        assert await store.held_lists("someone-else", 10) == []
        leased = await store.lease_outbox(10, 30)
        assert [i.message_id for i in leased] == [after.message_id]  # the sender's queue goes on
        await store.ack_outbox([i.id for i in leased])
        assert await store.set_hold(held.message_id, False, "op") is True
        assert await store.set_hold(held.message_id, False, "op") is False
        assert [i.message_id for i in await store.lease_outbox(10, 30)] == [held.message_id]
        # once leased it can no longer be held
        assert await store.set_hold(held.message_id, True) is False
        fresh = await store.put_message(_doc("CEB621", "E1", "O3"))
        assert await store.set_hold(fresh.message_id, True) is True
        assert await store.set_hold(fresh.message_id, True) is False
        assert (await store.parcel_versions("E1", "O3"))[0].held


@aio
async def test_outcomes_are_kept_by_basis_and_totals_are_exact(db: str, clock: FakeClock) -> None:
    async with any_store(db, clock=clock) as store:
        assert await store.parcel_outcome("E1", "O1") is None
        assert await store.put_parcel_outcome("E1", "O1", 5, '{"findings": [1]}') is True
        assert await store.put_parcel_outcome("E1", "O1", 4, '{"findings": []}') is False
        kept = await store.parcel_outcome("E1", "O1")
        assert kept is not None and (kept.basis, kept.findings) == (5, '{"findings": [1]}')
        for n in range(10):
            await store.record_spending("B1", 2026, "E1", f"O{n}", "0.1")
        await store.record_spending("B1", 2026, "E1", "O0", "0.30")  # again: replaces
        await store.record_spending("B1", 2025, "E1", "OLD", "999")
        assert await store.buyer_spent("B1", 2026, "E1", "O9") == "1.10"
        assert await store.buyer_spent("B1", 2026, "X", "Y") == "1.20"
        assert await store.buyer_spent("B2", 2026, "X", "Y") == "0"


@pytest.mark.sqlite_only
def test_parcel_docs_are_append_only(db: str) -> None:
    async def fill() -> int:
        async with SqliteStore(db) as store:
            return (await store.put_message(_doc("CEB311", "E1", "O1"))).message_id

    mid = asyncio.run(fill())
    with sqlite3.connect(db) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE parcel_doc SET order_no = 'X' WHERE message_id = ?", (mid,))


@aio
async def test_a_version_without_kept_fields_comes_with_its_bytes(db: str, clock: FakeClock) -> None:
    async with any_store(db, clock=clock) as store:
        kept = _doc("CEB311", "E1", "O9")
        bare = _doc("CEB411", "E1", "O9")
        bare = dataclasses.replace(bare, parcel_docs=[ParcelDoc(0, "E1", "O9", "")])
        await store.put_message(kept)
        await store.put_message(bare)
        first, second = await store.parcel_versions("E1", "O9")
        assert first.fields == kept.parcel_docs[0].fields and first.data is None
        assert second.fields == "" and second.data == bare.data and isinstance(second.data, bytes)
