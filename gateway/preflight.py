"""The pre-flight three-order comparison (issue 11 part 2): the parcel's documents compared by
the engine of :mod:`gateway.reconcile` whenever its set changes, before customs does it.

The four documents of a parcel come from different enterprises, in any order.  Each
declaration's parcel records are indexed as it is stored (:func:`parcel_records`); after it is
stored, :meth:`Preflight.evaluate` takes the current version of each document (the newest not
rejected and not deleted), compares them and keeps the outcome.  What follows depends on each
enterprise's ``preflight`` policy (accounts file): ``off`` nothing; ``warn`` a finding receipt
in the sender's mailbox, in the receipt shape customs uses (``returnInfo`` of
``[Code:NNNN;Desc:…]`` texts, ``returnStatus`` ``PREFLIGHT``, which moves no state), for each of
its documents a new set of findings names; ``hold`` the same, and its inventory lists are held
back from customs while the parcel has errors, released when a change fixes them (or by an
operator).  A missing document is no finding: customs waits for it, and so does the gateway.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

from lxml import etree

from .accounts import Accounts
from .catalog import BEIJING, CEB_NS, Catalog, Identified
from .catalog import load as load_catalog
from .reconcile import (
    INVENTORY,
    PARCEL_TYPES,
    WAYBILL,
    Document,
    Finding,
    Limits,
    Parcel,
    ParcelKey,
    compare,
    documents_of,
    spending,
)
from .state import State
from .store import NewReceipt, ParcelDoc, ParcelVersion, Store
from .xmlio import child, first_children, parse, text

PREFLIGHT_STATUS = "PREFLIGHT"  # returnStatus of a finding receipt: not a customs status, moves no state

# The record fields of the receipts answering the four documents, in schema order (spec §7).
_RECEIPT_FIELDS: dict[str, tuple[str, ...]] = {
    "CEB312": ("guid", "ebpCode", "ebcCode", "orderNo", "returnStatus", "returnTime", "returnInfo"),
    "CEB412": ("guid", "payCode", "payTransactionId", "returnStatus", "returnTime", "returnInfo"),
    "CEB512": ("guid", "logisticsCode", "logisticsNo", "returnStatus", "returnTime", "returnInfo"),
    "CEB622": ("guid", "customsCode", "ebpCode", "ebcCode", "agentCode", "copNo", "preNo", "invtNo",
               "returnStatus", "returnTime", "returnInfo"),
}
_REQUIRED = frozenset({"guid", "preNo", "returnStatus", "returnTime", "returnInfo", "ebpCode", "ebcCode",
                       "orderNo", "payCode", "payTransactionId", "logisticsCode", "logisticsNo", "copNo"})


def parcel_records(ident: Identified, *, with_fields: bool = True) -> tuple[list[str], list[ParcelDoc]]:
    """Each record's head guid, and the records that are parcel documents, as the store keeps
    them (read from the tree the validate stage read).  Without ``with_fields`` (no enterprise
    asked for the comparison) a document's fields are not kept: :func:`document_of` reads them
    from the declaration's bytes if they are ever needed."""
    mtype = ident.type
    guids: list[str] = []
    fields: list[dict[str, etree._Element]] = []  # each head's guid, orderNo and ebpCode, read in one pass
    wanted = [mtype.q("guid"), mtype.q("orderNo"), mtype.q("ebpCode")]
    if mtype.record and mtype.head is not None:
        for rec in ident.root.iterchildren(mtype.q(mtype.record)):
            head = child(rec, mtype.q(mtype.head)) if mtype.head else rec
            found = first_children(head, wanted) if head is not None else {}
            fields.append(found)
            guids.append(text(found.get(wanted[0])))
    if with_fields:
        docs = [ParcelDoc(d.record_no, d.key.ebp_code if d.type != WAYBILL else "", d.get("orderNo"),
                          _fields(d)) for d in documents_of(ident) if d.get("orderNo")]
    elif mtype.code in PARCEL_TYPES:
        docs = []
        for no, found in enumerate(fields):
            order_no = text(found.get(wanted[1]))
            ebp = text(found.get(wanted[2])) if mtype.code != WAYBILL else ""
            if order_no:
                docs.append(ParcelDoc(no, ebp, order_no, ""))
    else:
        docs = []
    return guids, docs


