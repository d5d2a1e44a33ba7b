"""Parcels for the comparison tests: the sample generator's consistent set, as Documents,
and small helpers that change one field."""

from __future__ import annotations

from dataclasses import replace

from gateway.catalog import load as load_catalog
from gateway.reconcile import Document, Parcel, documents_of, parcel_from
from gateway.sandbox.samplegen import build_order_set
from gateway.xmlio import parse


def consistent(order_no: str = "ORD-T1", seed: int = 0, lines: int = 2) -> Parcel:
    """The four documents of one parcel, consistent with each other (spec §12)."""
    catalog = load_catalog()
    docs = [documents_of(catalog.identify(parse(data)))[0]
            for data in build_order_set(order_no, seed=seed, lines=lines).values()]
    return parcel_from(docs)


def with_head(parcel: Parcel, code: str, **fields: str) -> Parcel:
    """``parcel`` with head fields of its ``code`` document set (``""`` removes a field)."""
    doc = parcel.document(code)
    assert doc is not None
    head = {**doc.head, **fields}
    head = {k: v for k, v in head.items() if v != ""}
    return parcel.with_document(replace(doc, head=head))


def with_line(parcel: Parcel, code: str, index: int, **fields: str) -> Parcel:
    """``parcel`` with fields of line ``index`` (from 0) of its ``code`` document set."""
    doc = parcel.document(code)
    assert doc is not None
    lines = list(doc.lines)
    lines[index] = {**lines[index], **fields}
    return parcel.with_document(replace(doc, lines=tuple(lines)))


def without_line(parcel: Parcel, code: str, index: int) -> Parcel:
    doc = parcel.document(code)
    assert doc is not None
    lines = [ln for i, ln in enumerate(doc.lines) if i != index]
    return parcel.with_document(replace(doc, lines=tuple(lines)))


def document(parcel: Parcel, code: str) -> Document:
    doc = parcel.document(code)
    assert doc is not None
    return doc
