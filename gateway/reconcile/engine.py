"""The comparison engine: the rules of ``rules.toml`` compiled once, run over a parcel.

Each rule compiles to a small function of the parcel; :func:`compare` runs those whose
documents are all present and returns every finding.  Nothing here reads XML or a store:
the documents come in as fields (``model.py``), a buyer's earlier spending through the
:class:`BuyerHistory` protocol, so the gateway's pre-flight stage, the customs sandbox and the
benchmark call the same code.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from operator import itemgetter
from typing import Any, Protocol

from ..errors import ConfigError, Severity, register
from ..errors import Finding as ErrorFinding
from .model import PARCEL_TYPES, Document, Parcel, ParcelKey, slot_of

DEFAULT_SINGLE_LIMIT = Decimal("5000")
DEFAULT_ANNUAL_LIMIT = Decimal("26000")


@dataclass(frozen=True)
class Limits:
    """The personal limits (CNY): per transaction and per buyer per calendar year."""

    single: Decimal = DEFAULT_SINGLE_LIMIT
    annual: Decimal = DEFAULT_ANNUAL_LIMIT


class BuyerHistory(Protocol):
    """What a buyer spent before: the engine asks, the caller keeps the totals."""

    def spent(self, buyer_id: str, year: int, parcel: ParcelKey) -> Decimal:
        """The total value of ``buyer_id``'s parcels of ``year`` other than ``parcel``."""
        ...


class MemoryHistory:
    """A :class:`BuyerHistory` in a dict (the sandbox, tests, benchmarks): :meth:`record` sets a
    parcel's value (again: replaces it), :meth:`spent` sums the others."""

    def __init__(self) -> None:
        self._by_buyer: dict[tuple[str, int], dict[ParcelKey, Decimal]] = {}

    def record(self, buyer_id: str, year: int, parcel: ParcelKey, amount: Decimal) -> None:
        self._by_buyer.setdefault((buyer_id, year), {})[parcel] = amount

    def spent(self, buyer_id: str, year: int, parcel: ParcelKey) -> Decimal:
        parcels = self._by_buyer.get((buyer_id, year), {})
        return sum((v for k, v in parcels.items() if k != parcel), Decimal(0))


@dataclass(frozen=True)
class Finding:
    """One inconsistency in a parcel.

    ``code`` is the stable rule code (``CEBGW-RECON-…``, in the error table), ``document`` and
    ``field`` name where it is (``other_document``/``other_field``: what it was compared with),
    ``line`` the gnum of a list line, ``values`` the values compared.  ``en``/``zh`` are the
    rule's text, ``customs_code`` the number of the customs-style text, ``eport_code`` the
    negative e-port code customs gives for the fault (or ``None``).
    """

    code: str
    severity: Severity
    document: str
    field: str
    en: str
    zh: str
    customs_code: str
    other_document: str | None = None
    other_field: str | None = None
    line: str | None = None
    values: tuple[str, ...] = ()
    eport_code: str | None = None

    @property
    def where(self) -> str:
        """``CEB621 buyerTelephone`` / ``CEB621 line 2 qty``."""
        line = f" line {self.line}" if self.line is not None else ""
        return f"{self.document}{line} {self.field}"

    @property
    def message(self) -> str:
        """English: the rule, where, and the values."""
        other = f" vs {self.other_document} {self.other_field}" if self.other_document else ""
        vals = f" ({' / '.join(repr(v) for v in self.values)})" if self.values else ""
        return f"{self.en}: {self.where}{other}{vals}"

    @property
    def message_zh(self) -> str:
        return f"{self.zh}（{self.where}）"

    def customs_text(self) -> str:
        """The text customs puts in ``returnInfo``: ``[Code:13035;Desc:支付企业不一致(CEB311 payCode)]``."""
        return f"[Code:{self.customs_code};Desc:{self.zh}({self.where})]"

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code, "severity": self.severity, "document": self.document, "field": self.field,
            "line": self.line, "other_document": self.other_document, "other_field": self.other_field,
            "values": list(self.values), "message": self.message, "message_zh": self.message_zh,
            "customs_code": self.customs_code, "customs_text": self.customs_text(),
            "eport_code": self.eport_code,
        }

    def as_error_finding(self) -> ErrorFinding:
        """The same finding as the validate stage's :class:`gateway.errors.Finding`."""
        return ErrorFinding(self.code, self.message, self.severity, None, None, self.field, self.message_zh)


