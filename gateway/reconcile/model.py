"""The documents of one parcel, as fields: what the comparison engine reads.

A :class:`Document` is one business record of a declaration (an ``Order``, a ``Payment``, a
``Logistics``, an ``Inventory``) reduced to its head fields and its list lines, by local name,
with the text exactly as the message carries it (stripped of surrounding whitespace, as the
schema's token types read it).  A :class:`Parcel` holds at most one document of each of the
four types; any may be missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import NamedTuple

from ..catalog import Identified, MessageType
from ..xmlio import leaf_texts

ORDER, PAYMENT, WAYBILL, INVENTORY = "CEB311", "CEB411", "CEB511", "CEB621"
PARCEL_TYPES: tuple[str, ...] = (ORDER, PAYMENT, WAYBILL, INVENTORY)
_SLOT = {ORDER: "order", PAYMENT: "payment", WAYBILL: "waybill", INVENTORY: "inventory"}


def slot_of(code: str) -> str:
    """The :class:`Parcel` attribute holding documents of type ``code``. Raises ValueError."""
    slot = _SLOT.get(code)
    if slot is None:
        raise ValueError(f"{code} is not a parcel document (one of {', '.join(PARCEL_TYPES)})")
    return slot


class ParcelKey(NamedTuple):
    """What names a parcel: the platform's code and its order number (spec §12 rule 1).
    A waybill carries no ``ebpCode``: its key has ``ebp_code == ""``."""

    ebp_code: str
    order_no: str


@dataclass(frozen=True)
class Document:
    """One record of a parcel declaration.

    ``type`` is the catalogue code (``CEB311``...), ``head`` the head's leaf fields, ``lines``
    each list line's leaf fields, ``sender`` the BaseTransfer ``copCode`` (who sent it, if known)
    and ``record_no`` the record's index (from 0) in its message.
    """

    type: str
    head: Mapping[str, str]
    lines: tuple[Mapping[str, str], ...] = ()
    sender: str = ""
    record_no: int = 0

    def get(self, name: str) -> str:
        """The head field ``name``, ``""`` when absent."""
        return self.head.get(name, "")

    @property
    def guid(self) -> str:
        return self.get("guid")

    @property
    def key(self) -> ParcelKey:
        """The parcel this document belongs to (waybills: ``ebp_code`` empty)."""
        return ParcelKey(self.get("ebpCode"), self.get("orderNo"))


@dataclass(frozen=True)
class Parcel:
    """The order, payment, waybill and inventory list of one parcel; any may be ``None``."""

    order: Document | None = None
    payment: Document | None = None
    waybill: Document | None = None
    inventory: Document | None = None

    def document(self, code: str) -> Document | None:
        """The document of type ``code`` (``CEB311``...), or ``None``."""
        slot = _SLOT.get(code)
        return getattr(self, slot) if slot is not None else None

    def with_document(self, doc: Document) -> Parcel:
        """This parcel with ``doc`` in its slot (replacing the one there). Raises ValueError for
        a type that is not one of the four."""
        slot = _SLOT.get(doc.type)
        if slot is None:
            raise ValueError(f"{doc.type} is not a parcel document (one of {', '.join(PARCEL_TYPES)})")
        return replace(self, **{slot: doc})

    def documents(self) -> tuple[Document, ...]:
        """The documents present, in the order order, payment, waybill, inventory."""
        return tuple(d for d in (self.order, self.payment, self.waybill, self.inventory) if d is not None)

    @property
    def key(self) -> ParcelKey:
        """(ebpCode, orderNo) from the first document that has both."""
        for d in (self.order, self.inventory, self.payment, self.waybill):
            if d is not None and d.get("orderNo"):
                k = d.key
                if k.ebp_code or d.type == WAYBILL:
                    return k
        return ParcelKey("", "")


def missing(parcel: Parcel) -> tuple[str, ...]:
    """The codes of the parcel documents still absent, in the order 311, 411, 511, 621."""
    return tuple(code for code in PARCEL_TYPES if parcel.document(code) is None)


def documents_of(ident: Identified) -> list[Document]:
    """Every record of a CEB311/411/511/621 message as a :class:`Document` (other types: ``[]``).

    Reads the tree the validate stage read (one reading of the bytes): head and line fields by
    local name in the message's namespace; the sender is ``BaseTransfer/copCode``.
    """
    mtype: MessageType = ident.type
    if mtype.code not in _SLOT:
        return []
    root = ident.root
    transfer = root.find(mtype.q("BaseTransfer"))
    cop = transfer.find(mtype.q("copCode")) if transfer is not None else None
    sender = (cop.text or "").strip() if cop is not None else ""
    out: list[Document] = []
    for no, rec in enumerate(root.iterchildren(mtype.q(mtype.record))):
        head_el = rec.find(mtype.q(mtype.head)) if mtype.head else rec
        head = leaf_texts(head_el) if head_el is not None else {}
        lines = tuple(leaf_texts(ln) for ln in rec.iterchildren(mtype.q(mtype.lines))) if mtype.lines else ()
        out.append(Document(mtype.code, head, lines, sender, no))
    return out


def parcel_from(documents: Iterable[Document | Identified]) -> Parcel:
    """A parcel of ``documents`` (Documents, or identified messages whose first record is taken);
    a later document of a type replaces an earlier one. Raises ValueError for other types."""
    parcel = Parcel()
    for d in documents:
        if isinstance(d, Identified):
            docs = documents_of(d)
            if not docs:
                raise ValueError(f"{d.type.code} is not a parcel document (one of {', '.join(PARCEL_TYPES)})")
            d = docs[0]
        parcel = parcel.with_document(d)
    return parcel
