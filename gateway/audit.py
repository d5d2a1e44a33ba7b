"""Signed checkpoints of the store's audit chains, and the audit that checks them.

A checkpoint says what the store held at one moment: the audit journal's last entry and its
link, every sender chain's head, the newest message id (:class:`~gateway.store.CheckpointClaim`).
The gateway signs it with its own key in the signature profile it already speaks: a DXP
``DxpMsg`` from :data:`SENDER_ID` whose ``Data`` is the claim as JSON, with an enveloped
``ds:Signature`` (RSA-SHA256 or SM2-SM3).  Checkpoints are kept in the store and can be
exported to a file kept elsewhere: whoever holds the database file can rewrite every row and
recompute every hash, but cannot sign a new checkpoint, so :func:`verify` against an exported
checkpoint (and the gateway's certificate) finds the rewrite.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from lxml import etree

from . import dsig
from .catalog import DS_NS, DXP_NS
from .catalog import load as load_catalog
from .dsig import KeyProvider, Policy, Registry, certutil
from .dsig.registry import make_entry
from .envelope import creat_time, new_cop_msg_id, wrap_parts
from .errors import GatewayError, InputError, StoreError, register
from .store import AuditProblem, AuditReport, CheckpointClaim, Store
from .xmlio import parse

register("CEBGW-AUDIT-CHECKPOINT", 422, 1, "-3999", "not a checkpoint document of this gateway",
         "不是本网关的审计检查点文件")

SENDER_ID = "CEBGWAUDIT"              # the DxpMsg SenderId (and ReceiverId) of a checkpoint
MSG_TYPE = "CEBGW_AUDIT_CHECKPOINT"
VERSION = 1
_POLICY = Policy(allowed=frozenset({"rsa-sha256", "sm2-sm3"}))
_SUITE_FOR = {"rsa": "rsa-sha256", "sm2": "sm2-sm3"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_D = f"{{{DXP_NS}}}"


class CheckpointError(InputError):
    """A file or stored row that is not a well-formed checkpoint document."""

    code = "CEBGW-AUDIT-CHECKPOINT"


def claim_json(claim: CheckpointClaim) -> bytes:
    """The claim as canonical JSON (sorted keys, chains in order)."""
    chains = [{"tenant": t, "sender_code": s, "message_id": mid, "head": head}
              for (t, s), (mid, head) in sorted(claim.chains.items())]
    body = {"version": VERSION, "created_us": claim.created_us, "entry_id": claim.entry_id,
            "entry_link": claim.entry_link, "max_message_id": claim.max_message_id, "chains": chains,
            "start": list(claim.start)}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def claim_of_json(data: bytes, source: str) -> CheckpointClaim:
    """Read :func:`claim_json` output. Raises CheckpointError."""
    try:
        body = json.loads(data)
        if body["version"] != VERSION:
            raise CheckpointError(f"{source}: checkpoint version {body['version']!r} is not {VERSION}")
        chains = {(str(c["tenant"]), str(c["sender_code"])): (int(c["message_id"]), str(c["head"]))
                  for c in body["chains"]}
        m, r, c = (int(v) for v in body["start"])
        return CheckpointClaim(int(body["created_us"]), int(body["entry_id"]), str(body["entry_link"]),
                               chains, int(body["max_message_id"]), (m, r, c))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{source}: the checkpoint's content is malformed ({exc})") from None


def sign_claim(claim: CheckpointClaim, key: KeyProvider) -> bytes:
    """The signed checkpoint document of ``claim``."""
    created = _EPOCH + timedelta(microseconds=claim.created_us)
    head, tail = wrap_parts(msg_type=MSG_TYPE, sender_id=SENDER_ID, receiver_ids=(SENDER_ID,),
                            cop_msg_id=new_cop_msg_id(), created=creat_time(created))
    return dsig.sign(head + base64.b64encode(claim_json(claim)) + tail, key, alg=_SUITE_FOR[key.family])


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint document whose signature verified, with the certificate that signed it."""

    claim: CheckpointClaim
    certificate: x509.Certificate
    fingerprint: str


def _embedded_certificate(root: etree._Element, source: str) -> x509.Certificate:
    text = next((el.text for el in root.iter(f"{{{DS_NS}}}X509Certificate")), None)
    try:
        return x509.load_der_x509_certificate(base64.b64decode(text or "", validate=False))
    except (ValueError, binascii.Error):
        raise CheckpointError(f"{source}: no usable certificate in the checkpoint's signature") from None