@dataclass(frozen=True)
class Context:
    """One comparison's limits and history, and what its rules read once and share (``memo``:
    the limit rules' reading of the inventory list)."""

    limits: Limits
    history: BuyerHistory | None
    memo: dict[object, Spending | None] = field(default_factory=dict)


Check = Callable[[Parcel, Context], list[Finding]]


@dataclass(frozen=True)
class Rule:
    """One compiled rule: ``needs`` the documents it reads, ``check`` what it finds."""

    code: str
    kind: str
    severity: Severity
    needs: frozenset[str]
    check: Check


# ---------------------------------------------------------------- values


def _dec(text: str, empty_as: str | None = None) -> Decimal | None:
    if not text and empty_as is not None:
        text = empty_as
    try:
        return Decimal(text)
    except (InvalidOperation, ValueError):
        return None


def _same(a: str, b: str, decimal: bool, empty_as: str | None) -> bool:
    if a == b:
        return True
    if not decimal:
        return False
    da, db = _dec(a, empty_as), _dec(b, empty_as)
    return da is not None and da == db


def _skip(a: str, b: str, skip_empty: str | None) -> bool:
    return ((skip_empty in ("left", "either") and not a) or (skip_empty in ("right", "either") and not b))


# ---------------------------------------------------------------- compilers


@dataclass(frozen=True)
class _Text:
    code: str
    severity: Severity
    en: str
    zh: str
    customs: str
    eport: str | None

    def finding(self, document: str, field: str, *, other: tuple[str, str] | None = None,
                line: str | None = None, values: tuple[str, ...] = (), customs: str | None = None) -> Finding:
        return Finding(self.code, self.severity, document, field, self.en, self.zh, customs or self.customs,
                       other[0] if other else None, other[1] if other else None, line, values, self.eport)


def _equal(raw: Mapping[str, Any], t: _Text) -> tuple[tuple[str, ...], Check]:
    left, right = str(raw["left"]), str(raw["right"])
    pairs = [(str(a), str(b)) for a, b in raw["fields"]]
    decimal = raw.get("compare", "text") == "decimal"
    skip_empty, empty_as = raw.get("skip_empty"), raw.get("empty_as")
    per_field: dict[str, str] = {str(k): str(v) for k, v in raw.get("field_customs", {}).items()}
    lslot, rslot = slot_of(left), slot_of(right)
    # The usual case, every field equal as text, is one C-level comparison of two tuples.
    lget, rget = itemgetter(*(a for a, _ in pairs)), itemgetter(*(b for _, b in pairs))

    def check(p: Parcel, ctx: Context) -> list[Finding]:
        lh, rh = getattr(p, lslot).head, getattr(p, rslot).head
        try:
            if lget(lh) == rget(rh):
                return []
        except KeyError:
            pass
        out: list[Finding] = []
        for a, b in pairs:
            va, vb = lh.get(a, ""), rh.get(b, "")
            if _skip(va, vb, skip_empty) or _same(va, vb, decimal, empty_as):
                continue
            out.append(t.finding(left, a, other=(right, b), values=(va, vb), customs=per_field.get(a)))
        return out
    return (left, right), check


def _sum(raw: Mapping[str, Any], t: _Text) -> tuple[tuple[str, ...], Check]:
    doc, target = str(raw["document"]), str(raw["target"])
    plus, minus = [str(f) for f in raw.get("plus", [])], [str(f) for f in raw.get("minus", [])]

    def check(p: Parcel, ctx: Context) -> list[Finding]:
        d = p.document(doc)
        assert d is not None
        h = d.head
        want = _dec(h.get(target, ""))
        total = Decimal(0)
        for name in plus:
            v = _dec(h.get(name, ""), "0")
            if v is None:
                return [t.finding(doc, name, values=(h.get(name, ""),))]
            total += v
        for name in minus:
            v = _dec(h.get(name, ""), "0")
            if v is None:
                return [t.finding(doc, name, values=(h.get(name, ""),))]
            total -= v
        if want is not None and want == total:
            return []
        return [t.finding(doc, target, values=(h.get(target, ""), str(total)))]
    return (doc,), check