def _fields(d: Document) -> str:
    return json.dumps({"head": dict(d.head), "lines": [dict(ln) for ln in d.lines], "sender": d.sender},
                      ensure_ascii=False, separators=(",", ":"))


def document_of(v: ParcelVersion) -> Document:
    """The comparison's view of a stored version (read from its declaration's bytes when its
    fields were not kept)."""
    if not v.fields and v.data is not None:
        return _documents(v.data, v.message_type)[v.record_no]
    f = json.loads(v.fields)
    return Document(v.message_type, f["head"], tuple(f["lines"]), f.get("sender", ""), v.record_no)


@lru_cache(maxsize=256)
def _documents(data: bytes, message_type: str) -> tuple[Document, ...]:
    """The documents of stored declaration bytes (validated when they were stored)."""
    ident = load_catalog().identify(parse(data, source=f"stored {message_type}"))
    return tuple(documents_of(ident))


def current(versions: Sequence[ParcelVersion]) -> dict[str, ParcelVersion]:
    """The version of each document that counts now: the newest neither rejected nor deleted
    (appType 3); a waybill, which names no platform, preferably the one the inventory list names."""
    out: dict[str, ParcelVersion] = {}
    for v in versions:  # oldest first: later ones replace
        if v.state == State.REJECTED:
            continue
        if document_of(v).get("appType") == "3":
            out.pop(v.message_type, None)
            continue
        out[v.message_type] = v
    inv = out.get(INVENTORY)
    if inv is not None and WAYBILL in out:
        named = document_of(inv).get("logisticsNo")
        matching = [v for v in versions if v.message_type == WAYBILL and v.state != State.REJECTED
                    and document_of(v).get("logisticsNo") == named]
        if matching:
            out[WAYBILL] = matching[-1]
    return out


@dataclass(frozen=True)
class _History:
    spent_before: Decimal

    def spent(self, buyer_id: str, year: int, parcel: ParcelKey) -> Decimal:
        return self.spent_before


@dataclass(frozen=True)
class Evaluation:
    """One comparison of a parcel: its current documents, the findings, and what was done."""

    key: ParcelKey
    versions: dict[str, ParcelVersion]
    findings: tuple[Finding, ...]
    kept: bool
    notified: tuple[int, ...] = ()  # declarations that got a finding receipt
    held: tuple[int, ...] = ()
    released: tuple[int, ...] = ()

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


