"""The one hardened XML parser of the project.

Nothing else in ``gateway`` calls lxml's parser on untrusted bytes.  The parser
refuses DTDs (so no entity can be declared, expanded or fetched), never touches the
network, and bounds the input size and the nesting depth.  It keeps line numbers so
that every finding can point at its line.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from lxml import etree

from .errors import ParseError

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64

_local = threading.local()

# The prolog: optional BOM, XML declaration, comments, PIs and whitespace, up to the
# first markup that is not one of them.  A DOCTYPE there is refused before libxml2
# sees the bytes, so an entity bomb costs nothing.
_PROLOG_ITEM = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.S)
_BOM = b"\xef\xbb\xbf"
_ENCODING_DECL = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _parser() -> etree.XMLParser:
    # lxml parsers are not thread-safe: one per thread.
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_blank_text=False,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


@dataclass(frozen=True)
class Parsed:
    """Bytes as received and the tree parsed from them."""

    data: bytes
    root: etree._Element
    source: str = "-"


_depth_checks: dict[int, etree.XPath] = {}


def _too_deep(root: etree._Element, max_depth: int) -> bool:
    check = _depth_checks.get(max_depth)
    if check is None:
        # True when any element sits at depth max_depth+1; evaluated in C.
        check = etree.XPath("boolean(/" + "/".join(["*"] * (max_depth + 1)) + ")")
        _depth_checks[max_depth] = check
    return bool(check(root))


def _check_prolog(data: bytes, source: str) -> None:
    pos = 3 if data.startswith(_BOM) else 0
    m = _ENCODING_DECL.match(data, pos)
    if m is not None:
        enc = m.group(1).decode("ascii").lower().replace("_", "-")
        if enc not in ("utf-8", "utf8"):
            raise ParseError(
                f"{source}: declared encoding {m.group(1).decode('ascii')!r}; CEB messages must be UTF-8",
                code="CEBGW-PARSE-ENCODING",
            )
    while True:
        m = _PROLOG_ITEM.match(data, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
    if data.startswith(b"<!DOCTYPE", pos) or data.startswith(b"<!ENTITY", pos):
        raise ParseError(f"{source}: DOCTYPE is not allowed in CEB messages", code="CEBGW-PARSE-DTD")


def parse(data: bytes, *, source: str = "-", max_bytes: int = DEFAULT_MAX_BYTES,
          max_depth: int = DEFAULT_MAX_DEPTH) -> Parsed:
    """Parse untrusted bytes into a tree.

    Promises: no DTD is processed, no entity is expanded, nothing is fetched; the
    input is at most ``max_bytes`` and at most ``max_depth`` elements deep.
    Raises :class:`ParseError` with a specific code otherwise.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("parse() takes bytes")
    data = bytes(data)
    if len(data) > max_bytes:
        raise ParseError(f"{source}: {len(data)} bytes exceeds the limit of {max_bytes}",
                         code="CEBGW-PARSE-TOO-LARGE")
    body = data[3:] if data.startswith(_BOM) else data
    if not body or body.isspace():
        raise ParseError(f"{source}: empty message", code="CEBGW-PARSE-EMPTY")
    _check_prolog(data, source)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        msg = str(exc.msg or exc)
        code = "CEBGW-PARSE-SYNTAX"
        low = msg.lower()
        if "encoding" in low or "utf-8" in low or "char 0x" in low or "bytes:" in low:
            code = "CEBGW-PARSE-ENCODING"
        elif "excessive depth" in low:
            code = "CEBGW-PARSE-TOO-DEEP"
        elif "entity" in low or "doctype" in low:
            code = "CEBGW-PARSE-DTD"
        line = exc.lineno if exc.lineno else None
        raise ParseError(f"{source}:{line or 1}: {msg}", code=code) from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise ParseError(f"{source}: DOCTYPE is not allowed in CEB messages", code="CEBGW-PARSE-DTD")
    if _too_deep(root, max_depth):
        raise ParseError(f"{source}: nesting deeper than {max_depth} elements", code="CEBGW-PARSE-TOO-DEEP")
    return Parsed(data, root, source)


def parse_trusted_file(path: str) -> etree._ElementTree:
    """Parse one of the project's own files (XSDs, shipped data): still no DTD, no network."""
    with open(path, "rb") as fh:
        return etree.parse(fh, _parser())


def local_name(tag: object) -> str:
    """``{ns}name`` → ``name``."""
    text = str(tag)
    return text.rpartition("}")[2]


def namespace(tag: object) -> str:
    text = str(tag)
    return text[1:text.index("}")] if text.startswith("{") else ""


def element_path(el: etree._Element) -> str:
    """``/CEB311Message/Order[3]/OrderHead/acturalPaid``: local names, indexes where siblings repeat."""
    tree = el.getroottree()
    root = tree.getroot()
    base = "/" + local_name(root.tag)
    if el is root:
        return base
    rel = tree.getelementpath(el)
    return base + "/" + re.sub(r"\{[^}]*\}", "", rel)


def text(el: etree._Element | None) -> str:
    """The element's own text, stripped of surrounding whitespace; ``""`` for a missing element
    or one without text.  The one reading of a field's value that every stage uses."""
    return (el.text or "").strip() if el is not None else ""
