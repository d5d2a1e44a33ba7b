"""A tamper-evident log (issue 15 item 6): every rewrite of a real store is found, and where.

A real server fills a store (declarations of two tenants, receipts delivered, a dead letter
rerouted) and signs a checkpoint on shutdown; the newest is exported to a file kept elsewhere.
Each test edits a copy of that store the way whoever holds the file could (dropping the
append-only triggers first) and runs ``cebgw audit verify`` on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway import audit
from gateway.catalog import load as load_catalog
from gateway.cli.main import main
from gateway.dsig import SoftwareKey, load_key
from gateway.dsig.certgen import issue_rsa
from gateway.sandbox import datadir, samplegen
from gateway.store import journal as jr
from gateway.store import open_store, sqlops
from gateway.xmlio import parse

from .kit import Sandbox, aio, customs_receipt, declaration, running

RECEIPTS = "/v1/customs/receipts"
_TRIGGERS = ("message_no_update", "message_no_delete", "assigned_key_no_update", "assigned_key_no_delete",
             "audit_entry_no_update", "audit_entry_no_delete", "audit_checkpoint_no_update",
             "audit_checkpoint_no_delete", "audit_start_no_update", "audit_start_no_delete")


@dataclass(frozen=True)
class Filled:
    """A store a real server wrote, the checkpoint exported from it, the gateway certificate."""

    db: Path
    exported: Path
    cert: Path
    sandbox: Path


async def _fill(sb: Sandbox) -> None:
    async with running(sb.settings) as api:
        ids = []
        orders = ((301, "CEB311"), (302, "CEB311"), (303, "CEB621"), (304, "CEB311"), (305, "CEB411"))
        for seed, code in orders:
            owner, data = declaration(sb, code, seed=seed)
            status, body = await api.post_xml(sb.token(owner), data)
            assert status == 202, body
            ids.append((owner, code, data, body["id"]))
        for owner, code, data, _ in ids[:3]:
            receipt_type = load_catalog()[code].receipt
            assert receipt_type is not None
            keys = load_catalog()[code].business_keys(parse(data).root)[0]
            receipt = samplegen.build_receipt(receipt_type, dict(keys), status="120")
            posted = customs_receipt(sb, receipt, sb.account(owner)["dxp_id"])
            status, out = await api.post_xml(sb.token("customs"), posted, path=RECEIPTS)
            assert status == 200 and out["records"][0]["outcome"] == "delivered", out
        lost = samplegen.build_receipt("CEB312", {"orderNo": "NOSUCHORDER", "ebpCode": "3301964J31"},
                                       status="120", seed=7)
        status, out = await api.post_xml(sb.token("customs"), customs_receipt(sb, lost, "DXPENT0000458762"),
                                         path=RECEIPTS)
        assert out["records"][0]["outcome"] == "dead_letter", out
        status, rerouted = await api.post_json(sb.token("customs"),
                                               f"/v1/dead-letters/{out['records'][0]['receipt_id']}/reroute",
                                               {"message_id": ids[0][3]})
        assert status == 200, rerouted
        assert (await api.get(None, "/healthz"))[0] == 200


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, sandbox_dir: Path) -> Filled:

    root = tmp_path_factory.mktemp("audit")
    info = datadir.ensure(sandbox_dir, url="http://127.0.0.1:0")
    db = root / "gateway.db"
    settings = datadir.settings_for(sandbox_dir).with_(store_url=f"sqlite:///{db}")
    asyncio.run(_fill(Sandbox(sandbox_dir, info, settings)))
    exported = root / "checkpoint.xml"
    assert main(["audit", "export", "--db", f"sqlite:///{db}", "--out", str(exported)]) == 0
    assert b"CEBGW_AUDIT_CHECKPOINT" in exported.read_bytes()
    return Filled(db, exported, datadir.sandbox_certs() / "gateway-rsa.cert.pem", sandbox_dir)


def _copy(filled: Filled, tmp_path: Path, name: str = "copy") -> Path:
    copy = tmp_path / f"{name}.db"  # a fresh name: an earlier copy's -wal and -shm files stay behind
    shutil.copy(filled.db, copy)
    return copy


def _tamper(db: Path, edit: Callable[[sqlite3.Connection], None]) -> None:
    """Edit the store as its owner could: drop the append-only triggers, change rows."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for name in _TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute("BEGIN")
        edit(conn)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _verify(capsys: pytest.CaptureFixture[str], db: Path, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", "verify", "--db", f"sqlite:///{db}", *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _pinned(filled: Filled) -> tuple[str, ...]:
    return ("--cert", str(filled.cert), "--checkpoint", str(filled.exported))


def _problems(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("PROBLEM", "BROKEN"))]


