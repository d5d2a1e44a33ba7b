"""Numbers customs assigns in a receipt become business keys of the declaration record."""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3

import pytest
from storekit import FakeClock, aio, any_store, message, receipt

from gateway.store import sqlops
from gateway.store.sqlite import SqliteStore


@aio
@pytest.mark.sqlite_only
async def test_assigned_keys_are_found_with_declared_ones_and_never_override_them(db: str,
                                                                                  clock: FakeClock) -> None:
    m = message(1, keys=[{"copNo": "C1"}, {"copNo": "C2", "invtNo": "DECLARED"}])
    async with SqliteStore(db, clock=clock) as store:
        put = await store.put_message(m)
        assert await store.find_declarations("CEB621", {"invtNo": "I1"}) == []
        r = dataclasses.replace(receipt("120", put.message_id, keys={"copNo": "C1"}),
                                declaration_record=0, assigned_keys={"preNo": "P1", "invtNo": "I1"})
        await store.put_receipt(r)
        r2 = dataclasses.replace(receipt("120", put.message_id, n=2, keys={"copNo": "C2"}),
                                 declaration_record=1, assigned_keys={"invtNo": "OTHER", "preNo": "P2"})
        await store.put_receipt(r2)
        (ref,) = await store.find_declarations("CEB621", {"invtNo": "I1"})
        assert (ref.message_id, ref.record_no) == (put.message_id, 0)
        (ref,) = await store.find_declarations("CEB621", {"copNo": "C1", "preNo": "P1", "invtNo": "I1"})
        assert ref.record_no == 0
        assert await store.find_declarations("CEB621", {"copNo": "C2", "invtNo": "I1"}) == []
        # the declared invtNo of record 1 stands; the receipt's other value is not recorded
        assert await store.find_declarations("CEB621", {"invtNo": "OTHER"}) == []
        assert [r.record_no for r in await store.find_declarations("CEB621", {"invtNo": "DECLARED"})] == [1]
        assert [r.record_no for r in await store.find_declarations("CEB621", {"preNo": "P2"})] == [1]
        assert await store.find_declarations("CEB311", {"invtNo": "I1"}) == []
        # the declaration itself is unchanged
        got = await store.get_message(put.message_id, "acme")
        assert got is not None
        assert got.business_keys == ({"copNo": "C1"}, {"copNo": "C2", "invtNo": "DECLARED"})
    with sqlite3.connect(db) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE assigned_key SET value = 'X'")


@aio
async def test_dead_letters_assign_nothing(db: str, clock: FakeClock) -> None:
    async with any_store(db, clock=clock) as store:
        await store.put_message(message(1))
        r = dataclasses.replace(receipt("120", None, keys={"copNo": "NOPE"}, reason="no match"),
                                assigned_keys={"invtNo": "I9"})
        assert (await store.put_receipt(r)).dead_letter
        assert await store.find_declarations("CEB621", {"invtNo": "I9"}) == []


@aio
async def test_the_probe_before_the_join_never_changes_what_is_found(db: str, clock: FakeClock,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """find_declarations answers [] without its join when some key is held by no record; with
    the probe bypassed, the join gives the same answer for every combination of keys, held
    together, held apart (by different records), assigned by customs or held by none."""
    async with any_store(db, clock=clock) as store:
        first = await store.put_message(message(1, keys=[{"copNo": "C1"}, {"copNo": "C2", "invtNo": "I2"}]))
        await store.put_message(message(2, keys=[{"copNo": "C3", "invtNo": "I1"}]))
        r = dataclasses.replace(receipt("120", first.message_id, keys={"copNo": "C1"}),
                                declaration_record=0, assigned_keys={"preNo": "P1", "invtNo": "I1"})
        await store.put_receipt(r)
        values = {"copNo": ["C1", "C2", "C3", "NONE"], "invtNo": ["I1", "I2", "NONE"],
                  "preNo": ["P1", "NONE"]}
        queries = [dict(zip(names, vals, strict=True))
                   for n in (1, 2, 3) for names in itertools.combinations(sorted(values), n)
                   for vals in itertools.product(*(values[name] for name in names))]
        probed = [await store.find_declarations(t, q) for t in ("CEB621", "CEB311") for q in queries]
        monkeypatch.setattr(sqlops, "_each_key_held", lambda conn, pairs: True)
        joined = [await store.find_declarations(t, q) for t in ("CEB621", "CEB311") for q in queries]
    assert probed == joined
    assert sum(1 for found in probed if found) >= 6  # the comparison is not between empty answers
