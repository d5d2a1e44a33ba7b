"""DXP envelopes: wrap carries the exact bytes, validates, and unwraps back."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.envelope import RECEIVER_EXPORT, RECEIVER_IMPORT, receiver_for, unwrap, wrap
from gateway.errors import EnvelopeError
from gateway.validate import validate_bytes
from gateway.xmlio import parse

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "valid" / "CEB621.xml"


def test_wrap_round_trips_the_exact_bytes_and_validates() -> None:
    data = SAMPLE.read_bytes()
    env = wrap(data, msg_type="CEB621Message", sender_id="DXPENT0000458762",
               receiver_ids=(RECEIVER_IMPORT,), cop_msg_id="ABC", created="2026-11-23T10:00:00")
    report = validate_bytes(env)
    assert report.valid and report.message_type == "DxpMsg" and report.inner_type == "CEB621"
    opened = unwrap(parse(env))
    assert opened.inner.data == data
    assert opened.trans.cop_msg_id == "ABC" and opened.trans.receiver_ids == (RECEIVER_IMPORT,)
    assert opened.trans.msg_type == "CEB621Message" and opened.trans.created == "2026-11-23T10:00:00"


def test_header_values_are_escaped() -> None:
    env = wrap(b"<x/>", msg_type="A&B", sender_id="<S>", receiver_ids=("R",))
    opened = unwrap(parse(env))
    assert opened.trans.sender_id == "<S>" and opened.trans.msg_type == "A&B"


def test_receiver_by_flow_and_limits() -> None:
    assert receiver_for("import") == RECEIVER_IMPORT and receiver_for("export") == RECEIVER_EXPORT
    with pytest.raises(EnvelopeError):
        wrap(b"<x/>", msg_type="m", sender_id="s", receiver_ids=tuple("abcdef"))
