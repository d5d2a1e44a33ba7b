"""``sqlops.digest``: the envelope split the store keeps, given by the envelope's maker or found."""

from __future__ import annotations

import base64
from dataclasses import replace

from storekit import aio, any_store, message

from gateway.envelope import wrap, wrap_parts
from gateway.store import sqlops

HEADER = {"msg_type": "CEB621Message", "sender_id": "DXPENT0000000001", "receiver_ids": ("DXPEDCCEB0000002",),
          "cop_msg_id": "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B", "created": "2026-11-23T12:00:00"}


def test_wrap_is_its_parts_around_the_base64() -> None:
    data = message(1).data
    head, tail = wrap_parts(**HEADER)  # type: ignore[arg-type]
    assert wrap(data, **HEADER) == head + base64.b64encode(data) + tail  # type: ignore[arg-type]


def test_given_parts_give_the_same_split_as_searching() -> None:
    for n in range(3):  # data lengths 0, 1 and 2 mod 3: base64 padding
        m = message(n, body="x" * n)
        head, tail = wrap_parts(**HEADER)  # type: ignore[arg-type]
        m = replace(m, envelope=head + base64.b64encode(m.data) + tail)
        searched = sqlops.digest(m)
        given = sqlops.digest(replace(m, envelope_parts=(head, tail)))
        assert given == searched and given.envelope_head == head and given.envelope_tail == tail


def test_parts_that_do_not_fit_the_envelope_are_not_trusted() -> None:
    m = message(1)
    head, tail = wrap_parts(**HEADER)  # type: ignore[arg-type]
    m = replace(m, envelope=head + base64.b64encode(m.data) + tail)
    wrong = sqlops.digest(replace(m, envelope_parts=(head + b" ", tail)))
    assert wrong == sqlops.digest(m)
    signed_like = replace(m, envelope=m.envelope.replace(b"</dxp:DxpMsg>", b"<ds:Signature/></dxp:DxpMsg>"),
                          envelope_parts=(head, tail))
    d = sqlops.digest(signed_like)
    assert d.envelope_tail is not None and d.envelope_tail.endswith(b"<ds:Signature/></dxp:DxpMsg>")


def test_an_envelope_left_unbuilt_is_its_parts() -> None:
    m = message(4)
    head, tail = wrap_parts(**HEADER)  # type: ignore[arg-type]
    built = sqlops.digest(replace(m, envelope=head + base64.b64encode(m.data) + tail))
    assert sqlops.digest(replace(m, envelope=b"", envelope_parts=(head, tail))) == built


@aio
async def test_the_store_leases_an_unbuilt_envelope_exactly(db: str) -> None:
    m = message(5)
    head, tail = wrap_parts(**HEADER)  # type: ignore[arg-type]
    async with any_store(db) as store:
        await store.put_message(replace(m, envelope=b"", envelope_parts=(head, tail)))
        (item,) = await store.lease_outbox(10, 30)
    assert item.envelope == wrap(m.data, **HEADER)  # type: ignore[arg-type]
