"""Operators' store work: bring a store's schema up to date, and copy a SQLite store into an
empty PostgreSQL one (a site outgrowing SQLite moves its history, chains checked afterwards).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import StoreError
from . import AuditReport, check_url
from .migrations import MIGRATIONS, applied_versions, migrate

# Every table a store holds, parents before children; ``tally`` is left out: the destination's
# triggers count the rows as they arrive.  ``audit_start`` is handled apart (append-only, and the
# destination's migration already wrote one).
TABLES = ("message", "message_edition", "message_key", "subscriber", "declaration_state", "outbox",
          "receipt_blob", "receipt", "receipt_key", "receipt_link", "dead_letter", "assigned_key",
          "mailbox", "mailbox_ack", "audit_entry", "audit_checkpoint",
          "record_guid", "parcel_doc", "parcel_outcome", "outbox_hold", "buyer_spend")
# Identity columns whose sequences must continue after the copied ids.
IDENTITIES = (("outbox", "id"), ("receipt", "id"), ("mailbox", "cursor"), ("audit_entry", "id"),
              ("audit_checkpoint", "id"))


def _sqlite_path(url: str) -> str:
    if not url.startswith("sqlite:///") or url == "sqlite:///":
        raise StoreError(f"expected a sqlite:/// URL of a store file, got {url.split('://', 1)[0]}://…")
    return url[len("sqlite:///"):]


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


def migrate_url(url: str) -> tuple[list[int], int]:
    """Apply the migrations the store at ``url`` lacks (creating it if needed): ``(applied now,
    newest version)``.  Raises ConfigError for an unsupported URL, StoreError if it cannot."""
    check_url(url)
    if _is_postgres(url):
        import psycopg

        from .pgschema import PG_MIGRATIONS
        from .pgschema import migrate as pg_migrate
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as pg:
                return pg_migrate(pg), PG_MIGRATIONS[-1].version
        except psycopg.Error as exc:
            raise StoreError(f"cannot migrate the PostgreSQL store: {' '.join(str(exc).split())}") from exc
    try:
        conn = sqlite3.connect(_sqlite_path(url), isolation_level=None)
        try:
            return migrate(conn), MIGRATIONS[-1].version
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot migrate {url}: {exc}") from exc


@dataclass(frozen=True)
class CopyReport:
    """What :func:`copy_store` copied (rows per table) and the audit of the copy."""

    rows: dict[str, int]
    source: AuditReport
    copy: AuditReport

    @property
    def ok(self) -> bool:
        """The copy's chains and journal verify, and their heads are the source's."""
        return (self.copy.ok and self.copy.heads == self.source.heads
                and self.copy.journal_head == self.source.journal_head)


async def copy_store(source_url: str, target_url: str) -> CopyReport:
    """Copy the SQLite store ``source_url`` (brought to the current schema first) into the empty
    PostgreSQL store ``target_url`` (created if needed) in one transaction, ids kept; then audit
    both.  Raises StoreError when the target holds anything or either cannot be opened."""
    from .postgres import PostgresStore
    from .sqlite import SqliteStore

    if not _is_postgres(target_url):
        raise StoreError("the copy goes into a postgresql:// store")
    path = _sqlite_path(source_url)
    async with SqliteStore(path) as src_store:   # migrates the source to the current schema
        source = await src_store.audit_verify()
    async with PostgresStore(target_url):        # creates and migrates the target
        pass
    import asyncio

    rows = await asyncio.to_thread(_copy_rows, path, target_url)
    async with PostgresStore(target_url) as dst_store:
        copy = await dst_store.audit_verify()
    return CopyReport(rows, source, copy)


def _copy_rows(path: str, target_url: str) -> dict[str, int]:
    import psycopg

    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        src.execute("BEGIN")  # one snapshot of the source
        if applied_versions(src) != {m.version for m in MIGRATIONS}:
            raise StoreError(f"{path}: schema is not the current one; open it with this gateway first")
        with psycopg.connect(target_url, autocommit=True) as dst, dst.transaction():
            for table in ("message", "receipt", "mailbox", "audit_entry"):
                (n,) = dst.execute(f"SELECT COUNT(*) FROM {table}").fetchone() or (0,)
                if n:
                    raise StoreError(f"the target store is not empty ({table} holds {n} rows); "
                                     "copy into a new schema")
            counts = {table: _copy_table(src, dst, table) for table in TABLES}
            start = src.execute("SELECT message_id, receipt_id, cursor FROM audit_start").fetchone()
            if start is not None:
                # The journal began where the source's began: its start row, not the copy's.
                dst.execute("ALTER TABLE audit_start DISABLE TRIGGER audit_start_no_change")
                dst.execute("DELETE FROM audit_start")
                dst.execute("INSERT INTO audit_start VALUES (%s, %s, %s)", start)
                dst.execute("ALTER TABLE audit_start ENABLE TRIGGER audit_start_no_change")
            for table, column in IDENTITIES:
                dst.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                            f" COALESCE(MAX({column}), 0) + 1, false) FROM {table}")
        return counts
    except psycopg.Error as exc:
        raise StoreError(f"copy failed: {' '.join(str(exc).split())}") from exc
    finally:
        src.close()


def _copy_table(src: sqlite3.Connection, dst: Any, table: str) -> int:
    """Rows of ``table`` from ``src`` into ``dst`` by COPY (the destination's triggers run)."""
    columns: Sequence[str] = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
    names = ", ".join(columns)
    n = 0
    with dst.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in src.execute(f"SELECT {names} FROM {table} ORDER BY rowid"
                               if table not in _WITHOUT_ROWID else f"SELECT {names} FROM {table}"):
            copy.write_row(row)
            n += 1
    return n


_WITHOUT_ROWID = {"message_key", "subscriber", "receipt_blob", "receipt_key", "assigned_key", "record_guid",
                  "parcel_doc", "parcel_outcome", "buyer_spend"}
