"""A declaration's guard (``NewMessage.guard``) runs inside the transaction that stores it: it reads
the store with the messages before it in the same group commit, and refusing one message leaves
the others of the batch alone.  Both backends (the ``db`` fixture)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3

import pytest
from storekit import FakeClock, aio, any_store, message

from gateway.errors import ConflictError, InputError, StoreError
from gateway.store import Guard, NewMessage, ParcelDoc, Versions
from gateway.store.migrations import MIGRATIONS, migrate
from gateway.store.sqlops import _BatchVersions


def _guarded(n: int, key: str, seen: list[list[int]]) -> NewMessage:
    """Message ``n`` with copNo ``key``, guarded by :func:`_first_of`."""
    return dataclasses.replace(message(n, keys=[{"copNo": key}]), guard=_first_of({"copNo": key}, seen))


def _first_of(keys: dict[str, str], seen: list[list[int]]) -> Guard:
    """A guard that notes the ids of the CEB621 declarations holding ``keys`` and refuses the
    message if there is one (as the lifecycle refuses a second appType 1)."""

    def guard(v: Versions) -> None:
        found = [r.message_id for r in v.declarations("CEB621", keys)]
        seen.append(found)
        if found:
            raise InputError(f"{keys} already declared as {found}", field="appType")

    return guard


@aio
async def test_messages_stored_together_see_each_other_and_fail_alone(db: str, clock: FakeClock) -> None:
    seen: list[list[int]] = []
    same = [_guarded(n, "SAME", seen) for n in range(4)]
    other = _guarded(9, "OTHER", seen)
    async with any_store(db, clock=clock) as store:
        # all five in flight at once: one group commit
        results = await asyncio.gather(*(store.put_message(m) for m in [same[0], other, *same[1:]]),
                                       return_exceptions=True)
        first, second, *refused = results
        assert not isinstance(first, BaseException) and not isinstance(second, BaseException), results
        assert all(isinstance(r, InputError) and f"[{first.message_id}]" in str(r) for r in refused), results
        assert seen[:2] == [[], []] and seen[2:] == [[first.message_id]] * 3
        # nothing of the refused ones was written; the batch's others were
        assert [r.message_id for r in await store.find_declarations("CEB621", {"copNo": "SAME"})] \
            == [first.message_id]
        assert [r.message_id for r in await store.find_declarations("CEB621", {"copNo": "OTHER"})] \
            == [second.message_id]
        # later, one at a time: the stored one is seen
        with pytest.raises(InputError):
            await store.put_message(_guarded(5, "SAME", seen))
        # the same bytes again are a duplicate, answered before (and without) the guard
        calls = len(seen)
        again = await store.put_message(same[0])
        assert again.duplicate and again.message_id == first.message_id and len(seen) == calls
        # a reused guid is a conflict, whatever the guard would say
        with pytest.raises(ConflictError):
            await store.put_message(dataclasses.replace(same[1], guid=same[0].guid))
        assert len(seen) == calls


def _parcel(n: int, ebp: str, order_no: str, *, held: bool = False, fields: bool = True) -> NewMessage:
    doc = json.dumps({"head": {"orderNo": order_no}, "lines": []}) if fields else ""
    docs = [ParcelDoc(0, ebp, order_no, doc), ParcelDoc(1, "", order_no, doc)]
    return dataclasses.replace(message(n, keys=[{"copNo": f"C{n}"}, {"copNo": f"D{n}"}]), held=held,
                               record_guids=[f"G{n}-0", ""], parcel_docs=docs)


@aio
async def test_what_a_guard_sees_of_its_batch_is_what_the_store_says_once_committed(db: str,
                                                                                    clock: FakeClock) -> None:
    """The batch's messages, seen before their rows are written, read as their rows read after."""
    batch = [_parcel(1, "E1", "O1"), _parcel(2, "E1", "O1", held=True), _parcel(3, "E2", "O1", fields=False),
             _parcel(4, "E1", "O2")]
    looked: dict[str, object] = {}
    queries = [("E1", "O1"), ("", "O1"), ("E2", "O1"), ("E1", "O2"), ("E9", "O9")]
    keys = [{"copNo": "C1"}, {"copNo": "D2"}, {"copNo": "C4"}]

    def last_guard(v: Versions) -> None:
        looked["versions"] = [v.parcel_versions(e, o) for e, o in queries]
        looked["declarations"] = [v.declarations("CEB621", k) for k in keys]

    tail = dataclasses.replace(message(99, keys=[{"copNo": "Z"}]), guard=last_guard)
    async with any_store(db, clock=clock) as store:
        await asyncio.gather(*(store.put_message(m) for m in [*batch, tail]))
        after = [await store.parcel_versions(e, o) for e, o in queries]
        found = [await store.find_declarations("CEB621", k) for k in keys]
    assert looked["versions"] == after
    # record_guid is not given inside the transaction; the rest is the same
    without_guids = [[dataclasses.replace(r, record_guid="") for r in refs] for refs in found]
    assert looked["declarations"] == without_guids
    assert all(found)


def test_the_batch_view_of_a_message_with_no_parcel_documents_is_empty() -> None:
    conn = sqlite3.connect(":memory:")
    migrate(conn, MIGRATIONS)
    view = _BatchVersions(conn)
    view.pending.append((1, message(1), 0))
    assert view.parcel_versions("", "O1") == []
    assert [r.message_id for r in view.declarations("CEB621", {"copNo": "COP1"})] == [1]


@aio
async def test_a_guard_that_breaks_fails_its_own_message_only(db: str, clock: FakeClock,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    def broken(v: Versions) -> None:
        raise RuntimeError("a bug")

    bad = dataclasses.replace(message(1), guard=broken)
    async with any_store(db, clock=clock) as store:
        results = await asyncio.gather(store.put_message(message(0)), store.put_message(bad),
                                       store.put_message(message(2)), return_exceptions=True)
        first, failed, last = results
        assert isinstance(failed, StoreError) and "RuntimeError('a bug')" in str(failed), results
        assert not isinstance(first, BaseException) and not isinstance(last, BaseException), results
        assert await store.find_declarations("CEB621", {"copNo": "COP1"}) == []
        assert [len(await store.find_declarations("CEB621", {"copNo": f"COP{n}"})) for n in (0, 2)] == [1, 1]
    assert "the guard of message" in caplog.text
