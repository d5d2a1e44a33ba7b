"""The SQLite schema as ordered migrations, recorded in ``schema_version``.

:func:`migrate` applies, in order and each in its own transaction, every migration
newer than the database; reopening an up-to-date database changes nothing.  A
migration, once released, is never edited: a change is a new migration.

Tables (all but the state tables are append-only):

``message``            declarations, exact bytes, hash chain (UPDATE/DELETE refused by triggers)
``message_key``        business key fields per record (operators and correlation search these)
``subscriber``         ``BaseSubscribe`` entries
``declaration_state``  current state of each declaration (mutable)
``outbox``             envelopes for the customs intranet, with lease and ack columns (mutable);
                       an envelope that carries the message's bytes as base64 is kept as the
                       parts around them (``envelope_head``, ``envelope_tail``)
``assigned_key``       numbers customs assigned to a declaration record later (preNo, invtNo,
                       sumNo…), with the receipt that carried them (append-only)
``receipt_blob``       exact bytes of each receipt message, once per content
``receipt``            one row per receipt record; ``receipt_key`` its business keys
``receipt_link``       receipt → declaration (by correlation or by an operator's reroute)
``dead_letter``        receipts that matched nothing (``resolved_us`` set on reroute)
``mailbox``            deliveries per tenant; ``seq`` numbers each tenant's own (its cursors:
                       they say nothing of other tenants), ``cursor`` is the internal row id;
                       ``mailbox_ack`` read marks, in ``seq`` numbers
``audit_entry``        the audit journal: one hash chain over declarations, receipts, links and
                       deliveries (append-only); ``audit_checkpoint`` signed checkpoints of its head;
                       ``audit_start`` where the journal began
``record_guid``        each declaration record's head guid (receipts find their version by it)
``parcel_doc``         the documents of each parcel as the comparison reads them (append-only);
                       ``parcel_outcome`` its latest findings; ``outbox_hold`` held inventory lists;
                       ``buyer_spend`` what each parcel counts against its buyer's annual limit
``tally``              the counts ``/metrics`` and ``/healthz`` show, kept by triggers in the same
                       transaction as the rows they count (so reading them costs the same at a
                       hundred rows as at a hundred million)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import StoreError


@dataclass(frozen=True)
class Migration:
    """One schema step: its version, what it does, and its statements (run in order)."""

    version: int
    description: str
    statements: tuple[str, ...]


_V1 = (
    """CREATE TABLE message (
        id INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        sender_code TEXT NOT NULL,
        message_type TEXT NOT NULL,
        guid TEXT NOT NULL,
        cop_msg_id TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        data BLOB NOT NULL,
        received_us INTEGER NOT NULL,
        prev_chain TEXT NOT NULL,
        chain_hash TEXT NOT NULL,
        UNIQUE (tenant, guid)
    )""",
    "CREATE INDEX message_chain ON message (tenant, sender_code, id)",
    """CREATE TRIGGER message_no_update BEFORE UPDATE ON message
       BEGIN SELECT RAISE(ABORT, 'message rows are append-only'); END""",
    """CREATE TRIGGER message_no_delete BEFORE DELETE ON message
       BEGIN SELECT RAISE(ABORT, 'message rows are append-only'); END""",
    """CREATE TABLE message_key (
        message_id INTEGER NOT NULL REFERENCES message (id),
        record_no INTEGER NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (message_id, record_no, name)
    ) WITHOUT ROWID""",
    "CREATE INDEX message_key_value ON message_key (name, value)",
    """CREATE TABLE subscriber (
        message_id INTEGER NOT NULL REFERENCES message (id),
        position INTEGER NOT NULL,
        dxp_address TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('ALL', 'DATA', 'RET')),
        PRIMARY KEY (message_id, position)
    ) WITHOUT ROWID""",
    """CREATE TABLE declaration_state (
        message_id INTEGER PRIMARY KEY REFERENCES message (id),
        message_type TEXT NOT NULL,
        state TEXT NOT NULL,
        updated_us INTEGER NOT NULL
    )""",
    "CREATE INDEX declaration_state_count ON declaration_state (message_type, state)",
    """CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL UNIQUE REFERENCES message (id),
        sender TEXT NOT NULL,
        envelope BLOB NOT NULL,
        enqueued_us INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_until_us INTEGER,
        acked_us INTEGER
    )""",
    "CREATE INDEX outbox_pending ON outbox (id) WHERE acked_us IS NULL",
    "CREATE INDEX outbox_sender_pending ON outbox (sender, lease_until_us) WHERE acked_us IS NULL",
    """CREATE TABLE receipt_blob (
        sha256 TEXT PRIMARY KEY,
        data BLOB NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE receipt (
        id INTEGER PRIMARY KEY,
        blob_sha256 TEXT NOT NULL REFERENCES receipt_blob (sha256),
        record_no INTEGER NOT NULL,
        message_type TEXT NOT NULL,
        guid TEXT NOT NULL,
        status TEXT NOT NULL,
        return_time TEXT NOT NULL,
        info TEXT NOT NULL,
        received_us INTEGER NOT NULL,
        UNIQUE (blob_sha256, record_no)
    )""",
    "CREATE INDEX receipt_count ON receipt (message_type, status)",
    """CREATE TABLE receipt_key (
        receipt_id INTEGER NOT NULL REFERENCES receipt (id),
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (receipt_id, name)
    ) WITHOUT ROWID""",
    "CREATE INDEX receipt_key_value ON receipt_key (name, value)",
    """CREATE TABLE receipt_link (
        receipt_id INTEGER PRIMARY KEY REFERENCES receipt (id),
        declaration_id INTEGER NOT NULL REFERENCES message (id),
        via TEXT NOT NULL CHECK (via IN ('correlated', 'rerouted')),
        outcome TEXT NOT NULL,
        linked_us INTEGER NOT NULL
    )""",
    "CREATE INDEX receipt_link_declaration ON receipt_link (declaration_id)",
    """CREATE TABLE dead_letter (
        receipt_id INTEGER PRIMARY KEY REFERENCES receipt (id),
        reason TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        resolved_us INTEGER
    )""",
    "CREATE INDEX dead_letter_open ON dead_letter (receipt_id) WHERE resolved_us IS NULL",
    """CREATE TABLE mailbox (
        cursor INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        receipt_id INTEGER NOT NULL REFERENCES receipt (id),
        declaration_id INTEGER NOT NULL REFERENCES message (id),
        delivered_us INTEGER NOT NULL,
        UNIQUE (tenant, receipt_id)
    )""",
    "CREATE INDEX mailbox_tenant ON mailbox (tenant, cursor)",
    """CREATE TABLE mailbox_ack (
        tenant TEXT PRIMARY KEY,
        cursor INTEGER NOT NULL
    )""",
)

_V3 = (
    """CREATE TABLE assigned_key (
        message_id INTEGER NOT NULL REFERENCES message (id),
        record_no INTEGER NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        receipt_id INTEGER NOT NULL REFERENCES receipt (id),
        assigned_us INTEGER NOT NULL,
        PRIMARY KEY (message_id, record_no, name, value)
    ) WITHOUT ROWID""",
    "CREATE INDEX assigned_key_value ON assigned_key (name, value)",
    """CREATE TRIGGER assigned_key_no_update BEFORE UPDATE ON assigned_key
       BEGIN SELECT RAISE(ABORT, 'assigned_key rows are append-only'); END""",
    """CREATE TRIGGER assigned_key_no_delete BEFORE DELETE ON assigned_key
       BEGIN SELECT RAISE(ABORT, 'assigned_key rows are append-only'); END""",
)


def _bump(name: str, k1: str, k2: str, delta: str) -> str:
    """A trigger statement adding ``delta`` to one tally row (created at 0 on first use)."""
    return (f"INSERT INTO tally (name, k1, k2, n) VALUES ('{name}', {k1}, {k2}, {delta})"
            f" ON CONFLICT (name, k1, k2) DO UPDATE SET n = n + excluded.n;")


# The mailbox rows between two read marks of a tenant (ack only ever moves the mark forward,
# and new rows get larger cursors than any mark, see sqlops.ack_mailbox).
_ACKED = "(SELECT COUNT(*) FROM mailbox WHERE tenant = NEW.tenant AND cursor > {lo} AND cursor <= NEW.cursor)"

_V5 = (
    """CREATE TABLE tally (
        name TEXT NOT NULL,
        k1 TEXT NOT NULL DEFAULT '',
        k2 TEXT NOT NULL DEFAULT '',
        n INTEGER NOT NULL,
        PRIMARY KEY (name, k1, k2)
    ) WITHOUT ROWID""",
    f"""CREATE TRIGGER tally_state_insert AFTER INSERT ON declaration_state BEGIN
        {_bump('declaration_state', 'NEW.message_type', 'NEW.state', '1')} END""",
    f"""CREATE TRIGGER tally_state_update AFTER UPDATE OF message_type, state ON declaration_state
        WHEN OLD.state IS NOT NEW.state OR OLD.message_type IS NOT NEW.message_type BEGIN
        {_bump('declaration_state', 'OLD.message_type', 'OLD.state', '-1')}
        {_bump('declaration_state', 'NEW.message_type', 'NEW.state', '1')} END""",
    f"""CREATE TRIGGER tally_receipt_insert AFTER INSERT ON receipt BEGIN
        {_bump('receipt', 'NEW.message_type', 'NEW.status', '1')} END""",
    f"""CREATE TRIGGER tally_outbox_insert AFTER INSERT ON outbox WHEN NEW.acked_us IS NULL BEGIN
        {_bump('outbox_pending', "''", "''", '1')} END""",
    f"""CREATE TRIGGER tally_outbox_ack AFTER UPDATE OF acked_us ON outbox
        WHEN (OLD.acked_us IS NULL) <> (NEW.acked_us IS NULL) BEGIN
        {_bump('outbox_pending', "''", "''", 'CASE WHEN NEW.acked_us IS NULL THEN 1 ELSE -1 END')} END""",
    f"""CREATE TRIGGER tally_dead_letter_insert AFTER INSERT ON dead_letter WHEN NEW.resolved_us IS NULL BEGIN
        {_bump('dead_letter_open', "''", "''", '1')} END""",
    f"""CREATE TRIGGER tally_dead_letter_resolve AFTER UPDATE OF resolved_us ON dead_letter
        WHEN (OLD.resolved_us IS NULL) <> (NEW.resolved_us IS NULL) BEGIN
        {_bump('dead_letter_open', "''", "''",
               'CASE WHEN NEW.resolved_us IS NULL THEN 1 ELSE -1 END')} END""",
    f"""CREATE TRIGGER tally_mailbox_insert AFTER INSERT ON mailbox
        WHEN NEW.cursor > COALESCE((SELECT cursor FROM mailbox_ack WHERE tenant = NEW.tenant), 0) BEGIN
        {_bump('mailbox_unacked', 'NEW.tenant', "''", '1')} END""",
    f"""CREATE TRIGGER tally_mailbox_first_ack AFTER INSERT ON mailbox_ack BEGIN
        {_bump('mailbox_unacked', 'NEW.tenant', "''", '-' + _ACKED.format(lo='0'))} END""",
    f"""CREATE TRIGGER tally_mailbox_ack AFTER UPDATE OF cursor ON mailbox_ack
        WHEN NEW.cursor > OLD.cursor BEGIN
        {_bump('mailbox_unacked', 'NEW.tenant', "''", '-' + _ACKED.format(lo='OLD.cursor'))} END""",
    f"""CREATE TRIGGER tally_mailbox_unack AFTER UPDATE OF cursor ON mailbox_ack
        WHEN NEW.cursor < OLD.cursor BEGIN
        {_bump('mailbox_unacked', 'NEW.tenant', "''",
               "(SELECT COUNT(*) FROM mailbox WHERE tenant = NEW.tenant"
               " AND cursor > NEW.cursor AND cursor <= OLD.cursor)")} END""",
    # The counts so far, once: from here on the triggers keep them.
    """INSERT INTO tally (name, k1, k2, n)
        SELECT 'declaration_state', message_type, state, COUNT(*) FROM declaration_state GROUP BY 2, 3""",
    """INSERT INTO tally (name, k1, k2, n)
        SELECT 'receipt', message_type, status, COUNT(*) FROM receipt GROUP BY 2, 3""",
    """INSERT INTO tally (name, k1, k2, n)
        SELECT 'outbox_pending', '', '', COUNT(*) FROM outbox WHERE acked_us IS NULL""",
    """INSERT INTO tally (name, k1, k2, n)
        SELECT 'dead_letter_open', '', '', COUNT(*) FROM dead_letter WHERE resolved_us IS NULL""",
    """INSERT INTO tally (name, k1, k2, n)
        SELECT 'mailbox_unacked', mb.tenant, '', COUNT(*) FROM mailbox mb
        LEFT JOIN mailbox_ack a ON a.tenant = mb.tenant WHERE mb.cursor > COALESCE(a.cursor, 0) GROUP BY 2""",
)

# The same counts, with mailbox positions as per-tenant sequence numbers (migration 7).
_ACKED_SEQ = "(SELECT COUNT(*) FROM mailbox WHERE tenant = NEW.tenant AND seq > {lo} AND seq <= NEW.cursor)"

_V7 = (
    # The old triggers compare read marks with the global cursor: off while the marks change.
    "DROP TRIGGER tally_mailbox_insert",
    "DROP TRIGGER tally_mailbox_first_ack",
    "DROP TRIGGER tally_mailbox_ack",
    "DROP TRIGGER tally_mailbox_unack",
    "ALTER TABLE mailbox ADD COLUMN seq INTEGER NOT NULL DEFAULT 0",
    """UPDATE mailbox SET seq = numbered.n FROM (
        SELECT cursor, ROW_NUMBER() OVER (PARTITION BY tenant ORDER BY cursor) AS n FROM mailbox) AS numbered
       WHERE mailbox.cursor = numbered.cursor""",
    # A read mark becomes the number of the tenant's items it covered.
    """UPDATE mailbox_ack SET cursor = (SELECT COUNT(*) FROM mailbox mb
        WHERE mb.tenant = mailbox_ack.tenant AND mb.cursor <= mailbox_ack.cursor)""",
    "DROP INDEX mailbox_tenant",
    "CREATE UNIQUE INDEX mailbox_tenant_seq ON mailbox (tenant, seq)",
    f"""CREATE TRIGGER tally_mailbox_insert AFTER INSERT ON mailbox
        WHEN NEW.seq > COALESCE((SELECT cursor FROM mailbox_ack WHERE tenant = NEW.tenant), 0) BEGIN
        {_bump('mailbox_unacked', 'NEW.tenant', "''", '1')} END""",
    f"""CREATE TRIGGER tally_mailbox_first_ack AFTER INSERT ON mailbox_ack BEGIN
        {_bump('mailbox_unacked', 'NEW.tenant', "''", '-' + _ACKED_SEQ.format(lo='0'))} END""",
    f"""CREATE TRIGGER tally_mailbox_ack AFTER UPDATE OF cursor ON mailbox_ack
        WHEN NEW.cursor > OLD.cursor BEGIN
        {_bump('mailbox_unacked', 'NEW.tenant', "''", '-' + _ACKED_SEQ.format(lo='OLD.cursor'))} END""",
    f"""CREATE TRIGGER tally_mailbox_unack AFTER UPDATE OF cursor ON mailbox_ack
        WHEN NEW.cursor < OLD.cursor BEGIN
        {_bump('mailbox_unacked', 'NEW.tenant', "''",
               "(SELECT COUNT(*) FROM mailbox WHERE tenant = NEW.tenant"
               " AND seq > NEW.cursor AND seq <= OLD.cursor)")} END""",
    "DELETE FROM tally WHERE name = 'mailbox_unacked'",
    """INSERT INTO tally (name, k1, k2, n)
        SELECT 'mailbox_unacked', mb.tenant, '', COUNT(*) FROM mailbox mb
        LEFT JOIN mailbox_ack a ON a.tenant = mb.tenant WHERE mb.seq > COALESCE(a.cursor, 0) GROUP BY 2""",
)


def _append_only(table: str) -> tuple[str, str]:
    return (f"""CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
       BEGIN SELECT RAISE(ABORT, '{table} rows are append-only'); END""",
            f"""CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
       BEGIN SELECT RAISE(ABORT, '{table} rows are append-only'); END""")


# Independent of migration 7 (the parser-hardening branch's): it only adds tables.
_V8 = (
    """CREATE TABLE audit_entry (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('message', 'receipt', 'link', 'delivery')),
        ref INTEGER NOT NULL,
        parts TEXT NOT NULL,
        digest TEXT NOT NULL,
        at_us INTEGER NOT NULL,
        prev TEXT NOT NULL,
        link TEXT NOT NULL,
        UNIQUE (kind, ref)
    )""",
    *_append_only("audit_entry"),
    """CREATE TABLE audit_checkpoint (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_us INTEGER NOT NULL,
        entry_id INTEGER NOT NULL,
        document BLOB NOT NULL
    )""",
    *_append_only("audit_checkpoint"),
    # Rows older than the journal are covered by the message chains only; newer rows without a
    # journal entry were written behind the gateway's back.
    """CREATE TABLE audit_start (
        message_id INTEGER NOT NULL, receipt_id INTEGER NOT NULL, cursor INTEGER NOT NULL)""",
    """INSERT INTO audit_start SELECT (SELECT COALESCE(MAX(id), 0) FROM message),
        (SELECT COALESCE(MAX(id), 0) FROM receipt), (SELECT COALESCE(MAX(cursor), 0) FROM mailbox)""",
    *_append_only("audit_start"),
)

# Independent of migration 7 (the parser-hardening branch's): it only adds tables.
_V10 = (
    # The guid of each record's head (status-2 receipts reuse it), so a receipt finds the very
    # version of a document it answers.
    """CREATE TABLE record_guid (
        message_id INTEGER NOT NULL REFERENCES message (id),
        record_no INTEGER NOT NULL,
        guid TEXT NOT NULL,
        PRIMARY KEY (message_id, record_no)
    ) WITHOUT ROWID""",
    "CREATE INDEX record_guid_guid ON record_guid (guid)",
    # The documents of each parcel (order, payment, waybill, inventory list) as the comparison
    # reads them: head and line fields as JSON.  Waybills carry no ebpCode: ebp_code ''.
    """CREATE TABLE parcel_doc (
        message_id INTEGER NOT NULL REFERENCES message (id),
        record_no INTEGER NOT NULL,
        message_type TEXT NOT NULL,
        ebp_code TEXT NOT NULL,
        order_no TEXT NOT NULL,
        fields TEXT NOT NULL,
        PRIMARY KEY (message_id, record_no)
    ) WITHOUT ROWID""",
    "CREATE INDEX parcel_doc_order ON parcel_doc (order_no, ebp_code)",
    *_append_only("parcel_doc"),
    # The latest comparison of each parcel (mutable); basis: the newest message id it saw.
    """CREATE TABLE parcel_outcome (
        ebp_code TEXT NOT NULL,
        order_no TEXT NOT NULL,
        basis INTEGER NOT NULL,
        findings TEXT NOT NULL,
        updated_us INTEGER NOT NULL,
        PRIMARY KEY (ebp_code, order_no)
    ) WITHOUT ROWID""",
    # Inventory lists held back from customs by the pre-flight comparison (released_us set on
    # release); the outbox does not lease a held envelope.
    """CREATE TABLE outbox_hold (
        message_id INTEGER PRIMARY KEY REFERENCES message (id),
        ebp_code TEXT NOT NULL,
        order_no TEXT NOT NULL,
        held_us INTEGER NOT NULL,
        released_us INTEGER,
        released_by TEXT
    )""",
    "CREATE INDEX outbox_hold_open ON outbox_hold (message_id) WHERE released_us IS NULL",
    # What each parcel counts against its buyer's annual limit (exact decimal text).
    """CREATE TABLE buyer_spend (
        buyer_id TEXT NOT NULL,
        year INTEGER NOT NULL,
        ebp_code TEXT NOT NULL,
        order_no TEXT NOT NULL,
        amount TEXT NOT NULL,
        PRIMARY KEY (buyer_id, year, ebp_code, order_no)
    ) WITHOUT ROWID""",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "declarations, outbox, receipts, dead letters, mailboxes", _V1),
    # CEB900 receipts name the declaration only by the CopMsgId of the envelope sent to customs.
    Migration(2, "find declarations by envelope CopMsgId",
              ("CREATE INDEX message_cop_msg_id ON message (cop_msg_id)",)),
    # CEB816/818 (invtNo) and CEB792 (sumNo) name declarations by numbers customs assigned in an
    # earlier receipt; declarations stay append-only, so those numbers live beside them.
    Migration(3, "business keys assigned by customs receipts", _V3),
    # The DXP envelope's Data is the base64 of the declaration's exact bytes: keep only the
    # envelope around it (``envelope`` is then empty), so those bytes are written once.
    Migration(4, "outbox envelopes stored around the message's bytes",
              ("ALTER TABLE outbox ADD COLUMN envelope_head BLOB",
               "ALTER TABLE outbox ADD COLUMN envelope_tail BLOB")),
    # /metrics and /healthz counted rows on every call (whole indexes: slow at millions of
    # declarations); triggers now keep the counts as the rows change.
    Migration(5, "counts kept by triggers (tally)", _V5),
    # Leasing walked the pending outbox in id order, testing each envelope's sender: behind a
    # large sender whose envelopes were out with customs, every lease read all of its queue.
    # Leases now go sender by sender (sqlops.lease_outbox), on each sender's queue in order.
    Migration(6, "outbox queues per sender",
              ("DROP INDEX outbox_pending",
               "CREATE INDEX outbox_queue ON outbox (sender, id) WHERE acked_us IS NULL")),
    # Mailbox cursors were the row id, one counter for every tenant: a tenant saw the gaps other
    # tenants' deliveries left.  Each tenant now counts its own (1, 2, 3, ...); the row id stays
    # internal, and read marks (mailbox_ack.cursor) are in the tenant's own numbers.
    Migration(7, "mailbox cursors per tenant", _V7),
    # issue 15: `cebgw audit verify` could not see a rewrite by whoever holds the file.  One
    # journal chain now covers declarations (bytes, keys, envelope), receipts, links and
    # deliveries, and signed checkpoints of its head are kept (gateway/store/journal.py).
    Migration(8, "audit journal and signed checkpoints", _V8),
    # Two editions of the standard are in use (2018, 202205); each declaration keeps the one it
    # was validated against.  NULL for declarations stored before.
    Migration(9, "the edition of the standard each declaration follows",
              ("""CREATE TABLE message_edition (
                    message_id INTEGER PRIMARY KEY REFERENCES message (id),
                    edition TEXT NOT NULL)""",)),
    # issue 11: document versions, the parcels of the three-order comparison, held inventory
    # lists and buyers' annual totals (gateway/store/parcelops.py).
    Migration(10, "record guids, parcels, held lists, buyer totals", _V10),
)


def current_version(conn: sqlite3.Connection) -> int:
    """The newest applied version, 0 for a fresh database."""
    conn.execute("""CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)""")
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(row[0])


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    """Every applied version (a store made before migration 7 was released has 8 and 9 without 7)."""
    current_version(conn)
    return {int(v) for (v,) in conn.execute("SELECT version FROM schema_version")}


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply the migrations the database lacks, in order; returns the versions applied now.

    A version missing below the newest applied one is applied too: migrations written on
    parallel branches (7 beside 8 and 9) reach a database that got the others first.

    ``conn`` must be in autocommit mode (``isolation_level=None``).  Raises StoreError
    (``CEBGW-STORE-SCHEMA``) if the database is newer than ``migrations`` and
    ValueError if ``migrations`` are not in strictly increasing order.
    """
    versions = [m.version for m in migrations]
    if not versions or versions != sorted(set(versions)) or versions[0] < 1:
        raise ValueError(f"migration versions must be positive and strictly increasing: {versions}")
    newest = versions[-1]
    applied: list[int] = []
    for m in migrations:
        conn.execute("BEGIN IMMEDIATE")  # re-read under the write lock: another process may migrate
        try:
            have = current_version(conn)
            if have > newest:
                raise StoreError(f"database schema version {have} is newer than this gateway ({newest})",
                                 code="CEBGW-STORE-SCHEMA")
            done = {v for (v,) in conn.execute("SELECT version FROM schema_version")}
            if m.version not in done:
                for statement in m.statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?, ?, datetime('now'))",
                             (m.version, m.description))
                applied.append(m.version)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied
