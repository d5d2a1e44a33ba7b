"""Validation: the XSD of the message's edition, then the rules; every finding of one message.

:func:`findings_of` is the validate stage's work (``pipeline.validate`` raises on its errors,
``pipeline.validate_bytes`` reports them).  The standard has two editions in use, 2018 and
202205, both with ``version="1.0"``; a message is checked against the edition it follows,
decided by which schema it satisfies (see :func:`detect`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import CURRENT_EDITION, EDITIONS, Identified
from ..errors import Finding
from . import overlay, xsd
from . import rules as rules_mod


@dataclass(frozen=True)
class Report:
    """What validation found in one message (``edition``: the one it was checked against)."""

    source: str
    message_type: str | None
    findings: tuple[Finding, ...] = ()
    inner_type: str | None = None
    business_keys: tuple[dict[str, str], ...] = field(default=())
    edition: str | None = None
    omitted: int = 0  # findings past the limit it was given, counted but not listed

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
            "edition": self.edition,
            "valid": self.valid,
            "errors": [f.as_dict() for f in self.findings],
            "errors_omitted": self.omitted,
        }


@dataclass(frozen=True)
class Checked:
    """The edition a message was checked against (None for DXP envelopes) and what was found."""

    edition: str | None
    findings: list[Finding]
    omitted: int = 0  # XSD findings past the limit findings_of was given: counted, not built

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


def detect(ident: Identified, schema_dir: Path | None = None,
           limit: int | None = None) -> tuple[str | None, list[Finding], int]:
    """The edition ``ident`` follows, and its XSD findings under that edition.

    The editions of its type (the catalogue's list) are tried newest first; the first whose
    schema the message satisfies is its edition.  When none does, it is the one with the
    fewest schema findings (the newest on a tie), so the findings describe the edition the
    message comes closest to.  Envelopes have no edition.  With ``limit``, findings past it are
    only counted (the third value), not built.
    """
    t = ident.type
    if t.is_envelope:
        return (None, *xsd.validate_capped(ident.root, t, schema_dir, limit=limit))
    best: tuple[str, list[Finding], int] | None = None
    for edition in editions_of(t.editions):
        found, omitted = xsd.validate_capped(ident.root, t, schema_dir, edition=edition, limit=limit)
        if not found:
            return edition, found, omitted
        if best is None or len(found) + omitted < len(best[1]) + best[2]:
            best = (edition, found, omitted)
    assert best is not None, f"{t.code} has no edition"
    return best


def editions_of(names: tuple[str, ...]) -> list[str]:
    """A type's editions, newest first (the catalogue may list them in any order)."""
    known = [e for e in EDITIONS if e in names]
    return known or [CURRENT_EDITION]


def findings_of(ident: Identified, *, schema_only: bool = False, accept: tuple[str, ...] = EDITIONS,
                schema_dir: Path | None = None, limit: int | None = None) -> Checked:
    """XSD findings under the message's edition, then (unless ``schema_only``) rule findings.

    A message that passes the current edition's overlay schema (its XSD with the field rules
    folded in) has no XSD findings and skips the rules the overlay checked; any other takes
    the plain schemas and every rule.  Same findings either way (see ``overlay.py``).
    ``accept``: the editions a deployment takes; a message of another edition gets an
    ``CEBGW-EDITION-REFUSED`` finding.  With ``limit``, XSD findings past it are only counted
    (``Checked.omitted``).
    """
    if not schema_only and CURRENT_EDITION in accept and CURRENT_EDITION in editions_of(ident.type.editions):
        facts = overlay.validate(ident.root, ident.type, schema_dir)
        if facts is not None:
            return Checked(CURRENT_EDITION, rules_mod.check(ident.root, ident.type, facts))
    edition, out, omitted = detect(ident, schema_dir, limit)
    if edition is not None and edition not in accept:
        out.insert(0, Finding("CEBGW-EDITION-REFUSED",
                              f"{ident.type.code} follows the {edition} edition, which this gateway does not "
                              f"accept (accepted: {', '.join(accept) or 'none'})",
                              field=ident.type.root, path="/" + ident.type.root))
    if not schema_only:
        out += rules_mod.check(ident.root, ident.type)
    return Checked(edition, out, omitted)


__all__ = ["EDITIONS", "CURRENT_EDITION", "Checked", "Report", "detect", "editions_of", "findings_of"]
