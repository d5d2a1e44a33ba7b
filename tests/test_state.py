"""The declaration state machine (gateway/state.py): table, ordering, finals, permutations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from gateway.state import FINAL, RANK, State, advance, advance_to, fold, state_for_status

S = State


@pytest.mark.parametrize(("status", "expected"), [
    ("1", S.DRAFT), ("2", S.DECLARING), ("3", S.SENT_TO_CUSTOMS), ("4", S.SEND_FAILED),
    ("100", S.REJECTED), ("120", S.ACCEPTED), ("300", S.MANUAL_REVIEW), ("399", S.CONCLUDED),
    ("500", S.INSPECTION), ("501", S.DETAINED), ("502", S.DETAINED), ("503", S.DETAINED),
    ("599", S.DETAINED), ("505", S.MANUAL_REVIEW), ("600", S.MANUAL_REVIEW), ("700", S.RETURNED),
    ("800", S.RELEASED), ("899", S.CLOSED), ("-1", S.REJECTED), ("-621004", S.REJECTED),
    (" 120 ", S.ACCEPTED),
])
def test_status_table(status: str, expected: State) -> None:
    assert state_for_status(status) == expected


@pytest.mark.parametrize("status", ["", "abc", "12.0", "0", "42", "999", "+-1"])
def test_unknown_status_changes_nothing(status: str) -> None:
    tr = advance(S.ACCEPTED, status)
    assert (tr.after, tr.outcome, tr.changed) == (S.ACCEPTED, "unknown", False)


def test_every_state_has_a_rank_and_finals_rank_highest() -> None:
    assert set(RANK) == set(State)
    assert min(RANK[f] for f in FINAL) > max(RANK[s] for s in State if s not in FINAL)


@pytest.mark.parametrize(("path", "expected"), [
    (["2", "120", "800"], S.RELEASED),              # observed production sequence (spec §5.2)
    (["2", "120", "800", "899"], S.CLOSED),
    (["2", "120", "300", "500", "800"], S.RELEASED),
    (["2", "120", "399", "800"], S.RELEASED),
    (["2", "4", "3", "120"], S.ACCEPTED),          # retry after a send failure
    (["2", "3", "4"], S.SENT_TO_CUSTOMS),           # stale failure after success is ignored
    (["120", "2"], S.ACCEPTED),                      # late 2 after 120 does not step back
    (["2", "120", "100"], S.REJECTED),              # customs may reject after entry
    (["2", "120", "800", "100"], S.RELEASED),       # but not after release
    (["2", "-621004"], S.REJECTED),
    (["2", "100", "120"], S.REJECTED),              # rejection is final
    (["2", "120", "500", "700"], S.RETURNED),
    (["700", "800"], S.RETURNED),                    # first final outcome stays
    (["899", "800"], S.CLOSED),
    ([], S.DECLARED),
])
def test_paths(path: list[str], expected: State) -> None:
    assert fold(path) == expected


def test_outcomes() -> None:
    assert advance(S.DECLARED, "2").outcome == "advanced"
    assert advance(S.ACCEPTED, "2").outcome == "stale"
    assert advance(S.ACCEPTED, "120").outcome == "stale"
    assert advance(S.RELEASED, "899").outcome == "advanced"
    assert advance(S.CLOSED, "800").outcome == "final"
    assert advance(S.RELEASED, "120").outcome == "final"
    assert advance(S.REJECTED, "-1").outcome == "final"
    assert advance(S.RELEASED, "100").outcome == "conflict"
    assert advance(S.REJECTED, "800").outcome == "conflict"
    assert advance(S.RETURNED, "800").outcome == "conflict"


def test_sent_is_a_gateway_event_below_every_receipt() -> None:
    assert advance_to(S.DECLARED, S.SENT).after == S.SENT
    assert advance_to(S.DECLARING, S.SENT).after == S.DECLARING
    assert fold(["2"], start=S.SENT) == S.DECLARING


@pytest.mark.parametrize("final", sorted(FINAL))
@pytest.mark.parametrize("status", ["1", "2", "3", "4", "120", "300", "399", "500", "501", "599"])
def test_finals_are_not_left_for_non_final_statuses(final: State, status: str) -> None:
    assert advance(final, status).after == final


NON_FINAL = ["1", "2", "3", "4", "120", "300", "399", "500", "501", "502", "503", "505", "599", "600"]
FINAL_FAMILIES = [[], ["100"], ["-621004"], ["100", "-1"], ["700"], ["800"], ["800", "899"]]


@hs.composite
def valid_lifecycles(draw: hs.DrawFn) -> list[str]:
    """Receipts one declaration may get: any intermediate codes plus at most one final outcome."""
    middle = draw(hs.lists(hs.sampled_from(NON_FINAL), max_size=8))
    return middle + draw(hs.sampled_from(FINAL_FAMILIES))


def _rank(status: str) -> int:
    target = state_for_status(status)
    assert target is not None
    return RANK[target]


@given(hs.data())
def test_any_arrival_order_ends_like_the_sorted_sequence(data: hs.DataObject) -> None:
    lifecycle = data.draw(valid_lifecycles())
    arrival = data.draw(hs.permutations(lifecycle))
    assert fold(arrival) == fold(sorted(lifecycle, key=_rank))


@given(hs.lists(hs.one_of(hs.sampled_from(NON_FINAL + ["100", "700", "800", "899", "-5"]),
                          hs.text(max_size=4)), max_size=12))
def test_rank_never_decreases(statuses: list[str]) -> None:
    state = S.DECLARED
    for status in statuses:
        after = advance(state, status).after
        assert RANK[after] >= RANK[state]
        if state in FINAL:
            assert after == state or (state, after) == (S.RELEASED, S.CLOSED)
        state = after
