"""The rule engine: declarative rules from ``rules/*.toml`` compiled once per message type.

Rules check what the XSD cannot: code lists, formats, single-document arithmetic (as
exact decimals) and structure.  Each rule has a stable code, a severity and an English
and a Chinese message; every code is registered in the error table on load.

Compiled checks run in two passes over a message: field checks visit only the elements
whose names some rule cares about (``iter(*tags)``, one C-level pass); record checks
walk each business record's head and lines.  Paths and line numbers are computed only
when a check fails, so a valid message pays little beyond the walk.

When the caller has just validated the tree against the type's *overlay* schema
(``overlay.py``: the XSD plus the error code-list and format rules as patterns), it
passes the :class:`SchemaFacts` that validation established, and :meth:`CompiledRules.run`
skips the field rules the schema already checked and reads each record's fields in one
pass instead of one XPath call per field.  Findings are the same either way; only the
time differs.  Arithmetic rules first try every line at once and fall back to the
line-by-line loop (which writes the findings) only when that quick check fails.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, DecimalException, InvalidOperation, getcontext
from functools import cache
from importlib import resources
from operator import mul
from typing import Any, cast

from lxml import etree

from ..catalog import CEB_NS, DS_NS, Catalog, MessageType
from ..catalog import load as load_catalog
from ..errors import ConfigError, Finding, Severity, register
from ..xmlio import element_path, local_name
from . import xsd


@dataclass(frozen=True)
class Rule:
    code: str
    kind: str
    severity: Severity
    en: str
    zh: str
    types: frozenset[str]
    spec: dict[str, Any]


# ---------------------------------------------------------------- loading


def _select(groups: list[str], catalog: Catalog) -> set[str]:
    out: set[str] = set()
    for g in groups:
        for t in catalog:
            if t.is_envelope:
                continue
            if (g == "all" or g == t.code
                    or (g == "declarations" and t.kind == "declaration")
                    or (g == "receipts" and t.kind == "receipt")
                    or g == t.flow
                    or (g == f"{t.flow}-declarations" and t.kind == "declaration")):
                out.add(t.code)
        if g not in ("all", "declarations", "receipts", "import", "export",
                     "import-declarations", "export-declarations") and g not in catalog.types:
            raise ConfigError(f"rules: unknown message type or group {g!r}")
    return out


@cache
def load_rules() -> tuple[Rule, ...]:
    """Every rule shipped in ``gateway/validate/rules/*.toml``, codes registered."""
    catalog = load_catalog()
    rules: list[Rule] = []
    seen: set[str] = set()
    folder = resources.files(__package__).joinpath("rules")
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        for i, raw in enumerate(data.get("rule", [])):
            where = f"rules/{entry.name} rule #{i + 1}"
            try:
                code, kind, sev = raw["code"], raw["kind"], raw["severity"]
                en, zh = raw["en"], raw["zh"]
            except KeyError as exc:
                raise ConfigError(f"{where}: missing {exc.args[0]}") from None
            if code in seen:
                raise ConfigError(f"{where}: code {code} used twice")
            if kind not in _COMPILERS:
                raise ConfigError(f"{where}: unknown kind {kind!r}")
            if sev not in ("error", "warning"):
                raise ConfigError(f"{where}: severity must be error or warning")
            seen.add(code)
            types = _select(raw.get("types", ["all"]), catalog) - set(raw.get("except", []))
            register(code, 422, 1, "-2999", en, zh)
            rules.append(Rule(code, kind, sev, en, zh, frozenset(types), raw))
    return tuple(rules)


# ---------------------------------------------------------------- formats


def _datetime14(v: str) -> bool:
    if len(v) != 14 or not v.isdigit():
        return False
    try:
        datetime(int(v[:4]), int(v[4:6]), int(v[6:8]), int(v[8:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return False
    return True


def _date8(v: str) -> bool:
    if len(v) != 8 or not v.isdigit():
        return False
    try:
        datetime(int(v[:4]), int(v[4:6]), int(v[6:8]))
    except ValueError:
        return False
    return True


_UUID_UPPER = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
_INTEGER = re.compile(r"^-?[0-9]+$")
_SPACE = re.compile(r"\s")

FORMATS: dict[str, Callable[[str], bool]] = {
    "datetime14": _datetime14,
    "date8": _date8,
    "datetime17": lambda v: len(v) == 17 and v[14:].isdigit() and _datetime14(v[:14]),
    "guid": lambda v: len(v) == 36 and _SPACE.search(v) is None,
    "uuid-upper": lambda v: _UUID_UPPER.match(v) is not None,
    "integer": lambda v: _INTEGER.match(v) is not None,
    "district": lambda v: len(v) == 6 and v.isdigit(),
}

# The same formats as XSD patterns, for the overlay schema.  Each pattern accepts only
# values its format accepts (that is what lets the overlay stand in for the rule); it may
# refuse a few the format allows (non-ASCII digits, surrounding spaces), and a message with
# such a value is then simply checked by the rules in Python.
_YEAR = "([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"  # 0001-9999
_LEAP_YEAR = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = ("((0[13578]|1[02])(0[1-9]|[12][0-9]|3[01])"  # 31-day months
              "|(0[469]|11)(0[1-9]|[12][0-9]|30)"          # 30-day months
              "|02(0[1-9]|1[0-9]|2[0-8]))")                 # February, 29th apart
_DATE = f"({_YEAR}{_MONTH_DAY}|{_LEAP_YEAR}0229)"
_TIME = "([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]"
# Printable ASCII but space: what GUIDs are made of, and none of it whitespace; libxml2 tests
# this class far faster than "no whitespace of any script".  Other characters: Python decides.
_VISIBLE_ASCII = "[!-~]"

FORMAT_PATTERNS: dict[str, str] = {
    "datetime14": _DATE + _TIME,
    "date8": _DATE,
    "datetime17": _DATE + _TIME + "[0-9]{3}",
    "guid": _VISIBLE_ASCII + "{36}",
    "uuid-upper": "[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}",
    "integer": "-?[0-9]+",
    "district": "[0-9]{6}",
}
assert FORMAT_PATTERNS.keys() == FORMATS.keys()

_XSD_REGEX_META = frozenset("\\|.-^?*+{}()[]")


def _xsd_literal(text: str) -> str:
    """``text`` as an XSD regular expression matching exactly itself."""
    return "".join("\\" + ch if ch in _XSD_REGEX_META else ch for ch in text)


@dataclass(frozen=True)
class SchemaCheck:
    """A field rule in the form a schema can check in its place (see ``overlay.py``).

    A value matching ``pattern`` is one the rule accepts, for every element named in
    ``fields`` whose parent is named in ``within`` (any parent when empty).
    """

    code: str
    fields: frozenset[str]
    within: frozenset[str]
    pattern: str


def _schema_pattern(rule: Rule) -> str | None:
    """An XSD pattern accepting only element values the rule accepts; None when there is none.

    Only errors qualify: a warning must stay a warning, never make the schema fail.  A code
    list becomes the alternation of its codes; codes with whitespace are left out, as the
    rule strips the text first and could never accept them anyway.
    """
    if rule.severity != "error":
        return None
    if rule.kind == "format":
        return f"({FORMAT_PATTERNS[rule.spec['format']]})?"  # empty content: the rule lets it pass
    if rule.kind == "codelist":
        codes = [v for v in map(str, rule.spec["values"]) if v and "".join(v.split()) == v]
        return f"({'|'.join(map(_xsd_literal, codes))})?" if codes else None
    return None


@cache
def schema_checks(code: str) -> tuple[SchemaCheck, ...]:
    """The field rules of message type ``code`` that a schema pattern can check instead."""
    out: list[SchemaCheck] = []
    for rule in load_rules():
        pattern = _schema_pattern(rule) if code in rule.types else None
        if pattern is None:
            continue
        fields = frozenset(f for f in rule.spec["fields"] if not f.startswith("@"))
        within = frozenset(str(rule.spec.get("within", "")).split())
        out.append(SchemaCheck(rule.code, fields, within, pattern))
    return tuple(out)


# Non-blank content, as an XSD pattern: what ``_empty_required`` finds missing (white space in
# XSD's \s is XPath's normalize-space set: space, tab, CR, LF).  Deterministic, so linear.
NON_BLANK = r"\s*\S[\s\S]*"


def presence_check(code: str) -> tuple[str, frozenset[tuple[str, str]]] | None:
    """The ``empty_required`` rule of message type ``code`` as a schema check: its rule code and
    the (parent, child) fields it flags when blank, each of which a schema pattern
    :data:`NON_BLANK` on that field's declarations rules out; None when the type has no such rule."""
    t = load_catalog()[code]
    for rule in load_rules():
        if rule.kind == "empty_required" and code in rule.types:
            return rule.code, _flagged_when_blank(t)
    return None


def _flagged_when_blank(t: MessageType) -> frozenset[tuple[str, str]]:
    required = xsd.required_children(t)
    if t.kind != "declaration":
        return required
    key_parent = t.head or t.record
    return frozenset((p, n) for p, n in required if not (n in t.keys and p == key_parent))


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one per type and overlay
class SchemaFacts:
    """What a tree that passed its type's overlay schema is known to satisfy.

    Trusted only for a *plain* tree (:func:`_plain`): ``el.text``, which the rules read, is
    then the whole text the schema checked, and no element the rules look at sits where the
    schema does not look.
    """

    covered: frozenset[str]       # codes of the field rules the schema checked
    columns: tuple[str, ...]      # line fields found exactly once in every line, in this
    #                               order, and nowhere else in the record; simple-typed
    containers: tuple[str, ...]   # Clark names of elements whose content the schema skips
    head_first: bool              # a record's first child is its one head element
    blank_suspects: tuple[str, ...] = ()  # Clark names of the elements the presence rule (when
    #                               covered) must still look at: complex, content may be empty


# ---------------------------------------------------------------- compiled checks

FieldCheck = Callable[[etree._Element, list[Finding]], None]
RecordCheck = Callable[["RecordView", list[Finding]], None]
MessageCheck = Callable[[etree._Element, list[Finding]], None]  # once per message, on its root

_NS = {"c": CEB_NS}
_xpaths: dict[str, etree.XPath] = {}


def _xpath(expr: str) -> Callable[[etree._Element], Any]:
    found = _xpaths.get(expr)
    if found is None:
        found = _xpaths[expr] = etree.XPath(expr, namespaces=_NS, smart_strings=False)
    return found


class RecordView:
    """One business record, read lazily: head values and per-line values come from compiled
    XPath in C, so a valid record costs a few calls rather than a proxy per element."""

    __slots__ = ("rec", "head_path", "lines_name", "_lines", "_cache")

    def __init__(self, rec: etree._Element, head_name: str, lines_name: str | None) -> None:
        self.rec = rec
        self.head_path = f"c:{head_name}/" if head_name else ""
        self.lines_name = lines_name
        self._lines: list[etree._Element] | None = None
        self._cache: dict[str, Any] = {}

    def head_text(self, name: str) -> str | None:
        """Text of a head field, or None when absent or empty."""
        key = "h" + name
        if key not in self._cache:
            found = _xpath(f"{self.head_path}c:{name}/text()")(self.rec)
            self._cache[key] = found[0] if found else None
        value: str | None = self._cache[key]
        return value

    def head_el(self, name: str) -> etree._Element | None:
        key = "e" + name
        if key in self._cache:  # prefetched (CheckedRecordView)
            el: etree._Element | None = self._cache[key]
            return el
        found = _xpath(f"{self.head_path}c:{name}")(self.rec)
        return found[0] if found else None

    def head(self) -> etree._Element:
        if not self.head_path:
            return self.rec
        found = _xpath(self.head_path.rstrip("/"))(self.rec)
        return found[0] if found else self.rec

    @property
    def lines(self) -> list[etree._Element]:
        if self._lines is None:
            self._lines = _xpath(f"c:{self.lines_name}")(self.rec) if self.lines_name else []
        return self._lines

    def line_count(self) -> int:
        key = "n"
        if key not in self._cache:
            self._cache[key] = int(_xpath(f"count(c:{self.lines_name})")(self.rec)) if self.lines_name else 0
        n: int = self._cache[key]
        return n

    def line_texts(self, name: str) -> list[str | None]:
        """One entry per line: the field's text, or None where absent or empty."""
        key = "l" + name
        if key not in self._cache:
            texts = _xpath(f"c:{self.lines_name}/c:{name}/text()")(self.rec) if self.lines_name else []
            if len(texts) != self.line_count():  # a line lacks the field: align the slow way
                tag = f"{{{CEB_NS}}}{name}"
                els = [next(iter(line.iterchildren(tag)), None) for line in self.lines]
                texts = [el.text if el is not None else None for el in els]
            self._cache[key] = texts
        value: list[str | None] = self._cache[key]
        return value

    def line_el(self, index: int, name: str) -> etree._Element | None:
        return next(iter(self.lines[index].iterchildren(f"{{{CEB_NS}}}{name}")), None)


@dataclass(frozen=True)
class _Reads:
    """The fields a type's record rules read, for :class:`CheckedRecordView`."""

    head_tag: str | None               # Clark name of the head; None: the record is its own head
    head_first: bool                   # SchemaFacts.head_first
    head_keys: tuple[str, ...]         # RecordView cache keys of the head fields ("h" + name)
    head_tags: tuple[str, ...]         # their Clark names
    column_keys: tuple[str, ...]       # cache keys ("l" + name) of the line fields that
    column_tags: tuple[str, ...]       # SchemaFacts.columns vouches for, in order; Clark names


class CheckedRecordView(RecordView):
    """A record of a plain tree that passed the overlay schema, read in two passes.

    The head fields the rules read come from one pass over the head's children and the
    vouched-for line columns from one pass over the record, where :class:`RecordView` makes
    one XPath call per field.  The values are the ones :class:`RecordView` would read: in a
    plain tree a simple-typed element's ``text`` is its only text node; a head field with
    child elements (not simple-typed after all) is left to the XPath.  Anything not
    prefetched (optional line fields, elements for a finding's location) is read lazily by
    the inherited methods.
    """

    __slots__ = ()

    def __init__(self, rec: etree._Element, mtype: MessageType, reads: _Reads) -> None:
        super().__init__(rec, mtype.head, mtype.lines)
        if reads.head_tags:
            self._read_head(reads)
        if reads.column_tags:
            # every line has each column exactly once, in this order: the texts come in rows
            texts = [el.text for el in rec.iter(*reads.column_tags)]
            width = len(reads.column_tags)
            cache = self._cache
            cache["n"] = len(texts) // width
            for j, key in enumerate(reads.column_keys):
                cache[key] = texts[j::width]

    def _read_head(self, reads: _Reads) -> None:
        found: dict[str, str | None] = {}
        rec = self.rec
        heads: Iterable[etree._Element] = (rec,)
        if reads.head_first:
            heads = (rec[0],)
        elif reads.head_tag:
            heads = rec.iterchildren(reads.head_tag)
        first: dict[str, etree._Element] = {}
        for head in heads:
            for el in head.iterchildren(*reads.head_tags):
                if len(el):
                    return  # child elements: not simple-typed after all; leave it all to XPath
                tag = el.tag
                if found.get(tag) is None:  # the first text in document order, as head_text
                    found[tag] = el.text
                if tag not in first:  # the first element in document order, as head_el
                    first[tag] = el
        cache = self._cache
        for key, tag in zip(reads.head_keys, reads.head_tags, strict=True):
            cache[key] = found.get(tag)
            cache["e" + key[1:]] = first.get(tag)


_NOT_ELEMENTS = (etree.Comment, etree.ProcessingInstruction, etree.Entity)


def _plain(root: etree._Element, containers: Sequence[str], namespace: str) -> bool:
    """No comment, PI or entity reference anywhere in the tree, and no element of ``namespace``
    inside a container whose content the schema skips (an xs:any, a ds:Signature).

    Only then does passing the overlay schema vouch for the rules it covers: a rule reads
    ``el.text``, which stops at a comment, while the schema reads all of an element's text.
    One walk in C; the containers' own subtrees are small.
    """
    inside = f"{{{namespace}}}*"
    for node in root.iter(*_NOT_ELEMENTS, *containers):
        if not isinstance(node.tag, str):
            return False
        if next(node.iterdescendants(inside), None) is not None:
            return False
    return True


def _fail(rule: Rule, el: etree._Element | None, detail: str, field: str | None = None,
          path: str | None = None) -> Finding:
    return Finding(
        rule.code, f"{rule.en}: {detail}" if detail else rule.en, severity=rule.severity,
        line=_line(el),
        path=path or (element_path(el) if el is not None else None),
        field=field or (local_name(el.tag) if el is not None else None),
        message_zh=rule.zh,
    )


def _line(el: etree._Element | None) -> int | None:
    line: Any = el.sourceline if el is not None else None
    return line if isinstance(line, int) else None


def _dec(text: str | None) -> Decimal | None:
    """An exact decimal, or None where the text is not one (the XSD reports that)."""
    if text is None:
        return None
    try:
        value = Decimal(text)  # surrounding whitespace is allowed by Decimal, as by xs:decimal
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _decimals(texts: Iterable[str | None]) -> list[Decimal] | None:
    """Every text as a Decimal, or None when one is absent or malformed.

    The quick all-lines-at-once checks below use it; whenever it (or the comparison after it)
    fails they leave the verdict to the per-line loop, which alone writes findings.
    """
    try:
        return list(map(Decimal, texts))  # type: ignore[arg-type]  # None raises TypeError
    except (DecimalException, TypeError, ValueError):
        return None


_COUNTING = tuple(str(i) for i in range(1, 1001))  # "1", "2", ...: gnum as the sequence rule wants it


def _codelist(rule: Rule, t: MessageType) -> tuple[list[str], FieldCheck]:
    values = frozenset(str(v) for v in rule.spec["values"])
    within = frozenset(t.q(p) for p in str(rule.spec.get("within", "")).split())

    def check(el: etree._Element, out: list[Finding]) -> None:
        if within:
            parent = el.getparent()
            if parent is None or parent.tag not in within:
                return
        if not el.text:
            return  # empty content: the presence rules (empty_key, empty_required) judge it
        v = el.text.strip()
        if v not in values:
            shown = ", ".join(sorted(values)) if len(values) <= 8 else f"{len(values)} codes"
            out.append(_fail(rule, el, f"got {v!r}, allowed {shown}"))

    return [t.q(f) for f in rule.spec["fields"]], check


def _format(rule: Rule, t: MessageType) -> tuple[list[str], FieldCheck]:
    fmt = FORMATS[rule.spec["format"]]

    def check(el: etree._Element, out: list[Finding]) -> None:
        v = (el.text or "").strip()
        if v and not fmt(v):
            out.append(_fail(rule, el, f"got {v!r}"))

    return [t.q(f) for f in rule.spec["fields"] if not f.startswith("@")], check


def _root_attr_checks(rule: Rule) -> list[tuple[str, Callable[[str], bool]]]:
    if rule.kind != "format":
        return []
    return [(f[1:], FORMATS[rule.spec["format"]]) for f in rule.spec["fields"] if f.startswith("@")]


def _sum(rule: Rule, t: MessageType) -> RecordCheck:
    target, plus, minus = rule.spec["target"], rule.spec.get("plus", []), rule.spec.get("minus", [])

    def check(view: RecordView, out: list[Finding]) -> None:
        want = _dec(view.head_text(target))
        if want is None:
            return
        total = Decimal(0)
        for name in plus:
            v = _dec(view.head_text(name))
            if v is None:
                return
            total += v
        for name in minus:
            v = _dec(view.head_text(name))
            if v is None:
                return
            total -= v
        if total != want:
            terms = " + ".join(f"{n} {view.head_text(n)}" for n in plus)
            terms += "".join(f" - {n} {view.head_text(n)}" for n in minus)
            out.append(_fail(rule, view.head_el(target), f"{target} is {want}, {terms} = {total}"))

    return check


def _product(rule: Rule, t: MessageType) -> RecordCheck:
    target, factors = rule.spec["target"], rule.spec["factors"]

    def all_match(wanted: list[str | None], columns: list[list[str | None]]) -> bool:
        """Every line's product equals its target, computed as the loop below does."""
        want = _decimals(wanted)
        if want is None:
            return False
        products: list[Decimal] | None = None
        try:
            for col in columns:
                values = _decimals(col)
                if values is None or len(values) != len(want):
                    return False
                if products is not None:
                    products = list(map(mul, products, values))
                elif max(map(len, cast(list[str], col)), default=0) <= getcontext().prec:
                    products = values  # what the loop's 1 x value is, unless rounding shortens it
                else:
                    return False
            return products == want
        except DecimalException:
            return False

    def check(view: RecordView, out: list[Finding]) -> None:
        wanted = view.line_texts(target)
        columns = [view.line_texts(f) for f in factors]
        if all_match(wanted, columns):
            return
        for i, text in enumerate(wanted):
            want = _dec(text)
            if want is None:
                continue
            prod = Decimal(1)
            for col in columns:
                v = _dec(col[i])
                if v is None:
                    break
                prod *= v
            else:
                if prod != want:
                    shown = " x ".join(f"{f} {col[i]}" for f, col in zip(factors, columns, strict=True))
                    out.append(_fail(rule, view.line_el(i, target), f"{target} is {want}, {shown} = {prod}"))

    return check


def _lines_sum(rule: Rule, t: MessageType) -> RecordCheck:
    target, field = rule.spec["target"], rule.spec["field"]

    def check(view: RecordView, out: list[Finding]) -> None:
        want = _dec(view.head_text(target))
        if want is None or not view.line_count():
            return
        texts = view.line_texts(field)
        quick = _decimals(texts)
        try:  # the loop's own sum, all at once: when it matches, the loop finds nothing either
            if quick is not None and sum(quick, Decimal(0)) == want:
                return
        except DecimalException:
            pass
        total = Decimal(0)
        for text in texts:
            v = _dec(text)
            if v is None:
                return
            total += v
        if total != want:
            detail = f"{target} is {want}, lines' {field} sum to {total}"
            out.append(_fail(rule, view.head_el(target), detail))

    return check


def _sequence(rule: Rule, t: MessageType) -> RecordCheck:
    field = rule.spec["field"]

    def check(view: RecordView, out: list[Finding]) -> None:
        texts = view.line_texts(field)
        if len(texts) <= len(_COUNTING) and tuple(texts) == _COUNTING[:len(texts)]:
            return  # "1", "2", ... exactly: nothing to report
        for i, text in enumerate(texts, 1):
            if text is None:
                continue
            if text.strip() != str(i):
                out.append(_fail(rule, view.line_el(i - 1, field),
                                 f"line {i} has {field} {text.strip()!r}, expected {i}"))
                return

    return check


def _required_when(rule: Rule, t: MessageType) -> RecordCheck:
    when, value = rule.spec["when_field"], str(rule.spec["when_value"])
    fields, line_fields = rule.spec.get("fields", []), rule.spec.get("line_fields", [])

    def check(view: RecordView, out: list[Finding]) -> None:
        if (view.head_text(when) or "").strip() != value:
            return
        for name in fields:
            if not (view.head_text(name) or "").strip():
                head = view.head()
                out.append(_fail(rule, head, f"{name} is missing", field=name,
                                 path=f"{element_path(head)}/{name}"))
        for name in line_fields:
            for i, text in enumerate(view.line_texts(name)):
                if not (text or "").strip():
                    line = view.lines[i]
                    out.append(_fail(rule, line, f"{name} is missing", field=name,
                                     path=f"{element_path(line)}/{name}"))

    return check


def _le(rule: Rule, t: MessageType) -> RecordCheck:
    field, limit = rule.spec["field"], rule.spec["limit"]

    def check(view: RecordView, out: list[Finding]) -> None:
        v, lim = _dec(view.head_text(field)), _dec(view.head_text(limit))
        if v is None or lim is None:
            return
        if not 1 <= v <= lim:
            out.append(_fail(rule, view.head_el(field), f"{field} {v}, {limit} {lim}"))

    return check


def _signature_when(rule: Rule, t: MessageType) -> RecordCheck:
    when, value = rule.spec["when_field"], str(rule.spec["when_value"])
    sig = f"{{{DS_NS}}}Signature"

    def check(view: RecordView, out: list[Finding]) -> None:
        if (view.head_text(when) or "").strip() != value:
            return
        root = view.rec.getparent()
        if any(f.code == rule.code for f in out):  # one finding per message, not per record
            return
        if root is not None and next(root.iterchildren(sig), None) is None:
            out.append(_fail(rule, root, "ds:Signature is missing", field="Signature",
                             path=f"{element_path(root)}/Signature"))

    return check


def _empty_key(rule: Rule, t: MessageType) -> RecordCheck:
    """The type's business keys (the catalogue's ``keys``) must be there and not empty: the
    gateway files the declaration, and routes customs' receipts back, by them."""
    required = xsd.required_children(t)
    keys = [(name, (t.head or t.record, name) in required) for name in t.keys]

    def check(view: RecordView, out: list[Finding]) -> None:
        for name, schema_requires in keys:
            el = view.head_el(name)
            if el is None and schema_requires:
                continue  # the schema reports it missing
            if el is None or not (el.text or "").strip():
                head = view.head()
                out.append(_fail(rule, el if el is not None else head,
                                 f"{name} is {'empty' if el is not None else 'missing'}", field=name,
                                 path=f"{element_path(head)}/{name}"))

    return check


# Leaves in the CEB namespace with no text but white space (empty content), in document order.
_EMPTY_LEAVES: Callable[[etree._Element], Any] = etree.XPath(
    "//c:*[not(*)][not(normalize-space())]", namespaces=_NS)


def _empty_required(rule: Rule, t: MessageType, among: tuple[str, ...] | None = None) -> MessageCheck:
    """A field the schema requires (minOccurs 1) that is present with empty content: the official
    schemas accept that in some fields (``xsd/src/empty.toml``), the rule says it is probably
    not what the sender meant.  Business keys are left to :func:`_empty_key`.  With ``among``
    (a plain tree that passed the overlay, whose patterns rule out blank leaves): only the
    elements of those Clark names are looked at."""
    flagged = _flagged_when_blank(t)

    def check(root: etree._Element, out: list[Finding]) -> None:
        empty: Iterable[etree._Element]
        if among is None:
            empty = _EMPTY_LEAVES(root)
        else:  # a plain tree: an element without children has its one text node
            empty = (el for el in root.iter(*among) if not len(el) and not (el.text or "").strip())
        for el in empty:
            parent = el.getparent()
            if parent is None or parent.tag == el.tag:
                continue
            if (local_name(parent.tag), local_name(el.tag)) not in flagged:
                continue
            out.append(_fail(rule, el, "the official schema takes it, customs' business checks may not"))

    return check


_COMPILERS: dict[str, Any] = {
    "codelist": _codelist, "format": _format, "sum": _sum, "product": _product,
    "lines_sum": _lines_sum, "sequence": _sequence, "required_when": _required_when,
    "le": _le, "signature_when": _signature_when, "empty_key": _empty_key, "empty_required": _empty_required,
}
_FIELD_KINDS = ("codelist", "format")
_MESSAGE_KINDS = ("empty_required",)


def _reads(rule: Rule, mtype: MessageType) -> tuple[list[str], list[str]]:
    """The head fields and the line fields a record rule reads (a hint for prefetching:
    a field left out is still read, one XPath call at a time)."""
    s = rule.spec
    if rule.kind == "empty_key":
        return list(mtype.keys), []
    if rule.kind == "sum":
        return [s["target"], *s.get("plus", []), *s.get("minus", [])], []
    if rule.kind == "product":
        return [], [s["target"], *s["factors"]]
    if rule.kind == "lines_sum":
        return [s["target"]], [s["field"]]
    if rule.kind == "sequence":
        return [], [s["field"]]
    if rule.kind == "required_when":
        return [s["when_field"], *s.get("fields", [])], list(s.get("line_fields", []))
    if rule.kind == "le":
        return [s["field"], s["limit"]], []
    if rule.kind == "signature_when":
        return [s["when_field"]], []
    return [], []


def _merge(checks: list[FieldCheck]) -> FieldCheck:
    if len(checks) == 1:
        return checks[0]

    def run_all(el: etree._Element, out: list[Finding]) -> None:
        for check in checks:
            check(el, out)

    return run_all


@dataclass(frozen=True)
class _Plan:
    """How :meth:`CompiledRules.run` goes over one tree."""

    tags: tuple[str, ...]                # elements some field check wants, for one iter()
    checks: dict[str, FieldCheck]        # by tag: the field checks of every rule, merged
    reads: _Reads | None                 # None: RecordView; else CheckedRecordView
    message_checks: tuple[MessageCheck, ...] = ()


def _field_plan(field_rules: list[tuple[str, list[str], FieldCheck]], reads: _Reads | None,
                message_checks: Iterable[MessageCheck] = ()) -> _Plan:
    by_tag: dict[str, list[FieldCheck]] = {}
    for _, tags, check in field_rules:  # rule order, so each element's findings keep their order
        for tag in tags:
            by_tag.setdefault(tag, []).append(check)
    return _Plan(tuple(by_tag), {t: _merge(c) for t, c in by_tag.items()}, reads, tuple(message_checks))


class CompiledRules:
    """The rules of one message type, ready to run."""

    def __init__(self, mtype: MessageType, rules: Iterable[Rule]) -> None:
        self.type = mtype
        self.field_rules: list[tuple[str, list[str], FieldCheck]] = []  # (code, tags, check)
        self.record_checks: list[RecordCheck] = []
        self.message_checks: list[tuple[Rule, MessageCheck]] = []
        self.root_attr_checks: list[tuple[Rule, str, Callable[[str], bool]]] = []
        head_names: list[str] = []
        line_names: list[str] = []
        for rule in rules:
            if mtype.code not in rule.types:
                continue
            if rule.kind in _FIELD_KINDS:
                tags, check = _COMPILERS[rule.kind](rule, mtype)
                self.field_rules.append((rule.code, tags, check))
                self.root_attr_checks += [(rule, a, f) for a, f in _root_attr_checks(rule)]
            elif rule.kind in _MESSAGE_KINDS:
                self.message_checks.append((rule, _COMPILERS[rule.kind](rule, mtype)))
            else:
                self.record_checks.append(_COMPILERS[rule.kind](rule, mtype))
                head, line = _reads(rule, mtype)
                head_names += head
                line_names += line
        self.head_names = tuple(dict.fromkeys(head_names))
        self.line_names = tuple(dict.fromkeys(line_names))
        self.record_tag = mtype.q(mtype.record) if mtype.record else None
        self.plan = _field_plan(self.field_rules, None, (c for _, c in self.message_checks))
        self._checked_plans: dict[SchemaFacts, _Plan] = {}

    def checked_plan(self, facts: SchemaFacts) -> _Plan:
        """The plan for a plain tree that passed the overlay: without the field rules the
        schema checked, and with the record fields prefetched."""
        plan = self._checked_plans.get(facts)
        if plan is None:
            t = self.type
            columns = [c for c in facts.columns if c in self.line_names]
            reads = _Reads(t.q(t.head) if t.head else None, facts.head_first and bool(t.head),
                           tuple("h" + n for n in self.head_names), tuple(map(t.q, self.head_names)),
                           tuple("l" + c for c in columns), tuple(map(t.q, columns)))
            rest = [r for r in self.field_rules if r[0] not in facts.covered]
            # a covered message check (the presence rule, the one kind) looks at its suspects only
            messages = [c if r.code not in facts.covered else _empty_required(r, t, facts.blank_suspects)
                        for r, c in self.message_checks
                        if r.code not in facts.covered or facts.blank_suspects]
            plan = self._checked_plans[facts] = _field_plan(rest, reads, messages)
        return plan

    def run(self, root: etree._Element, facts: SchemaFacts | None = None) -> list[Finding]:
        """Every finding of this type's rules on ``root`` (warnings included).

        ``facts``: ``root`` has just passed the type's overlay schema, which established them.
        """
        plan = self.plan
        if facts is not None and _plain(root, facts.containers, self.type.namespace):
            plan = self.checked_plan(facts)
        out: list[Finding] = []
        for rule, attr, ok in self.root_attr_checks:
            v = root.get(attr)
            if v is not None and not ok(v):
                out.append(_fail(rule, root, f"got {v!r}", field=attr, path=f"{element_path(root)}/@{attr}"))
        if plan.tags:
            checks = plan.checks
            for el in root.iter(*plan.tags):
                checks[el.tag](el, out)
        if self.record_checks and self.record_tag:
            t, reads = self.type, plan.reads
            for rec in root.iterchildren(self.record_tag):
                view = RecordView(rec, t.head, t.lines) if reads is None else CheckedRecordView(rec, t, reads)
                for rcheck in self.record_checks:
                    rcheck(view, out)
        for mcheck in plan.message_checks:
            mcheck(root, out)
        return out


@cache
def compiled(code: str) -> CompiledRules:
    """The compiled rules for a message type code (compiled on first use)."""
    return CompiledRules(load_catalog()[code], load_rules())


def check(root: etree._Element, mtype: MessageType, facts: SchemaFacts | None = None) -> list[Finding]:
    """Run the rules of ``mtype`` over a parsed message.

    ``facts``: what validating ``root`` against the type's overlay schema established
    (``overlay.validate``); the findings are the same with or without them.
    """
    if mtype.is_envelope:
        return []
    return compiled(mtype.code).run(root, facts)
