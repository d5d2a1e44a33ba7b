"""The SQLite statements of parcels (issue 11): document versions, comparison outcomes, held
inventory lists and buyers' annual totals.  Same conventions as :mod:`sqlops` (writes inside the
writer's transaction, reads on one snapshot, times in microseconds)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

from .. import state as st
from . import HeldList, ParcelOutcome, ParcelVersion
from .sqlops import to_dt

_OPEN_HOLD = "SELECT 1 FROM outbox_hold h WHERE h.message_id = m.id AND h.released_us IS NULL"


def parcel_versions(conn: sqlite3.Connection, ebp_code: str, order_no: str) -> list[ParcelVersion]:
    """Every version of every document of the parcel, oldest first (waybills: by order number);
    ``ebp_code == ""``: of every platform's parcel with that order number."""
    rows = conn.execute(
        "SELECT m.id, p.record_no, p.message_type, m.tenant, m.sender_code, COALESCE(g.guid, m.guid),"
        f" s.state, m.received_us, p.fields, EXISTS ({_OPEN_HOLD}),"
        " EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.id"
        " AND (o.acked_us IS NOT NULL OR o.attempts > 0)),"
        " CASE WHEN p.fields = '' THEN m.data END"
        " FROM parcel_doc p JOIN message m ON m.id = p.message_id"
        " JOIN declaration_state s ON s.message_id = m.id"
        " LEFT JOIN record_guid g ON g.message_id = p.message_id AND g.record_no = p.record_no"
        " WHERE p.order_no = ? AND (p.ebp_code = ? OR p.ebp_code = '' OR ? = '') ORDER BY m.id, p.record_no",
        (order_no, ebp_code, ebp_code)).fetchall()
    return [ParcelVersion(r[0], r[1], r[2], r[3], r[4], r[5], st.State(r[6]), to_dt(r[7]), r[8], bool(r[9]),
                          bool(r[10]), bytes(r[11]) if r[11] is not None else None) for r in rows]


def put_parcel_outcome(conn: sqlite3.Connection, ebp_code: str, order_no: str, basis: int, findings: str,
                       now_us: int) -> bool:
    """Keep the outcome unless a newer basis is kept already."""
    cur = conn.execute(
        "INSERT INTO parcel_outcome VALUES (?, ?, ?, ?, ?) ON CONFLICT (ebp_code, order_no) DO UPDATE"
        " SET basis = excluded.basis, findings = excluded.findings, updated_us = excluded.updated_us"
        " WHERE excluded.basis >= parcel_outcome.basis", (ebp_code, order_no, basis, findings, now_us))
    return cur.rowcount > 0


def parcel_outcome(conn: sqlite3.Connection, ebp_code: str, order_no: str) -> ParcelOutcome | None:
    r = conn.execute("SELECT basis, findings, updated_us FROM parcel_outcome"
                     " WHERE ebp_code = ? AND order_no = ?", (ebp_code, order_no)).fetchone()
    return ParcelOutcome(ebp_code, order_no, r[0], r[1], to_dt(r[2])) if r is not None else None


def set_hold(conn: sqlite3.Connection, message_id: int, held: bool, by: str, now_us: int) -> bool:
    """Hold an envelope no lease has taken, or release a held one."""
    if not held:
        cur = conn.execute("UPDATE outbox_hold SET released_us = ?, released_by = ?"
                           " WHERE message_id = ? AND released_us IS NULL", (now_us, by, message_id))
        return cur.rowcount > 0
    out = conn.execute("SELECT attempts, acked_us FROM outbox WHERE message_id = ?", (message_id,)).fetchone()
    if out is None or out[0] > 0 or out[1] is not None:
        return False  # customs may have it already: too late to hold
    doc = conn.execute("SELECT ebp_code, order_no FROM parcel_doc WHERE message_id = ?"
                       " ORDER BY record_no LIMIT 1", (message_id,)).fetchone() or ("", "")
    cur = conn.execute(
        "INSERT INTO outbox_hold VALUES (?, ?, ?, ?, NULL, NULL) ON CONFLICT (message_id) DO UPDATE"
        " SET held_us = excluded.held_us, released_us = NULL, released_by = NULL"
        " WHERE outbox_hold.released_us IS NOT NULL", (message_id, doc[0], doc[1], now_us))
    return cur.rowcount > 0


def held_lists(conn: sqlite3.Connection, tenant: str | None, limit: int) -> list[HeldList]:
    rows = conn.execute(
        "SELECT h.message_id, m.tenant, h.ebp_code, h.order_no, h.held_us FROM outbox_hold h"
        " JOIN message m ON m.id = h.message_id WHERE h.released_us IS NULL AND (? IS NULL OR m.tenant = ?)"
        " ORDER BY h.message_id LIMIT ?", (tenant, tenant, limit)).fetchall()
    return [HeldList(r[0], r[1], r[2], r[3], to_dt(r[4])) for r in rows]


def record_spending(conn: sqlite3.Connection, buyer_id: str, year: int, ebp_code: str, order_no: str,
                    amount: str) -> None:
    conn.execute("INSERT INTO buyer_spend VALUES (?, ?, ?, ?, ?)"
                 " ON CONFLICT (buyer_id, year, ebp_code, order_no) DO UPDATE SET amount = excluded.amount",
                 (buyer_id, year, ebp_code, order_no, amount))


def buyer_spent(conn: sqlite3.Connection, buyer_id: str, year: int, ebp_code: str, order_no: str) -> str:
    """Summed in Python as exact decimals (SQLite's SUM would go through floating point)."""
    total = sum((Decimal(a) for (a,) in conn.execute(
        "SELECT amount FROM buyer_spend WHERE buyer_id = ? AND year = ?"
        " AND NOT (ebp_code = ? AND order_no = ?)",
        (buyer_id, year, ebp_code, order_no))), Decimal(0))
    return str(total)
