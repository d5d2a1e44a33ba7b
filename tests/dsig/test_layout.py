"""Splicing is exact even when comments, CDATA, PIs or attribute values look like markup."""

from __future__ import annotations

import pytest

from gateway.dsig import sign, verify
from gateway.dsig.registry import Registry

from .conftest import identified, key_for, signature_text


@pytest.mark.parametrize(
    "old,new",
    [
        (
            b"</ceb:CEB621Message>\n",
            b"</ceb:CEB621Message>\n<!-- </ceb:CEB621Message> -->\n<?pi </ceb:CEB621Message>?>\n",
        ),
        (b"<ceb:note>", b"<ceb:note>"),  # no-op placeholder: plain message
        (b"<ceb:copName>", b"<!-- <ceb:x> </ceb:BaseTransfer> --><ceb:copName>"),
        (
            b"<ceb:Inventory>",
            b'<ceb:Inventory a="x &gt; y > z"><![CDATA[</ceb:Inventory> <a>]]>',
        ),
    ],
)
def test_import_splice(ceb621: bytes, registry: Registry, old: bytes, new: bytes) -> None:
    data = ceb621.replace(old, new)
    signed = sign(data, key_for(data, "rsa"))
    assert signed.replace(signature_text(signed), b"", 1) == data
    assert verify(identified(signed), registry).root.tag.endswith("CEB621Message")


def test_export_splice_with_markup_in_extend(ceb303: bytes, registry: Registry) -> None:
    data = ceb303.replace(b"<Message>", b"<Message><!-- <ExtendMessage> --><![CDATA[<ExtendMessage>]]>")
    signed = sign(data, key_for(data, "sm2"))
    assert signed.replace(signature_text(signed), b"", 1) == data
    assert verify(identified(signed), registry).suite.name == "sm2-sm3"


def test_export_without_extend_signs_last(ceb303: bytes, registry: Registry) -> None:
    start, end = ceb303.index(b"  <ExtendMessage>"), ceb303.index(b"</ExtendMessage>\n") + 17
    data = ceb303[:start] + ceb303[end:]
    signed = sign(data, key_for(data, "rsa"))
    assert signed.rstrip().endswith(b"</ds:Signature></CEB303Message>")
    verify(identified(signed), registry)
