"""XSD validation: the schemas in ``xsd/`` compiled once per process, errors turned into findings.

libxml2 reports schema errors as text; this module maps each libxml2 error type to one
of our stable ``CEBGW-XSD-…`` codes and locates the offending element so a finding can
name the field, its record index and its line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from ..catalog import CURRENT_EDITION, MessageType
from ..errors import ERRORS, ConfigError, Finding
from ..xmlio import element_path, local_name, parse_trusted_file, per_thread_cache

SCHEMA_FILES = {
    "import": "ceb-import.xsd",
    "export": "ceb-export.xsd",
    "import-2018": "ceb-import-2018.xsd",
    "export-2018": "ceb-export-2018.xsd",
    "DxpMsg": "dxp-terminal.xsd",
    "DxpMsgSv": "dxp-transport.xsd",
    "DxpRep": "dxp-response.xsd",
}

_CODE_BY_TYPE = {
    "SCHEMAV_CVC_LENGTH_VALID": "CEBGW-XSD-LENGTH",
    "SCHEMAV_CVC_MINLENGTH_VALID": "CEBGW-XSD-LENGTH",
    "SCHEMAV_CVC_MAXLENGTH_VALID": "CEBGW-XSD-LENGTH",
    "SCHEMAV_CVC_TOTALDIGITS_VALID": "CEBGW-XSD-DIGITS",
    "SCHEMAV_CVC_FRACTIONDIGITS_VALID": "CEBGW-XSD-DIGITS",
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_1": "CEBGW-XSD-TYPE",
    "SCHEMAV_CVC_FACET_VALID": "CEBGW-XSD-TYPE",
    "SCHEMAV_CVC_ENUMERATION_VALID": "CEBGW-XSD-TYPE",
    "SCHEMAV_CVC_PATTERN_VALID": "CEBGW-XSD-TYPE",
    "SCHEMAV_CVC_MININCLUSIVE_VALID": "CEBGW-XSD-TYPE",
    "SCHEMAV_CVC_MAXINCLUSIVE_VALID": "CEBGW-XSD-TYPE",
    "SCHEMAV_CVC_COMPLEX_TYPE_3_2_1": "CEBGW-XSD-ATTRIBUTE",
    "SCHEMAV_CVC_COMPLEX_TYPE_3_2_2": "CEBGW-XSD-ATTRIBUTE",
    "SCHEMAV_CVC_COMPLEX_TYPE_4": "CEBGW-XSD-ATTRIBUTE",
    "SCHEMAV_CVC_ATTRIBUTE_3": "CEBGW-XSD-ATTRIBUTE",
    "SCHEMAV_CVC_AU": "CEBGW-XSD-ATTRIBUTE",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_1": "CEBGW-XSD-UNEXPECTED",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_3": "CEBGW-XSD-UNEXPECTED",
    "SCHEMAV_CVC_COMPLEX_TYPE_2_4": "CEBGW-XSD-UNEXPECTED",
    "SCHEMAV_CVC_ELT_1": "CEBGW-XSD-UNEXPECTED",
}



def xsd_dir() -> Path:
    """Where the schemas live: ``$CEBGW_XSD_DIR`` or the ``xsd/`` folder beside the package."""
    env = os.environ.get("CEBGW_XSD_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "xsd"


@per_thread_cache  # a schema keeps its last error log on itself: one per thread
def _compile(path: str) -> etree.XMLSchema:
    try:
        return etree.XMLSchema(parse_trusted_file(path))
    except (OSError, etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
        raise ConfigError(f"{path}: cannot load schema: {exc}") from None


@per_thread_cache
def _default_schema(key: str) -> etree.XMLSchema:
    return _compile(str(xsd_dir() / SCHEMA_FILES[key]))


def _key(mtype: MessageType, edition: str) -> str:
    if mtype.is_envelope:
        return mtype.code
    return mtype.flow if edition == CURRENT_EDITION else f"{mtype.flow}-{edition}"


def schema_path(mtype: MessageType, directory: Path | None = None, *, edition: str = CURRENT_EDITION) -> Path:
    """The schema file for a message type: its flow's in that edition, or its own for an envelope."""
    return (directory or xsd_dir()) / SCHEMA_FILES[_key(mtype, edition)]


def schema_for(mtype: MessageType, directory: Path | None = None, *,
               edition: str = CURRENT_EDITION) -> etree.XMLSchema:
    """The compiled schema for a message type (compiled on first use, then reused)."""
    key = _key(mtype, edition)
    if directory is None:
        return _default_schema(key)
    return _compile(str(directory / SCHEMA_FILES[key]))


