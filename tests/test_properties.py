"""Property tests: generated messages are valid, and a single broken field is caught by name.

(a) every message samplegen builds (any declaration, receipt or customs-issued type, any seed, 1-3
    records, 1-5 lines, prefixed or default namespace, with or without an ExtendMessage) validates
    with no errors.  Types that need a signature get a structurally complete dummy ``ds:Signature``
    in the place the XSD gives it; validation does not verify signatures.
(b) one mutation of one leaf field of a record head (too long, removed, bad decimal, bad code) makes
    the message invalid with an error on exactly that field, of the expected code family.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st
from lenient import parse_keeping_markup
from lxml import etree

from gateway.catalog import CEB_NS, DS_NS, EDITIONS
from gateway.catalog import load as load_catalog
from gateway.pipeline import validate_bytes
from gateway.sandbox import samplegen as sg
from gateway.validate import detect, findings_of, rules
from gateway.validate.rules import load_rules
from gateway.validate.xsd import xsd_dir
from gateway.xmlio import local_name, parse

C = "{" + CEB_NS + "}"
DS = "{" + DS_NS + "}"
CATALOG = load_catalog()
CODES = sg.DECLARATIONS + sg.RECEIPTS + sg.CUSTOMS_ISSUED
NEEDS_SIGNATURE = frozenset(c for c in CODES if CATALOG[c].signature in ("required", "when_declared"))


# --------------------------------------------------------------------------- building


def complete_tail(root: etree._Element, code: str, *, extend: bool) -> None:
    """Add ds:Signature (where required) and ExtendMessage in XSD order: import ExtendMessage then
    Signature (Signature last), export Signature then ExtendMessage."""
    if extend:
        root.append(sg.extend_message())
    if code in NEEDS_SIGNATURE:
        ext = root.find(C + "ExtendMessage")
        if sg.flow_of(code) == "export" and ext is not None:
            ext.addprevious(sg.placeholder_signature())
        else:
            root.append(sg.placeholder_signature())


def message(code: str, *, seed: int, records: int, lines: int, default_ns: bool = False,
            extend: bool = False) -> etree._Element:
    data = sg.build(code, records=records, lines=lines, seed=seed, default_ns=default_ns)
    root = parse(data).root
    complete_tail(root, code, extend=extend and CATALOG[code].kind == "declaration")
    return root


def to_bytes(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


# --------------------------------------------------------------------------- (a) generated = valid


@settings(max_examples=150, deadline=None)
@given(code=st.sampled_from(CODES), seed=st.integers(0, 10**6), records=st.integers(1, 3),
       lines=st.integers(1, 5), default_ns=st.booleans(), extend=st.booleans())
def test_generated_messages_are_valid(code: str, seed: int, records: int, lines: int, default_ns: bool,
                                      extend: bool) -> None:
    root = message(code, seed=seed, records=records, lines=lines, default_ns=default_ns, extend=extend)
    report = validate_bytes(to_bytes(root), source=code)
    assert report.errors == []


# --------------------------------------------------------------------------- (b) mutations


@dataclass(frozen=True)
class FieldInfo:
    required: bool
    max_length: int | None
    min_length: int
    numeric: bool


@cache
def _schema(flow: str, edition: str = EDITIONS[0]) -> xmlschema.XMLSchema10:
    name = f"ceb-{flow}.xsd" if edition == EDITIONS[0] else f"ceb-{flow}-{edition}.xsd"
    return xmlschema.XMLSchema10(str(xsd_dir() / name))


@cache
def head_fields(code: str) -> dict[str, FieldInfo]:
    """The simple-typed children of a type's record head, as the compiled XSDs declare them: the
    loosest of the type's editions (a message valid under either edition is valid)."""
    t = CATALOG[code]
    path = f"ceb:{t.root}/ceb:{t.record}" + (f"/ceb:{t.head}" if t.head else "")
    out: dict[str, FieldInfo] = {}
    for edition in t.editions:
        head: Any = _schema(t.flow, edition).find(path, namespaces={"ceb": CEB_NS})  # an XsdElement
        assert head is not None, path
        for child in head.type.content.iter_elements():
            st_ = child.type
            if not st_.is_simple():
                continue
            info = FieldInfo(
                required=child.min_occurs >= 1,
                max_length=st_.max_length,
                min_length=st_.min_length or 1,
                numeric=st_.primitive_type.local_name == "decimal",
            )
            seen = out.get(child.local_name)
            if seen is not None:
                longest = None if None in (seen.max_length, info.max_length) else \
                    max(seen.max_length or 0, info.max_length or 0)
                info = FieldInfo(seen.required and info.required, longest,
                                 min(seen.min_length, info.min_length), seen.numeric)
            out[child.local_name] = info
    return out


