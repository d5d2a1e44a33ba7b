"""``sign_around``: an envelope signed from its head and tail alone is the envelope ``sign``
makes of the whole (byte for byte with RSA; with SM2, all but the random signature value),
and it verifies."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dsig import sign, sign_around
from gateway.envelope import wrap_parts
from gateway.sandbox import samplegen

from .conftest import sandbox_key

VALUE = re.compile(rb"<ds:SignatureValue>[^<]*</ds:SignatureValue>")


def _parts(data: bytes, sender: str = "DXPENT0000000001") -> tuple[bytes, bytes, bytes]:
    head, tail = wrap_parts(msg_type="CEB621Message", sender_id=sender, receiver_ids=("DXPEDCCEB0000002",),
                            created="20261207001500000")
    return head, base64.b64encode(data), tail


@pytest.mark.parametrize("alg", ["rsa-sha1", "rsa-sha256"])
@pytest.mark.parametrize("seed", [1, 2])
def test_rsa_envelope_is_the_one_sign_makes(alg: str, seed: int) -> None:
    key = sandbox_key("gateway", "rsa")
    head, middle, tail = _parts(samplegen.build("CEB621", lines=3, seed=seed))
    around = sign_around(head, middle, tail, key, alg=alg)
    assert head + middle + around == sign(head + middle + tail, key, alg=alg)


def test_sm2_envelope_differs_only_in_the_random_value() -> None:
    key = sandbox_key("gateway", "sm2")
    head, middle, tail = _parts(samplegen.build("CEB311", seed=3))
    ours = head + middle + sign_around(head, middle, tail, key)
    whole = sign(head + middle + tail, key)
    assert VALUE.sub(b"", ours) == VALUE.sub(b"", whole) and ours != whole


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from(["DXPENT0000000001", "A&B<C>\"'", "中文发送方"]))
def test_any_data_and_header_values_give_the_same_envelope(data: bytes, sender: str) -> None:
    key = sandbox_key("gateway", "rsa")
    head, middle, tail = _parts(data, sender)
    assert head + middle + sign_around(head, middle, tail, key) == sign(head + middle + tail, key)


def test_a_middle_that_is_not_base64_is_refused() -> None:
    key = sandbox_key("gateway", "rsa")
    head, _, tail = _parts(b"x")
    with pytest.raises(ValueError):
        sign_around(head, b"<x/>", tail, key)
