"""Receipts to declarations (spec §5.1): which declaration a receipt record answers, and who gets it.

A record is correlated by the catalogue: the receipt type's ``answers`` names the
declaration type and its ``keys`` the business keys to match; a CEB900 is matched by
``oriCopMsgId``, the CopMsgId of the envelope the gateway sent.  The declaration's
tenant always receives the receipt; so do ``BaseSubscribe`` subscribers with status
``ALL`` or ``RET`` whose DXP address is a known account.  A record that matches
nothing is filed as a dead letter, never dropped; so is one whose keys were declared by
several tenants when no envelope names its receiver (the gateway never guesses between
tenants: the envelope's receiver decides).

A document may have several versions (a change, appType 2, or a new declaration after a
rejection); a record goes to the version it answers: the one whose guid (root or record head)
the record carries, as its ``guid`` or in brackets in ``returnInfo`` (status 2 echoes it), else
the version customs holds: the newest sent to customs and not rejected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

from lxml import etree

from .accounts import Accounts
from .catalog import Identified, MessageType
from .state import RANK, State
from .store import DeclarationRef
from .xmlio import local_name, text


class DeclarationLookup(Protocol):
    """The two ways a receipt finds its declaration."""

    async def find_declarations(self, message_type: str, keys: dict[str, str]) -> list[DeclarationRef]:
        """Declarations of that type with a record holding all ``keys``; most recent first."""
        ...

    async def declarations_by_cop_msg_id(self, cop_msg_id: str) -> list[DeclarationRef]:
        """The declarations sent to customs in envelopes with this CopMsgId; most recent first."""
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
    """Where a record goes: ``declaration_id`` ``None`` means dead letter (with ``reason``);
    ``record_no`` is the declaration's matching record, ``assigned`` the numbers this receipt
    record gives it (the declaration type's ``alt_keys`` it carries, e.g. preNo and invtNo)."""

    declaration_id: int | None
    tenant: str | None
    mailboxes: tuple[str, ...]
    reason: str = ""
    record_no: int = 0
    assigned: dict[str, str] = field(default_factory=dict)


def _field(rec: etree._Element, mtype: MessageType, name: str) -> str:
    return text(next(rec.iter(mtype.q(name)), None))


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


def record_fields(ident: Identified, record_no: int) -> dict[str, str]:
    """Record ``record_no`` (0-based, as :func:`records_of` numbers them) of a receipt message,
    as its leaf fields by local name; empty if it has no such record."""
    mtype = ident.type
    rec = next(islice(ident.root.iterchildren(mtype.q(mtype.record)), record_no, None), None)
    if rec is None:
        return {}
    return {local_name(el.tag): text(el) for el in rec.iter() if isinstance(el.tag, str) and len(el) == 0}


async def _find(rec: ReceiptRecord, mtype: MessageType, lookup: DeclarationLookup,
                accounts: Accounts, receivers: Sequence[str]) -> DeclarationRef | str:
    if mtype.answers == "*":
        cop = rec.keys.get("oriCopMsgId", "")
        if not cop:
            return "no oriCopMsgId"
        sent = await lookup.declarations_by_cop_msg_id(cop)
        if not sent:
            return f"no declaration sent with CopMsgId {cop}"
        return _one_tenant(sent, {"oriCopMsgId": cop}, accounts, receivers)
    if not mtype.answers:
        return f"{mtype.code} answers no declaration type"
    keys = {k: rec.keys[k] for k in mtype.keys if k in rec.keys}
    if len(keys) != len(mtype.keys):
        return f"missing key fields {sorted(set(mtype.keys) - set(keys))}"
    found = await lookup.find_declarations(mtype.answers, keys)
    if not found:
        return f"no {mtype.answers} declaration with {keys}"
    return _one_tenant(found, keys, accounts, receivers, rec)


_BRACKETED_GUID = re.compile(r"\[([0-9A-Za-z-]{36})\]")


def version_of(found: Sequence[DeclarationRef], rec: ReceiptRecord | None) -> DeclarationRef:
    """Of one tenant's versions of a document (``found``, newest first), the one ``rec`` answers:
    the version whose root or record guid ``rec`` carries (its guid, or bracketed in its
    returnInfo), else the newest sent to customs and not rejected, else the newest."""
    if rec is not None:
        wanted = {g.upper() for g in (rec.guid, *_BRACKETED_GUID.findall(rec.info)) if g}
        for ref in found:
            if ref.guid.upper() in wanted or (ref.record_guid and ref.record_guid.upper() in wanted):
                return ref
    for ref in found:
        if ref.state != State.REJECTED and RANK[ref.state] >= RANK[State.SENT]:
            return ref
    return found[0]


def _one_tenant(found: list[DeclarationRef], keys: dict[str, str], accounts: Accounts,
                receivers: Sequence[str], rec: ReceiptRecord | None = None) -> DeclarationRef | str:
    """The version ``rec`` answers (:func:`version_of`) of the one tenant the receipt is for
    among ``found`` (newest first), or why there is none.

    Never a guess between tenants: an envelope addressed to known accounts decides (its
    receivers' declarations only); without one, the keys must belong to one tenant alone.
    """
    wanted = [a.name for a in (accounts.by_dxp_id(r) for r in receivers) if a is not None]
    if wanted:
        mine = [f for f in found if f.tenant in wanted]
        if not mine:
            names = ", ".join(sorted(set(wanted)))
            return (f"envelope addressed to {names}, but the {found[0].message_type} declarations with "
                    f"{keys} are other tenants'")
        found = mine
    tenants = sorted({f.tenant for f in found})
    if len(tenants) > 1:
        return (f"ambiguous: {found[0].message_type} declarations with {keys} by {len(tenants)} tenants "
                f"({', '.join(tenants)}); a receipt without an envelope naming its receiver is delivered "
                "to nobody")
    return version_of(found, rec)


def subscriber_mailboxes(ref: DeclarationRef, accounts: Accounts) -> tuple[str, ...]:
    """Tenants besides the declaration's own that receive its receipts: ``ALL``/``RET``
    subscribers whose DXP address is a known account."""
    boxes: list[str] = []
    for sub in ref.subscribers:
        acc = accounts.by_dxp_id(sub.dxp_address)
        if sub.status in ("ALL", "RET") and acc is not None and acc.name != ref.tenant:
            boxes.append(acc.name)
    return tuple(dict.fromkeys(boxes))


def assigned_keys(rec: ReceiptRecord, mtype: MessageType, declaration: MessageType | None) -> dict[str, str]:
    """The numbers a receipt record gives its declaration: the declaration type's ``alt_keys``
    the record carries beyond the keys it was matched by (customs assigns preNo, invtNo, sumNo)."""
    if declaration is None:
        return {}
    return {k: rec.keys[k] for k in declaration.alt_keys if rec.keys.get(k) and k not in mtype.keys}


async def correlate(rec: ReceiptRecord, mtype: MessageType, lookup: DeclarationLookup, accounts: Accounts,
                    receivers: Sequence[str] = (), declaration: MessageType | None = None) -> Routed:
    """Find the declaration a receipt record answers, its extra mailboxes, and the numbers the
    record assigns it (``declaration`` is the catalogue type ``mtype`` answers, if any)."""
    found = await _find(rec, mtype, lookup, accounts, receivers)
    if isinstance(found, str):
        return Routed(None, None, (), found)
    return Routed(found.message_id, found.tenant, subscriber_mailboxes(found, accounts), "",
                  found.record_no, assigned_keys(rec, mtype, declaration))
