"""The received-bytes digest path finds the Signature's tags exactly as its first, regex-based
version did: same cut, same refusals (``verify._only_tags`` replaced a regex scan and a count)."""

from __future__ import annotations

import random
import re
import sys

import pytest
from lxml import etree

from gateway.dsig import sign
from gateway.dsig.layout import SIGNATURE_TAG, qname
from gateway.sandbox import samplegen
from gateway.xmlio import parse

from .conftest import key_for

V = sys.modules["gateway.dsig.verify"]  # the module (the package exports its verify function)


def _reference_tags(data: bytes, name: bytes, start: int, end: int) -> tuple[int, int] | None:
    """The former implementation: a regex for the one start tag, a count for the one end tag."""
    closing = b"</" + name + b">"
    found = re.compile(b"<" + re.escape(name) + rb"[ \t\r\n/>]").finditer(data, start, end)
    first = next(found, None)
    if first is None or next(found, None) is not None or data.count(closing, start, end) != 1:
        return None
    sig_end = data.find(closing, first.end(), end)
    if sig_end < 0:
        return None
    return first.start(), sig_end


def _reference_as_received(data: bytes, root: etree._Element, sig: etree._Element) -> bytes | None:
    prolog = V._XML_DECLARATION.match(data)
    start = prolog.end() if prolog is not None else 0
    end = len(data.rstrip(b" \t\r\n"))
    root_name = qname(root)
    if not (data.startswith(f"<{root_name}".encode(), start)
            and data.endswith(f"</{root_name}>".encode(), 0, end)):
        return None
    name = qname(sig).encode()
    tags = _reference_tags(data, name, start, end)
    if tags is None:
        return None
    return data[start:tags[0]] + data[tags[1] + len(name) + 3:end]


def test_tags_found_as_before_on_random_short_strings() -> None:
    rng = random.Random("only-tags")
    alphabet = [b"<", b"/", b">", b" ", b"\n", b"a", b":", b"x", b"e"]
    names = [b"a", b"aa", b"a:a", b"x:ae", b"e"]
    hits = 0
    for _ in range(20000):
        name = rng.choice(names)
        pieces = [rng.choice(alphabet) for _ in range(rng.randint(0, 14))]
        if rng.random() < 0.7:  # a start tag and an end tag of the name, in order
            at = rng.randint(0, len(pieces))
            pieces[at:at] = [b"<", name, rng.choice([b">", b" ", b"/", b"\n"]), b"</", name, b">"]
        for _ in range(rng.randint(0, 2)):  # and maybe more, or near misses
            at = rng.randint(0, len(pieces))
            pieces[at:at] = [rng.choice([b"<", b"</"]), name, rng.choice([b">", b" ", b"/", b"e", b""])]
        data = b"".join(pieces)
        start, end = 0, len(data)
        if rng.random() < 0.5:  # or a random part of it
            start = rng.randint(0, len(data))
            end = rng.randint(start, len(data))
        expected = _reference_tags(data, name, start, end)
        assert V._only_tags(data, name, start, end) == expected, (data, name, start, end)
        hits += expected is not None
    assert hits > 3000, hits


@pytest.fixture(scope="module")
def signed() -> bytes:
    doc = samplegen.build("CEB621", lines=2, seed=7)
    return sign(doc, key_for(doc, "rsa"))


def test_cut_as_before_on_random_edits(signed: bytes) -> None:
    root = parse(signed).root
    sig = root.find(SIGNATURE_TAG)
    assert sig is not None
    rng = random.Random("as-received")
    pieces = [b"<ds:Signature>", b"</ds:Signature>", b"<ds:Signature ", b"<ds:Signature/>",
              b"</ds:Signature >", b"<ds:SignatureX>", b"ds:Signature", b"</ds:Signature",
              b"<", b"/", b">", b" ", b"\n", b"</ceb:CEB621Message>", b"<?p?>"]
    sig_start = signed.index(b"<ds:Signature")
    cut = 0
    for _ in range(3000):
        data = bytearray(signed)
        for _ in range(rng.randint(1, 2)):
            # mostly around the Signature, where the tags are; else anywhere
            near = rng.random() < 0.7
            at = rng.randrange(sig_start - 50 if near else 0, len(data) + 1)
            if rng.random() < 0.4 and at < len(data):
                del data[at:at + rng.randint(1, 3)]
            else:
                data[at:at] = rng.choice(pieces)
        expected = _reference_as_received(bytes(data), root, sig)
        assert V._as_received(bytes(data), root, sig) == expected, bytes(data)
        cut += expected is not None
    assert cut > 100
    assert V._as_received(signed, root, sig) == _reference_as_received(signed, root, sig) is not None
