"""The one hardened XML parser of the project.

Nothing else in ``gateway`` calls lxml's parser on untrusted bytes.  The parser
refuses DTDs (so no entity can be declared, expanded or fetched), never touches the
network, reads UTF-8 only, refuses comments and processing instructions inside the
message, and bounds the input size, the nesting depth, the number of elements and the
attributes and namespaces of each element.  It keeps line numbers so
that every finding can point at its line.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from lxml import etree

from .errors import Finding, ParseError

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
# Elements (and other markup) and attributes per message: above the largest message the
# catalogue allows (100 records of 99 lines, about 170,000 elements), far below what 10 MB
# of "<a/>" makes (2.5 million elements, ~350 MB of tree).
DEFAULT_MAX_NODES = 250_000
# Attributes of one element: CEB, DXP and ds elements have at most three.
DEFAULT_MAX_ATTRIBUTES = 32
# Namespaces in scope at one element: a message needs three or four (ceb, ds, xsi, dxp); many
# thousands make canonicalization (signature checks) take minutes.
DEFAULT_MAX_NAMESPACES = 32

_local = threading.local()
T = TypeVar("T")


def per_thread_cache(fn: Callable[[str], T]) -> Callable[[str], T]:
    """Like :func:`functools.cache` for a one-argument function, with one cache per thread.

    For lxml objects that keep per-call state on themselves: a compiled ``XMLSchema`` keeps
    the error log of its last validation, so two threads validating with one schema read
    each other's errors.  Each thread (the event loop's, a server's checking thread) gets
    its own copy.
    """
    local = threading.local()

    @functools.wraps(fn)
    def cached(arg: str) -> T:
        found: dict[str, T] | None = getattr(local, "cache", None)
        if found is None:
            found = local.cache = {}
        if arg not in found:
            found[arg] = fn(arg)
        return found[arg]

    return cached

# The prolog: optional BOM, XML declaration, comments, PIs and whitespace, up to the
# first markup that is not one of them.  A DOCTYPE there is refused before libxml2
# sees the bytes, so an entity bomb costs nothing.
_PROLOG_ITEM = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.S)
_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe\x00\x00", "UTF-32"),
               (b"\xfe\xff", "UTF-16"), (b"\xff\xfe", "UTF-16"))
_XML_DECL = re.compile(rb"<\?xml\s[^>]*?\?>")
_DECL_ENCODING = re.compile(rb"""\sencoding\s*=\s*(["'])(.*?)\1""", re.S)
_MARKUP = (etree.Comment, etree.ProcessingInstruction)


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
            # The bytes were checked to be UTF-8 (_check_encoding): libxml2 must not switch to
            # another encoding on the strength of a declaration or a byte pattern.
            encoding="utf-8",
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
_attribute_checks: dict[int, etree.XPath] = {}
_count_attributes = etree.XPath("count(//@*)")


def _too_deep(root: etree._Element, max_depth: int) -> bool:
    check = _depth_checks.get(max_depth)
    if check is None:
        # True when any element sits at depth max_depth+1; evaluated in C.
        check = etree.XPath("boolean(/" + "/".join(["*"] * (max_depth + 1)) + ")")
        _depth_checks[max_depth] = check
    return bool(check(root))


def _check_encoding(data: bytes, source: str) -> int:
    """The bytes say nothing but UTF-8 (no UTF-16/32 byte-order mark or pattern, no other
    encoding declared); returns where the document starts (after a UTF-8 BOM).  That every
    byte is UTF-8 is checked by libxml2, told so, and explained by :func:`_check_utf8`.

    The bytes and the declaration are read together: a UTF-8 BOM with ``encoding="GBK"``
    means two stages could read two texts, so it is refused like any other non-UTF-8.
    """
    def refuse(why: str, line: int | None = None) -> ParseError:
        where = f"{source}:{line}" if line else source
        return ParseError(f"{where}: {why}; CEB messages must be UTF-8", code="CEBGW-PARSE-ENCODING")

    for bom, name in _OTHER_BOMS:
        if data.startswith(bom):
            raise refuse(f"{name} byte-order mark")
    start = 3 if data.startswith(_BOM) else 0
    head = data[start:start + 4]
    if b"\x00" in head:
        raise refuse("NUL bytes where the document starts (UTF-16 or UTF-32 without a byte-order mark?)")
    decl = _XML_DECL.match(data, start)
    if decl is not None:
        enc = _DECL_ENCODING.search(decl.group())
        name = enc.group(2).decode("utf-8", errors="replace") if enc is not None else "UTF-8"
        if name.strip().lower() not in ("utf-8", "utf8"):
            raise refuse(f"declared encoding {name!r}", 1)
    return start


def _check_utf8(data: bytes, start: int, source: str) -> None:
    """Every byte from ``start`` is UTF-8, else ``CEBGW-PARSE-ENCODING`` naming the first that is not.

    Run when libxml2 refuses a document: libxml2, told the input is UTF-8, refuses any byte
    sequence that is not (in content, attributes, comments, PIs, CDATA, names, before and after
    the root; tests/test_xmlio.py), so a document it accepts needs no second pass over its bytes.
    """
    try:
        data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start
        line = data.count(b"\n", 0, at) + 1
        raise ParseError(f"{source}:{line}: byte {at} (0x{data[at]:02X}) is not UTF-8; CEB messages must be "
                         "UTF-8", code="CEBGW-PARSE-ENCODING") from None


# The XML declarations most messages open with: each says UTF-8, or nothing (UTF-8 then).
_USUAL_DECLS = (b'<?xml version="1.0" encoding="UTF-8"?>', b'<?xml version="1.0" encoding="utf-8"?>',
                b"<?xml version='1.0' encoding='UTF-8'?>", b"<?xml version='1.0' encoding='utf-8'?>",
                b'<?xml version="1.0"?>')
_XML_SPACE = frozenset(b" \t\r\n")


def _usual_start(data: bytes) -> bool:
    """``data`` opens with one of :data:`_USUAL_DECLS`, white space, then a start tag (``<`` and
    neither ``!`` nor ``?``): :func:`_check_encoding` would find UTF-8 from byte 0 and
    :func:`_check_prolog` no DOCTYPE.  False only means the two checks must look."""
    for decl in _USUAL_DECLS:
        if data.startswith(decl):
            i = len(decl)
            break
    else:
        return False
    n = len(data)
    while i < n and data[i] in _XML_SPACE:
        i += 1
    return data[i:i + 1] == b"<" and data[i + 1:i + 2] not in (b"!", b"?", b"")


def _check_prolog(data: bytes, pos: int, source: str) -> None:
    while True:
        m = _PROLOG_ITEM.match(data, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
    if data.startswith(b"<!DOCTYPE", pos) or data.startswith(b"<!ENTITY", pos):
        raise ParseError(f"{source}: DOCTYPE is not allowed in CEB messages", code="CEBGW-PARSE-DTD")


def _may_hold_markup(body: bytes) -> bool:
    """``body`` (parsed) may hold a comment, or a processing instruction after its XML declaration.

    A comment needs a "!" and a PI a "?": looked for first with ``in`` and ``find``, which search
    for one byte (memchr), where the exact test searches for two or four at every "<".
    """
    after_decl = body.find(b">") + 1 if body.startswith(b"<?xml") else 0  # the declaration's own "<?"
    return ((b"!" in body and b"<!--" in body)
            or (body.find(b"?", after_decl) != -1 and body.count(b"<?") > (1 if after_decl else 0)))


def _check_markup(root: etree._Element, source: str) -> None:
    """No comment or processing instruction inside the root element.

    Either would split the text of the element it sits in: ``<qty>2<!---->0</qty>`` is 20
    to the schema, the canonical form and customs, but ``el.text`` is "2"; and a comment is
    outside what a signature covers.  Refusing them keeps one reading of every value.
    Before and after the root (the prolog and epilog) they carry no value and are allowed.
    """
    node = next(root.iter(*_MARKUP), None)
    if node is None:
        return
    parent = node.getparent()
    holder = parent if parent is not None else root
    line: Any = node.sourceline
    line = line if isinstance(line, int) else None
    field = local_name(holder.tag)
    path = element_path(holder)
    if isinstance(node, etree._Comment):
        code, what = "CEBGW-PARSE-COMMENT", "a comment"
    else:
        code, what = "CEBGW-PARSE-PI", f"a processing instruction <?{node.target}?>"  # type: ignore[attr-defined]
    message = (f"{what} inside {field} ({path}): comments and processing instructions are not "
               "allowed inside a CEB message, where they would split a value in two")
    raise ParseError(f"{source}:{line or 1}: {message}", code=code,
                     findings=(Finding(code, message, line=line, path=path, field=field),), field=field)


def _check_attributes(root: etree._Element, max_attributes: int, source: str) -> None:
    check = _attribute_checks.get(max_attributes)
    if check is None:
        # The first element with too many attributes, found in C.
        check = etree.XPath(f"(//*[count(@*) > {int(max_attributes)}])[1]")
        _attribute_checks[max_attributes] = check
    found: Any = check(root)
    if found:
        el = found[0]
        line: Any = el.sourceline
        field = local_name(el.tag)
        message = f"{field} has {len(el.attrib)} attributes; the limit is {max_attributes}"
        raise ParseError(f"{source}:{line or 1}: {message}", code="CEBGW-PARSE-TOO-MANY-ATTRIBUTES",
                         findings=(Finding("CEBGW-PARSE-TOO-MANY-ATTRIBUTES", message, line=line,
                                           path=element_path(el), field=field),), field=field)


def _check_namespaces(data: bytes, root: etree._Element, max_namespaces: int, source: str) -> None:
    # Every declaration is spelt "xmlns" in the bytes, so with no more of those than the limit,
    # no element can have more namespaces in scope: the walk is for the unusual message only.
    if data.count(b"xmlns") <= max_namespaces:
        return
    for el in root.iter(etree.Element):
        if len(el.nsmap) > max_namespaces:
            line: Any = el.sourceline
            field = local_name(el.tag)
            message = f"{field} has {len(el.nsmap)} namespaces in scope; the limit is {max_namespaces}"
            raise ParseError(f"{source}:{line or 1}: {message}",
                             code="CEBGW-PARSE-TOO-MANY-NAMESPACES", field=field,
                             findings=(Finding("CEBGW-PARSE-TOO-MANY-NAMESPACES", message, line=line,
                                               path=element_path(el), field=field),))


def _check_nodes(data: bytes, root: etree._Element, max_nodes: int, source: str) -> None:
    opened = data.count(b"<") - data.count(b"</")
    attributes = int(_count_attributes(root))  # type: ignore[arg-type]  # count() is a float
    if opened + attributes > max_nodes:
        raise ParseError(f"{source}: {opened} elements and {attributes} attributes; the limit is {max_nodes}",
                         code="CEBGW-PARSE-TOO-MANY-NODES")


def parse(data: bytes, *, source: str = "-", max_bytes: int = DEFAULT_MAX_BYTES,
          max_depth: int = DEFAULT_MAX_DEPTH, max_nodes: int = DEFAULT_MAX_NODES,
          max_attributes: int = DEFAULT_MAX_ATTRIBUTES,
          max_namespaces: int = DEFAULT_MAX_NAMESPACES) -> Parsed:
    """Parse untrusted bytes into a tree.

    Promises: no DTD is processed, no entity is expanded, nothing is fetched; the input is
    UTF-8 (and declares nothing else), at most ``max_bytes``, at most ``max_depth`` elements
    deep, with at most ``max_nodes`` elements and attributes (comments, PIs and CDATA sections
count as elements),
    ``max_attributes`` attributes and ``max_namespaces`` namespaces in scope per element; no
    comment or processing instruction lies inside the root element, so every element's text
    is one text node (CDATA and character references are merged into it).
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
    if _usual_start(data):
        start = 0  # what the two checks below would find, without their regular expressions
    else:
        start = _check_encoding(data, source)
        _check_prolog(data, start, source)
    # Every element, comment, PI and CDATA section opens with "<" not followed by "/": an
    # upper bound on the nodes, counted in C before libxml2 builds anything.  No more bytes
    # than the limit: no more "<" and "=" together either, nothing to count.
    few = len(data) <= max_nodes
    opened = 0 if few else data.count(b"<")  # end tags too, as long as that is under the limit anyway
    if opened > max_nodes:
        opened -= data.count(b"</")
        if opened > max_nodes:
            raise ParseError(f"{source}: {opened} elements or other markup; the limit is {max_nodes} nodes",
                             code="CEBGW-PARSE-TOO-MANY-NODES")
    # Every attribute and namespace declaration has its "=": with few of those (the usual
    # message), no element can break the attribute, node or namespace limits, and the exact
    # checks after parsing are skipped.
    equals = data.count(b"=")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        _check_utf8(data, start, source)  # bytes that are not UTF-8: say which, as the encoding error
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
    if _may_hold_markup(body):
        _check_markup(root, source)
    if equals > max_attributes:
        _check_attributes(root, max_attributes, source)
    if not few and opened + equals > max_nodes:
        _check_nodes(data, root, max_nodes, source)
    if equals > max_namespaces:
        _check_namespaces(data, root, max_namespaces, source)
    return Parsed(data, root, source)


def parse_own(data: bytes) -> etree._Element:
    """Parse markup the gateway wrote itself from fixed text and escaped or base64 values (a
    signature's SignedInfo): the same parser, still no DTD, entity or network, without the
    checks untrusted input needs (they cost more than the parse of a few hundred bytes)."""
    return etree.fromstring(data, _parser())


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


def leaf_texts(el: etree._Element) -> dict[str, str]:
    """Each child element without children of ``el`` by local name, its text read as :func:`text`
    reads it (stripped, ``""`` when empty); a later child of the same name wins."""
    return {local_name(c.tag): (c.text or "").strip()
            for c in el.iterchildren(tag=etree.Element) if not len(c)}


def child(el: etree._Element, tag: str) -> etree._Element | None:
    """The first child element of ``el`` named ``tag`` (a Clark name), or ``None``: what
    ``el.find(tag)`` answers, without the ElementPath machinery (a C iterator; about half the cost)."""
    return next(el.iterchildren(tag), None)


def first_children(el: etree._Element, tags: Sequence[str]) -> dict[str, etree._Element]:
    """The first child element of ``el`` with each of ``tags`` (Clark names), by tag, from one pass
    over the children: ``{t: el.find(t)}`` for the tags present, without a search per tag."""
    found: dict[str, etree._Element] = {}
    if not tags:
        return found  # iterchildren() with no tag would yield every child
    for c in el.iterchildren(*tags):
        found.setdefault(c.tag, c)
    return found


def text(el: etree._Element | None) -> str:
    """The element's own text, stripped of surrounding whitespace; ``""`` for a missing element
    or one without text.  The one reading of a field's value that every stage uses."""
    return (el.text or "").strip() if el is not None else ""