def _product(raw: Mapping[str, Any], t: _Text) -> list[tuple[tuple[str, ...], Check]]:
    target, factors = str(raw["target"]), [str(f) for f in raw["factors"]]

    def slow(doc: str, ln: Mapping[str, str]) -> Finding | None:
        want, got = _dec(ln.get(target, "")), Decimal(1)
        for f in factors:
            v = _dec(ln.get(f, ""))
            if v is None:
                return t.finding(doc, target, line=ln.get("gnum", "?"), values=(ln.get(target, ""), "?"))
            got *= v
        if want is not None and want == got:
            return None
        return t.finding(doc, target, line=ln.get("gnum", "?"), values=(ln.get(target, ""), str(got)))

    def make(doc: str) -> Check:
        slot = slot_of(doc)
        a, b = (factors + [""])[:2] if len(factors) == 2 else ("", "")

        def check(p: Parcel, ctx: Context) -> list[Finding]:
            d: Document = getattr(p, slot)
            out: list[Finding] = []
            for ln in d.lines:
                if a:  # the usual two factors, without the general loop
                    try:
                        if Decimal(ln[target]) == Decimal(ln[a]) * Decimal(ln[b]):
                            continue
                    except (KeyError, InvalidOperation):
                        pass
                found = slow(doc, ln)
                if found is not None:
                    out.append(found)
            return out
        return check
    return [((str(doc),), make(str(doc))) for doc in raw["documents"]]


def _constant(raw: Mapping[str, Any], t: _Text) -> list[tuple[tuple[str, ...], Check]]:
    field, value = str(raw["field"]), str(raw["value"])

    def make(place: str) -> tuple[tuple[str, ...], Check]:
        doc, _, part = place.partition("/")

        slot = slot_of(doc)

        def check(p: Parcel, ctx: Context) -> list[Finding]:
            d: Document = getattr(p, slot)
            if part == "lines":
                return [t.finding(doc, field, line=ln.get("gnum", "?"), values=(ln.get(field, ""), value))
                        for ln in d.lines if ln.get(field, "") != value]
            got = d.head.get(field, "")
            return [] if got == value else [t.finding(doc, field, values=(got, value))]
        return (doc,), check
    return [make(str(place)) for place in raw["places"]]


def _lines(raw: Mapping[str, Any], t: _Text) -> tuple[tuple[str, ...], Check]:
    left, right, key = str(raw["left"]), str(raw["right"]), str(raw["key"])
    pairs = [(str(a), str(b)) for a, b in raw.get("fields", [])]
    decimal = frozenset(str(f) for f in raw.get("decimal", []))
    skip_empty = raw.get("skip_empty")

    lslot, rslot = slot_of(left), slot_of(right)
    lget, rget = itemgetter(key, *(a for a, _ in pairs)), itemgetter(key, *(b for _, b in pairs))

    def check(p: Parcel, ctx: Context) -> list[Finding]:
        ld, rd = getattr(p, lslot), getattr(p, rslot)
        try:  # the usual case: the same lines in the same order, every field equal as text
            if len(ld.lines) == len(rd.lines) and all(
                    lget(a) == rget(b) for a, b in zip(ld.lines, rd.lines, strict=True)):
                return []
        except KeyError:
            pass
        theirs = {ln.get(key, ""): ln for ln in rd.lines}
        out: list[Finding] = []
        seen: set[str] = set()
        for ln in ld.lines:
            k = ln.get(key, "")
            seen.add(k)
            other = theirs.get(k)
            if other is None:
                out.append(t.finding(left, key, other=(right, key), line=k, values=(k, "")))
                continue
            for a, b in pairs:
                va, vb = ln.get(a, ""), other.get(b, "")
                if _skip(va, vb, skip_empty) or _same(va, vb, a in decimal, None):
                    continue
                out.append(t.finding(left, a, other=(right, b), line=k, values=(va, vb)))
        for k in theirs:
            if k not in seen:
                out.append(t.finding(left, key, other=(right, key), line=k, values=("", k)))
        return out
    return (left, right), check


