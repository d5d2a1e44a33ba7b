"""The audit journal: one hash chain over everything the store records that must not change.

Every declaration (its row, the digest of its bytes, its business keys, subscribers and the
outbox envelope), every receipt record (its row, the digest of its bytes, its keys, a dead
letter's reason), every link of a receipt to a declaration (with the keys it assigned) and
every mailbox delivery gets one ``audit_entry`` in the same transaction that writes it.  An
entry keeps a short hash of each part (``parts``, so a check can say *what* changed), the
digest of those, and ``link = sha256(prev link, kind, ref, digest, time)``.

A chain alone proves nothing to someone who can rewrite the file and recompute it; signed
checkpoints of its head (``audit_checkpoint``, see :mod:`gateway.audit`) do:
:mod:`gateway.store.auditcheck` recomputes every entry from the rows and compares the result
with each checkpoint's claims.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence

from ..errors import GatewayError
from . import CheckpointClaim, NewMessage, NewReceipt, PutResult, ReceiptResult, sqlops

GENESIS = "0" * 64
MIGRATION = 8  # the schema version that made the journal's tables
_PART_HEX = 32  # 128-bit part hashes: the entry digest (full SHA-256) covers them all


# One encoder for every part: building one per call cost more than the encoding (measured).
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _h(value: object) -> str:
    return hashlib.sha256(_JSON.encode(value).encode()).hexdigest()[:_PART_HEX]


def as_bytes(value: object) -> bytes:
    """A BLOB column's value as bytes, even if someone stored text (or a number) there instead."""
    return value if isinstance(value, bytes) else str(value).encode()


def _sha(data: object) -> str | None:
    return hashlib.sha256(as_bytes(data)).hexdigest() if data is not None else None


def link_of(prev: str, kind: str, ref: int, digest: str, at_us: int) -> str:
    """The chain link of one entry."""
    return hashlib.sha256(f"{prev}\x1e{kind}\x1f{ref}\x1f{digest}\x1f{at_us}".encode()).hexdigest()


def parts_text(parts: dict[str, str]) -> str:
    """How an entry's parts are stored (and hashed into its digest)."""
    return _JSON.encode(parts)


def digest_of(parts: dict[str, str]) -> str:
    return hashlib.sha256(parts_text(parts).encode()).hexdigest()


# ---------------------------------------------------------------- what each entry covers

PART_NAMES = {
    "row": "the row itself", "data": "the stored bytes", "keys": "the business keys",
    "subscribers": "the subscribers", "envelope": "the outbox envelope",
    "dead_letter": "the dead-letter reason",
    "assigned": "the keys it assigned",
}


def message_parts(conn: sqlite3.Connection, message_id: int, *, from_data: bool) -> dict[str, str] | None:
    """The part hashes of declaration ``message_id`` as the rows hold it now, ``None`` if it is gone.
    ``from_data``: hash the stored bytes (a check); else trust the row's ``sha256`` (just written)."""
    return messages_parts(conn, message_id, message_id, from_data=from_data).get(message_id)


def messages_parts(conn: sqlite3.Connection, lo: int, hi: int, *,
                   from_data: bool) -> dict[int, dict[str, str]]:
    """:func:`message_parts` of every declaration with an id from ``lo`` to ``hi``, in four queries
    (a write batch's declarations have neighbouring ids)."""
    rows = conn.execute(
        "SELECT id, tenant, sender_code, message_type, guid, cop_msg_id, sha256, received_us, prev_chain,"
        f" chain_hash{', data' if from_data else ''} FROM message WHERE id BETWEEN ? AND ?",
        (lo, hi)).fetchall()
    if not rows:
        return {}
    keys: dict[int, list[tuple[object, ...]]] = {}
    for mid, *rest in conn.execute("SELECT message_id, record_no, name, value FROM message_key"
                                   " WHERE message_id BETWEEN ? AND ? ORDER BY message_id, record_no, name",
                                   (lo, hi)):
        keys.setdefault(mid, []).append(tuple(rest))
    subscribers: dict[int, list[tuple[object, ...]]] = {}
    for mid, *rest in conn.execute("SELECT message_id, position, dxp_address, status FROM subscriber"
                                   " WHERE message_id BETWEEN ? AND ? ORDER BY message_id, position",
                                   (lo, hi)):
        subscribers.setdefault(mid, []).append(tuple(rest))
    envelopes = {r[0]: [r[1], r[2], _sha(r[3]), _sha(r[4]), _sha(r[5]), r[6]] for r in conn.execute(
        "SELECT message_id, id, sender, envelope, envelope_head, envelope_tail, enqueued_us FROM outbox"
        " WHERE message_id BETWEEN ? AND ?", (lo, hi))}
    out: dict[int, dict[str, str]] = {}
    for row in rows:
        mid = row[0]
        out[mid] = {
            "row": _h([*row[:6], *row[7:10]]),
            "data": _h(_sha(row[10]) if from_data else row[6]),
            "keys": _h(keys.get(mid, [])),
            "subscribers": _h(subscribers.get(mid, [])),
            "envelope": _h(envelopes.get(mid)),
        }
    return out


