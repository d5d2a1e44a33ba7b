"""The customs side, played for demos and integration tests: answer what the outbox holds.

Each envelope leased from the outbox carries one declaration.  :func:`answers` writes what
the customs CEB system would send back for it: the catalogue's receipt type for the
declaration (CEB311 → CEB312, CEB621 → CEB622, ...), one receipt message per record and
status, carrying the record's business keys (so the gateway correlates it, spec §5.1) and
``returnTime`` values that follow each other in the order of the statuses; each wrapped in a
``DxpMsg`` from the customs system back to the sender's DXP id and signed with the customs
key, as the gateway requires of receipts.

It compares nothing: every declaration gets the statuses asked for (``cebgw customs answer``, the
manual override; customs deciding for itself is :mod:`gateway.sandbox.district`, played by
``cebgw sandbox``).  A declaration type that no receipt answers gets none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..catalog import BEIJING, Identified
from ..catalog import load as load_catalog
from ..dsig import KeyProvider, sign
from ..envelope import TransInfo, unwrap, wrap
from ..errors import EnvelopeError, IdentifyError
from ..xmlio import parse
from .samplegen import RECEIPTS, build_receipt, receipt_fields


@dataclass(frozen=True)
class Answer:
    """One receipt message for one record of a declaration, ready to post."""

    declaration_type: str
    receipt_type: str
    status: str
    record_no: int
    keys: dict[str, str]
    data: bytes  # the signed DxpMsg


def answers(declaration: Identified, trans: TransInfo, statuses: Sequence[str], key: KeyProvider, *,
            info: str | None = None, now: datetime | None = None) -> list[Answer]:
    """The receipts customs would send for ``declaration``, which came in an envelope with header
    ``trans`` (as the pipeline's stages open an outbox ``DxpMsg``), in order: for each status,
    one per record, each in a ``DxpMsg`` back to the envelope's sender, signed with ``key``."""
    receipt_type = declaration.type.receipt
    if receipt_type is None or receipt_type not in RECEIPTS:
        return []
    fields = set(receipt_fields(receipt_type))
    records = declaration.type.business_keys(declaration.root)
    start = (now or datetime.now(BEIJING)).astimezone(BEIJING)
    out: list[Answer] = []
    for step, status in enumerate(statuses):
        # returnTime (yyyyMMddHHmmssfff) orders a declaration's receipts: one ms apart per status
        at = start + timedelta(milliseconds=step)
        return_time = at.strftime("%Y%m%d%H%M%S") + f"{at.microsecond // 1000:03d}"
        for record_no, keys in enumerate(records):
            kept = {k: v for k, v in keys.items() if k in fields}
            receipt = build_receipt(receipt_type, {**kept, "returnTime": return_time}, status=status,
                                    info=info, seed=step * 1000 + record_no)
            dxp = wrap(receipt, msg_type=f"{receipt_type}Message",
                       sender_id=trans.receiver_ids[0], receiver_ids=(trans.sender_id,))
            out.append(Answer(declaration.type.code, receipt_type, status, record_no, kept, sign(dxp, key)))
    return out


def answers_to_envelope(envelope: bytes, statuses: Sequence[str], key: KeyProvider, *,
                        info: str | None = None, now: datetime | None = None) -> list[Answer]:
    """:func:`answers` for an envelope as customs receives it over a transport (the bytes of a
    ``DxpMsg`` around a declaration), opened as customs would: parse, name, unwrap, name.
    Raises InputError for anything else."""
    catalog = load_catalog()
    outer = catalog.identify(parse(envelope, source="envelope"))
    if outer.type.code != "DxpMsg":
        raise EnvelopeError(f"customs takes DxpMsg envelopes, not {outer.type.code}", field=outer.type.root)
    opened = unwrap(outer.parsed)
    declaration = catalog.identify(opened.inner)
    if declaration.type.kind != "declaration":
        raise IdentifyError(f"{declaration.type.code} is not a declaration", field=declaration.type.root)
    return answers(declaration, opened.trans, statuses, key, info=info, now=now)
