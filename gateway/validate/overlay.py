"""The overlay schema: the flow's XSD with the field rules folded in, so one C pass checks both.

For a flow schema (``ceb-import.xsd``, ``ceb-export.xsd``) the overlay is the same schema in
which every element that an error-severity code-list or format rule applies to gets its
type narrowed by that rule's pattern (``rules.schema_checks``).  It is derived in memory
on first use, from the schema file and the rules as loaded, so it cannot drift from either.
Named complex types are copied into each message first, so a pattern that one message's
rules ask for does not reach another message sharing the type.

The overlay only narrows, so a tree valid against it is valid against the plain schema; and
for a *plain* tree (``rules._plain``: no comment, PI or entity reference, no CEB element
inside a wildcard or a ds:Signature) it also satisfies every rule it covers.  Hence
``findings_of``: validate against the overlay; if the tree passes, there are no XSD findings
and the rules run without the covered ones (:class:`~.rules.SchemaFacts`).  If it fails,
the plain schema and every rule run as if there were no overlay: the findings — codes,
messages, paths, lines, order — never depend on it, only the time taken does.

A schema using constructs the derivation does not know (groups, extensions, nillable or
defaulted elements, references into its own namespace, ...) gets no overlay; messages of
its flow then take the plain path, which is always correct.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from ..catalog import MessageType
from ..catalog import load as load_catalog
from ..xmlio import parse_trusted_file, per_thread_cache
from . import xsd
from .rules import NON_BLANK, SchemaFacts, presence_check, schema_checks

_XS_NS = "http://www.w3.org/2001/XMLSchema"
_XS = f"{{{_XS_NS}}}"

# The schema vocabulary the derivation understands; anything else means no overlay.
_KNOWN = frozenset({
    "schema", "import", "simpleType", "restriction", "complexType", "sequence", "choice", "all",
    "element", "attribute", "attributeGroup", "any", "anyAttribute",
    "length", "minLength", "maxLength", "pattern", "enumeration", "whiteSpace", "totalDigits",
    "fractionDigits", "minInclusive", "maxInclusive", "minExclusive", "maxExclusive",
})
# Element declarations with these let an element's text differ from what its type checks
# (xsi:nil, a default filled in for empty content, a substitute, an unqualified name): no overlay.
_UNSAFE = frozenset({"nillable", "default", "fixed", "substitutionGroup", "abstract", "form"})
_MAX_INLINE_ROUNDS = 16  # nesting depth of named complex types; deeper means recursive
_Simple = Mapping[str, etree._Element]  # the schema's named simple types by name


class _Unsupported(Exception):
    """The schema uses a construct the overlay does not handle."""


@dataclass(frozen=True)
class Overlay:
    """A compiled overlay schema and, per message type code, what passing it establishes."""

    schema: etree.XMLSchema
    facts: dict[str, SchemaFacts]


def validate(root: etree._Element, mtype: MessageType, directory: Path | None = None) -> SchemaFacts | None:
    """Validate ``root`` against its type's overlay: the facts when it passes, else None.

    None too when the type has no overlay (envelopes, unsupported schemas).
    """
    if mtype.is_envelope:
        return None
    found = overlay_for(mtype, directory)
    if found is None:
        return None
    facts = found.facts.get(mtype.code)
    if facts is None or not found.schema.validate(root):
        return None
    return facts


def overlay_for(mtype: MessageType, directory: Path | None = None) -> Overlay | None:
    """The overlay of a type's flow schema (derived on first use), or None."""
    if directory is None:
        return _default_overlay(mtype.flow)  # no path to resolve per message
    return _overlay(str(xsd.schema_path(mtype, directory)))


def preload(directory: Path | None = None) -> None:
    """Derive and compile every overlay now (a server calls this at start)."""
    for t in load_catalog():
        if not t.is_envelope:
            overlay_for(t, directory)


@per_thread_cache  # a schema keeps its last error log on itself: one per thread
def _default_overlay(flow: str) -> Overlay | None:
    return _overlay(str(xsd.xsd_dir() / xsd.SCHEMA_FILES[flow]))


@per_thread_cache
def _overlay(path: str) -> Overlay | None:
    try:
        tree = parse_trusted_file(path)
        facts = _derive(tree.getroot())
        return Overlay(etree.XMLSchema(tree), facts)
    except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError, _Unsupported):
        return None  # the plain schema reports its own problems; without an overlay all still works


def _derive(schema: etree._Element) -> dict[str, SchemaFacts]:
    """Narrow the schema in place for every message type it declares; their facts."""
    tns = schema.get("targetNamespace") or ""
    _check_supported(schema)
    named = {str(ct.get("name")): ct for ct in schema.iterchildren(_XS + "complexType")}
    simple = {str(st.get("name")): st for st in schema.iterchildren(_XS + "simpleType")}
    facts: dict[str, SchemaFacts] = {}
    for t in load_catalog():
        if t.is_envelope or t.namespace != tns:
            continue
        decl = next((el for el in schema.iterchildren(_XS + "element") if el.get("name") == t.root), None)
        if decl is not None:
            _inline(decl, named, tns)
            facts[t.code] = _narrow_message(decl, t, tns, simple)
    return facts