# ---------------------------------------------------------------- what an owner of the file might do

def _recompute_chain(conn: sqlite3.Connection, from_id: int) -> None:
    """Recompute the sender chain of message ``from_id`` from it onwards, as an attacker would."""
    tenant, sender = conn.execute("SELECT tenant, sender_code FROM message WHERE id = ?",
                                  (from_id,)).fetchone()
    prev = None
    for mid, mtype, guid, cop, data, rec_us, stored_prev in conn.execute(
            "SELECT id, message_type, guid, cop_msg_id, data, received_us, prev_chain FROM message"
            " WHERE tenant = ? AND sender_code = ? AND id >= ? ORDER BY id",
            (tenant, sender, from_id)).fetchall():
        prev = stored_prev if prev is None else prev
        sha = hashlib.sha256(data).hexdigest()
        link = sqlops.chain_hash(prev, sha, tenant, sender, mtype, guid, cop, rec_us)
        conn.execute("UPDATE message SET sha256 = ?, prev_chain = ?, chain_hash = ? WHERE id = ?",
                     (sha, prev, link, mid))
        prev = link


def _recompute_journal(conn: sqlite3.Connection) -> None:
    """Recompute every journal entry from the rows as they are now (the attacker has our code)."""
    prev = jr.GENESIS
    rows = conn.execute("SELECT id, kind, ref, at_us FROM audit_entry ORDER BY id").fetchall()
    for eid, kind, ref, at_us in rows:
        parts = jr.PARTS[kind](conn, ref, from_data=True) or {}
        digest = jr.digest_of(parts)
        link = jr.link_of(prev, kind, ref, digest, at_us)
        conn.execute("UPDATE audit_entry SET parts = ?, digest = ?, prev = ?, link = ? WHERE id = ?",
                     (jr.parts_text(parts), digest, prev, link, eid))
        prev = link


def _edit_message_bytes(conn: sqlite3.Connection) -> int:
    mid, data = conn.execute("SELECT id, data FROM message ORDER BY id LIMIT 1 OFFSET 1").fetchone()
    edited = data.replace(b"</ceb:orderNo>", b"9</ceb:orderNo>", 1)
    assert edited != data
    conn.execute("UPDATE message SET data = ? WHERE id = ?", (edited, mid))
    return int(mid)


# ---------------------------------------------------------------- the tests

