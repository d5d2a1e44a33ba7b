"""Splicing is exact even when comments, CDATA, PIs or attribute values look like markup."""

from __future__ import annotations

import pytest

from gateway.dsig import sign, verify
from gateway.dsig.registry import Registry
from gateway.errors import ParseError

from .conftest import identified, key_for, signature_text


@pytest.mark.parametrize(
    "old,new",
    [
        (
            b"</ceb:CEB621Message>\n",
            b"</ceb:CEB621Message>\n<!-- </ceb:CEB621Message> -->\n<?pi </ceb:CEB621Message>?>\n",
        ),
        (b"<ceb:note>", b"<ceb:note>"),  # no-op placeholder: plain message
        (b"<ceb:copName>", b"<ceb:copName a='&lt;/ceb:BaseTransfer>'>"),
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
    data = ceb303.replace(b"<Message>", b"<Message><![CDATA[<!-- <ExtendMessage> --><ExtendMessage>]]>")
    signed = sign(data, key_for(data, "sm2"))
    assert signed.replace(signature_text(signed), b"", 1) == data
    assert verify(identified(signed), registry).suite.name == "sm2-sm3"


@pytest.mark.parametrize("markup", [b"<!-- <ceb:x> </ceb:BaseTransfer> -->", b"<?pi </ceb:CEB621Message>?>"])
def test_markup_inside_the_message_is_not_signed(ceb621: bytes, markup: bytes) -> None:
    """The signer reads the message with the gateway's parser: a comment or PI inside it would
    be left out of what is signed (C14N without comments) while splitting a value, so it refuses."""
    with pytest.raises(ParseError) as info:
        sign(ceb621.replace(b"<ceb:copName>", markup + b"<ceb:copName>", 1), key_for(ceb621, "rsa"))
    assert info.value.code in ("CEBGW-PARSE-COMMENT", "CEBGW-PARSE-PI")


def test_export_without_extend_signs_last(ceb303: bytes, registry: Registry) -> None:
    start, end = ceb303.index(b"  <ExtendMessage>"), ceb303.index(b"</ExtendMessage>\n") + 17
    data = ceb303[:start] + ceb303[end:]
    signed = sign(data, key_for(data, "rsa"))
    assert signed.rstrip().endswith(b"</ds:Signature></CEB303Message>")
    verify(identified(signed), registry)