def _member(raw: Mapping[str, Any], t: _Text) -> tuple[tuple[str, ...], Check]:
    doc, field, among = str(raw["document"]), str(raw["field"]), [str(f) for f in raw["among"]]

    def check(p: Parcel, ctx: Context) -> list[Finding]:
        d = p.document(doc)
        assert d is not None
        v = d.head.get(field, "")
        if v and any(d.head.get(f, "") == v for f in among):
            return []
        return [t.finding(doc, field, values=(v,))]
    return (doc,), check


@dataclass(frozen=True)
class Spending:
    """What a parcel counts against its buyer's limits: ``amount`` in ``year``."""

    buyer_id: str
    year: int
    amount: Decimal


@dataclass(frozen=True)
class _Reading:
    """How a limit rule reads a document's value, buyer and year."""

    lines_field: str
    head_fields: tuple[str, ...]
    buyer: str
    year_from: str

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> _Reading:
        return cls(str(raw["amount_lines"]), tuple(str(f) for f in raw.get("amount_head", [])),
                   str(raw["buyer"]), str(raw["year_from"]))

    def spending(self, d: Document) -> Spending | None:
        total = Decimal(0)
        try:
            for ln in d.lines:
                total += Decimal(ln.get(self.lines_field, ""))
            for f in self.head_fields:
                total += Decimal(d.head.get(f, "") or "0")
        except InvalidOperation:
            return None
        year_text = d.head.get(self.year_from, "")[:4]
        if not year_text.isdigit():
            return None
        return Spending(d.head.get(self.buyer, ""), int(year_text), total)


def _limit(raw: Mapping[str, Any], t: _Text) -> tuple[tuple[str, ...], Check]:
    doc, which = str(raw["document"]), str(raw["limit"])
    if which not in ("single", "annual"):
        raise ConfigError(f"reconcile rules: {t.code}: limit must be single or annual")
    reading, slot = _Reading.of(raw), slot_of(doc)

    def check(p: Parcel, ctx: Context) -> list[Finding]:
        if reading in ctx.memo:  # the other limit rule read it already
            s = ctx.memo[reading]
        else:
            s = ctx.memo[reading] = reading.spending(getattr(p, slot))
        if s is None:
            return []
        if which == "single":
            if s.amount > ctx.limits.single:
                return [t.finding(doc, reading.lines_field, values=(str(s.amount), str(ctx.limits.single)))]
            return []
        before = ctx.history.spent(s.buyer_id, s.year, p.key) if ctx.history is not None else Decimal(0)
        if before + s.amount > ctx.limits.annual:
            return [t.finding(doc, reading.buyer,
                              values=(s.buyer_id, str(before + s.amount), str(ctx.limits.annual)))]
        return []
    return (doc,), check


def _many(f: Callable[[Mapping[str, Any], _Text], tuple[tuple[str, ...], Check]]
          ) -> Callable[[Mapping[str, Any], _Text], list[tuple[tuple[str, ...], Check]]]:
    return lambda raw, t: [f(raw, t)]


_COMPILERS: dict[str, Callable[[Mapping[str, Any], _Text], list[tuple[tuple[str, ...], Check]]]] = {
    "equal": _many(_equal), "sum": _many(_sum), "product": _product, "constant": _constant,
    "lines": _many(_lines), "member": _many(_member), "limit": _many(_limit),
}


# ---------------------------------------------------------------- loading and running


def _compile(raw: Mapping[str, Any], where: str) -> list[Rule]:
    try:
        code, kind, sev = str(raw["code"]), str(raw["kind"]), raw["severity"]
        en, zh, customs = str(raw["en"]), str(raw["zh"]), str(raw["customs"])
    except KeyError as exc:
        raise ConfigError(f"{where}: missing {exc.args[0]}") from None
    if kind not in _COMPILERS:
        raise ConfigError(f"{where}: unknown kind {kind!r}")
    if sev not in ("error", "warning"):
        raise ConfigError(f"{where}: severity must be error or warning")
    eport = str(raw["eport"]) if "eport" in raw else None
    t = _Text(code, sev, en, zh, customs, eport)
    try:
        compiled = _COMPILERS[kind](raw, t)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {code}: {exc}") from None
    rules = []
    for needs, check in compiled:
        unknown = [n for n in needs if n not in PARCEL_TYPES]
        if unknown:
            raise ConfigError(f"{where}: {code}: {unknown[0]} is not a parcel document")
        rules.append(Rule(code, kind, sev, frozenset(needs), check))
    register(code, 422, 1, eport or "-2999", en, zh)
    return rules


