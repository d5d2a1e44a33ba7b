"""Where ``ds:Signature`` goes in a message, in the tree and in the bytes.

The schemas put the signature as a direct child of the root: last in import messages
and DXP envelopes, before an optional ``ExtendMessage`` in export messages (spec §0,
§9.1).  Signing splices text into the original bytes, so it needs byte offsets; lxml
does not give them, hence the small scanner below, which walks the markup of a
document that the hardened parser has already accepted as well-formed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from ..catalog import CEB_NS, DS_NS, MessageType

SIGNATURE_TAG = f"{{{DS_NS}}}Signature"
EXTEND_TAG = f"{{{CEB_NS}}}ExtendMessage"

# One markup token: comment, CDATA, PI, other <!…>, end tag, or start/empty tag
# (attribute values may contain '>', so they are matched as quoted strings).
_TOKEN = re.compile(
    rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>|<![^>]*>|</[^>]*>|<(?:[^>\"']|\"[^\"]*\"|'[^']*')*>",
    re.S,
)


def signature_goes_before_extend(mtype: MessageType) -> bool:
    """True for export messages, whose schema puts ``ds:Signature`` before ``ExtendMessage``."""
    return mtype.flow == "export"


def element_children(el: etree._Element) -> list[etree._Element]:
    """``el``'s child elements (not its comments and processing instructions)."""
    return [c for c in el if isinstance(c.tag, str)]


def position_ok(root: etree._Element, sig: etree._Element, mtype: MessageType) -> bool:
    """True when ``sig`` is a direct child of ``root`` exactly where the schema puts it."""
    if sig.getparent() is not root:
        return False
    # Only the elements after sig matter (no need to list the root's children when it is last).
    after = [c.tag for c in sig.itersiblings() if isinstance(c.tag, str)]
    if signature_goes_before_extend(mtype) and next(root.iterchildren(EXTEND_TAG), None) is not None:
        return after == [EXTEND_TAG]
    return not after


@dataclass(frozen=True)
class RootLayout:
    """Byte offsets of the root: its start tag, its element children's start tags, its end tag,
    and where each element child's markup ends (just after its end tag or empty tag)."""

    start_tag: tuple[int, int]
    child_starts: tuple[int, ...]
    end_tag_start: int
    child_ends: tuple[int, ...] = ()


def scan(data: bytes) -> RootLayout:
    """Offsets of the root element's markup in well-formed ``data``; raises ``ValueError`` otherwise."""
    depth = 0
    start_tag: tuple[int, int] | None = None
    children: list[int] = []
    ends: list[int] = []
    for m in _TOKEN.finditer(data):
        tok = m.group()
        second = tok[1:2]
        if second in (b"!", b"?"):
            continue
        if second == b"/":
            depth -= 1
            if depth == 0:
                if start_tag is None:
                    raise ValueError("end tag before the root")
                return RootLayout(start_tag, tuple(children), m.start(), tuple(ends))
            if depth == 1:
                ends.append(m.end())
            continue
        empty = tok.endswith(b"/>")
        if depth == 0:
            if empty:
                raise ValueError("the root element is empty")
            start_tag = (m.start(), m.end())
        elif depth == 1:
            children.append(m.start())
            if empty:
                ends.append(m.end())
        if not empty:
            depth += 1
    raise ValueError("no complete root element")


_TRAILER = re.compile(rb"\s*>(?:\s+|<!--.*?-->|<\?.*?\?>)*\Z", re.S)


def qname(el: etree._Element) -> str:
    """``prefix:local`` (or ``local``) as the element's tags are written in the bytes."""
    prefix, local = el.prefix, el.tag.rpartition("}")[2]  # a name holds no "}"
    return f"{prefix}:{local}" if prefix else local


def _root_end_fast(data: bytes, root: etree._Element) -> int | None:
    """Offset of the root end tag found from the end of the document, or None if unsure."""
    name = qname(root).encode("utf-8")
    pos = data.rfind(b"</" + name)
    if pos < 0 or _TRAILER.match(data, pos + 2 + len(name)) is None:
        return None
    return pos


def insertion_offset(data: bytes, root: etree._Element, mtype: MessageType) -> int:
    """The byte offset where the signature text goes; raises ``ValueError``.

    The common case (signature last) finds the root end tag from the end of the bytes;
    otherwise, or when unsure, the whole markup is scanned.
    """
    children = element_children(root)
    before_extend = signature_goes_before_extend(mtype) and any(c.tag == EXTEND_TAG for c in children)
    if not before_extend:
        end = _root_end_fast(data, root)
        if end is not None:
            return end
    layout = scan(data)
    if len(children) != len(layout.child_starts):
        raise ValueError("markup scan and tree disagree")
    if before_extend:
        if children[-1].tag != EXTEND_TAG:
            raise ValueError("ExtendMessage is not the last child of the root")
        return layout.child_starts[-1]
    return layout.end_tag_start