@dataclass
class Preflight:
    """The pre-flight stage's lookups: the accounts (for each enterprise's policy), the limits,
    the catalogue and a clock; one per process (it serialises evaluations of one parcel)."""

    accounts: Callable[[], Accounts]
    catalog: Catalog
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], datetime] | None = None
    _locks: dict[ParcelKey, tuple[asyncio.Lock, int]] = field(default_factory=dict)  # lock, users

    def policy(self, tenant: str) -> str:
        acc = self.accounts().by_name(tenant)
        return acc.preflight if acc is not None else "off"

    def active(self) -> bool:
        """Whether any enterprise asked for the comparison (else the stage costs nothing)."""
        return any(a.preflight != "off" for a in self.accounts().accounts)

    def holds(self, tenant: str, message_type: str) -> bool:
        """Whether a new ``message_type`` of ``tenant`` is stored held (released by :meth:`evaluate`)."""
        return message_type == INVENTORY and self.policy(tenant) == "hold"

    async def evaluate(self, key: ParcelKey, store: Store) -> Evaluation:
        """Compare parcel ``key`` as the store holds it now and act on the outcome (see the module)."""
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                return await self._evaluate(key, store)
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def _evaluate(self, key: ParcelKey, store: Store) -> Evaluation:
        versions = await store.parcel_versions(key.ebp_code, key.order_no)
        now = current(versions)
        parcel = Parcel(**{_SLOT[t]: document_of(v) for t, v in now.items()})
        spent = spending(parcel)
        history = None
        if spent is not None:
            before = Decimal(await store.buyer_spent(spent.buyer_id, spent.year, key.ebp_code, key.order_no))
            history = _History(before)
        findings = tuple(compare(parcel, self.limits, history))
        if spent is not None:
            await store.record_spending(spent.buyer_id, spent.year, key.ebp_code, key.order_no,
                                        str(spent.amount))
        previous = await store.parcel_outcome(key.ebp_code, key.order_no)
        basis = max((v.message_id for v in versions), default=0)
        kept = await store.put_parcel_outcome(key.ebp_code, key.order_no, basis,
                                              json.dumps(_outcome_json(findings, now), ensure_ascii=False))
        if not kept:
            return Evaluation(key, now, findings, False)
        notified = await self._notify(findings, now, previous.findings if previous else "{}", store)
        held, released = await self._hold(findings, now, store)
        return Evaluation(key, now, findings, True, notified, held, released)

    async def _notify(self, findings: Sequence[Finding], now: dict[str, ParcelVersion], previous: str,
                      store: Store) -> tuple[int, ...]:
        kept = json.loads(previous)
        before = _texts_by_document(kept if isinstance(kept, dict) else {})
        out: list[int] = []
        for code, v in now.items():
            mine = [f for f in findings if code in (f.document, f.other_document)]
            texts = sorted(f.customs_text() for f in mine)
            if not mine or texts == before.get((code, v.message_id), []) or self.policy(v.tenant) == "off":
                continue
            receipt = self._receipt(v, mine)
            await store.put_receipt(receipt)
            out.append(v.message_id)
        return tuple(out)

    def _receipt(self, v: ParcelVersion, found: Sequence[Finding]) -> NewReceipt:
        mtype = self.catalog[v.message_type]
        rtype = self.catalog[mtype.receipt or ""]
        doc = document_of(v)
        stamp = (self.clock() if self.clock is not None else datetime.now(UTC)).astimezone(BEIJING)
        info = "".join(f.customs_text() for f in found)
        info = info if len(info) <= 1000 else info[:997] + "…"
        values = {**doc.head, "guid": doc.guid or str(uuid.uuid4()).upper(), "returnStatus": PREFLIGHT_STATUS,
                  "returnTime": f"{stamp:%Y%m%d%H%M%S}{stamp.microsecond // 1000:03d}", "returnInfo": info}
        root = etree.Element(f"{{{CEB_NS}}}{rtype.root}", nsmap={None: CEB_NS})  # type: ignore[dict-item]  # None: the default namespace
        root.set("guid", str(uuid.uuid4()).upper())
        root.set("version", "1.0")
        rec = etree.SubElement(root, f"{{{CEB_NS}}}{rtype.record}")
        for name in _RECEIPT_FIELDS[rtype.code]:
            if values.get(name) or name in _REQUIRED:
                etree.SubElement(rec, f"{{{CEB_NS}}}{name}").text = values.get(name, "")
        data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        keys = {k: values[k] for k in rtype.keys if values.get(k)}
        return NewReceipt(message_type=rtype.code, guid=values["guid"], data=data, record_no=0,
                          status=PREFLIGHT_STATUS, return_time=values["returnTime"], info=info,
                          business_keys=keys, declaration_id=v.message_id, declaration_record=v.record_no)

    async def _hold(self, findings: Sequence[Finding], now: dict[str, ParcelVersion],
                    store: Store) -> tuple[tuple[int, ...], tuple[int, ...]]:
        inv = now.get(INVENTORY)
        if inv is None:
            return (), ()
        errors = any(f.severity == "error" for f in findings)
        if errors and not inv.held and not inv.sent and self.policy(inv.tenant) == "hold":
            return ((inv.message_id,) if await store.set_hold(inv.message_id, True) else ()), ()
        if not errors and inv.held and await self._all_agree(inv, store):
            return (), ((inv.message_id,) if await store.set_hold(inv.message_id, False, "preflight") else ())
        return (), ()

    async def _all_agree(self, inv: ParcelVersion, store: Store) -> bool:
        """Whether every other parcel an inventory message carries (up to 100 records) agrees too,
        as last compared: one envelope carries them all, so it goes only when all do."""
        stored = await store.get_message(inv.message_id, inv.tenant)
        if stored is None or len(stored.business_keys) <= 1:
            return stored is not None
        for key in parcel_keys(self.catalog.identify(parse(stored.data, source="held inventory list"))):
            outcome = await store.parcel_outcome(key.ebp_code, key.order_no)
            if outcome is None:
                return False  # not compared yet: its own comparison (it comes) decides
            kept = json.loads(outcome.findings)
            if any(f.get("severity") == "error" for f in kept.get("findings", [])):
                return False
        return True


