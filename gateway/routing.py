"""Receipts to declarations (spec §5.1): which declaration a receipt record answers, and who gets it.

A record is correlated by the catalogue: the receipt type's ``answers`` names the
declaration type and its ``keys`` the business keys to match; a CEB900 is matched by
``oriCopMsgId``, the CopMsgId of the envelope the gateway sent.  The declaration's
tenant always receives the receipt; so do ``BaseSubscribe`` subscribers with status
``ALL`` or ``RET`` whose DXP address is a known account.  A record that matches
nothing is filed as a dead letter, never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lxml import etree

from .accounts import Accounts
from .catalog import Identified, MessageType
from .store import DeclarationRef


class DeclarationLookup(Protocol):
    """The two ways a receipt finds its declaration."""

    async def find_declarations(self, message_type: str, keys: dict[str, str]) -> list[DeclarationRef]:
        """Declarations of that type with a record holding all ``keys``; most recent first."""
        ...

    async def find_by_cop_msg_id(self, cop_msg_id: str) -> DeclarationRef | None:
        """The declaration sent to customs in the envelope with this CopMsgId."""
        ...


@dataclass(frozen=True)
class ReceiptRecord:
    """One ``…Return`` record of a receipt message."""

    record_no: int
    guid: str
    status: str
    return_time: str
    info: str
    keys: dict[str, str]


@dataclass(frozen=True)
class Routed:
    """Where a record goes: ``declaration_id`` ``None`` means dead letter (with ``reason``)."""

    declaration_id: int | None
    tenant: str | None
    mailboxes: tuple[str, ...]
    reason: str = ""


def _field(rec: etree._Element, mtype: MessageType, name: str) -> str:
    el = next(rec.iter(mtype.q(name)), None)
    return (el.text or "").strip() if el is not None else ""


def records_of(ident: Identified) -> list[ReceiptRecord]:
    """Every record of a receipt message, with its status, time, text and business keys."""
    mtype = ident.type
    keys = mtype.business_keys(ident.root)
    out: list[ReceiptRecord] = []
    for i, rec in enumerate(ident.root.iterchildren(mtype.q(mtype.record))):
        out.append(ReceiptRecord(i, _field(rec, mtype, "guid"), _field(rec, mtype, "returnStatus"),
                                 _field(rec, mtype, "returnTime"), _field(rec, mtype, "returnInfo"),
                                 keys[i] if i < len(keys) else {}))
    return out


async def _find(rec: ReceiptRecord, mtype: MessageType, lookup: DeclarationLookup,
                accounts: Accounts, receivers: Sequence[str]) -> DeclarationRef | str:
    if mtype.answers == "*":
        cop = rec.keys.get("oriCopMsgId", "")
        if not cop:
            return "no oriCopMsgId"
        ref = await lookup.find_by_cop_msg_id(cop)
        return ref if ref is not None else f"no declaration sent with CopMsgId {cop}"
    if not mtype.answers:
        return f"{mtype.code} answers no declaration type"
    keys = {k: rec.keys[k] for k in mtype.keys if k in rec.keys}
    if len(keys) != len(mtype.keys):
        return f"missing key fields {sorted(set(mtype.keys) - set(keys))}"
    found = await lookup.find_declarations(mtype.answers, keys)
    if not found:
        return f"no {mtype.answers} declaration with {keys}"
    # Several tenants may have declared the same keys: prefer the one the envelope was addressed to.
    wanted = {a.name for a in (accounts.by_dxp_id(r) for r in receivers) if a is not None}
    return next((f for f in found if f.tenant in wanted), found[0])


async def correlate(rec: ReceiptRecord, mtype: MessageType, lookup: DeclarationLookup, accounts: Accounts,
                    receivers: Sequence[str] = ()) -> Routed:
    """Find the declaration a receipt record answers and its extra mailboxes."""
    found = await _find(rec, mtype, lookup, accounts, receivers)
    if isinstance(found, str):
        return Routed(None, None, (), found)
    boxes: list[str] = []
    for sub in found.subscribers:
        acc = accounts.by_dxp_id(sub.dxp_address)
        if sub.status in ("ALL", "RET") and acc is not None and acc.name != found.tenant:
            boxes.append(acc.name)
    return Routed(found.message_id, found.tenant, tuple(dict.fromkeys(boxes)))
