"""DXP envelopes: wrap carries the exact bytes, validates, and unwraps back."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from gateway.envelope import (
    BEIJING,
    RECEIVER_EXPORT,
    RECEIVER_IMPORT,
    creat_time,
    new_cop_msg_id,
    receiver_for,
    unwrap,
    wrap,
)
from gateway.errors import EnvelopeError
from gateway.pipeline import validate_bytes
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


def test_new_cop_msg_ids_are_uppercase_uuid7_ordered_by_time() -> None:
    first = new_cop_msg_id()
    time.sleep(0.002)
    later = [new_cop_msg_id() for _ in range(50)]
    for text in (first, *later):
        u = uuid.UUID(text)
        assert text == str(u).upper() and u.version == 7 and u.variant == uuid.RFC_4122
    assert all(first < x for x in later)  # a millisecond later sorts later
    assert len(set(later)) == 50


def test_creat_time_is_beijing_time_now() -> None:
    before = datetime.now(BEIJING).replace(microsecond=0)
    got = datetime.strptime(creat_time(), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=BEIJING)
    assert before <= got <= datetime.now(BEIJING)
    assert creat_time(datetime(2026, 11, 23, 0, 0, 5, tzinfo=BEIJING)) == "2026-11-23T00:00:05"


def test_a_forked_child_makes_other_cop_msg_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids, then leave without running pytest's cleanup
        os.write(write, ",".join(new_cop_msg_id() for _ in range(20)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = set(os.read(read, 100_000).decode().split(","))
    os.close(read)
    parent = {new_cop_msg_id() for _ in range(20)}
    assert len(child) == 20 and not child & parent