_SLOT = {"CEB311": "order", "CEB411": "payment", "CEB511": "waybill", "CEB621": "inventory"}
assert set(_SLOT) == set(PARCEL_TYPES)


def _outcome_json(findings: Sequence[Finding], now: dict[str, ParcelVersion]) -> dict[str, object]:
    return {"findings": [f.as_dict() for f in findings],
            "documents": {code: v.message_id for code, v in now.items()}}


def _texts_by_document(outcome: dict[str, object]) -> dict[tuple[str, int], list[str]]:
    """The customs texts of a kept outcome, by (document type, message id) as it was then."""
    docs = outcome.get("documents", {})
    found = outcome.get("findings", [])
    out: dict[tuple[str, int], list[str]] = {}
    if not isinstance(docs, dict) or not isinstance(found, list):
        return out
    for f in found:
        for code in {f.get("document"), f.get("other_document")}:
            if isinstance(code, str) and code in docs:
                out.setdefault((code, int(docs[code])), []).append(str(f.get("customs_text", "")))
    return {k: sorted(v) for k, v in out.items()}


def parcel_keys(ident: Identified) -> list[ParcelKey]:
    """The parcels a declaration's records belong to (waybills: by order number alone), once each."""
    keys: list[ParcelKey] = []
    for d in documents_of(ident):
        k = ParcelKey(d.get("ebpCode") if d.type != WAYBILL else "", d.get("orderNo"))
        if k.order_no and k not in keys:
            keys.append(k)
    return keys


async def parcel_view(key: ParcelKey, viewer: str, store: Store) -> dict[str, object] | None:
    """The documents of parcel ``key``: each version with its state, whether it is current, held
    or sent, and its receipts; the findings of the latest comparison; the documents missing.
    ``None`` unless ``viewer`` (a tenant) sent one of them: a parcel is visible to the
    enterprises involved only."""
    versions = await store.parcel_versions(key.ebp_code, key.order_no)
    now = current(versions)
    inv = now.get(INVENTORY)
    if inv is not None:  # waybills of other platforms' parcels with the same order number stay out
        named = document_of(inv).get("logisticsNo")
        versions = [v for v in versions
                    if v.message_type != WAYBILL or document_of(v).get("logisticsNo") == named]
    if not key.ebp_code or viewer not in {v.tenant for v in versions}:
        return None
    outcome = await store.parcel_outcome(key.ebp_code, key.order_no)
    kept = json.loads(outcome.findings) if outcome is not None else {}
    docs: dict[str, list[dict[str, object]]] = {code: [] for code in PARCEL_TYPES}
    for v in versions:
        rec = await store.get_message(v.message_id, v.tenant)
        timeline = [{"receipt_id": t.receipt_id, "message_type": t.message_type, "status": t.status,
                     "return_time": t.return_time, "info": t.info, "received_at": t.received_at.isoformat()}
                    for t in (rec.timeline if rec is not None else ())]
        head = document_of(v).head
        docs[v.message_type].append({
            "message_id": v.message_id, "record_no": v.record_no, "guid": v.guid, "tenant": v.tenant,
            "sender_code": v.sender_code, "app_type": head.get("appType", ""), "status": v.state.value,
            "current": now.get(v.message_type) is v, "held": v.held, "sent": v.sent,
            "received_at": v.received_at.isoformat(), "timeline": timeline})
    return {"ebpCode": key.ebp_code, "orderNo": key.order_no,
            "missing": [code for code in PARCEL_TYPES if code not in now],
            "documents": docs, "findings": kept.get("findings", []) if isinstance(kept, dict) else [],
            "compared_at": outcome.updated_at.isoformat() if outcome is not None else None,
            "held": [v.message_id for v in versions if v.held]}
