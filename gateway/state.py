"""Declaration states driven by receipts (spec §5.2): pure functions, no I/O.

Every state has a rank.  A receipt moves a declaration only *forward* (to a higher
rank), so receipts that arrive out of order never move it back: a late ``2`` after
``120`` is kept in the timeline but leaves the state at ``accepted``.  Final states
are never left, except ``released`` → ``closed`` (800 → 899).

====================  ================================  ====  ======
state                 returnStatus                      rank  final
====================  ================================  ====  ======
declared              (stored by the gateway, not sent)    0
sent                  (delivered to customs; outbox ack)  5
draft                 1                                   10
declaring             2                                   20
send_failed           4                                   25
sent_to_customs       3                                   30
accepted              120                                 40
manual_review         300, 505 (transferred),             50
                      600 (suspended)
inspection            500                                 55
detained              501, 502, 503, 599                  60
concluded             399                                 70
rejected              100 and every negative code         80    yes
returned              700                                 85    yes
released              800                                 90    yes
closed                899                                 100   yes
====================  ================================  ====  ======

``send_failed`` (4) ranks below ``sent_to_customs`` (3): a retry that reached customs
supersedes the failure, and a stale failure never hides a later success.  Rejection
outranks every non-final state, so customs may reject after entry (120 → 100), but
not after release.  Two conflicting outcomes (say 100 and 800) for one declaration do
not happen in a valid lifecycle; if they do, the first to arrive stays and the other
is reported as a ``conflict`` (kept in the timeline for an operator to look at).

Because non-final states combine by maximum rank and a valid lifecycle has at most
one final outcome family, any arrival order of a valid receipt sequence ends in the
same state as the sequence sorted by rank.  Unknown status codes are recorded but
change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class State(StrEnum):
    """The state of one declaration (values are stored; never rename one)."""

    DECLARED = "declared"
    SENT = "sent"
    DRAFT = "draft"
    DECLARING = "declaring"
    SEND_FAILED = "send_failed"
    SENT_TO_CUSTOMS = "sent_to_customs"
    ACCEPTED = "accepted"
    MANUAL_REVIEW = "manual_review"
    INSPECTION = "inspection"
    DETAINED = "detained"
    CONCLUDED = "concluded"
    REJECTED = "rejected"
    RETURNED = "returned"
    RELEASED = "released"
    CLOSED = "closed"


RANK: dict[State, int] = {
    State.DECLARED: 0,
    State.SENT: 5,
    State.DRAFT: 10,
    State.DECLARING: 20,
    State.SEND_FAILED: 25,
    State.SENT_TO_CUSTOMS: 30,
    State.ACCEPTED: 40,
    State.MANUAL_REVIEW: 50,
    State.INSPECTION: 55,
    State.DETAINED: 60,
    State.CONCLUDED: 70,
    State.REJECTED: 80,
    State.RETURNED: 85,
    State.RELEASED: 90,
    State.CLOSED: 100,
}

FINAL: frozenset[State] = frozenset({State.REJECTED, State.RETURNED, State.RELEASED, State.CLOSED})

# The only ways out of a final state.
_FINAL_EXITS: frozenset[tuple[State, State]] = frozenset({(State.RELEASED, State.CLOSED)})

_BY_STATUS: dict[int, State] = {
    1: State.DRAFT,
    2: State.DECLARING,
    3: State.SENT_TO_CUSTOMS,
    4: State.SEND_FAILED,
    100: State.REJECTED,
    120: State.ACCEPTED,
    300: State.MANUAL_REVIEW,
    399: State.CONCLUDED,
    500: State.INSPECTION,
    501: State.DETAINED,
    502: State.DETAINED,
    503: State.DETAINED,
    505: State.MANUAL_REVIEW,
    599: State.DETAINED,
    600: State.MANUAL_REVIEW,
    700: State.RETURNED,
    800: State.RELEASED,
    899: State.CLOSED,
}

Outcome = Literal["advanced", "stale", "final", "conflict", "unknown"]


@dataclass(frozen=True)
class Transition:
    """What one event did to a declaration.

    ``outcome``: ``advanced`` (state changed), ``stale`` (lower or equal rank, ignored),
    ``final`` (already final, the event is a later echo of the same family or lower),
    ``conflict`` (a different final outcome after a final one), ``unknown`` (status code
    not in the table).
    """

    before: State
    after: State
    outcome: Outcome

    @property
    def changed(self) -> bool:
        return self.before != self.after


def state_for_status(return_status: str) -> State | None:
    """The state a ``returnStatus`` value leads to, or ``None`` for a code not in the table.

    Accepts surrounding blanks; every negative integer is a rejection.
    """
    text = return_status.strip()
    try:
        code = int(text, 10)
    except ValueError:
        return None
    if code < 0:
        return State.REJECTED
    return _BY_STATUS.get(code)


def advance_to(current: State, target: State) -> Transition:
    """Apply an event that would put the declaration in ``target``; never moves backward."""
    if current in FINAL:
        if (current, target) in _FINAL_EXITS:
            return Transition(current, target, "advanced")
        if target in FINAL and target != current and (target, current) not in _FINAL_EXITS:
            return Transition(current, current, "conflict")
        return Transition(current, current, "final")
    if RANK[target] > RANK[current]:
        return Transition(current, target, "advanced")
    return Transition(current, current, "stale")


def advance(current: State, return_status: str) -> Transition:
    """Apply one receipt's ``returnStatus`` to a declaration in state ``current``."""
    target = state_for_status(return_status)
    if target is None:
        return Transition(current, current, "unknown")
    return advance_to(current, target)


def fold(statuses: Iterable[str], start: State = State.DECLARED) -> State:
    """The state after applying ``statuses`` in the given order, starting from ``start``."""
    state = start
    for status in statuses:
        state = advance(state, status).after
    return state
