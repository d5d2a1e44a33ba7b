"""The SQLite statements behind :class:`~gateway.store.sqlite.SqliteStore`, as plain functions.

Each write function runs inside a transaction its caller opened (the group-commit
writer's savepoint) and raises GatewayError subclasses for the caller's mistakes.
Each read function runs on a read connection inside one read transaction, so it sees
one consistent snapshot.  Times are integer microseconds since the epoch.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, TypeVar

from .. import state as st
from ..errors import ConflictError, GatewayError, NotFoundError, StoreError
from . import (
    MAX_ID,
    ChainBreak,
    DeadLetter,
    DeclarationRef,
    MailItem,
    MessageRecord,
    NewMessage,
    NewReceipt,
    OutboxItem,
    ParcelVersion,
    PutResult,
    ReceiptResult,
    Subscriber,
    TimelineEntry,
)

GENESIS = "0" * 64
T = TypeVar("T")
log = logging.getLogger("gateway.store")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_dt(us: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime (exact)."""
    return _EPOCH + timedelta(microseconds=us)


def chain_hash(prev_chain: str, data_sha256: str, tenant: str, sender_code: str, message_type: str,
               guid: str, cop_msg_id: str, received_us: int) -> str:
    """sha256(prev_chain + sha256(data) + metadata), the link of one message in its sender's chain."""
    meta = "\x1f".join((tenant, sender_code, message_type, guid, cop_msg_id, str(received_us)))
    return hashlib.sha256(f"{prev_chain}{data_sha256}\x1e{meta}".encode()).hexdigest()


def _sender(tenant: str, sender_code: str) -> str:
    return f"{tenant}\x1f{sender_code}"


# ---------------------------------------------------------------- writes

@dataclass(frozen=True)
class Digested:
    """What :func:`put_message` needs computed from a message's bytes, worked out before the
    write transaction (so the writer holds the write lock for the SQL alone)."""

    sha256: str
    envelope_head: bytes | None
    envelope_tail: bytes | None


def digest(m: NewMessage) -> Digested:
    """The message's SHA-256 and its envelope split around the message's bytes (as the maker
    of the envelope gave it, if the envelope was not built or the lengths agree; else found
    by search)."""
    parts = m.envelope_parts
    if parts is not None:
        head, tail = parts
        if not m.envelope or (len(head) + _b64_len(len(m.data)) + len(tail) == len(m.envelope)
                              and m.envelope.startswith(head) and m.envelope.endswith(tail)):
            return Digested(m.sha256, head, tail)
    return Digested(m.sha256, *_envelope_parts(m.envelope, m.data))


def _b64_len(n: int) -> int:
    return (n + 2) // 3 * 4


_HEAD = "SELECT chain_hash FROM message WHERE tenant = ? AND sender_code = ? ORDER BY id DESC LIMIT 1"
_IN_CHUNK = 512  # guids per ``IN (...)``: well under SQLite's 32,766 bound parameters


def put_message(conn: sqlite3.Connection, m: NewMessage, now_us: int, d: Digested | None = None) -> PutResult:
    """Store, index, chain and enqueue ``m``; the first result again if these bytes are stored.
    ``d`` is ``digest(m)`` if the caller computed it already.  Raises ConflictError if its guid
    was used with other content."""
    (result,) = put_messages(conn, [(m, now_us, d or digest(m))])
    if isinstance(result, GatewayError):
        raise result
    return result


class _Stored(NamedTuple):
    """A message in the store (or written earlier in the same batch), as a repeat of it sees it."""

    id: int
    sha256: str
    received_us: int
    chain_hash: str


# One row type per table :func:`put_messages` writes: the field names are the column names.
class _MessageRow(NamedTuple):
    id: int
    tenant: str
    sender_code: str
    message_type: str
    guid: str
    cop_msg_id: str
    sha256: str
    data: bytes
    received_us: int
    prev_chain: str
    chain_hash: str


class _EditionRow(NamedTuple):  # message_edition
    message_id: int
    edition: str


class _KeyRow(NamedTuple):  # message_key
    message_id: int
    record_no: int
    name: str
    value: str


class _SubscriberRow(NamedTuple):  # subscriber
    message_id: int
    position: int
    dxp_address: str
    status: str


class _StateRow(NamedTuple):  # declaration_state
    message_id: int
    message_type: str
    state: str
    updated_us: int


class _OutboxRow(NamedTuple):  # outbox
    message_id: int
    sender: str
    envelope: bytes
    enqueued_us: int
    envelope_head: bytes | None
    envelope_tail: bytes | None


class _RecordGuidRow(NamedTuple):  # record_guid
    message_id: int
    record_no: int
    guid: str


class _ParcelDocRow(NamedTuple):  # parcel_doc
    message_id: int
    record_no: int
    message_type: str
    ebp_code: str
    order_no: str
    fields: str


class _HoldRow(NamedTuple):  # outbox_hold
    message_id: int
    ebp_code: str
    order_no: str
    held_us: int