def receipt_parts(conn: sqlite3.Connection, receipt_id: int, *, from_data: bool) -> dict[str, str] | None:
    """The part hashes of receipt record ``receipt_id``, ``None`` if it is gone."""
    row = conn.execute("SELECT id, blob_sha256, record_no, message_type, guid, status, return_time, info,"
                       " received_us FROM receipt WHERE id = ?", (receipt_id,)).fetchone()
    if row is None:
        return None
    if from_data:
        blob = conn.execute("SELECT data FROM receipt_blob WHERE sha256 = ?", (row[1],)).fetchone()
        data_sha = _sha(blob[0]) if blob is not None else None
    else:
        data_sha = row[1]
    dead = conn.execute("SELECT reason, created_us FROM dead_letter WHERE receipt_id = ?",
                        (receipt_id,)).fetchone()
    return {
        "row": _h(list(row)),
        "data": _h(data_sha),
        "keys": _h(conn.execute("SELECT name, value FROM receipt_key WHERE receipt_id = ? ORDER BY name",
                                (receipt_id,)).fetchall()),
        "dead_letter": _h(list(dead) if dead is not None else None),
    }


def link_parts(conn: sqlite3.Connection, receipt_id: int, *, from_data: bool = True) -> dict[str, str] | None:
    """The part hashes of the link of receipt ``receipt_id`` to its declaration, ``None`` if none."""
    row = conn.execute("SELECT receipt_id, declaration_id, via, outcome, linked_us FROM receipt_link"
                       " WHERE receipt_id = ?", (receipt_id,)).fetchone()
    if row is None:
        return None
    assigned = conn.execute("SELECT message_id, record_no, name, value, assigned_us FROM assigned_key"
                            " WHERE receipt_id = ? ORDER BY message_id, record_no, name, value",
                            (receipt_id,)).fetchall()
    return {"row": _h(list(row)), "assigned": _h(assigned)}


def delivery_parts(conn: sqlite3.Connection, cursor: int, *, from_data: bool = True) -> dict[str, str] | None:
    """The part hashes of mailbox delivery ``cursor``, ``None`` if it is gone."""
    row = conn.execute("SELECT cursor, tenant, receipt_id, declaration_id, delivered_us FROM mailbox"
                       " WHERE cursor = ?", (cursor,)).fetchone()
    return None if row is None else {"row": _h(list(row))}


_PartsOf = Callable[..., "dict[str, str] | None"]
PARTS: dict[str, _PartsOf] = {"message": message_parts, "receipt": receipt_parts, "link": link_parts,
                               "delivery": delivery_parts}
WHAT = {"message": "declaration", "receipt": "receipt record", "link": "receipt link",
         "delivery": "mailbox delivery"}


# ---------------------------------------------------------------- writing