@cache
def code_rules(code: str, head_name: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Error-severity code-list rules for fields of this head: field -> (rule code, allowed values)."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for rule in load_rules():
        if rule.kind != "codelist" or rule.severity != "error" or code not in rule.types:
            continue
        within = str(rule.spec.get("within", "")).split()
        if within and head_name not in within:
            continue
        for name in rule.spec["fields"]:
            out[name] = (rule.code, frozenset(str(v) for v in rule.spec["values"]))
    return out


def bad_code(info: FieldInfo, allowed: frozenset[str]) -> str:
    """A value of a length the XSD accepts that is not in the code list."""
    for ch in "9ZQ0":
        value = ch * info.min_length
        if value not in allowed:
            return value
    raise AssertionError(f"no bad code outside {sorted(allowed)}")


BAD_DECIMALS = ["12.3.4", "1,5", "abc", "1e5", "--1", "", "0x10", "NaN", "１２"]
MUTATION_CODES = {
    "too_long": {"CEBGW-XSD-LENGTH"},
    "removed": {"CEBGW-XSD-MISSING"},
    "bad_decimal": {"CEBGW-XSD-TYPE", "CEBGW-XSD-DIGITS"},
}


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_single_field_mutation_is_caught_on_that_field(data: st.DataObject) -> None:
    code = data.draw(st.sampled_from(CODES), label="code")
    records = data.draw(st.integers(1, 3), label="records")
    root = message(code, seed=data.draw(st.integers(0, 10**6), label="seed"), records=records,
                   lines=data.draw(st.integers(1, 3), label="lines"))
    t = CATALOG[code]
    recs = list(root.iterchildren(C + t.record))
    rec = recs[data.draw(st.integers(0, len(recs) - 1), label="record")]
    head = rec.find(C + t.head) if t.head else rec
    assert head is not None
    fields = head_fields(code)
    rules = code_rules(code, local_name(head.tag))
    leaves = [el for el in head if isinstance(el.tag, str) and len(el) == 0 and local_name(el.tag) in fields]
    target = data.draw(st.sampled_from(leaves), label="field")
    name = local_name(target.tag)
    info = fields[name]

    kinds = []
    if info.max_length is not None and not info.numeric:
        kinds.append("too_long")
    if info.required:
        kinds.append("removed")
    if info.numeric:
        kinds.append("bad_decimal")
    if name in rules:
        kinds.append("bad_code")
    kind = data.draw(st.sampled_from(kinds), label="mutation")

    if kind == "too_long":
        assert info.max_length is not None
        target.text = data.draw(st.sampled_from("A9王"), label="char") * (info.max_length + 1)
    elif kind == "removed":
        head.remove(target)
    elif kind == "bad_decimal":
        target.text = data.draw(st.sampled_from(BAD_DECIMALS), label="value")
    else:
        target.text = bad_code(info, rules[name][1])
    expected = {rules[name][0]} if kind == "bad_code" else MUTATION_CODES[kind]

    report = validate_bytes(to_bytes(root), source=f"{code}:{name}:{kind}")
    assert not report.valid
    hits = [f for f in report.errors if f.field == name and f.code in expected]
    assert hits, [(f.code, f.field, f.path) for f in report.errors]


# --------------------------------------------------------------------------- (c) the overlay changes nothing

# Values a mutation may give a leaf: codes, dates, decimals, with and without stray whitespace.
VALUE_POOL = ["", " ", "1", " 1 ", "01", "2", "3", "9", "I", "E", "S", "142", "110", "DXP", "ALL", "9610",
              "1210", "20240229", "20230229", "20261123101010", "20261123246060", "20261123101010123", "0",
              "-1", "1.5", "abc", "\u3000", "1\u3000", "991A45A0-8EC6-44E8-81A1-13791448F596", "x" * 36]
MUTATIONS = ["value", "comment", "pi", "remove", "swap", "extend", "lower-guid"]


def mutate(root: etree._Element, code: str, data: st.DataObject) -> None:
    """One change anywhere in the message: the kind of thing the overlay path must not get wrong."""
    kind = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    leaves = [el for el in root.iter(C + "*") if len(el) == 0 and el.getparent() is not None]
    target = data.draw(st.sampled_from(leaves), label="leaf")
    if kind == "value":
        target.text = data.draw(st.sampled_from(VALUE_POOL), label="value")
    elif kind == "comment":
        comment = etree.Comment("c")
        if data.draw(st.booleans(), label="before"):
            comment.tail, target.text = target.text, None
        target.append(comment)
    elif kind == "pi":
        target.addnext(etree.ProcessingInstruction("pi", "x"))
    elif kind == "remove":
        parent = target.getparent()
        assert parent is not None
        parent.remove(target)
    elif kind == "swap":
        other = data.draw(st.sampled_from(leaves), label="other")
        target.text, other.text = other.text, target.text
    elif kind == "extend" and CATALOG[code].kind == "declaration":
        # an element the rules look at, where the schema does not look
        inside = etree.SubElement(add_extend_message(root, code), target.tag)
        inside.text = data.draw(st.sampled_from(VALUE_POOL), label="value")
    elif kind == "lower-guid":
        root.set("guid", str(root.get("guid")).lower())


def add_extend_message(root: etree._Element, code: str) -> etree._Element:
    """An ExtendMessage where the schema puts it (before an import ds:Signature); its Message."""
    ext = sg.extend_message()
    sig = root.find(DS + "Signature")
    if sg.flow_of(code) == "import" and sig is not None:
        sig.addprevious(ext)
    else:
        root.append(ext)
    found = ext.find(C + "Message")
    assert found is not None
    return found


@settings(max_examples=250, deadline=None)
@given(code=st.sampled_from(CODES), seed=st.integers(0, 10**6), records=st.integers(1, 2),
       lines=st.integers(1, 4), mutations=st.integers(0, 2), data=st.data())
def test_overlay_path_gives_the_plain_path_findings(code: str, seed: int, records: int, lines: int,
                                                     mutations: int, data: st.DataObject) -> None:
    """findings_of (overlay schema, then only the rules it does not cover, records read in bulk)
    reports exactly what the plain schema plus every rule reports, codes, messages, paths and
    lines alike, whatever the message."""
    root = message(code, seed=seed, records=records, lines=lines)
    for _ in range(mutations):
        mutate(root, code, data)
    ident = CATALOG.identify(parse_keeping_markup(to_bytes(root)))  # mutations may add comments
    plain = detect(ident)[1] + rules.check(ident.root, ident.type)
    assert findings_of(ident).findings == plain
