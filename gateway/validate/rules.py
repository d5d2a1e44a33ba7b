"""The rule engine: declarative rules from ``rules/*.toml`` compiled once per message type.

Rules check what the XSD cannot: code lists, formats, single-document arithmetic (as
exact decimals) and structure.  Each rule has a stable code, a severity and an English
and a Chinese message; every code is registered in the error table on load.

Compiled checks run in two passes over a message: field checks visit only the elements
whose names some rule cares about (``iter(*tags)``, one C-level pass); record checks
walk each business record's head and lines.  Paths and line numbers are computed only
when a check fails, so a valid message pays little beyond the walk.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any

from lxml import etree

from ..catalog import CEB_NS, DS_NS, Catalog, MessageType
from ..catalog import load as load_catalog
from ..errors import ConfigError, Finding, Severity, register
from ..xmlio import element_path, local_name


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


# ---------------------------------------------------------------- compiled checks

FieldCheck = Callable[[etree._Element, list[Finding]], None]
RecordCheck = Callable[["RecordView", list[Finding]], None]

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


def _codelist(rule: Rule, t: MessageType) -> tuple[list[str], FieldCheck]:
    values = frozenset(str(v) for v in rule.spec["values"])
    within = frozenset(t.q(p) for p in str(rule.spec.get("within", "")).split())

    def check(el: etree._Element, out: list[Finding]) -> None:
        if within:
            parent = el.getparent()
            if parent is None or parent.tag not in within:
                return
        v = (el.text or "").strip()
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

    def check(view: RecordView, out: list[Finding]) -> None:
        wanted = view.line_texts(target)
        columns = [view.line_texts(f) for f in factors]
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
        total = Decimal(0)
        for text in view.line_texts(field):
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
        for i, text in enumerate(view.line_texts(field), 1):
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


_COMPILERS: dict[str, Any] = {
    "codelist": _codelist, "format": _format, "sum": _sum, "product": _product,
    "lines_sum": _lines_sum, "sequence": _sequence, "required_when": _required_when,
    "le": _le, "signature_when": _signature_when,
}
_FIELD_KINDS = ("codelist", "format")


def _merge(checks: list[FieldCheck]) -> FieldCheck:
    if len(checks) == 1:
        return checks[0]

    def run_all(el: etree._Element, out: list[Finding]) -> None:
        for check in checks:
            check(el, out)

    return run_all


class CompiledRules:
    """The rules of one message type, ready to run."""

    def __init__(self, mtype: MessageType, rules: Iterable[Rule]) -> None:
        self.type = mtype
        self.field_checks: dict[str, list[FieldCheck]] = {}
        self.record_checks: list[RecordCheck] = []
        self.root_attr_checks: list[tuple[Rule, str, Callable[[str], bool]]] = []
        for rule in rules:
            if mtype.code not in rule.types:
                continue
            if rule.kind in _FIELD_KINDS:
                tags, check = _COMPILERS[rule.kind](rule, mtype)
                for tag in tags:
                    self.field_checks.setdefault(tag, []).append(check)
                self.root_attr_checks += [(rule, a, f) for a, f in _root_attr_checks(rule)]
            else:
                self.record_checks.append(_COMPILERS[rule.kind](rule, mtype))
        self.tags = tuple(self.field_checks)
        self.merged_checks: dict[str, FieldCheck] = {t: _merge(c) for t, c in self.field_checks.items()}
        self.record_tag = mtype.q(mtype.record) if mtype.record else None

    def run(self, root: etree._Element) -> list[Finding]:
        """Every finding of this type's rules on ``root`` (warnings included)."""
        out: list[Finding] = []
        for rule, attr, ok in self.root_attr_checks:
            v = root.get(attr)
            if v is not None and not ok(v):
                out.append(_fail(rule, root, f"got {v!r}", field=attr, path=f"{element_path(root)}/@{attr}"))
        if self.tags:
            checks = self.merged_checks
            for el in root.iter(*self.tags):
                checks[el.tag](el, out)
        if self.record_checks and self.record_tag:
            t = self.type
            for rec in root.iterchildren(self.record_tag):
                view = RecordView(rec, t.head, t.lines)
                for rcheck in self.record_checks:
                    rcheck(view, out)
        return out


@cache
def compiled(code: str) -> CompiledRules:
    """The compiled rules for a message type code (compiled on first use)."""
    return CompiledRules(load_catalog()[code], load_rules())


def check(root: etree._Element, mtype: MessageType) -> list[Finding]:
    """Run the rules of ``mtype`` over a parsed message."""
    if mtype.is_envelope:
        return []
    return compiled(mtype.code).run(root)
