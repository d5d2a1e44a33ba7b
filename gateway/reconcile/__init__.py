"""The three-order comparison ("三单对碰", spec §12): one engine for the gateway's pre-flight
stage and the customs sandbox.

Public API (stable; everything else in this package is private)::

    documents_of(ident) -> list[Document]        # the records of an identified CEB311/411/511/621
    parcel_from(docs) -> Parcel                  # Documents (or identified messages) of one parcel
    Parcel.with_document(doc) -> Parcel          # add or replace one document
    missing(parcel) -> tuple[str, ...]           # "CEB411", ... still absent
    compare(parcel, limits=None, history=None) -> list[Finding]
    spending(parcel) -> Spending | None          # what the parcel counts against its buyer's year
    Limits(single=5000, annual=26000)            # CNY, exact decimals
    BuyerHistory (protocol: spent(buyer_id, year, parcel_key) -> Decimal), MemoryHistory
    Finding: code, severity, document, field, other_document, other_field, line, values,
             en, zh, message, message_zh, customs_code, customs_text(), eport_code, as_dict()
    load_rules(toml_text) / default_rules() / rule_codes()

The rules are data: ``rules.toml`` beside this file.  Every rule code is registered in the
error table (``gateway.errors.ERRORS``) when the rules load.
"""

from .engine import (
    DEFAULT_ANNUAL_LIMIT,
    DEFAULT_SINGLE_LIMIT,
    BuyerHistory,
    Finding,
    Limits,
    MemoryHistory,
    Rule,
    Spending,
    compare,
    default_rules,
    load_rules,
    rule_codes,
    spending,
)
from .model import (
    INVENTORY,
    ORDER,
    PARCEL_TYPES,
    PAYMENT,
    WAYBILL,
    Document,
    Parcel,
    ParcelKey,
    documents_of,
    missing,
    parcel_from,
)

__all__ = [
    "DEFAULT_ANNUAL_LIMIT", "DEFAULT_SINGLE_LIMIT", "INVENTORY", "ORDER", "PARCEL_TYPES", "PAYMENT",
    "WAYBILL", "BuyerHistory", "Document", "Finding", "Limits", "MemoryHistory", "Parcel", "ParcelKey",
    "Rule", "Spending", "compare", "default_rules", "documents_of", "load_rules", "missing", "parcel_from",
    "rule_codes", "spending",
]