def _check_supported(schema: etree._Element) -> None:
    for note in list(schema.iter(_XS + "annotation")):  # documentation may hold anything
        parent = note.getparent()
        if parent is not None:
            parent.remove(note)
    if schema.get("elementFormDefault") != "qualified":
        raise _Unsupported("local elements must be qualified")
    for el in schema.iter(etree.Element):
        tag = str(el.tag)
        if not tag.startswith(_XS) or tag[len(_XS):] not in _KNOWN:
            raise _Unsupported(tag)
        unsafe = _UNSAFE & set(el.keys()) if tag == _XS + "element" else set()
        if unsafe:
            raise _Unsupported(f"element {el.get('name')}: {sorted(unsafe)}")


def _qname(el: etree._Element, value: str) -> tuple[str, str]:
    """A QName-valued attribute as (namespace, local name)."""
    prefix, _, local = value.rpartition(":")
    ns = el.nsmap.get(prefix or None)
    if ns is None:
        raise _Unsupported(f"unbound prefix in {value!r}")
    return ns, local


def _inline(decl: etree._Element, named: dict[str, etree._Element], tns: str) -> None:
    """Give every element under ``decl`` typed by a named complex type its own copy of it."""
    for _ in range(_MAX_INLINE_ROUNDS):
        typed = [(el, local) for el in decl.iter(_XS + "element") if el.get("type")
                 for ns, local in [_qname(el, str(el.get("type")))] if ns == tns and local in named]
        if not typed:
            return
        for el, local in typed:
            del el.attrib["type"]
            body = copy.deepcopy(named[local])
            del body.attrib["name"]
            el.append(body)
    raise _Unsupported("named complex types nest too deep (recursive?)")


def _narrow_message(decl: etree._Element, t: MessageType, tns: str, simple: _Simple) -> SchemaFacts:
    """Add the patterns of the type's schema checks to its element declarations; the facts."""
    checks = schema_checks(t.code)
    uncovered: set[str] = set()
    containers: set[str] = set()
    for el in list(decl.iter(_XS + "element")):
        ref = el.get("ref")
        if ref is not None:
            ns, local = _qname(el, ref)
            if ns == tns:
                raise _Unsupported(f"reference to {ref}")
            containers.add(f"{{{ns}}}{local}")  # validated by a foreign schema, wildcards and all
            continue
        name, parent = el.get("name"), _parent_name(el)
        hits = [c for c in checks if name in c.fields and (not c.within or parent in c.within)]
        if not hits:
            continue
        if not _is_leaf(el, tns, simple):
            uncovered.update(c.code for c in hits)
            continue
        for c in hits:
            _narrow(el, c.pattern)
    for wildcard in decl.iter(_XS + "any"):
        containers.add(f"{{{tns}}}{_parent_name(wildcard)}")
    covered = frozenset(c.code for c in checks) - uncovered
    presence = presence_check(t.code)
    suspects: tuple[str, ...] = ()
    if presence is not None:
        suspects = _narrow_blank(decl, presence[1], tns, simple)
        covered |= {presence[0]}
    return SchemaFacts(covered, _columns(decl, t, tns, simple), tuple(sorted(containers)),
                       _head_first(decl, t), suspects)


def _narrow_blank(decl: etree._Element, flagged: frozenset[tuple[str, str]], tns: str,
                  simple: _Simple) -> tuple[str, ...]:
    """Give every leaf declaration of a (parent, field) pair in ``flagged`` the pattern
    :data:`~.rules.NON_BLANK`, so no such leaf of a tree passing the overlay is blank.  Returns
    the Clark names of the flagged complex elements whose content may be empty (a wildcard
    container, say): the presence rule still looks at those, and only those."""
    suspects: set[str] = set()
    for el in list(decl.iter(_XS + "element")):
        name = el.get("name")
        if name is None or (_parent_name(el), name) not in flagged:
            continue
        if _is_leaf(el, tns, simple):
            if _builtin_base(el, tns, simple) not in _NEVER_BLANK:
                _narrow(el, NON_BLANK)
        elif not _requires_child(el):
            suspects.add(f"{{{tns}}}{name}")
    return tuple(sorted(suspects))


# Built-in types whose lexical space has no blank string (their whitespace is collapsed, and
# none of them may be empty): a leaf of such a type that passes the schema is not blank, and
# needs no presence pattern (each pattern checked costs libxml2 more than the type itself).
_NEVER_BLANK = frozenset({
    "decimal", "integer", "nonPositiveInteger", "negativeInteger", "long", "int", "short", "byte",
    "nonNegativeInteger", "unsignedLong", "unsignedInt", "unsignedShort", "unsignedByte",
    "positiveInteger", "float", "double", "boolean", "dateTime", "time", "date", "gYearMonth",
    "gYear", "gMonthDay", "gDay", "gMonth", "duration",
})


