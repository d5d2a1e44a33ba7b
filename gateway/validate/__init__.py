"""Validation: the XSD, then the rules; one report with every finding.

:func:`validate_bytes` is what the CLI, the service and the benchmarks call: bytes in,
a :class:`Report` out, never an exception for bad input.  DXP envelopes are validated
and then opened, and the business message inside is validated too (its findings carry
paths under ``/DxpMsg/Data``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import DXP_NS, Catalog, Identified, MessageType
from ..catalog import load as load_catalog
from ..envelope import unwrap
from ..errors import (
    DEFAULT_MAX_FINDINGS,
    EnvelopeError,
    Finding,
    InputError,
    ValidationFailed,
    cap_findings,
)
from ..xmlio import DEFAULT_MAX_BYTES, element_path, parse
from . import overlay, xsd
from . import rules as rules_mod

MAX_ENVELOPE_NESTING = 2


class Findings(list[Finding]):
    """Findings in order; ``omitted`` counts those left out past a limit (never built)."""

    omitted: int = 0


@dataclass(frozen=True)
class Report:
    """What validation found in one message (at most the limit it was given, and ``omitted``:
    how many more there were)."""

    source: str
    message_type: str | None
    findings: tuple[Finding, ...] = ()
    inner_type: str | None = None
    business_keys: tuple[dict[str, str], ...] = field(default=())
    omitted: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def valid(self) -> bool:
        """Warnings do not make a message invalid."""
        return not self.errors

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.source,
            "message_type": self.message_type,
            "inner_message_type": self.inner_type,
            "valid": self.valid,
            "errors": [f.as_dict() for f in self.findings],
            "errors_omitted": self.omitted,
        }


def findings_of(ident: Identified, *, schema_only: bool = False,
                schema_dir: Path | None = None, limit: int | None = None) -> Findings:
    """XSD findings, then (unless ``schema_only``) rule findings, for an identified message.

    A message that passes the overlay schema (the XSD with the field rules folded in) has no
    XSD findings and skips the rules the overlay checked; any other takes the plain schema
    and every rule.  Same findings either way (see ``overlay.py``).  With ``limit``, XSD
    findings past it are only counted (``omitted``), not built: each costs a search of the tree.
    """
    out = Findings()
    if not schema_only:
        facts = overlay.validate(ident.root, ident.type, schema_dir)
        if facts is not None:
            out += rules_mod.check(ident.root, ident.type, facts)
            return out
    found, out.omitted = xsd.validate_capped(ident.root, ident.type, schema_dir, limit)
    out += found
    if not schema_only:
        out += rules_mod.check(ident.root, ident.type)
    return out


def check(ident: Identified, *, schema_only: bool = False,
          max_findings: int = DEFAULT_MAX_FINDINGS) -> Identified:
    """Pipeline stage: raise one :class:`ValidationFailed` carrying the errors (the first
    ``max_findings`` findings, and how many more), else pass through."""
    found = findings_of(ident, schema_only=schema_only, limit=max_findings)
    errors = tuple(f for f in found if f.severity == "error")
    if errors:
        first = errors[0]
        kept, omitted = cap_findings(found, max_findings)
        raise ValidationFailed(f"{len(errors)} error(s); first: {first.field or ''} {first.message}".strip(),
                               code=first.code, findings=kept, omitted=omitted + found.omitted)
    return ident


def _inside(findings: list[Finding], prefix: str, data_line: int | None) -> list[Finding]:
    """Findings of the message inside an envelope, placed at the envelope's ``Data`` element."""
    out = []
    for f in findings:
        where = f" (line {f.line} of the message in Data)" if f.line else ""
        out.append(Finding(f.code, f.message + where, f.severity, data_line, prefix + (f.path or ""),
                           f.field, f.message_zh))
    return out


def validate_bytes(data: bytes, *, source: str = "-", schema_only: bool = False,
                   max_bytes: int = DEFAULT_MAX_BYTES, catalog: Catalog | None = None,
                   with_keys: bool = True, max_findings: int = DEFAULT_MAX_FINDINGS) -> Report:
    """Parse, identify and validate; every problem becomes a finding in the report (the first
    ``max_findings`` of them; ``Report.omitted`` counts the rest).

    ``with_keys`` adds each record's business keys to the report (the CLI does without).
    """
    catalog = catalog or load_catalog()
    mtype: MessageType | None = None
    try:
        ident = catalog.identify(parse(data, source=source, max_bytes=max_bytes))
        mtype = ident.type
        found = findings_of(ident, schema_only=schema_only, limit=max_findings)
        inner_type: str | None = None
        keys: tuple[dict[str, str], ...] = tuple(mtype.business_keys(ident.root)) if with_keys else ()
        depth = 0
        while ident.type.is_envelope and ident.type.code in ("DxpMsg", "DxpMsgSv") and not found:
            depth += 1
            if depth > MAX_ENVELOPE_NESTING:
                raise EnvelopeError(f"{source}: envelope nested too deeply", code="CEBGW-ENV-NESTED")
            inner = unwrap(ident.parsed, max_bytes=max_bytes)
            data_el = next(ident.root.iter(f"{{{DXP_NS}}}Data"), None)
            prefix = element_path(data_el) if data_el is not None else "/DxpMsg/Data"
            data_line = data_el.sourceline if data_el is not None else None
            ident = catalog.identify(inner.inner)
            inner_type = ident.type.code
            keys = tuple(ident.type.business_keys(ident.root)) if with_keys else ()
            inner_found = findings_of(ident, schema_only=schema_only, limit=max_findings)
            found += _inside(inner_found, prefix, data_line if isinstance(data_line, int) else None)
            found.omitted += inner_found.omitted
        kept, omitted = cap_findings(found, max_findings)
        return Report(source, mtype.code, kept, inner_type, keys, omitted + found.omitted)
    except InputError as exc:
        return Report(source, mtype.code if mtype else None, exc.findings, omitted=exc.omitted)


__all__ = ["Findings", "Report", "check", "findings_of", "validate_bytes"]
