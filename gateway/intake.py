"""The stages every message takes before anything is stored: parse, identify, open, check.

Stage 1 (the hardened parser), 2 (the message type by its root), 3 (a DXP envelope checked
against its schema and opened), 4 (declaration or receipt) and 5 (XSD of the message's edition
and the rules).  No I/O, no keys, no store: ``cebgw validate`` needs nothing else, and imports
nothing else (``pipeline`` adds the stages that do, and re-exports these).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace

from lxml import etree

from .catalog import DS_NS, DXP_NS, Catalog, Identified, MessageType
from .catalog import load as load_catalog
from .envelope import Unwrapped, unwrap
from .errors import (
    DEFAULT_MAX_FINDINGS,
    EnvelopeError,
    Finding,
    IdentifyError,
    InputError,
    ValidationFailed,
    cap_findings,
)
from .validate import EDITIONS, Checked, Report, findings_of
from .xmlio import (
    DEFAULT_MAX_ATTRIBUTES,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_NAMESPACES,
    DEFAULT_MAX_NODES,
    Parsed,
    child,
    element_path,
    parse,
)

# Bodies of this size and more are checked on the server's executor, off its event loop.
DEFAULT_OFFLOAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """Size and depth bounds for untrusted bytes."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_nodes: int = DEFAULT_MAX_NODES
    max_attributes: int = DEFAULT_MAX_ATTRIBUTES
    max_namespaces: int = DEFAULT_MAX_NAMESPACES
    max_findings: int = DEFAULT_MAX_FINDINGS
    offload_bytes: int = DEFAULT_OFFLOAD_BYTES


@dataclass(frozen=True)
class Opened:
    """The business message, and the envelope it came in (if any): its header, and the
    envelope itself as identified."""

    ident: Identified
    envelope: Unwrapped | None = None
    envelope_ident: Identified | None = None

    @property
    def type(self) -> MessageType:
        return self.ident.type

    @property
    def cop_msg_id(self) -> str | None:
        return self.envelope.trans.cop_msg_id if self.envelope is not None else None


@dataclass(frozen=True)
class Validated:
    """Passed XSD and rules under ``edition``; ``warnings`` are kept for the answer."""

    opened: Opened
    warnings: tuple[Finding, ...]
    edition: str | None = None


def parse_body(data: bytes, limits: Limits, source: str = "request") -> Parsed:
    """Stage 1: the hardened parser. Raises ParseError."""
    return parse(data, source=source, max_bytes=limits.max_bytes, max_depth=limits.max_depth,
                 max_nodes=limits.max_nodes, max_attributes=limits.max_attributes,
                 max_namespaces=limits.max_namespaces)


def identify(parsed: Parsed, catalog: Catalog) -> Identified:
    """Stage 2: name the message type by its root. Raises IdentifyError."""
    return catalog.identify(parsed)


def open_envelope(ident: Identified, catalog: Catalog, limits: Limits) -> Opened:
    """Stage 3: a bare CEB message passes; a DxpMsg/DxpMsgSv is checked against its XSD and opened."""
    if not ident.type.is_envelope:
        return Opened(ident)
    if ident.type.code not in ("DxpMsg", "DxpMsgSv"):
        raise IdentifyError(f"{ident.type.code} does not carry a CEB message", field=ident.type.root)
    _raise_errors(findings_of(ident, schema_only=True, limit=limits.max_findings), limits.max_findings)
    inner = unwrap(ident.parsed, max_bytes=limits.max_bytes, max_depth=limits.max_depth,
                   max_nodes=limits.max_nodes, max_attributes=limits.max_attributes,
                   max_namespaces=limits.max_namespaces)
    inner_ident = catalog.identify(inner.inner)
    if inner_ident.type.is_envelope:
        raise EnvelopeError("an envelope inside an envelope", code="CEBGW-ENV-NESTED", field="Data")
    return Opened(inner_ident, inner, ident)


def require_kind(opened: Opened, kind: str) -> Opened:
    """Stage 4: only declarations may be submitted, only receipts posted by customs."""
    if opened.type.kind != kind:
        raise IdentifyError(f"{opened.type.root} is a {opened.type.kind}; this endpoint takes a {kind}",
                            field=opened.type.root)
    return opened


def validate(opened: Opened, editions: tuple[str, ...] = EDITIONS,
             max_findings: int = DEFAULT_MAX_FINDINGS) -> Validated:
    """Stage 5: XSD (of the edition the message follows, one of ``editions``) and rules;
    raises one ValidationFailed with the findings (the first ``max_findings``, and how many more)."""
    checked = findings_of(opened.ident, accept=editions, limit=max_findings)
    _raise_errors(checked, max_findings)
    return Validated(opened, tuple(checked.findings), checked.edition)