def preload(directory: Path | None = None) -> None:
    """Compile every schema now (a server calls this at start, so no request pays for it)."""
    for name in SCHEMA_FILES.values():
        _compile(str((directory or xsd_dir()) / name))


_XS = "{http://www.w3.org/2001/XMLSchema}"
_ATTRIBUTE_TYPES = frozenset({"SCHEMAV_CVC_COMPLEX_TYPE_3_2_1", "SCHEMAV_CVC_COMPLEX_TYPE_3_2_2",
                              "SCHEMAV_CVC_COMPLEX_TYPE_4", "SCHEMAV_CVC_ATTRIBUTE_3", "SCHEMAV_CVC_AU"})
_MISSING_ATTRIBUTE = "SCHEMAV_CVC_COMPLEX_TYPE_4"


# ---------------------------------------------------------------- the schema's content models
# libxml2 says what went wrong in English text only (what is missing, what was expected).  Its
# structured fields (type, domain, path, line) name the kind of fault and the element; the
# rest is worked out here from the schema itself: which children an element takes, in which
# order and how often, and which attributes.

@dataclass(frozen=True)
class _Particle:
    name: str
    min: int
    max: int | None  # None: unbounded


@dataclass(frozen=True)
class _Content:
    """An element's content model: its child elements in sequence order, its attributes
    (name → required), and whether a wildcard lets anything in (then nothing is checked)."""

    particles: tuple[_Particle, ...]
    attributes: dict[str, bool]
    open: bool


def _schema_docs(path: Path) -> list[etree._Element]:
    """The schema at ``path`` and the ones it includes (same namespace), roots only."""
    docs, todo, seen = [], [path], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        root = parse_trusted_file(str(p)).getroot()
        docs.append(root)
        todo += [p.parent / str(inc.get("schemaLocation")) for inc in root.iterchildren(_XS + "include")]
    return docs


def _own(node: etree._Element, owner: etree._Element, tag: str) -> list[etree._Element]:
    """The ``tag`` declarations that belong to ``owner`` itself, not to an element nested in it."""
    out = []
    for el in node.iter(tag):
        holder = el.getparent()
        while holder is not None and holder is not owner and holder.tag != _XS + "element":
            holder = holder.getparent()
        if holder is owner:
            out.append(el)
    return out


@cache
def _models(path: str) -> dict[tuple[str, ...], _Content]:
    """Every element's content model in the schema at ``path``, keyed by the local names of
    the element and its ancestors from the message root."""
    docs = _schema_docs(Path(path))
    types = {str(t.get("name")): t for d in docs for t in d.iterchildren(_XS + "complexType")}
    groups = {str(g.get("name")): g for d in docs for g in d.iterchildren(_XS + "attributeGroup")}
    globals_ = {str(e.get("name")): e for d in docs for e in d.iterchildren(_XS + "element")}
    out: dict[tuple[str, ...], _Content] = {}

    def local(qname: str | None) -> str:
        return (qname or "").rpartition(":")[2]

    def attributes(ct: etree._Element) -> dict[str, bool]:
        found = {str(a.get("name")): a.get("use") == "required" for a in _own(ct, ct, _XS + "attribute")
                 if a.get("name")}
        for ref in _own(ct, ct, _XS + "attributeGroup"):
            group = groups.get(local(ref.get("ref")))
            if group is not None:
                found |= {str(a.get("name")): a.get("use") == "required"
                          for a in group.iter(_XS + "attribute")}
        return found

    def visit(decl: etree._Element, at: tuple[str, ...]) -> None:
        ct = decl.find(_XS + "complexType")
        if ct is None:
            ct = types.get(local(decl.get("type")))
        if ct is None or len(at) > 32:
            return  # a simple type: no children, no attributes
        children = _own(ct, ct, _XS + "element")
        out[at] = _Content(
            tuple(_Particle(local(c.get("name") or c.get("ref")), int(c.get("minOccurs", "1")),
                            None if c.get("maxOccurs") == "unbounded" else int(c.get("maxOccurs", "1")))
                  for c in children),
            attributes(ct), bool(_own(ct, ct, _XS + "any")))
        for c in children:
            target = c if c.get("name") else globals_.get(local(c.get("ref")))
            if target is not None:
                visit(target, (*at, local(c.get("name") or c.get("ref"))))

    for root in docs[:1]:
        for decl in root.iterchildren(_XS + "element"):
            visit(decl, (str(decl.get("name")),))
    return out