def load_rules(text: str | None = None, source: str = "reconcile/rules.toml") -> tuple[Rule, ...]:
    """The rules of ``text`` (TOML), or of the shipped ``rules.toml``; codes registered in the
    error table. Raises ConfigError for a malformed rule."""
    if text is None:
        return default_rules()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("rule", [])):
        where = f"{source} rule #{i + 1}"
        if raw.get("code") in seen:
            raise ConfigError(f"{where}: code {raw.get('code')} used twice")
        seen.add(str(raw.get("code")))
        rules.extend(_compile(raw, where))
    return tuple(rules)


@cache
def default_rules() -> tuple[Rule, ...]:
    """The shipped rules, compiled once per process."""
    text = resources.files(__package__).joinpath("rules.toml").read_text(encoding="utf-8")
    return load_rules(text)


def rule_codes(rules: Sequence[Rule] | None = None) -> tuple[str, ...]:
    """Every rule code, once each, in file order."""
    return tuple(dict.fromkeys(r.code for r in (rules if rules is not None else default_rules())))


def compare(parcel: Parcel, limits: Limits | None = None, history: BuyerHistory | None = None, *,
            rules: Sequence[Rule] | None = None) -> list[Finding]:
    """Every finding of ``rules`` (default: the shipped ones) over ``parcel``.

    A rule runs only when the documents it reads are all present, so a partial parcel is
    compared as far as it goes (:func:`missing` says what is still absent).  ``limits``
    defaults to :class:`Limits`; without ``history`` the annual limit counts this parcel alone.
    Findings come in rule order; errors and warnings both (see ``Finding.severity``).
    """
    ctx = Context(limits or Limits(), history)
    out: list[Finding] = []
    for check in _plan(rules if rules is not None else default_rules(), parcel):
        found = check(parcel, ctx)
        if found:
            out.extend(found)
    return out


# The checks that apply to each set of documents present, per rule set (kept with the rule set
# it was made for, so a rule set made and dropped by a caller cannot be mistaken for another).
_PLANS: dict[int, tuple[Sequence[Rule], dict[tuple[bool, ...], tuple[Check, ...]]]] = {}


def _plan(rules: Sequence[Rule], parcel: Parcel) -> tuple[Check, ...]:
    present = (parcel.order is not None, parcel.payment is not None, parcel.waybill is not None,
               parcel.inventory is not None)
    entry = _PLANS.get(id(rules))
    if entry is None or entry[0] is not rules:
        if len(_PLANS) >= 16:  # callers making many rule sets: keep the cache small
            _PLANS.clear()
        entry = _PLANS[id(rules)] = (rules, {})
    plan = entry[1].get(present)
    if plan is None:
        have = frozenset(code for code, there in zip(PARCEL_TYPES, present, strict=True) if there)
        plan = entry[1][present] = tuple(r.check for r in rules if r.needs <= have)
    return plan


def spending(parcel: Parcel) -> Spending | None:
    """What ``parcel`` counts against its buyer's annual limit (the annual-limit rule's reading
    of the inventory list), or ``None`` without an inventory list or a readable value."""
    d = parcel.inventory
    if d is None:
        return None
    raw = _annual_rule_raw()
    return _Reading.of(raw).spending(d) if raw is not None else None


@cache
def _annual_rule_raw() -> Mapping[str, Any] | None:
    text = resources.files(__package__).joinpath("rules.toml").read_text(encoding="utf-8")
    for raw in tomllib.loads(text).get("rule", []):
        if raw.get("kind") == "limit" and raw.get("limit") == "annual":
            return dict(raw)
    return None