def _builtin_base(el: etree._Element, tns: str, simple: _Simple) -> str | None:
    """The local name of the XML Schema built-in type a leaf declaration's type restricts
    (through the schema's named simple types and inline restrictions), or None when it is
    not found that way (a list, a union, a type of another namespace)."""
    ref, where = el.get("type"), el  # a type's QName, and the element its prefix resolves at
    inline = el.find(_XS + "simpleType")
    for _ in range(_MAX_INLINE_ROUNDS):
        if ref is None:
            step = inline.find(_XS + "restriction") if inline is not None else None
            if step is None:
                return None
            ref, where = step.get("base"), step
            inline = step.find(_XS + "simpleType")  # no base: it restricts an inline type
            continue
        ns, local = _qname(where, ref)
        if ns == _XS_NS:
            return local
        if ns != tns or local not in simple:
            return None
        ref, inline = None, simple[local]
    return None


def _requires_child(el: etree._Element) -> bool:
    """The declaration's content is one sequence holding at least one required element."""
    particles = _particles(el)
    return bool(particles) and any(p.get("minOccurs", "1") != "0" for p in particles or ())


def _parent_name(el: etree._Element) -> str | None:
    """Name of the element declaration whose content ``el`` is part of."""
    holder = el.getparent()
    while holder is not None and holder.tag != _XS + "element":
        holder = holder.getparent()
    return holder.get("name") if holder is not None else None


def _is_leaf(el: etree._Element, tns: str, simple: _Simple) -> bool:
    """The declaration gives its element a simple type (text only)."""
    if el.find(_XS + "complexType") is not None:
        return False
    if el.find(_XS + "simpleType") is not None:
        return True
    tname = el.get("type")
    if tname is None:
        return False  # xs:anyType
    ns, local = _qname(el, tname)
    return (ns == _XS_NS and local != "anyType") or (ns == tns and local in simple)


def _narrow(el: etree._Element, pattern: str) -> None:
    """Restrict a leaf declaration's type by one more pattern (a step of its own: patterns
    within one step are alternatives, across steps all must match)."""
    inner = el.find(_XS + "simpleType")
    wrapper = etree.SubElement(el, _XS + "simpleType")
    restriction = etree.SubElement(wrapper, _XS + "restriction")
    tname = el.get("type")
    if tname is not None:
        del el.attrib["type"]
        restriction.set("base", tname)
    elif inner is not None:
        restriction.append(inner)
    etree.SubElement(restriction, _XS + "pattern", value=pattern)


def _particles(decl: etree._Element) -> list[etree._Element] | None:
    """The element declarations of a content model that is one plain sequence of elements."""
    body = decl.find(_XS + "complexType")
    seq = body.find(_XS + "sequence") if body is not None else None
    if body is None or seq is None or not _once(seq):
        return None
    if any(c.tag in (_XS + "choice", _XS + "all") for c in body):
        return None
    children = [c for c in seq if isinstance(c.tag, str)]
    return children if all(c.tag == _XS + "element" for c in children) else None


def _child(decl: etree._Element, name: str) -> etree._Element | None:
    """The one child declaration called ``name`` in a plain sequence, or None."""
    found = [p for p in _particles(decl) or [] if p.get("name") == name]
    return found[0] if len(found) == 1 else None


def _head_first(decl: etree._Element, t: MessageType) -> bool:
    """Every record's first child is its head, and it has no other (so ``rec[0]`` is it)."""
    record = _child(decl, t.record) if t.record else None
    particles = _particles(record) if record is not None and t.head else None
    if not particles:
        return False
    first, rest = particles[0], particles[1:]
    return first.get("name") == t.head and _once(first) and not any(p.get("name") == t.head for p in rest)


def _once(particle: etree._Element) -> bool:
    return particle.get("minOccurs", "1") == "1" and particle.get("maxOccurs", "1") == "1"


def _columns(decl: etree._Element, t: MessageType, tns: str, simple: _Simple) -> tuple[str, ...]:
    """The line fields every line holds exactly once, in order, named nowhere else in the record."""
    record = _child(decl, t.record) if t.record else None
    lines = _child(record, t.lines) if record is not None and t.lines else None
    particles = _particles(lines) if lines is not None else None
    if record is None or particles is None:
        return ()
    mine = Counter(p.get("name") for p in particles)
    elsewhere = {el.get("name") for el in record.iter(_XS + "element") if not any(el is p for p in particles)}
    return tuple(
        str(p.get("name")) for p in particles
        if mine[p.get("name")] == 1 and p.get("name") not in elsewhere
        and _once(p) and _is_leaf(p, tns, simple)
    )
