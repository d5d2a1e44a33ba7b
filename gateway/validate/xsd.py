"""XSD validation: the schemas in ``xsd/`` compiled once per process, errors turned into findings.

libxml2 reports schema errors as text; this module maps each libxml2 error type to one
of our stable ``CEBGW-XSD-…`` codes and locates the offending element so a finding can
name the field, its record index and its line.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from ..catalog import MessageType
from ..errors import ERRORS, ConfigError, Finding
from ..xmlio import element_path, local_name, parse_trusted_file, per_thread_cache

SCHEMA_FILES = {
    "import": "ceb-import.xsd",
    "export": "ceb-export.xsd",
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

_ELEMENT = re.compile(r"^Element '(?P<tag>[^']+)'(?:, attribute '(?P<attr>[^']+)')?: (?P<rest>.*)$", re.S)
_ATTR_REQUIRED = re.compile(r"The attribute '([^']+)' is required")
_EXPECTED = re.compile(r"Expected is (?:one of )?\( ([^)]*) \)")


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


def schema_path(mtype: MessageType, directory: Path | None = None) -> Path:
    """The schema file for a message type: its flow's, or its own for an envelope."""
    key = mtype.code if mtype.is_envelope else mtype.flow
    return (directory or xsd_dir()) / SCHEMA_FILES[key]


def schema_for(mtype: MessageType, directory: Path | None = None) -> etree.XMLSchema:
    """The compiled schema for a message type (compiled on first use, then reused)."""
    key = mtype.code if mtype.is_envelope else mtype.flow
    if directory is None:
        return _default_schema(key)
    return _compile(str(directory / SCHEMA_FILES[key]))


def preload(directory: Path | None = None) -> None:
    """Compile every schema now (a server calls this at start, so no request pays for it)."""
    for name in SCHEMA_FILES.values():
        _compile(str((directory or xsd_dir()) / name))


_XS = "{http://www.w3.org/2001/XMLSchema}"


@cache
def _min_occurs(path: str) -> dict[tuple[str, str], int]:
    """(parent, child) local names → the smallest minOccurs of that child under that parent.

    Read from the schema file (and the files it includes), so a content error can tell a
    missing required element from an unexpected one.
    """
    tree = parse_trusted_file(path)
    named = {ct.get("name"): ct for ct in tree.iter(_XS + "complexType") if ct.get("name")}
    found: dict[tuple[str, str], int] = {}
    for el in tree.iter(_XS + "element"):
        name = el.get("name")
        if not name:
            continue
        content = el.find(_XS + "complexType")
        if content is None and el.get("type"):
            content = named.get(str(el.get("type")).rpartition(":")[2])
        if content is None:
            continue
        for child in content.iter(_XS + "element"):
            # only the particles of this content model, not those of nested element declarations
            holder = child.getparent()
            while holder is not None and holder.tag != _XS + "element" and holder is not content:
                holder = holder.getparent()
            if holder is not content:
                continue
            cname = (child.get("name") or child.get("ref") or "").rpartition(":")[2]
            occurs = int(child.get("minOccurs", "1"))
            key = (name, cname)
            found[key] = min(found.get(key, occurs), occurs)
    return found


def _required(schema_path: str | None, parent: str, child: str) -> bool:
    if schema_path is None:
        return True
    return _min_occurs(schema_path).get((parent, child), 1) > 0


Index = dict[tuple[str, int], etree._Element]


def _index(root: etree._Element) -> Index:
    """The first element of each (tag, line), for messages with many findings: one walk
    instead of one per finding."""
    out: Index = {}
    for el in root.iter(etree.Element):
        line: Any = el.sourceline
        out.setdefault((str(el.tag), line if isinstance(line, int) else 0), el)
    return out


def _locate(root: etree._Element, tag: str, line: int, index: Index | None = None) -> etree._Element | None:
    if index is not None:
        return index.get((tag, line))
    for el in root.iter(tag):
        found: Any = el.sourceline
        if found == line:
            return el
    return None


def _names(expected: str) -> list[str]:
    return [local_name(n.strip()) for n in expected.split(",") if n.strip()]


