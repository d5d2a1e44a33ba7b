"""Checking the audit journal and signed checkpoint claims against the rows (read-only).

:func:`verify` recomputes every journal entry from the rows as they are now and the chain
from genesis; :func:`compare` sets a signed checkpoint's claims against that; :func:`integrity`
is SQLite's own check of the file.  Each finding is an :class:`~gateway.store.AuditProblem`
saying what and where.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import AuditProblem, CheckpointClaim, sqlops
from .journal import GENESIS, PART_NAMES, PARTS, WHAT, as_bytes, digest_of, link_of, start_of


@dataclass
class JournalCheck:
    """What :func:`verify` found."""

    entries: int = 0
    head: tuple[int, str] = (0, GENESIS)
    problems: list[AuditProblem] = field(default_factory=list)
    links: dict[int, str] = field(default_factory=dict)   # recomputed link at the claimed entry ids


def _changed(old: dict[str, str], new: dict[str, str]) -> list[str]:
    names = sorted(set(old) | set(new))
    return [PART_NAMES.get(name, name) for name in names if old.get(name) != new.get(name)]


def verify(conn: sqlite3.Connection, claimed_ids: Iterable[int] = ()) -> JournalCheck:
    """Recompute every journal entry from the rows and the chain from genesis; note rows the
    journal does not know (written behind the gateway's back) and report the recomputed link at
    ``claimed_ids`` (the entry ids signed checkpoints claim) for the caller to compare."""
    out = JournalCheck()
    wanted = set(claimed_ids)
    prev = GENESIS
    last = 0
    seen: dict[str, set[int]] = {k: set() for k in PARTS}
    chain_broken = False
    for eid, kind, ref, parts_text, digest, at_us, stored_prev, stored_link in conn.execute(
            "SELECT id, kind, ref, parts, digest, at_us, prev, link FROM audit_entry ORDER BY id"):
        out.entries += 1
        last = eid
        where = f"journal entry {eid} ({WHAT.get(kind, kind)} {ref})"
        recorded: dict[str, str] = json.loads(parts_text)
        if digest_of(recorded) != digest and not chain_broken:
            out.problems.append(AuditProblem("journal", where, "the entry's digest does not match its parts"))
        link = link_of(prev, kind, ref, digest_of(recorded), at_us)
        if (stored_prev, stored_link) != (prev, link) and not chain_broken:
            chain_broken = True  # one report: every later link differs too
            out.problems.append(AuditProblem("journal", where, f"chain link differs (recomputed {link}, "
                                             f"stored {stored_link}); entries deleted, inserted or edited"))
        prev = link
        if eid in wanted:
            out.links[eid] = link
        if kind not in PARTS:
            out.problems.append(AuditProblem("journal", where, f"unknown entry kind {kind!r}"))
            continue
        seen[kind].add(ref)
        now = PARTS[kind](conn, ref, from_data=True)
        if now is None:
            out.problems.append(AuditProblem("missing", where, f"the {WHAT[kind]} it records is gone"))
        elif now != recorded:
            what = ", ".join(_changed(recorded, now))
            out.problems.append(AuditProblem("changed", where, f"{what} changed since it was recorded"))
    out.head = (last, prev)
    out.problems += _unjournaled(conn, seen)
    return out


def _unjournaled(conn: sqlite3.Connection, seen: dict[str, set[int]]) -> list[AuditProblem]:
    """Rows newer than the journal's start that no entry records (inserted behind its back)."""
    start = conn.execute("SELECT message_id, receipt_id, cursor FROM audit_start").fetchone()
    if start is None:
        return []
    out: list[AuditProblem] = []
    queries = (("message", "SELECT id FROM message WHERE id > ?", start[0]),
               ("receipt", "SELECT id FROM receipt WHERE id > ?", start[1]),
               ("link", "SELECT receipt_id FROM receipt_link WHERE receipt_id > ?", start[1]),
               ("delivery", "SELECT cursor FROM mailbox WHERE cursor > ?", start[2]))
    for kind, query, after in queries:
        for (ref,) in conn.execute(query, (after,)):
            if ref not in seen[kind]:
                out.append(AuditProblem("unjournaled", f"{WHAT[kind]} {ref}",
                                        "no journal entry records it (written outside the gateway?)"))
    return out


def tail_deleted(conn: sqlite3.Connection) -> AuditProblem | None:
    """Entries deleted from the end of the journal since it was last written, as far as SQLite's
    AUTOINCREMENT counter (``sqlite_sequence``) remembers."""
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit_entry'").fetchone()
    (top,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM audit_entry").fetchone()
    if seq is not None and seq[0] > top:
        return AuditProblem("missing", f"journal entries {top + 1}..{seq[0]}",
                            "deleted from the end of the journal (SQLite's counter went further)")
    return None


def integrity(conn: sqlite3.Connection) -> list[AuditProblem]:
    """SQLite's own check of the file: pages, indexes, constraints."""
    try:
        rows = conn.execute("PRAGMA integrity_check(100)").fetchall()
    except sqlite3.DatabaseError as exc:
        return [AuditProblem("integrity", "database file", str(exc))]
    return [AuditProblem("integrity", "database file", str(r[0])) for r in rows if r[0] != "ok"]


def chain_links_at(conn: sqlite3.Connection, message_ids: Iterable[int]) -> dict[int, tuple[str, str, str]]:
    """Each sender chain recomputed from genesis and from the stored bytes (not the stored links):
    ``message id -> (tenant, sender_code, recomputed link)`` for the ``message_ids`` asked for."""
    wanted = set(message_ids)
    out: dict[int, tuple[str, str, str]] = {}
    if not wanted:
        return out
    heads: dict[tuple[str, str], str] = {}
    for mid, ten, sender, mtype, guid, cop, data, rec_us in conn.execute(
            "SELECT id, tenant, sender_code, message_type, guid, cop_msg_id, data, received_us FROM message"
            " ORDER BY tenant, sender_code, id"):
        sha = hashlib.sha256(as_bytes(data)).hexdigest()
        prev = heads.get((ten, sender), GENESIS)
        link = sqlops.chain_hash(prev, sha, ten, sender, mtype, guid, cop, rec_us)
        heads[(ten, sender)] = link
        if mid in wanted:
            out[mid] = (ten, sender, link)
    return out


def compare(conn: sqlite3.Connection, claim: CheckpointClaim, label: str, check: JournalCheck,
            chains: dict[int, tuple[str, str, str]]) -> list[AuditProblem]:
    """What differs between the store now and signed checkpoint ``claim`` (``check`` and ``chains``
    are :func:`verify` and :func:`chain_links_at` results that include its entry and message ids)."""
    out: list[AuditProblem] = []
    where = f"checkpoint {label}"
    top = check.head[0]
    if claim.entry_id > top:
        out.append(AuditProblem("missing", f"journal entries {top + 1}..{claim.entry_id}",
                                f"{where} signed them; they are gone from the end of the journal"))
    elif claim.entry_id and check.links.get(claim.entry_id) != claim.entry_link:
        now = check.links.get(claim.entry_id)
        out.append(AuditProblem("rewritten", f"journal up to entry {claim.entry_id}",
                                f"differs from what {where} signed (recomputed {now}, "
                                f"signed {claim.entry_link})"))
    start = start_of(conn)
    if start != claim.start:
        out.append(AuditProblem("rewritten", "audit_start", f"the journal's start is {start}; {where} "
                                f"signed {claim.start} (moved to hide rows written behind its back?)"))
    (max_message,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM message").fetchone()
    if claim.max_message_id > max_message:
        out.append(AuditProblem("missing", f"messages {max_message + 1}..{claim.max_message_id}",
                                f"{where} counted them; they are gone"))
    for (tenant, sender), (mid, head) in sorted(claim.chains.items()):
        found = chains.get(mid)
        chain = f"chain {tenant}/{sender} at message {mid}"
        if found is None:
            out.append(AuditProblem("missing", chain, f"the head {where} signed is gone"))
        elif found != (tenant, sender, head):
            out.append(AuditProblem("rewritten", chain, f"recomputed from the stored bytes it is {found[2]}; "
                                    f"{where} signed {head}"))
    return out
