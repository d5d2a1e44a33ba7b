"""What customs receives and sends: a declaration's records, the answers, the e-port codes.

:func:`records_of` reduces a declaration message to its :class:`Record` s (head and line fields by
local name: the parcel types through :func:`gateway.reconcile.documents_of`, the tree the
gateway's stages read); an :class:`Outgoing` is one answer customs sends; :func:`eport` gives the
negative e-port code and text for a fault (``eport_codes.toml``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from lxml import etree

from .. import reconcile
from ..catalog import Identified
from ..xmlio import local_name


@dataclass(frozen=True)
class Record:
    """One business record customs received: its head and line fields by local name, who sent
    it (BaseTransfer copCode) and over which DXP ids (sender, and customs' own)."""

    code: str
    head: Mapping[str, str]
    lines: tuple[Mapping[str, str], ...]
    cop_code: str
    sender_dxp: str
    customs_dxp: str
    record_no: int = 0

    def get(self, name: str) -> str:
        return self.head.get(name, "")

    def document(self) -> reconcile.Document:
        return reconcile.Document(self.code, self.head, self.lines, self.cop_code, self.record_no)


@dataclass(frozen=True)
class Outgoing:
    """One receipt record customs sends (``receipt_type`` with ``fields``: keys, guid, assigned
    numbers; and ``status``/``info``), or, with ``message`` set, a whole customs-issued message
    (CEB792); from ``customs_dxp`` to ``to_dxp``, answering a ``declaration_type``."""

    declaration_type: str
    receipt_type: str
    status: str
    info: str
    fields: Mapping[str, str]
    to_dxp: str
    customs_dxp: str
    message: bytes | None = None


def records_of(ident: Identified, sender_dxp: str, customs_dxp: str) -> list[Record]:
    """Every record of a declaration message, head and lines by local name (the tree the
    gateway's stages read; the parcel types through :func:`gateway.reconcile.documents_of`)."""
    docs = reconcile.documents_of(ident)
    if docs:
        return [Record(d.type, d.head, d.lines, d.sender, sender_dxp, customs_dxp, d.record_no) for d in docs]
    t, root = ident.type, ident.root
    cop = root.findtext(f"{t.q('BaseTransfer')}/{t.q('copCode')}") or ""
    out: list[Record] = []
    for no, rec in enumerate(root.iterchildren(t.q(t.record))):
        head_el = rec.find(t.q(t.head)) if t.head else rec
        head = _leaves(head_el) if head_el is not None else {}
        lines = tuple(_leaves(ln) for ln in rec.iterchildren(t.q(t.lines))) if t.lines else ()
        out.append(Record(t.code, head, lines, cop.strip(), sender_dxp, customs_dxp, no))
    return out


def _leaves(el: etree._Element) -> dict[str, str]:
    return {local_name(c.tag): (c.text or "").strip()
            for c in el.iterchildren(tag=etree.Element) if len(c) == 0}


@cache
def eport_codes() -> Mapping[str, Mapping[str, tuple[str, str]]]:
    """``eport_codes.toml``: fault → declaration type → (negative code, text)."""
    text = resources.files(__package__).joinpath("eport_codes.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return {fault: {code: (str(v[0]), str(v[1])) for code, v in table.items()}
            for fault, table in data.items()}


def eport(fault: str, code: str) -> tuple[str, str]:
    """The negative e-port code and text for ``fault`` on a declaration of type ``code``."""
    table = eport_codes()[fault]
    return table.get(code) or table["*"]