def child_elements(mtype: MessageType, path: tuple[str, ...]) -> tuple[tuple[str, bool], ...]:
    """The child elements the schema allows under the element at ``path`` (local names from the
    root, e.g. ``("CEB311Message", "Order", "OrderHead")``) in schema order, each with whether it
    is optional; empty for an element the schema gives no children."""
    content = _models(str(schema_path(mtype))).get(path)
    return tuple((p.name, p.min == 0) for p in content.particles) if content is not None else ()


def required_children(mtype: MessageType, edition: str = CURRENT_EDITION) -> frozenset[tuple[str, str]]:
    """(parent, child) local names of the elements the type's schema requires (minOccurs >= 1)."""
    models = _models(str(schema_path(mtype, edition=edition)))
    return frozenset((at[-1], p.name) for at, content in models.items()
                     for p in content.particles if p.min >= 1)


def _names(el: etree._Element) -> tuple[str, ...]:
    return tuple(local_name(a.tag) for a in reversed([el, *el.iterancestors()]))


@dataclass(frozen=True)
class _Misfit:
    """Where an element's children stop fitting its content model: ``child`` (None: they run
    out), the required element that was due there (None: nothing was), and what could come."""

    child: etree._Element | None
    due: str | None
    expected: tuple[str, ...] = ()


def _misfit(el: etree._Element, models: dict[tuple[str, ...], _Content]) -> _Misfit | None:
    """Match ``el``'s child elements, in order, against its content model: None if they fit (or
    the schema lets anything in, or ``el`` has no model)."""
    content = models.get(_names(el))
    if content is None or content.open:
        return None
    parts, i, count = content.particles, 0, 0
    start, start_count = 0, 0  # where the last child fitted: what may follow it starts there
    for child in el.iterchildren("*"):
        name = local_name(child.tag)
        while not (i < len(parts) and parts[i].name == name and _room(parts[i], count)):
            if i < len(parts) and count < parts[i].min:
                return _Misfit(child, parts[i].name, _next_names(parts, i, count))
            if i >= len(parts):
                return _Misfit(child, None, _next_names(parts, start, start_count))
            i, count = i + 1, 0
        start, start_count = i, count + 1
        count += 1
    due = next((p.name for j, p in enumerate(parts[i:]) if p.min > (count if j == 0 else 0)), None)
    return _Misfit(None, due) if due is not None else None


def _room(particle: _Particle, count: int) -> bool:
    return particle.max is None or count < particle.max


def _next_names(parts: tuple[_Particle, ...], i: int, count: int) -> tuple[str, ...]:
    """The elements that may come next at particle ``i`` holding ``count``: up to the first
    one still required."""
    out: list[str] = []
    for j in range(i, len(parts)):
        held = count if j == i else 0
        if _room(parts[j], held):
            out.append(parts[j].name)
        if held < parts[j].min:
            break
    return tuple(out)


# ---------------------------------------------------------------- findings

def _finding(root: etree._Element, entry: Any, schema_path: str | None = None) -> Finding:
    """One libxml2 error as a finding: the code from its type, the element from its path."""
    code = _CODE_BY_TYPE.get(entry.type_name, "CEBGW-XSD-INVALID")
    line: int | None = entry.line or None
    el = _element_at(root, entry.path)
    detail = _detail(entry.message)
    if el is None:
        return Finding(code, detail, line=line)
    models = _models(schema_path) if schema_path else {}
    content = models.get(_names(el))
    attr = _attribute_at_fault(el, entry, content)
    path, field = element_path(el), local_name(el.tag)
    if attr is not None:
        return Finding("CEBGW-XSD-ATTRIBUTE", f"attribute {attr}: {detail}", line=line,
                       path=f"{path}/@{attr}", field=attr)
    if entry.type_name == "SCHEMAV_ELEMENT_CONTENT":
        return _content_finding(el, models, line)
    return Finding(code, detail, line=line, path=path, field=field)


def _element_at(root: etree._Element, path: str | None) -> etree._Element | None:
    """The element at libxml2's XPath of the node in error (``/ceb:A/ceb:B[2]`` or ``/*/*[2]``)."""
    if not path:
        return None
    tree = root.getroottree()
    found: Any
    try:
        found = tree.xpath(path, namespaces=_prefixes(root.nsmap))
    except etree.XPathError:  # a prefix declared below the root
        try:
            found = tree.xpath(path, namespaces=_prefixes(*(el.nsmap for el in root.iter("*"))))
        except etree.XPathError:
            return None
    return found[0] if isinstance(found, list) and found and isinstance(found[0], etree._Element) else None