@dataclass
class _NewRows:
    """The rows of a batch of new messages, table by table, written by :meth:`insert`."""

    message: list[_MessageRow] = field(default_factory=list)
    message_edition: list[_EditionRow] = field(default_factory=list)
    message_key: list[_KeyRow] = field(default_factory=list)
    subscriber: list[_SubscriberRow] = field(default_factory=list)
    declaration_state: list[_StateRow] = field(default_factory=list)
    outbox: list[_OutboxRow] = field(default_factory=list)
    record_guid: list[_RecordGuidRow] = field(default_factory=list)
    parcel_doc: list[_ParcelDocRow] = field(default_factory=list)
    outbox_hold: list[_HoldRow] = field(default_factory=list)

    def add(self, row: _MessageRow, m: NewMessage, d: Digested) -> None:
        """``row`` and the rows that go with it: keys, subscribers, state and outbox entry (the
        envelope kept as the parts around the message's bytes where it can be)."""
        mid, now_us = row.id, row.received_us
        self.message.append(row)
        if m.edition is not None:
            self.message_edition.append(_EditionRow(mid, m.edition))
        self.message_key.extend(_KeyRow(mid, n, k, v) for n, rec in enumerate(m.business_keys)
                                for k, v in rec.items())
        self.subscriber.extend(_SubscriberRow(mid, n, s.dxp_address, s.status)
                               for n, s in enumerate(m.subscribers))
        self.declaration_state.append(_StateRow(mid, m.message_type, st.State.DECLARED.value, now_us))
        whole = b"" if d.envelope_head is not None else m.envelope
        self.outbox.append(_OutboxRow(mid, _sender(m.tenant, m.sender_code), whole, now_us,
                                      d.envelope_head, d.envelope_tail))
        self.record_guid.extend(_RecordGuidRow(mid, n, g) for n, g in enumerate(m.record_guids) if g)
        self.parcel_doc.extend(_ParcelDocRow(mid, p.record_no, m.message_type, p.ebp_code, p.order_no,
                                             p.fields) for p in m.parcel_docs)
        if m.held:
            first = m.parcel_docs[0] if m.parcel_docs else None
            self.outbox_hold.append(_HoldRow(mid, first.ebp_code if first else "",
                                             first.order_no if first else "", now_us))

    def insert(self, conn: sqlite3.Connection) -> None:
        # message first: the other tables refer to it
        for table in ("message", "message_edition", "message_key", "subscriber", "declaration_state",
                      "outbox", "record_guid", "parcel_doc", "outbox_hold"):
            _insert_rows(conn, table, getattr(self, table))