def _head(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT link FROM audit_entry ORDER BY id DESC LIMIT 1").fetchone()
    return str(row[0]) if row is not None else GENESIS


def append(conn: sqlite3.Connection, entries: Iterable[tuple[str, int, dict[str, str]]], now_us: int) -> None:
    """Chain ``(kind, ref, parts)`` entries after the journal's head (inside the caller's transaction)."""
    prev = _head(conn)
    rows = []
    for kind, ref, parts in entries:
        text = parts_text(parts)
        digest = hashlib.sha256(text.encode()).hexdigest()
        link = link_of(prev, kind, ref, digest, now_us)
        rows.append((kind, ref, text, digest, now_us, prev, link))
        prev = link
    if rows:
        conn.executemany("INSERT INTO audit_entry (kind, ref, parts, digest, at_us, prev, link)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def record_messages(conn: sqlite3.Connection, message_ids: Sequence[int], now_us: int) -> None:
    """Journal declarations just stored (read back from the rows, as :func:`verify` will read them)."""
    if not message_ids:
        return
    found = messages_parts(conn, min(message_ids), max(message_ids), from_data=False)
    append(conn, [("message", mid, found[mid]) for mid in message_ids if mid in found], now_us)


def record_receipt(conn: sqlite3.Connection, receipt_id: int, now_us: int) -> None:
    """Journal what is new about receipt ``receipt_id``: the record, its link, its deliveries."""
    done = {(k, r) for k, r in conn.execute(
        "SELECT kind, ref FROM audit_entry WHERE (kind IN ('receipt', 'link') AND ref = ?)"
        " OR (kind = 'delivery' AND ref IN (SELECT cursor FROM mailbox WHERE receipt_id = ?))",
        (receipt_id, receipt_id))}
    entries: list[tuple[str, int, dict[str, str]]] = []
    if ("receipt", receipt_id) not in done:
        parts = receipt_parts(conn, receipt_id, from_data=False)
        if parts is not None:
            entries.append(("receipt", receipt_id, parts))
    if ("link", receipt_id) not in done:
        parts = link_parts(conn, receipt_id)
        if parts is not None:
            entries.append(("link", receipt_id, parts))
    for (cursor,) in conn.execute("SELECT cursor FROM mailbox WHERE receipt_id = ? ORDER BY cursor",
                                  (receipt_id,)).fetchall():
        if ("delivery", cursor) not in done:
            entries.append(("delivery", cursor, delivery_parts(conn, cursor) or {}))
    append(conn, entries, now_us)


# The store's writes, journaled in the same transaction (the statements stay in sqlops).

def put_messages(conn: sqlite3.Connection,
                 items: Sequence[tuple[NewMessage, int, sqlops.Digested]]) -> list[PutResult | GatewayError]:
    """:func:`sqlops.put_messages`, with a journal entry for each declaration it stored."""
    results = sqlops.put_messages(conn, items)
    fresh = [r.message_id for r in results if isinstance(r, PutResult) and not r.duplicate]
    if fresh:
        record_messages(conn, fresh, max(now for _, now, _ in items))
    return results


def put_message(conn: sqlite3.Connection, m: NewMessage, now_us: int, d: sqlops.Digested) -> PutResult:
    """:func:`sqlops.put_message`, journaled."""
    (result,) = put_messages(conn, [(m, now_us, d)])
    if isinstance(result, GatewayError):
        raise result
    return result


def put_receipt(conn: sqlite3.Connection, r: NewReceipt, now_us: int) -> ReceiptResult:
    """:func:`sqlops.put_receipt`, journaled (record, link, deliveries)."""
    result = sqlops.put_receipt(conn, r, now_us)
    if not result.duplicate:
        record_receipt(conn, result.receipt_id, now_us)
    return result


def reroute_dead_letter(conn: sqlite3.Connection, receipt_id: int, message_id: int, mailboxes: Sequence[str],
                        now_us: int, assign: Sequence[str] = ()) -> ReceiptResult:
    """:func:`sqlops.reroute_dead_letter`, journaled (the new link and deliveries)."""
    result = sqlops.reroute_dead_letter(conn, receipt_id, message_id, mailboxes, now_us, assign)
    record_receipt(conn, receipt_id, now_us)
    return result


# ---------------------------------------------------------------- checkpoints

def state(conn: sqlite3.Connection, created_us: int) -> CheckpointClaim:
    """What a checkpoint made now would claim: the journal head and every sender chain's head."""
    head = conn.execute("SELECT id, link FROM audit_entry ORDER BY id DESC LIMIT 1").fetchone()
    chains = {(t, s): (mid, link) for t, s, mid, link in conn.execute(
        "SELECT m.tenant, m.sender_code, m.id, m.chain_hash FROM message m JOIN"
        " (SELECT MAX(id) AS id FROM message GROUP BY tenant, sender_code) last ON last.id = m.id")}
    (max_message,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM message").fetchone()
    entry_id, entry_link = (head[0], head[1]) if head is not None else (0, GENESIS)
    return CheckpointClaim(created_us, entry_id, entry_link, chains, max_message, start_of(conn))


def start_of(conn: sqlite3.Connection) -> tuple[int, int, int]:
    row = conn.execute("SELECT message_id, receipt_id, cursor FROM audit_start").fetchone()
    return (int(row[0]), int(row[1]), int(row[2])) if row is not None else (0, 0, 0)


def put_checkpoint(conn: sqlite3.Connection, claim: CheckpointClaim, document: bytes) -> int:
    """Keep a signed checkpoint document; returns its id."""
    (cid,) = conn.execute("INSERT INTO audit_checkpoint (created_us, entry_id, document) VALUES (?, ?, ?)"
                          " RETURNING id", (claim.created_us, claim.entry_id, document)).fetchone()
    return int(cid)


def checkpoints(conn: sqlite3.Connection) -> list[tuple[int, int, bytes]]:
    """Every kept checkpoint: (id, created_us, signed document), oldest first."""
    return [(i, c, bytes(d)) for i, c, d in conn.execute(
        "SELECT id, created_us, document FROM audit_checkpoint ORDER BY id")]
