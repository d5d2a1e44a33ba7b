"""routing.version_of: which version of a document a receipt record answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.routing import ReceiptRecord, version_of
from gateway.state import State
from gateway.store import DeclarationRef

T = datetime(2026, 11, 23, tzinfo=UTC)


def _ref(mid: int, state: State, guid: str = "", record_guid: str = "") -> DeclarationRef:
    return DeclarationRef(mid, "t", "CEB311", guid or f"ROOT-{mid}", "S", 0, state, T, (), record_guid)


def _rec(guid: str = "", info: str = "") -> ReceiptRecord:
    return ReceiptRecord(0, guid, "2", "20261123000000000", info, {})


# newest first, as the store finds them
VERSIONS = [_ref(3, State.DECLARED, record_guid="H3"), _ref(2, State.DECLARING, record_guid="h2"),
            _ref(1, State.REJECTED, record_guid="H1")]


@pytest.mark.parametrize("rec,expected", [
    (_rec(guid="H1"), 1),                                   # its record guid, even rejected
    (_rec(guid="root-2"), 2),                               # a root guid, any case
    (_rec(info="新增申报成功[H2" + "0" * 34 + "]"), 2),       # not a guid of any: the fallback
    (_rec(info=f"新增申报成功[{'A' * 36}]"), 2),
    (_rec(), 2),                                            # no guid: the newest sent, not rejected
])
def test_a_record_goes_to_the_version_it_names_else_the_one_customs_holds(rec: ReceiptRecord,
                                                                          expected: int) -> None:
    assert version_of(VERSIONS, rec).message_id == expected


def test_a_bracketed_guid_in_return_info_names_the_version() -> None:
    guid = "4CDE1CFD-0000-4000-8000-000000000003"
    versions = [_ref(3, State.SENT, record_guid=guid), _ref(2, State.DECLARING)]
    assert version_of(versions, _rec(info=f"新增申报成功[{guid.lower()}]")).message_id == 3
    assert version_of(versions, _rec()).message_id == 3  # the newest sent
    nothing_sent = [_ref(2, State.DECLARED), _ref(1, State.REJECTED)]
    assert version_of(nothing_sent, _rec()).message_id == 2  # else the newest