def _finding(root: etree._Element, entry: Any, schema_path: str | None = None,
             index: Index | None = None) -> Finding:
    code = _CODE_BY_TYPE.get(entry.type_name, "CEBGW-XSD-INVALID")
    line: int | None = entry.line or None
    msg = entry.message
    m = _ELEMENT.match(msg)
    if m is None:
        return Finding(code, msg, line=line)
    tag, attr, rest = m.group("tag"), m.group("attr"), m.group("rest").strip()
    el = _locate(root, tag, line, index) if line else None
    path = element_path(el) if el is not None else None
    field = local_name(tag)
    if not attr:
        m_attr = _ATTR_REQUIRED.search(rest)
        attr = m_attr.group(1) if m_attr else None
    if attr:
        return Finding("CEBGW-XSD-ATTRIBUTE", f"attribute {attr}: {rest}", line=line,
                       path=f"{path}/@{attr}" if path else None, field=attr)
    if entry.type_name == "SCHEMAV_ELEMENT_CONTENT":
        expected = _EXPECTED.search(rest)
        names = _names(expected.group(1)) if expected else []
        # libxml2 lists every element that could come next; the schema says which are required.
        if rest.startswith("Missing child"):
            required = [n for n in names if _required(schema_path, field, n)]
            missing = (required or names or [field])[0]
            return Finding("CEBGW-XSD-MISSING", f"required element {missing} is missing in {field}",
                           line=line, path=f"{path}/{missing}" if path else None, field=missing)
        parent = el.getparent() if el is not None else None
        if el is not None and parent is not None:
            pname = local_name(parent.tag)
            present = {local_name(c.tag) for c in parent if isinstance(c.tag, str)}
            absent = [n for n in names if n not in present and _required(schema_path, pname, n)]
            prev = el.getprevious()
            while prev is not None and not isinstance(prev.tag, str):
                prev = prev.getprevious()
            if absent:
                missing = absent[0]
                ppath = element_path(parent)
                return Finding("CEBGW-XSD-MISSING",
                               f"required element {missing} is missing before {field}",
                               line=line, path=f"{ppath}/{missing}", field=missing)
            if prev is not None and prev.tag == el.tag:
                return Finding("CEBGW-XSD-COUNT", f"too many {field} elements here", line=line,
                               path=path, field=field)
        return Finding("CEBGW-XSD-UNEXPECTED", f"element {field} is not allowed here"
                       + (f" (expected {', '.join(names)})" if names else ""),
                       line=line, path=path, field=field)
    detail = rest.replace("[facet '", "[").replace("'] ", "] ")
    return Finding(code, detail, line=line, path=path, field=field)


def validate(root: etree._Element, mtype: MessageType, directory: Path | None = None) -> list[Finding]:
    """Validate a tree against its type's schema; return one finding per problem (empty = valid)."""
    return validate_capped(root, mtype, directory)[0]


def validate_capped(root: etree._Element, mtype: MessageType, directory: Path | None = None,
                    limit: int | None = None) -> tuple[list[Finding], int]:
    """Like :func:`validate`, building at most ``limit`` findings; also returns how many more
    problems libxml2 reported (counted per element and attribute, as findings are)."""
    schema = schema_for(mtype, directory)
    if schema.validate(root):
        return [], 0
    path = str(schema_path(mtype, directory))
    seen: set[tuple[int, str | None]] = set()
    out: list[Finding] = []
    log: Any = schema.error_log
    index = _index(root) if len(log) > 16 else None
    rest: set[tuple[int, str]] = set()
    for entry in log:
        if limit is not None and len(out) >= limit:
            m = _ELEMENT.match(entry.message)
            rest.add((entry.line, f"{m.group('tag')}/{m.group('attr')}" if m else entry.message))
            continue
        f = _finding(root, entry, path, index)
        key = (f.line or 0, f.path or f.message)
        if key in seen:  # libxml2 reports a facet failure and then the type failure: keep the first
            continue
        seen.add(key)
        out.append(f)
    return out, len(rest)


assert all(code in ERRORS for code in _CODE_BY_TYPE.values())