def put_messages(conn: sqlite3.Connection,
                 items: Sequence[tuple[NewMessage, int, Digested]]) -> list[PutResult | GatewayError]:
    """Store ``(message, now_us, digest)`` items in order, as one bulk write.

    The rows, ids, chain links and answers are exactly those of storing each item in its own
    transaction, in turn (duplicates and reused guids within ``items`` included); the
    group-commit writer uses it so that a batch costs a few statements per table rather
    than several per message.  The guid is the root guid of ``data``, so equal bytes share
    a guid: one unique index (tenant, guid) serves both the duplicate and the conflict check.
    A reused guid is returned as its ConflictError (that item writes nothing); anything
    raised leaves the caller to roll back and go one by one.
    """
    stored = _stored(conn, [m for m, _, _ in items])
    # The ids are given here, not by the INSERT, because the other tables' rows need them
    # first: MAX(id) + 1 onward, as SQLite would give them (safe: the caller holds the write
    # transaction, and message has no AUTOINCREMENT to keep in step).
    (last_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM message").fetchone()
    heads: dict[tuple[str, str], str] = {}  # each sender's chain head, as this batch moves it
    rows = _NewRows()
    out: list[PutResult | GatewayError] = []
    view = _BatchVersions(conn)
    for m, now_us, d in items:
        seen = stored.get((m.tenant, m.guid))
        if seen is not None:
            out.append(_repeat(m, d, seen))
            continue
        if m.guard is not None:
            try:
                m.guard(view)
            except GatewayError as exc:
                out.append(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - a bug in a guard fails its own message, not the batch
                log.exception("the guard of message %s (%s) failed", m.guid, m.message_type)
                failed = StoreError(f"the check of message {m.guid} as it was stored failed: {exc!r}")
                failed.__cause__ = exc
                out.append(failed)
                continue
        sender = (m.tenant, m.sender_code)
        prev = heads.get(sender) or _chain_head(conn, *sender)
        last_id += 1
        row = _MessageRow(last_id, m.tenant, m.sender_code, m.message_type, m.guid, m.cop_msg_id, d.sha256,
                          m.data, now_us, prev, chain_hash(prev, d.sha256, m.tenant, m.sender_code,
                                                           m.message_type, m.guid, m.cop_msg_id, now_us))
        heads[sender] = row.chain_hash
        stored[(m.tenant, m.guid)] = _Stored(row.id, row.sha256, now_us, row.chain_hash)
        rows.add(row, m, d)
        view.pending.append((row.id, m, now_us))
        out.append(PutResult(row.id, False, to_dt(now_us), row.chain_hash))
    rows.insert(conn)
    return out


class _BatchVersions:
    """:class:`~gateway.store.Versions` inside :func:`put_messages`: the store through ``conn``
    (the write transaction), and the messages of the batch stored so far, whose rows are
    written only at its end, as their rows will read (declared, not yet sent; held if
    stored held).  ``record_guid`` is not given.  The batch's messages are indexed by key and
    by order number as a guard first asks (a batch can hold a thousand messages: looking
    through all of them for each would cost the square of its size)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pending: list[tuple[int, NewMessage, int]] = []  # (id, message, received_us), oldest first
        self._indexed = 0  # how many of pending are in the indexes
        self._records: dict[tuple[str, str, str], list[tuple[int, int]]] = {}  # (type, key, value) -> at, no
        self._parcels: dict[str, list[tuple[int, int]]] = {}  # order_no -> (at in pending, parcel_docs index)

    def _index(self) -> None:
        for at in range(self._indexed, len(self.pending)):
            m = self.pending[at][1]
            for no, rec in enumerate(m.business_keys):
                for k, v in rec.items():
                    self._records.setdefault((m.message_type, k, v), []).append((at, no))
            for i, p in enumerate(m.parcel_docs):
                self._parcels.setdefault(p.order_no, []).append((at, i))
        self._indexed = len(self.pending)

    def declarations(self, message_type: str, keys: dict[str, str]) -> list[DeclarationRef]:
        if not keys:
            return find_declarations(self.conn, message_type, keys)  # ValueError, as the store's
        self._index()
        k0, v0 = next(iter(keys.items()))
        found = []
        for at, no in reversed(self._records.get((message_type, k0, v0), ())):
            mid, m, now_us = self.pending[at]
            rec = m.business_keys[no]
            if all(rec.get(k) == v for k, v in keys.items()):
                found.append(DeclarationRef(mid, m.tenant, m.message_type, m.guid, m.sender_code, no,
                                            st.State.DECLARED, to_dt(now_us), tuple(m.subscribers)))
        return found + find_declarations(self.conn, message_type, keys, guids=False)

    def parcel_versions(self, ebp_code: str, order_no: str) -> list[ParcelVersion]:
        from .parcelops import parcel_versions  # parcelops builds on this module

        self._index()
        found = parcel_versions(self.conn, ebp_code, order_no)
        for at, i in self._parcels.get(order_no, ()):
            mid, m, now_us = self.pending[at]
            p = m.parcel_docs[i]
            if p.ebp_code in (ebp_code, "") or not ebp_code:
                found.append(ParcelVersion(mid, p.record_no, m.message_type, m.tenant, m.sender_code,
                                           _record_guid(m, p.record_no), st.State.DECLARED, to_dt(now_us),
                                           p.fields, m.held, False, None if p.fields else m.data))
        return found


def _record_guid(m: NewMessage, record_no: int) -> str:
    """The head guid of record ``record_no`` of ``m`` (its root guid if not known)."""
    return (m.record_guids[record_no] if record_no < len(m.record_guids) else "") or m.guid


def _stored(conn: sqlite3.Connection, messages: Sequence[NewMessage]) -> dict[tuple[str, str], _Stored]:
    """The stored messages with the tenant and guid of any of ``messages``."""
    by_tenant: dict[str, set[str]] = {}
    for m in messages:
        by_tenant.setdefault(m.tenant, set()).add(m.guid)
    found: dict[tuple[str, str], _Stored] = {}
    for tenant, guids in by_tenant.items():
        for chunk in _chunks(sorted(guids), _IN_CHUNK):
            for guid, *row in conn.execute(
                    "SELECT guid, id, sha256, received_us, chain_hash FROM message"
                    f" WHERE tenant = ? AND guid IN ({','.join('?' * len(chunk))})", (tenant, *chunk)):
                found[(tenant, guid)] = _Stored(*row)
    return found


def _repeat(m: NewMessage, d: Digested, seen: _Stored) -> PutResult | ConflictError:
    """The answer to a message whose guid is stored: the first result for the same bytes, a
    conflict for other bytes."""
    if seen.sha256 == d.sha256:
        return PutResult(seen.id, True, to_dt(seen.received_us), seen.chain_hash)
    return ConflictError(f"guid {m.guid} was already used by message {seen.id} with different content",
                         field="guid")


def _chain_head(conn: sqlite3.Connection, tenant: str, sender_code: str) -> str:
    """The chain link of the sender's latest stored message, or the genesis link."""
    head = conn.execute(_HEAD, (tenant, sender_code)).fetchone()
    return str(head[0]) if head is not None else GENESIS


_ROWS_PER_INSERT = 256


def _insert_rows(conn: sqlite3.Connection, table: str, rows: Sequence[NamedTuple]) -> None:
    """``INSERT INTO {table} (columns) VALUES (...), (...), ...``, the columns named by the row
    type's fields: many rows per statement, so one step of the statement (and one hand-over of
    the GIL by the sqlite3 module) writes all of them; ``executemany`` would take a step per
    row.  ``table`` is our own text."""
    if not rows:
        return
    columns = rows[0]._fields
    one = "(" + ", ".join("?" * len(columns)) + ")"
    into = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    for chunk in _chunks(rows, max(1, min(_ROWS_PER_INSERT, 32_000 // len(columns)))):  # ≤ 32,766 parameters
        conn.execute(into + ", ".join([one] * len(chunk)), [v for row in chunk for v in row])


def _chunks(items: Sequence[T], most: int) -> Iterator[Sequence[T]]:
    """``items`` in pieces whose sizes are powers of two (largest first, none over ``most``):
    a statement written for ``n`` values exists for a handful of ``n`` only, so the sqlite3
    module's statement cache (128 entries) keeps them all instead of compiling, caching and
    evicting one per batch size."""
    at = 0
    while at < len(items):
        size = min(most, len(items) - at)
        size = 1 << (size.bit_length() - 1)
        yield items[at:at + size]
        at += size


def _envelope_parts(envelope: bytes, data: bytes) -> tuple[bytes | None, bytes | None]:
    """The envelope around the base64 of ``data`` (a DxpMsg's Data), so the message's bytes are
    stored once, not twice; ``(None, None)`` when the envelope does not carry them that way."""
    encoded = base64.b64encode(data)
    at = envelope.find(encoded)
    if at < 0:
        return None, None
    return envelope[:at], envelope[at + len(encoded):]


def _envelope(stored: bytes, head: bytes | None, tail: bytes | None, data: bytes) -> bytes:
    """The envelope exactly as it was given to :func:`put_message`."""
    if head is None or tail is None:
        return stored
    return head + base64.b64encode(data) + tail


# The senders with pending envelopes, one index seek each (a skip scan of ``outbox_queue``),
# that have none out on a live lease; with the id of each one's oldest pending envelope.
_NOT_HELD = ("AND NOT EXISTS (SELECT 1 FROM outbox_hold h WHERE h.message_id = {t}.message_id"
             " AND h.released_us IS NULL)")
_LEASABLE_SENDERS = """
WITH RECURSIVE pending(sender) AS (
    SELECT (SELECT MIN(sender) FROM outbox WHERE acked_us IS NULL)
    UNION ALL
    SELECT (SELECT MIN(o.sender) FROM outbox o WHERE o.acked_us IS NULL AND o.sender > pending.sender)
    FROM pending WHERE pending.sender IS NOT NULL)
SELECT p.sender, (SELECT MIN(q.id) FROM outbox q WHERE q.sender = p.sender AND q.acked_us IS NULL {held})
FROM pending p
WHERE p.sender IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM outbox b WHERE b.sender = p.sender AND b.acked_us IS NULL AND b.lease_until_us > ?)"""


def lease_outbox(conn: sqlite3.Connection, limit: int, now_us: int, lease_us: int,
                 holds: bool = True) -> list[OutboxItem]:
    """Lease the oldest available envelopes of senders with nothing currently leased: the
    ``limit`` smallest ids among those senders' pending envelopes.

    Sender by sender, not envelope by envelope: a sender with a live lease costs one index
    seek however long its queue, and only the senders whose oldest envelope is among the
    ``limit`` oldest heads can contribute, each at most ``limit`` envelopes.  Envelopes held back
    by the pre-flight comparison (``outbox_hold``, from migration 10: ``holds``) are passed over.
    """
    senders_sql = _LEASABLE_SENDERS.format(held=_NOT_HELD.format(t="q") if holds else "")
    held_sql = _NOT_HELD.format(t="o") if holds else ""
    if limit < 1:
        return []
    heads = sorted((first, sender) for sender, first in conn.execute(senders_sql, (now_us,))
                   if first is not None)[:limit]  # None: every pending envelope of the sender is held
    if not heads:
        return []
    # No envelope younger than the limit-th oldest head can be among the limit oldest.
    bound = heads[-1][0] if len(heads) == limit else None
    ids: list[int] = []
    for _, sender in heads:
        ids += [i for (i,) in conn.execute(
            f"SELECT id FROM outbox o WHERE sender = ? AND acked_us IS NULL AND id <= ? {held_sql}"
            " ORDER BY id LIMIT ?",
            (sender, bound if bound is not None else MAX_ID, limit))]
    ids = heapq.nsmallest(limit, ids)
    rows = []
    for at in range(0, len(ids), _IN_CHUNK):
        chunk = ids[at:at + _IN_CHUNK]
        rows += conn.execute(
            "SELECT o.id, o.message_id, o.envelope, o.attempts, o.envelope_head, o.envelope_tail, m.data"
            " FROM outbox o JOIN message m ON m.id = o.message_id"
            f" WHERE o.id IN ({','.join('?' * len(chunk))}) ORDER BY o.id", chunk).fetchall()
    conn.executemany("UPDATE outbox SET attempts = attempts + 1, lease_until_us = ? WHERE id = ?",
                     [(now_us + lease_us, r[0]) for r in rows])
    return [OutboxItem(r[0], r[1], _envelope(r[2], r[4], r[5], r[6]), r[3] + 1) for r in rows]


def ack_outbox(conn: sqlite3.Connection, ids: Sequence[int], now_us: int) -> int:
    """Acknowledge envelopes and move their declarations to ``sent``; returns how many were new."""
    done = 0
    for oid in ids:
        row = conn.execute("UPDATE outbox SET acked_us = ?, lease_until_us = NULL"
                           " WHERE id = ? AND acked_us IS NULL RETURNING message_id",
                           (now_us, oid)).fetchone()
        if row is None:
            continue
        done += 1
        _set_state(conn, row[0], st.State.SENT, now_us)
    return done


def _set_state(conn: sqlite3.Connection, message_id: int, target: st.State, now_us: int) -> None:
    (current,) = conn.execute("SELECT state FROM declaration_state WHERE message_id = ?",
                              (message_id,)).fetchone()
    tr = st.advance_to(st.State(current), target)
    if tr.changed:
        conn.execute("UPDATE declaration_state SET state = ?, updated_us = ? WHERE message_id = ?",
                     (tr.after.value, now_us, message_id))


def put_receipt(conn: sqlite3.Connection, r: NewReceipt, now_us: int) -> ReceiptResult:
    """Store a receipt record; link and deliver it, or file it as a dead letter."""
    sha = r.sha256
    conn.execute("INSERT OR IGNORE INTO receipt_blob VALUES (?, ?)", (sha, r.data))
    row = conn.execute("SELECT id FROM receipt WHERE blob_sha256 = ? AND record_no = ?",
                       (sha, r.record_no)).fetchone()
    if row is not None:
        return _existing_receipt(conn, row[0])
    # RETURNING, not lastrowid: the same statement serves PostgreSQL (gateway/store/postgres.py)
    (rid,) = conn.execute(
        "INSERT INTO receipt (blob_sha256, record_no, message_type, guid, status, return_time, info,"
        " received_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (sha, r.record_no, r.message_type, r.guid, r.status.strip(), r.return_time, r.info,
         now_us)).fetchone()
    conn.executemany("INSERT INTO receipt_key VALUES (?, ?, ?)",
                     [(rid, k, v) for k, v in r.business_keys.items()])
    if r.declaration_id is None:
        conn.execute("INSERT INTO dead_letter VALUES (?, ?, ?, NULL)", (rid, r.reason, now_us))
        return ReceiptResult(rid, None, True, False, None, None, "dead_letter", ())
    result = _link_and_deliver(conn, rid, r.status, r.declaration_id, r.mailboxes, "correlated", now_us)
    _assign_keys(conn, r.declaration_id, r.declaration_record, r.assigned_keys, rid, now_us)
    return result


def _assign_keys(conn: sqlite3.Connection, message_id: int, record_no: int, keys: Mapping[str, str],
                 receipt_id: int, now_us: int) -> None:
    """Record numbers customs assigned to a declaration record (preNo, invtNo, sumNo…) so later
    receipts keyed by them correlate; a field the declaration itself carries is never overridden."""
    declared = {n for (n,) in conn.execute(
        "SELECT name FROM message_key WHERE message_id = ? AND record_no = ?", (message_id, record_no))}
    conn.executemany("INSERT OR IGNORE INTO assigned_key VALUES (?, ?, ?, ?, ?, ?)",
                     [(message_id, record_no, k, v, receipt_id, now_us) for k, v in keys.items()
                      if v and k not in declared])


def reroute_dead_letter(conn: sqlite3.Connection, receipt_id: int, message_id: int,
                        mailboxes: Sequence[str], now_us: int, assign: Sequence[str] = ()) -> ReceiptResult:
    """Resolve an open dead letter by linking it to ``message_id`` and delivering it; the
    receipt's ``assign`` fields become keys of the declaration's first record."""
    row = conn.execute("SELECT r.status FROM dead_letter d JOIN receipt r ON r.id = d.receipt_id"
                       " WHERE d.receipt_id = ? AND d.resolved_us IS NULL", (receipt_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no open dead letter {receipt_id}")
    conn.execute("UPDATE dead_letter SET resolved_us = ? WHERE receipt_id = ?", (now_us, receipt_id))
    result = _link_and_deliver(conn, receipt_id, row[0], message_id, mailboxes, "rerouted", now_us)
    if assign:
        keys = {name: value for name, value in conn.execute(
            "SELECT name, value FROM receipt_key WHERE receipt_id = ?", (receipt_id,)) if name in assign}
        _assign_keys(conn, message_id, 0, keys, receipt_id, now_us)
    return result


def _link_and_deliver(conn: sqlite3.Connection, receipt_id: int, status: str, declaration_id: int,
                      mailboxes: Sequence[str], via: str, now_us: int) -> ReceiptResult:
    row = conn.execute("SELECT m.tenant, s.state FROM message m JOIN declaration_state s"
                       " ON s.message_id = m.id WHERE m.id = ?", (declaration_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"declaration {declaration_id} does not exist")
    tr = st.advance(st.State(row[1]), status)
    if tr.changed:
        conn.execute("UPDATE declaration_state SET state = ?, updated_us = ? WHERE message_id = ?",
                     (tr.after.value, now_us, declaration_id))
    conn.execute("INSERT INTO receipt_link VALUES (?, ?, ?, ?, ?)",
                 (receipt_id, declaration_id, via, tr.outcome, now_us))
    tenants = tuple(dict.fromkeys([row[0], *mailboxes]))
    # seq: the tenant's own numbering, so its cursors reveal nothing of other tenants' mail.
    conn.executemany("INSERT OR IGNORE INTO mailbox (tenant, receipt_id, declaration_id, delivered_us, seq)"
                     " VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM mailbox WHERE tenant = ?))",
                     [(t, receipt_id, declaration_id, now_us, t) for t in tenants])
    return ReceiptResult(receipt_id, declaration_id, False, False, tr.before, tr.after, tr.outcome, tenants)


def _existing_receipt(conn: sqlite3.Connection, receipt_id: int) -> ReceiptResult:
    link = conn.execute("SELECT l.declaration_id, s.state FROM receipt_link l JOIN declaration_state s"
                        " ON s.message_id = l.declaration_id WHERE l.receipt_id = ?",
                        (receipt_id,)).fetchone()
    if link is None:
        return ReceiptResult(receipt_id, None, True, True, None, None, "duplicate", ())
    tenants = tuple(t for (t,) in conn.execute(
        "SELECT tenant FROM mailbox WHERE receipt_id = ? ORDER BY cursor", (receipt_id,)))
    current = st.State(link[1])
    return ReceiptResult(receipt_id, link[0], False, True, current, current, "duplicate", tenants)


def ack_mailbox(conn: sqlite3.Connection, tenant: str, cursor: int) -> None:
    """Move the tenant's read mark forward to ``cursor``, clamped to the tenant's newest item."""
    (top,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM mailbox WHERE tenant = ?",
                          (tenant,)).fetchone()
    mark = max(0, min(cursor, top))
    conn.execute("INSERT INTO mailbox_ack VALUES (?, ?)"
                 " ON CONFLICT (tenant) DO UPDATE SET cursor = MAX(cursor, excluded.cursor)", (tenant, mark))


# ---------------------------------------------------------------- reads

def _subscribers(conn: sqlite3.Connection, message_id: int) -> tuple[Subscriber, ...]:
    return tuple(Subscriber(a, s) for a, s in conn.execute(
        "SELECT dxp_address, status FROM subscriber WHERE message_id = ? ORDER BY position", (message_id,)))


def _message_keys(conn: sqlite3.Connection, message_id: int) -> tuple[dict[str, str], ...]:
    records: dict[int, dict[str, str]] = {}
    for n, k, v in conn.execute("SELECT record_no, name, value FROM message_key WHERE message_id = ?",
                                (message_id,)):
        records.setdefault(n, {})[k] = v
    return tuple(records.get(n, {}) for n in range(max(records, default=-1) + 1))


def _receipt_keys(conn: sqlite3.Connection, receipt_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for rid in receipt_ids:
        rows = conn.execute("SELECT name, value FROM receipt_key WHERE receipt_id = ?", (rid,)).fetchall()
        out[rid] = {k: v for k, v in rows}
    return out


def get_message(conn: sqlite3.Connection, message_id: int, tenant: str) -> MessageRecord | None:
    """The tenant's declaration with keys, subscribers and timeline, or ``None``."""
    row = conn.execute(
        "SELECT m.id, m.tenant, m.message_type, m.guid, m.sender_code, s.state, m.received_us, m.data,"
        " e.edition FROM message m JOIN declaration_state s ON s.message_id = m.id"
        " LEFT JOIN message_edition e ON e.message_id = m.id WHERE m.id = ? AND m.tenant = ?",
        (message_id, tenant)).fetchone()
    if row is None:
        return None
    timeline = tuple(TimelineEntry(r[0], r[1], r[2], r[3], r[4], to_dt(r[5])) for r in conn.execute(
        "SELECT r.id, r.message_type, r.status, r.return_time, r.info, r.received_us FROM receipt_link l"
        " JOIN receipt r ON r.id = l.receipt_id WHERE l.declaration_id = ? ORDER BY r.return_time, r.id",
        (message_id,)))
    return MessageRecord(row[0], row[1], row[2], row[3], row[4], _message_keys(conn, message_id),
                         _subscribers(conn, message_id), st.State(row[5]), to_dt(row[6]), row[7], timeline,
                         row[8])


_KEY_MATCH = ("(SELECT message_id, record_no FROM message_key WHERE name = ? AND value = ?"
              " UNION SELECT message_id, record_no FROM assigned_key WHERE name = ? AND value = ?)")


_KEY_HELD = ("(EXISTS (SELECT 1 FROM message_key WHERE name = ? AND value = ?)"
             " OR EXISTS (SELECT 1 FROM assigned_key WHERE name = ? AND value = ?))")


def _each_key_held(conn: sqlite3.Connection, pairs: list[tuple[str, str]]) -> bool:
    """Whether every (name, value) of ``pairs`` is held by some record, declared or assigned.
    When one is held by none, no record holds them all, and :func:`find_declarations` has
    nothing to find: two index probes per pair instead of its join, which materialises a UNION
    per key (counted with callgrind: ~24,000 instructions against ~95,000 for one key)."""
    (held,) = conn.execute("SELECT " + " AND ".join([_KEY_HELD] * len(pairs)),
                           [p for name, value in pairs for p in (name, value, name, value)]).fetchone()
    return bool(held)


def find_declarations(conn: sqlite3.Connection, message_type: str,
                      keys: dict[str, str], guids: bool = True) -> list[DeclarationRef]:
    """Declarations of ``message_type`` with one record holding every pair of ``keys``, declared
    or assigned later by customs (``assigned_key``); newest first.  ``guids``: the schema has
    ``record_guid`` (migration 10), so each ref carries its record's head guid."""
    pairs = sorted(keys.items())
    if not pairs:
        raise ValueError("find_declarations needs at least one key")
    if not _each_key_held(conn, pairs):
        return []  # the usual new declaration: answered by index probes, without the join below
    joins = "".join(f" JOIN {_KEY_MATCH} k{i} ON k{i}.message_id = k0.message_id"
                    f" AND k{i}.record_no = k0.record_no" for i in range(1, len(pairs)))
    params: list[str] = [p for name, value in pairs for p in (name, value, name, value)]
    rows = conn.execute(
        "SELECT m.id, m.tenant, m.message_type, m.guid, m.sender_code, k0.record_no, s.state, m.received_us,"
        f" {'g.guid' if guids else 'NULL'}"
        f" FROM {_KEY_MATCH} k0{joins} JOIN message m ON m.id = k0.message_id"
        " JOIN declaration_state s ON s.message_id = m.id"
        + (" LEFT JOIN record_guid g ON g.message_id = m.id AND g.record_no = k0.record_no"
           if guids else "") +
        " WHERE m.message_type = ? ORDER BY m.id DESC, k0.record_no",
        (*params, message_type)).fetchall()
    return [DeclarationRef(r[0], r[1], r[2], r[3], r[4], r[5], st.State(r[6]), to_dt(r[7]),
                           _subscribers(conn, r[0]), r[8] or "") for r in rows]


def declaration(conn: sqlite3.Connection, message_id: int) -> DeclarationRef | None:
    """The declaration ``message_id`` of any tenant (record 0), or ``None``."""
    r = conn.execute(
        "SELECT m.id, m.tenant, m.message_type, m.guid, m.sender_code, s.state, m.received_us"
        " FROM message m JOIN declaration_state s ON s.message_id = m.id WHERE m.id = ?",
        (message_id,)).fetchone()
    if r is None:
        return None
    return DeclarationRef(r[0], r[1], r[2], r[3], r[4], 0, st.State(r[5]), to_dt(r[6]),
                          _subscribers(conn, r[0]))


def find_by_cop_msg_id(conn: sqlite3.Connection, cop_msg_id: str) -> DeclarationRef | None:
    """The newest declaration sent in the envelope with ``cop_msg_id`` (record 0), or ``None``."""
    r = conn.execute(
        "SELECT m.id, m.tenant, m.message_type, m.guid, m.sender_code, s.state, m.received_us"
        " FROM message m JOIN declaration_state s ON s.message_id = m.id WHERE m.cop_msg_id = ?"
        " ORDER BY m.id DESC LIMIT 1", (cop_msg_id,)).fetchone()
    if r is None:
        return None
    return DeclarationRef(r[0], r[1], r[2], r[3], r[4], 0, st.State(r[5]), to_dt(r[6]),
                          _subscribers(conn, r[0]))


def declarations_by_cop_msg_id(conn: sqlite3.Connection, cop_msg_id: str) -> list[DeclarationRef]:
    """Every declaration sent in an envelope with ``cop_msg_id`` (record 0), newest first: a sender
    chooses its CopMsgId, so two tenants may have used the same one."""
    rows = conn.execute(
        "SELECT m.id, m.tenant, m.message_type, m.guid, m.sender_code, s.state, m.received_us"
        " FROM message m JOIN declaration_state s ON s.message_id = m.id WHERE m.cop_msg_id = ?"
        " ORDER BY m.id DESC", (cop_msg_id,)).fetchall()
    return [DeclarationRef(r[0], r[1], r[2], r[3], r[4], 0, st.State(r[5]), to_dt(r[6]),
                           _subscribers(conn, r[0])) for r in rows]


def mailbox(conn: sqlite3.Connection, tenant: str, after: int | None, limit: int) -> list[MailItem]:
    """The tenant's deliveries after ``after`` (``None``: after its read mark), oldest first."""
    if after is None:
        row = conn.execute("SELECT cursor FROM mailbox_ack WHERE tenant = ?", (tenant,)).fetchone()
        after = row[0] if row is not None else 0
    rows = conn.execute(
        "SELECT mb.seq, mb.receipt_id, mb.declaration_id, m.message_type, m.guid, r.message_type,"
        " r.record_no, r.status, r.return_time, r.info, b.data, mb.delivered_us FROM mailbox mb"
        " JOIN receipt r ON r.id = mb.receipt_id JOIN receipt_blob b ON b.sha256 = r.blob_sha256"
        " JOIN message m ON m.id = mb.declaration_id"
        " WHERE mb.tenant = ? AND mb.seq > ? ORDER BY mb.seq LIMIT ?",
        (tenant, after, limit)).fetchall()
    keys = _receipt_keys(conn, (r[1] for r in rows))
    return [MailItem(cursor=cursor, receipt_id=receipt_id, message_id=message_id, declaration_type=decl_type,
                     declaration_guid=decl_guid, message_type=mtype, record_no=record_no, status=status,
                     return_time=return_time, info=info, business_keys=keys[receipt_id], data=data,
                     delivered_at=to_dt(delivered_us))
            for (cursor, receipt_id, message_id, decl_type, decl_guid, mtype, record_no, status, return_time,
                 info, data, delivered_us) in rows]


def dead_letters(conn: sqlite3.Connection, limit: int) -> list[DeadLetter]:
    """Open dead letters, oldest first."""
    rows = conn.execute(
        "SELECT d.receipt_id, r.message_type, r.guid, r.status, r.return_time, r.info, d.reason,"
        " r.received_us FROM dead_letter d JOIN receipt r ON r.id = d.receipt_id WHERE d.resolved_us IS NULL"
        " ORDER BY d.receipt_id LIMIT ?", (limit,)).fetchall()
    keys = _receipt_keys(conn, (r[0] for r in rows))
    return [DeadLetter(r[0], r[1], r[2], r[3], r[4], r[5], keys[r[0]], r[6], to_dt(r[7])) for r in rows]


def outbox_depth(conn: sqlite3.Connection) -> int:
    """Envelopes not yet acknowledged (kept by triggers: one row read, however deep)."""
    row = conn.execute("SELECT n FROM tally WHERE name = 'outbox_pending' AND k1 = '' AND k2 = ''").fetchone()
    return int(row[0]) if row is not None else 0


@dataclass(frozen=True)
class Tally:
    """The counts the triggers keep (migration 5): per (message_type, state), per (message_type,
    returnStatus), pending envelopes, open dead letters, and unread mail per tenant."""

    declarations: dict[tuple[str, str], int]
    receipts: dict[tuple[str, str], int]
    outbox_pending: int
    dead_letters_open: int
    mailbox_unacked: dict[str, int]


def tally(conn: sqlite3.Connection) -> Tally:
    """The kept counts, read from the ``tally`` table (a few rows, whatever the store's size)."""
    rows = conn.execute("SELECT name, k1, k2, n FROM tally").fetchall()
    return _tally_of(rows)


def tally_by_scan(conn: sqlite3.Connection) -> Tally:
    """The same counts computed from the rows themselves (whole-index reads: for checking the
    kept counts, not for every request)."""
    rows: list[tuple[str, str, str, int]] = []
    for name, query in (
            ("declaration_state",
             "SELECT message_type, state, COUNT(*) FROM declaration_state GROUP BY 1, 2"),
            ("receipt", "SELECT message_type, status, COUNT(*) FROM receipt GROUP BY 1, 2"),
            ("outbox_pending", "SELECT '', '', COUNT(*) FROM outbox WHERE acked_us IS NULL"),
            ("dead_letter_open", "SELECT '', '', COUNT(*) FROM dead_letter WHERE resolved_us IS NULL"),
            ("mailbox_unacked",
             "SELECT mb.tenant, '', COUNT(*) FROM mailbox mb LEFT JOIN mailbox_ack a"
             " ON a.tenant = mb.tenant WHERE mb.seq > COALESCE(a.cursor, 0) GROUP BY 1")):
        rows += [(name, k1, k2, n) for k1, k2, n in conn.execute(query)]
    return _tally_of(rows)


def _tally_of(rows: Iterable[tuple[str, str, str, int]]) -> Tally:
    found: dict[str, dict[tuple[str, str], int]] = {}
    for name, k1, k2, n in rows:
        if n:  # a count that went back to 0 is no row at all, as in a scan
            found.setdefault(name, {})[(k1, k2)] = n
    return Tally(found.get("declaration_state", {}), found.get("receipt", {}),
                 sum(found.get("outbox_pending", {}).values()),
                 sum(found.get("dead_letter_open", {}).values()),
                 {k1: n for (k1, _), n in found.get("mailbox_unacked", {}).items()})


def audit(conn: sqlite3.Connection,
          tenant: str | None) -> tuple[int, list[ChainBreak], dict[tuple[str, str], str]]:
    """Recompute chains from the stored bytes: (messages checked, first break per chain, chain heads)."""
    where, params = ("WHERE tenant = ?", (tenant,)) if tenant is not None else ("", ())
    cur = conn.execute(
        "SELECT id, tenant, sender_code, message_type, guid, cop_msg_id, sha256, data, received_us,"
        f" prev_chain, chain_hash FROM message {where} ORDER BY tenant, sender_code, id", params)
    checked = 0
    breaks: dict[tuple[str, str], ChainBreak] = {}
    heads: dict[tuple[str, str], str] = {}
    for mid, ten, sender, mtype, guid, cop, sha, data, rec_us, prev, link in cur:
        checked += 1
        chain = (ten, sender)
        expected_prev = heads.get(chain, GENESIS)
        heads[chain] = link
        if chain in breaks:
            continue
        actual_sha = hashlib.sha256(data if isinstance(data, bytes) else str(data).encode()).hexdigest()
        recomputed = chain_hash(expected_prev, actual_sha, ten, sender, mtype, guid, cop, rec_us)
        if actual_sha != sha:
            breaks[chain] = ChainBreak(ten, sender, mid, "data", actual_sha, sha)
        elif prev != expected_prev:
            breaks[chain] = ChainBreak(ten, sender, mid, "link", expected_prev, prev)
        elif recomputed != link:
            breaks[chain] = ChainBreak(ten, sender, mid, "hash", recomputed, link)
    return checked, list(breaks.values()), heads