def test_an_untouched_store_passes_with_its_signed_checkpoints(filled: Filled, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    db = _copy(filled, tmp_path)
    code, out = _verify(capsys, db, *_pinned(filled))
    assert code == 0 and _problems(out) == [], out
    assert "signed checkpoint(s)" in out and "(pinned)" in out, out
    assert "0 journal entries since the newest" in out, out
    code, out = _verify(capsys, db, "--sandbox", str(filled.sandbox))  # the sandbox's gateway certificate
    assert code == 0 and "(pinned)" in out, out
    capsys.readouterr()
    assert main(["audit", "verify", "--db", f"sqlite:///{db}", "--format", "json"]) == 0
    assert '"ok": true' in capsys.readouterr().out


def test_edited_message_bytes_with_the_chain_recomputed_are_found(
        filled: Filled, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _copy(filled, tmp_path)
    edited: list[int] = []

    def edit(conn: sqlite3.Connection) -> None:
        edited.append(_edit_message_bytes(conn))
        _recompute_chain(conn, edited[0])

    _tamper(db, edit)
    mid = edited[0]
    code, out = _verify(capsys, db)  # the chains recompute, but the journal and the checkpoint do not
    assert code == 1, out
    assert f"(declaration {mid}): the stored bytes, the row itself changed since it was recorded" in out, out
    assert "[rewritten] chain ecommerce/3301960A7Z at message" in out, out  # its head, as signed
    assert not any(line.startswith("BROKEN") for line in out.splitlines()), out  # the plain chain passes


def test_a_rewrite_of_everything_is_found_against_the_exported_checkpoint(
        filled: Filled, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _copy(filled, tmp_path)
    edited: list[int] = []

    def edit(conn: sqlite3.Connection) -> None:
        edited.append(_edit_message_bytes(conn))
        _recompute_chain(conn, edited[0])
        conn.execute("UPDATE message_key SET value = 'REWRITTEN' WHERE message_id = 1 AND name = 'orderNo'")
        _recompute_journal(conn)
        conn.execute("DELETE FROM audit_checkpoint")

    _tamper(db, edit)
    code, out = _verify(capsys, db)  # nothing left in the store to contradict it
    assert code == 0 and "no signed checkpoint" in out, out
    code, out = _verify(capsys, db, *_pinned(filled))
    assert code == 1, out
    assert "[rewritten] journal up to entry" in out and f"checkpoint {filled.exported}" in out, out
    assert "[rewritten] chain ecommerce/3301960A7Z" in out, out
    assert "kept checkpoints were deleted" in out, out

    # ... and signing a new checkpoint needs the gateway's key: one signed with another is refused
    forger = issue_rsa("not-the-gateway")
    store = open_store(f"sqlite:///{db}")

    async def forge() -> None:
        try:
            await audit.checkpoint(store, SoftwareKey(forger.key, forger.cert))
        finally:
            await store.close()

    asyncio.run(forge())
    code, out = _verify(capsys, db, "--cert", str(filled.cert))
    assert code == 1 and "(kept in the store): the KeyInfo certificate is not in the registry" in out, out
    code, out = _verify(capsys, db)  # unpinned, the forged one "verifies" against its own certificate
    assert "not pinned" in out, out


def test_deleted_newest_messages_are_found(filled: Filled, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    for also_journal in (False, True):
        db = _copy(filled, tmp_path, f"deleted-{also_journal}")

        def edit(conn: sqlite3.Connection, also_journal: bool = also_journal) -> None:
            (top,) = conn.execute("SELECT MAX(id) FROM message").fetchone()
            for table in ("message_key", "subscriber", "declaration_state", "outbox"):
                conn.execute(f"DELETE FROM {table} WHERE message_id >= ?", (top - 1,))
            conn.execute("DELETE FROM message WHERE id >= ?", (top - 1,))
            if also_journal:
                conn.execute("DELETE FROM audit_entry WHERE kind = 'message' AND ref >= ?", (top - 1,))

        _tamper(db, edit)
        code, out = _verify(capsys, db, *_pinned(filled))
        assert code == 1, out
        assert "[missing] messages" in out and "counted them; they are gone" in out, out
        assert "[missing] chain" in out, out
        if also_journal:
            assert "[journal]" in out and "chain link differs" in out, out
        else:
            assert "(declaration 5): the declaration it records is gone" in out, out


def test_deleted_journal_tail_is_found(filled: Filled, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    db = _copy(filled, tmp_path)
    _tamper(db, lambda conn: conn.execute(
        "DELETE FROM audit_entry WHERE id > (SELECT MAX(id) - 3 FROM audit_entry)"))
    code, out = _verify(capsys, db, *_pinned(filled))
    assert code == 1 and "[missing] journal entries" in out, out
    assert "deleted from the end of the journal" in out and "signed them; they are gone" in out, out


@pytest.mark.parametrize(("what", "sql", "expected"), [
    ("an outbox envelope", "UPDATE outbox SET envelope_head = replace(envelope_head, 'DXPEDCCEB0000002',"
     " 'DXPEDCCEB0000009') WHERE message_id = 2", "(declaration 2): the outbox envelope changed"),
    ("message keys", "UPDATE message_key SET value = 'ORDER-X' WHERE message_id = 1 AND name = 'orderNo'",
     "(declaration 1): the business keys changed"),
    ("message subscribers", "INSERT INTO subscriber VALUES (1, 9, 'DXPENT0000458761', 'ALL')",
     "(declaration 1): the subscribers changed"),
    ("a stored receipt's status", "UPDATE receipt SET status = '800' WHERE id = 1",
     "(receipt record 1): the row itself changed"),
    ("a stored receipt's bytes",
     "UPDATE receipt_blob SET data = CAST(replace(CAST(data AS TEXT), '120', '800') AS BLOB)",
     "the stored bytes changed"),
    ("a receipt's keys", "UPDATE receipt_key SET value = 'X' WHERE receipt_id = 2",
     "(receipt record 2): the business keys changed"),
    ("a receipt's link", "UPDATE receipt_link SET declaration_id = 2 WHERE receipt_id = 1",
     "(receipt link 1): the row itself changed"),
    ("a delivery", "UPDATE mailbox SET tenant = 'platform' WHERE cursor = 1",
     "(mailbox delivery 1): the row itself changed"),
    ("a dead letter's reason", "UPDATE dead_letter SET reason = 'nothing to see'",
     "the dead-letter reason changed"),
    ("a row behind the journal's back",
     "INSERT INTO mailbox (tenant, receipt_id, declaration_id, delivered_us) SELECT"
     " 'platform', receipt_id, declaration_id, delivered_us FROM mailbox WHERE cursor = 1",
     "no journal entry records it"),
    ("the journal's start", "UPDATE audit_start SET cursor = cursor + 1000",
     "[rewritten] audit_start: the journal's start is"),
])
def test_edited_rows_are_found_with_what_and_where(filled: Filled, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   what: str, sql: str, expected: str) -> None:
    db = _copy(filled, tmp_path)
    _tamper(db, lambda conn: conn.execute(sql))
    code, out = _verify(capsys, db, *_pinned(filled))
    assert code == 1, (what, out)
    assert expected in out, (what, out)


def test_a_corrupt_index_page_is_found(filled: Filled, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    for index in ("message_key_value", "receipt_key_value"):
        db = _copy(filled, tmp_path, index)
        conn = sqlite3.connect(db)
        (page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)).fetchone()
        (size,) = conn.execute("PRAGMA page_size").fetchone()
        conn.close()
        with db.open("r+b") as fh:
            fh.seek((page - 1) * size + 8)
            fh.write(b"\xff" * 64)
        code, out = _verify(capsys, db, *_pinned(filled))
        assert code == 1, out
        assert "PROBLEM [integrity] database file:" in out, out


@aio
async def test_the_server_signs_checkpoints_at_intervals_and_keeps_serving(sb: Sandbox) -> None:
    settings = sb.settings.with_(audit_checkpoint_s=0.1)
    store = open_store(settings.store_url)
    try:
        async with running(settings, store=store) as api:
            for seed in (311, 312):
                owner, data = declaration(sb, "CEB311", seed=seed)
                assert (await api.post_xml(sb.token(owner), data))[0] == 202
                head = (await store.audit_state()).entry_id
                for _ in range(100):  # the interval is 0.1 s: a checkpoint of this head comes soon
                    if any(jr_entry(doc) == head for _, _, doc in await store.checkpoints()):
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"no checkpoint of journal entry {head}")
            assert (await api.get(None, "/healthz"))[0] == 200
        report = await audit.verify(store, trusted=load_key(sb.settings.gateway_key, sb.settings.gateway_cert)
                                    .certificate)
        assert report.ok and report.checkpoints >= 2 and report.pinned, report
    finally:
        await store.close()


def jr_entry(document: bytes) -> int:
    return audit.read_checkpoint(document, None, "kept").claim.entry_id