def read_checkpoint(document: bytes, trusted: x509.Certificate | None, source: str) -> Checkpoint:
    """Verify a checkpoint document's signature (by ``trusted``, or else by the certificate it
    carries) and read its claim.  Raises CheckpointError for something that is not a checkpoint,
    SignatureError/CertificateError when the signature does not hold or is not ``trusted``'s."""
    parsed = parse(document, source=source)
    ident = load_catalog().identify(parsed)
    root = ident.root
    if root.tag != f"{_D}DxpMsg" or root.findtext(f"{_D}TransInfo/{_D}MsgType") != MSG_TYPE:
        raise CheckpointError(f"{source}: not a {MSG_TYPE} DxpMsg")
    try:
        data = base64.b64decode(root.findtext(f"{_D}Data") or "", validate=True)
    except (ValueError, binascii.Error):
        raise CheckpointError(f"{source}: the checkpoint's Data is not base64") from None
    claim = claim_of_json(data, source)
    cert = trusted or _embedded_certificate(root, source)
    entry = make_entry(cert, name="gateway", dxp_ids=[SENDER_ID])
    signed_at = _EPOCH + timedelta(microseconds=claim.created_us)
    dsig.verify(ident, Registry([entry]), policy=_POLICY, expected_signers=(SENDER_ID,), at=signed_at)
    return Checkpoint(claim, cert, entry.fingerprint)


async def checkpoint(store: Store, key: KeyProvider, *,
                     unless_at: int | None = None) -> CheckpointClaim | None:
    """Sign and keep a checkpoint of the store as it is now; ``None`` (nothing written) when the
    journal has not moved past entry ``unless_at`` (the last checkpoint this caller made)."""
    claim = await store.audit_state()
    if unless_at is not None and claim.entry_id == unless_at:
        return None
    await store.put_checkpoint(claim, sign_claim(claim, key))
    return claim


async def latest(store: Store) -> bytes | None:
    """The newest checkpoint document kept in the store, for export."""
    kept = await store.checkpoints()
    return kept[-1][2] if kept else None


@dataclass(frozen=True)
class Audit:
    """:func:`verify`'s answer: the store's report (checkpoint findings included) and notes."""

    report: AuditReport
    checkpoints: int
    signer: str | None                    # fingerprint of the certificate the checkpoints are checked against
    pinned: bool                          # that certificate was given (or came from an exported file)
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.report.ok


async def verify(store: Store, *, trusted: x509.Certificate | None = None,
                 files: Sequence[tuple[str, bytes]] = (), tenant: str | None = None) -> Audit:
    """The whole audit: the store's chains, journal and integrity check, and every signed
    checkpoint kept in it or given in ``files`` (``(name, document)``), checked against
    ``trusted`` (else the certificate of the first file, else of the first kept checkpoint)."""
    problems: list[AuditProblem] = []
    try:
        kept = await store.checkpoints()
    except StoreError as exc:  # a damaged file: the store's own audit says more
        kept = []
        problems.append(AuditProblem("integrity", "kept checkpoints", f"cannot be read: {exc.message}"))
    docs = [*files, *((f"#{cid} (kept in the store)", doc) for cid, _, doc in kept)]
    notes: list[str] = []
    pinned = trusted is not None or bool(files)
    if trusted is None and docs:
        try:
            trusted = _embedded_certificate(parse(docs[0][1], source=docs[0][0]).root, docs[0][0])
        except GatewayError as exc:
            problems.append(AuditProblem("checkpoint", docs[0][0], f"{exc.message} [{exc.code}]"))
    claims: list[tuple[str, CheckpointClaim]] = []
    for name, doc in docs:
        try:
            claims.append((name, read_checkpoint(doc, trusted, name).claim))
        except GatewayError as exc:
            problems.append(AuditProblem("checkpoint", name, f"{exc.message} [{exc.code}]"))
    kept_ids = {_entry_id(doc) for _, _, doc in kept}
    for name, claim in claims[:len(files)]:
        if claim.entry_id not in kept_ids:
            problems.append(AuditProblem("missing", f"checkpoint {name}", "the store keeps no checkpoint of "
                                         f"journal entry {claim.entry_id}: kept checkpoints were deleted"))
    if not docs:
        notes.append("no signed checkpoint: the journal is not anchored (cebgw audit checkpoint makes one)")
    elif not pinned:
        notes.append("checkpoints checked against the certificate they carry; give --cert (the gateway's) "
                     "or --checkpoint FILE (an export kept elsewhere) to pin it")
    report = await store.audit_verify(tenant, claims)
    if problems:
        report = AuditReport(report.messages_checked, report.chains, report.breaks, report.heads,
                             (*problems, *report.problems), report.journal_entries, report.journal_head,
                             report.checkpoints_checked, report.entries_since_checkpoint)
    signer = certutil.fingerprint(certutil.der(trusted)) if trusted is not None else None
    return Audit(report, len(claims), signer, pinned, tuple(notes))


def _entry_id(document: bytes) -> int | None:
    """The journal entry a kept checkpoint claims (unverified: only to match exported files)."""
    try:
        root = parse(document, source="checkpoint").root
        return claim_of_json(base64.b64decode(root.findtext(f"{_D}Data") or ""), "checkpoint").entry_id
    except (GatewayError, ValueError, binascii.Error):
        return None