def _prefixes(*maps: Any) -> dict[str, str]:
    return {str(k): str(v) for nsmap in maps for k, v in nsmap.items() if k}


def _detail(message: str) -> str:
    """libxml2's text without its ``Element '{ns}name': `` lead (shown as the field instead)."""
    text = message.strip()
    lead, sep, rest = text.partition("': ")
    text = rest if sep and lead.startswith("Element '") else text
    return text.replace("[facet '", "[").replace("'] ", "] ")


def _attribute_at_fault(el: etree._Element, entry: Any, content: _Content | None) -> str | None:
    """The attribute an error is about, or None for an error about the element.

    An attribute error names no attribute in libxml2's structured fields: a missing one is
    the first required attribute the element lacks, a refused one the first it has that the
    schema does not declare, and a bad value (a type or facet error on an element whose
    content is other elements) the declared one whose value libxml2 quotes.
    """
    declared = content.attributes if content is not None else {}
    if entry.type_name == _MISSING_ATTRIBUTE:
        return next((a for a, required in declared.items() if required and el.get(a) is None), None)
    if entry.type_name in _ATTRIBUTE_TYPES:
        return next((str(a) for a in el.keys() if a not in declared), None)
    if content is None or not content.particles or entry.type_name == "SCHEMAV_ELEMENT_CONTENT":
        return None
    present = [str(a) for a in el.keys() if a in declared]
    quoted = [a for a in present if f"attribute '{a}'" in entry.message]
    return next(iter(quoted or present), None)


def _content_finding(el: etree._Element, models: dict[tuple[str, ...], _Content],
                     line: int | None) -> Finding:
    """An element-content error at ``el``: ``el`` is out of place among its siblings (a required
    one missing before it, one too many, or not allowed there), or it lacks a required child."""
    field, path = local_name(el.tag), element_path(el)
    parent = el.getparent()
    fit = _misfit(parent, models) if parent is not None else None
    if parent is None or fit is None or fit.child is not el:  # in its place: its own content is short
        own = _misfit(el, models)
        if own is not None and own.child is None and own.due is not None:
            return Finding("CEBGW-XSD-MISSING", f"required element {own.due} is missing in {field}",
                           line=line, path=f"{path}/{own.due}", field=own.due)
    elif fit.due is not None and fit.due not in {local_name(c.tag) for c in parent.iterchildren("*")}:
        return Finding("CEBGW-XSD-MISSING", f"required element {fit.due} is missing before {field}",
                       line=line, path=f"{element_path(parent)}/{fit.due}", field=fit.due)
    prev = el.getprevious()
    while prev is not None and not isinstance(prev.tag, str):
        prev = prev.getprevious()
    if prev is not None and prev.tag == el.tag:
        return Finding("CEBGW-XSD-COUNT", f"too many {field} elements here", line=line, path=path,
                       field=field)
    shown = fit.expected if fit is not None and fit.child is el else ()
    hint = f" (expected {', '.join(shown)})" if shown else ""
    return Finding("CEBGW-XSD-UNEXPECTED", f"element {field} is not allowed here{hint}", line=line, path=path,
                   field=field)


def validate(root: etree._Element, mtype: MessageType, directory: Path | None = None, *,
             edition: str = CURRENT_EDITION) -> list[Finding]:
    """Validate a tree against its type's schema in ``edition``; one finding per problem (empty = valid)."""
    return validate_capped(root, mtype, directory, edition=edition)[0]


def validate_capped(root: etree._Element, mtype: MessageType, directory: Path | None = None, *,
                    edition: str = CURRENT_EDITION, limit: int | None = None) -> tuple[list[Finding], int]:
    """Like :func:`validate`, building at most ``limit`` findings; also returns how many more
    problems libxml2 reported (counted per element and attribute, as findings are)."""
    schema = schema_for(mtype, directory, edition=edition)
    if schema.validate(root):
        return [], 0
    path = str(schema_path(mtype, directory, edition=edition))
    seen: set[tuple[int, str | None]] = set()
    out: list[Finding] = []
    log: Any = schema.error_log
    rest: set[tuple[int, str]] = set()
    for entry in log:
        if limit is not None and len(out) >= limit:
            rest.add((entry.line, str(entry.path or entry.message)))
            continue
        f = _finding(root, entry, path)
        key = (f.line or 0, f.path or f.message)
        if key in seen:  # libxml2 reports a facet failure and then the type failure: keep the first
            continue
        seen.add(key)
        out.append(f)
    return out, len(rest)


assert all(code in ERRORS for code in _CODE_BY_TYPE.values())