def without_signature(ident: Identified) -> Identified:
    """A signed receipt as its schema sees it: receipt schemas have no place for ``ds:Signature``."""
    if not signed(ident.root) or ident.type.signature != "none":
        return ident
    bare = copy.deepcopy(ident.root)
    for el in list(bare.iterchildren(f"{{{DS_NS}}}Signature")):
        bare.remove(el)
    return Identified(replace(ident.parsed, root=bare), ident.type)


def validate_receipt(opened: Opened, max_findings: int = DEFAULT_MAX_FINDINGS) -> Validated:
    """Stage 5 for receipts: receipt schemas have no place for ``ds:Signature``, yet customs may
    sign a bare receipt (enveloped, spec §10).  The signature covers the document without it,
    so that is what is checked against the XSD and rules; :func:`verify_customs` then checks
    the signature itself, its position included."""
    checked = findings_of(without_signature(opened.ident), limit=max_findings)
    _raise_errors(checked, max_findings)
    return Validated(opened, tuple(checked.findings), checked.edition)


def _raise_errors(checked: Checked, max_findings: int = DEFAULT_MAX_FINDINGS) -> None:
    found = checked.findings
    errors = [f for f in found if f.severity == "error"]
    if errors:
        first = errors[0]
        kept, omitted = cap_findings(found, max_findings)
        raise ValidationFailed(f"{len(errors)} error(s); first: {first.field or ''} {first.message}".strip(),
                               code=first.code, findings=kept, omitted=omitted + checked.omitted)


def check_message(ident: Identified, *, schema_only: bool = False,
                  editions: tuple[str, ...] = EDITIONS, limit: int | None = None) -> Checked:
    """The validate stage's findings without raising: a receipt as its schema sees it (no
    ``ds:Signature``), a declaration as it is."""
    if ident.type.kind == "receipt":
        ident = without_signature(ident)
    return findings_of(ident, schema_only=schema_only, accept=editions, limit=limit)


def _inside(findings: Sequence[Finding], data_el: etree._Element | None) -> list[Finding]:
    """Findings of the message inside an envelope, placed at the envelope's ``Data`` element."""
    prefix = element_path(data_el) if data_el is not None else "/DxpMsg/Data"
    line: object = data_el.sourceline if data_el is not None else None
    out = []
    for f in findings:
        where = f" (line {f.line} of the message in Data)" if f.line else ""
        out.append(Finding(f.code, f.message + where, f.severity, line if isinstance(line, int) else None,
                           prefix + (f.path or ""), f.field, f.message_zh))
    return out


def validate_bytes(data: bytes, *, source: str = "-", schema_only: bool = False, limits: Limits = Limits(),
                   catalog: Catalog | None = None, with_keys: bool = True,
                   editions: tuple[str, ...] = EDITIONS) -> Report:
    """Parse, identify, open and validate, as :func:`submit` and :func:`receive` do, but report
    every problem as a finding instead of raising (``cebgw validate``, the benchmarks): the first
    ``limits.max_findings`` of them, ``Report.omitted`` counting the rest.

    A DxpMsg/DxpMsgSv is checked against its schema and opened, and the message inside it is
    validated too (its findings carry paths under ``/DxpMsg/Data``).  ``with_keys`` adds each
    record's business keys to the report.
    """
    catalog = catalog or load_catalog()
    mtype: MessageType | None = None
    try:
        ident = identify(parse_body(data, limits, source), catalog)
        mtype = ident.type
        limit = limits.max_findings
        if mtype.code not in ("DxpMsg", "DxpMsgSv"):
            checked = check_message(ident, schema_only=schema_only, editions=editions, limit=limit)
            keys = tuple(mtype.business_keys(ident.root)) if with_keys else ()
            kept, omitted = cap_findings(checked.findings, limit)
            return Report(source, mtype.code, kept, None, keys, checked.edition, omitted + checked.omitted)
        opened = open_envelope(ident, catalog, limits)
        inner = opened.ident
        checked = check_message(inner, schema_only=schema_only, editions=editions, limit=limit)
        data_el = next(ident.root.iter(f"{{{DXP_NS}}}Data"), None)
        keys = tuple(inner.type.business_keys(inner.root)) if with_keys else ()
        kept, omitted = cap_findings(_inside(checked.findings, data_el), limit)
        return Report(source, mtype.code, kept, inner.type.code, keys, checked.edition,
                      omitted + checked.omitted)
    except InputError as exc:
        return Report(source, mtype.code if mtype else None, exc.findings, omitted=exc.omitted)


_SIGNATURE = f"{{{DS_NS}}}Signature"


def signed(root: etree._Element) -> bool:
    """``root`` carries an enveloped ``ds:Signature`` as its child."""
    return child(root, _SIGNATURE) is not None
