"""The one place that knows the order of the stages.

Declarations::

    bytes → parse → identify → open (unwrap DxpMsg/DxpMsgSv) → declaration? → validate
          → authorise (copCode is the account's) → verify signature → prepare (record + DXP envelope)
          → persist (durable) → Accepted

Receipts::

    bytes → parse → identify → open → receipt? → validate → verify customs signature
          → records → routing.correlate → deliver (store.put_receipt) → Delivered

Each stage is a function from one frozen result to the next, so the type checker keeps
the order.  Lookups (store, registry, accounts, clock, key) come in as parameters.
A declaration rejected for its content raises :class:`Rejected`, which carries the
CEB900 receipt the e-port would have sent.
"""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from lxml import etree

from . import ceb900, routing
from .accounts import Account, Accounts
from .catalog import CEB_NS, DS_NS, Catalog, Identified, MessageType
from .config import DEFAULT_OFFLOAD_BYTES, Settings
from .dsig import KeyProvider, Policy, Registry, signature_required
from .dsig import sign as dsig_sign
from .dsig import verify as dsig_verify
from .envelope import Unwrapped, creat_time, new_cop_msg_id, receiver_for, unwrap, wrap_parts
from .errors import (
    DEFAULT_MAX_FINDINGS,
    EnvelopeError,
    Finding,
    ForbiddenError,
    GatewayError,
    IdentifyError,
    InputError,
    NotFoundError,
    SignatureError,
    ValidationFailed,
    cap_findings,
)
from .store import NewMessage, NewReceipt, ReceiptResult, Store, Subscriber
from .validate import Findings, findings_of
from .xmlio import (
    DEFAULT_MAX_ATTRIBUTES,
    DEFAULT_MAX_NAMESPACES,
    DEFAULT_MAX_NODES,
    Parsed,
    local_name,
    parse,
)


class Rejected(InputError):
    """A submission refused for its content; ``ceb900`` is the receipt that says why."""

    def __init__(self, cause: GatewayError, ceb900_xml: bytes) -> None:
        super().__init__(cause.message, code=cause.code, findings=cause.findings, field=cause.field,
                         omitted=cause.omitted)
        self.cause = cause
        self.ceb900 = ceb900_xml

    @property
    def http_status(self) -> int:
        return self.cause.http_status


@dataclass(frozen=True)
class Limits:
    """What one message may cost: bounds for the parser, findings per answer, and the size
    from which a server checks a body on a worker thread rather than on its event loop."""

    max_bytes: int
    max_depth: int
    max_nodes: int = DEFAULT_MAX_NODES
    max_attributes: int = DEFAULT_MAX_ATTRIBUTES
    max_namespaces: int = DEFAULT_MAX_NAMESPACES
    max_findings: int = DEFAULT_MAX_FINDINGS
    offload_bytes: int = DEFAULT_OFFLOAD_BYTES


@dataclass(frozen=True)
class Opened:
    """The business message, and the envelope it came in (if any)."""

    ident: Identified
    envelope: Unwrapped | None = None
    envelope_parsed: Parsed | None = None

    @property
    def type(self) -> MessageType:
        return self.ident.type

    @property
    def cop_msg_id(self) -> str | None:
        return self.envelope.trans.cop_msg_id if self.envelope is not None else None


@dataclass(frozen=True)
class Validated:
    """Passed XSD and rules; ``warnings`` are kept for the answer."""

    opened: Opened
    warnings: tuple[Finding, ...]


@dataclass(frozen=True)
class Authorised:
    """A declaration the account may send: ``sender_code`` is its BaseTransfer/copCode."""

    validated: Validated
    account: Account
    sender_code: str


@dataclass(frozen=True)
class Verified:
    """Signature checked: ``signer`` names the registry entry, or ``None`` for an unsigned message."""

    authorised: Authorised
    signer: str | None


@dataclass(frozen=True)
class Prepared:
    """The store record, with the DXP envelope for customs."""

    verified: Verified
    message: NewMessage


@dataclass(frozen=True)
class Accepted:
    """A durably stored declaration (``duplicate``: these bytes were stored before, and
    ``message_id`` is the first submission's)."""

    message_id: int
    guid: str
    message_type: str
    business_keys: tuple[dict[str, str], ...]
    duplicate: bool


def limits_of(settings: Settings) -> Limits:
    """The limits a server's settings give every message."""
    s = settings
    return Limits(s.max_body_bytes, s.max_depth, s.max_nodes, s.max_attributes, s.max_namespaces,
                  s.max_findings, s.offload_bytes)


# ---------------------------------------------------------------- shared stages

def parse_body(data: bytes, limits: Limits, source: str = "request") -> Parsed:
    """Stage 1: the hardened parser. Raises ParseError."""
    return parse(data, source=source, max_bytes=limits.max_bytes, max_depth=limits.max_depth,
                 max_nodes=limits.max_nodes, max_attributes=limits.max_attributes,
                 max_namespaces=limits.max_namespaces)


def identify(parsed: Parsed, catalog: Catalog) -> Identified:
    """Stage 2: name the message type by its root. Raises IdentifyError."""
    return catalog.identify(parsed)


def open_envelope(ident: Identified, catalog: Catalog, limits: Limits) -> Opened:
    """Stage 3: a bare CEB message passes; a DxpMsg/DxpMsgSv is checked against its XSD and opened."""
    if not ident.type.is_envelope:
        return Opened(ident)
    if ident.type.code not in ("DxpMsg", "DxpMsgSv"):
        raise IdentifyError(f"{ident.type.code} does not carry a CEB message", field=ident.type.root)
    _raise_errors(findings_of(ident, schema_only=True, limit=limits.max_findings), limits.max_findings)
    inner = unwrap(ident.parsed, max_bytes=limits.max_bytes, max_depth=limits.max_depth,
                   max_nodes=limits.max_nodes, max_attributes=limits.max_attributes,
                   max_namespaces=limits.max_namespaces)
    inner_ident = catalog.identify(inner.inner)
    if inner_ident.type.is_envelope:
        raise EnvelopeError("an envelope inside an envelope", code="CEBGW-ENV-NESTED", field="Data")
    return Opened(inner_ident, inner, ident.parsed)


def require_kind(opened: Opened, kind: str) -> Opened:
    """Stage 4: only declarations may be submitted, only receipts posted by customs."""
    if opened.type.kind != kind:
        raise IdentifyError(f"{opened.type.root} is a {opened.type.kind}; this endpoint takes a {kind}",
                            field=opened.type.root)
    return opened


def validate(opened: Opened, max_findings: int = DEFAULT_MAX_FINDINGS) -> Validated:
    """Stage 5: XSD and rules; raises one ValidationFailed with the findings (the first
    ``max_findings`` of them, and how many more there were)."""
    found = findings_of(opened.ident, limit=max_findings)
    _raise_errors(found, max_findings)
    return Validated(opened, tuple(found))


def validate_receipt(opened: Opened, max_findings: int = DEFAULT_MAX_FINDINGS) -> Validated:
    """Stage 5 for receipts: receipt schemas have no place for ``ds:Signature``, yet customs may
    sign a bare receipt (enveloped, spec §10).  The signature covers the document without it,
    so that is what is checked against the XSD and rules; :func:`verify_customs` then checks
    the signature itself, its position included."""
    root = opened.ident.root
    if not _signed(root) or opened.type.signature != "none":
        return validate(opened, max_findings)
    bare = copy.deepcopy(root)
    for el in list(bare.iterchildren(f"{{{DS_NS}}}Signature")):
        bare.remove(el)
    unsigned = Identified(replace(opened.ident.parsed, root=bare), opened.type)
    found = findings_of(unsigned, limit=max_findings)
    _raise_errors(found, max_findings)
    return Validated(opened, tuple(found))


def _raise_errors(found: Sequence[Finding], max_findings: int = DEFAULT_MAX_FINDINGS) -> None:
    errors = [f for f in found if f.severity == "error"]
    if errors:
        first = errors[0]
        kept, omitted = cap_findings(found, max_findings)
        omitted += found.omitted if isinstance(found, Findings) else 0
        raise ValidationFailed(f"{len(errors)} error(s); first: {first.field or ''} {first.message}".strip(),
                               code=first.code, findings=kept, omitted=omitted)


def _text(root: etree._Element, path: str) -> str:
    return (root.findtext(path, namespaces={"c": CEB_NS}) or "").strip()


_COP_CODE = etree.XPath("string(c:BaseTransfer/c:copCode)", namespaces={"c": CEB_NS})


# ---------------------------------------------------------------- declarations

def authorise(validated: Validated, account: Account) -> Authorised:
    """Stage 6: BaseTransfer/copCode must be the account's, its roles must send this type,
    and an envelope's SenderId must be its DXP id. Raises ForbiddenError (403)."""
    opened = validated.opened
    cop = str(_COP_CODE(opened.ident.root)).strip()
    if cop not in account.codes:
        raise ForbiddenError(f"copCode {cop!r} is not one of this account's codes", code="CEBGW-AUTH-SENDER",
                             field="copCode")
    if opened.envelope is not None and opened.envelope.trans.sender_id != account.dxp_id:
        raise ForbiddenError(f"envelope SenderId {opened.envelope.trans.sender_id!r} is not this account's",
                             code="CEBGW-AUTH-SENDER", field="SenderId")
    if opened.type.sender and not set(opened.type.sender) & account.roles:
        raise ForbiddenError(f"{opened.type.code} is sent by {', '.join(opened.type.sender)}; "
                             "this account has none of those roles", field=opened.type.root)
    return Authorised(validated, account, cop)


def _signed(root: etree._Element) -> bool:
    return root.find(f"{{{DS_NS}}}Signature") is not None


def verify_signature(authorised: Authorised, registry: Registry, policy: Policy) -> Verified:
    """Stage 7: a required signature must be present; any present signature must verify
    and belong to a certificate registered for the copCode. Raises SignatureError."""
    ident = authorised.validated.opened.ident
    if not _signed(ident.root):
        if signature_required(ident.type, ident.root):
            raise SignatureError(f"{ident.type.code} must be signed", code="CEBGW-SIG-MISSING",
                                 field="Signature")
        return Verified(authorised, None)
    v = dsig_verify(ident, registry, policy=policy, sender_code=authorised.sender_code)
    return Verified(authorised, v.entry.name)


def subscribers_of(root: etree._Element) -> tuple[Subscriber, ...]:
    """The BaseSubscribe entries with a known status."""
    out: list[Subscriber] = []
    for el in root.iterfind("c:BaseSubscribe", namespaces={"c": CEB_NS}):
        status, address = _text(el, "c:status"), _text(el, "c:dxpAddress")
        if status in ("ALL", "DATA", "RET") and address:
            out.append(Subscriber(address, status))  # type: ignore[arg-type]  # checked just above
    return tuple(out)


def prepare(verified: Verified, *, now: datetime | None = None,
            gateway_key: KeyProvider | None = None) -> Prepared:
    """Stage 8: the store record and the DxpMsg for customs (CopMsgId kept from the sender's
    envelope, else new; Data = the exact submitted bytes), signed by ``gateway_key`` if given."""
    auth = verified.authorised
    opened = auth.validated.opened
    ident, mtype = opened.ident, opened.type
    cop_msg_id = opened.cop_msg_id or new_cop_msg_id()
    data = ident.parsed.data
    head, tail = wrap_parts(msg_type=mtype.root, sender_id=auth.account.dxp_id,
                            receiver_ids=(receiver_for(mtype.flow),), cop_msg_id=cop_msg_id,
                            created=creat_time(now))
    # Unsigned, the envelope is head + base64(data) + tail: the store keeps just those parts,
    # so it is not built here.  Signed, it is built and signed whole.
    parts: tuple[bytes, bytes] | None = (head, tail)
    envelope = b""
    if gateway_key is not None:
        envelope, parts = dsig_sign(head + base64.b64encode(data) + tail, gateway_key), None
    message = NewMessage(
        tenant=auth.account.name, sender_code=auth.sender_code, message_type=mtype.code,
        guid=ident.root.get("guid", ""), data=data,
        business_keys=mtype.business_keys(ident.root), envelope=envelope, cop_msg_id=cop_msg_id,
        subscribers=subscribers_of(ident.root), envelope_parts=parts)
    return Prepared(verified, message)


async def persist(m: NewMessage, store: Store) -> Accepted:
    """Stage 9: one durable transaction (idempotent on the same bytes; ConflictError on a reused guid)."""
    put = await store.put_message(m)
    return Accepted(put.message_id, m.guid, m.message_type, tuple(m.business_keys), put.duplicate)


@dataclass(frozen=True)
class SubmitDeps:
    """What :func:`submit` looks things up in."""

    catalog: Catalog
    registry: Registry
    policy: Policy
    store: Store
    limits: Limits
    gateway_key: KeyProvider | None = None
    clock: Callable[[], datetime] | None = None
    executor: Executor | None = None  # where bodies of limits.offload_bytes and more are checked


T = TypeVar("T")


async def off_loop(fn: Callable[[], T], size: int, limits: Limits, executor: Executor | None) -> T:
    """``fn()`` on ``executor`` when the body is ``limits.offload_bytes`` or larger, else here.

    Parsing and validating a large body takes long enough to stall every other request on
    the event loop (health checks included); the checks run in C with the GIL released, so
    on a worker thread they let the loop go on serving.  Small bodies stay on the loop,
    where the hop to a thread would cost more than the work.
    """
    if executor is None or size < limits.offload_bytes:
        return fn()
    return await asyncio.get_running_loop().run_in_executor(executor, fn)


def check_submission(data: bytes, account: Account, deps: SubmitDeps) -> NewMessage:
    """Every stage of a declaration before the store: the record to persist. Raises Rejected
    (400/422, with CEB900), ForbiddenError."""
    ori_type: str | None = None
    cop_msg_id: str | None = None
    try:
        ident = identify(parse_body(data, deps.limits), deps.catalog)
        ori_type = local_name(ident.root.tag)
        opened = open_envelope(ident, deps.catalog, deps.limits)
        ori_type, cop_msg_id = opened.type.root, opened.cop_msg_id
        validated = validate(require_kind(opened, "declaration"), deps.limits.max_findings)
        verified = verify_signature(authorise(validated, account), deps.registry, deps.policy)
    except (InputError, SignatureError) as exc:
        now = deps.clock() if deps.clock is not None else None
        raise Rejected(exc, ceb900.build(exc, original=data, ori_cop_msg_id=cop_msg_id or new_cop_msg_id(),
                                         ori_message_type=ori_type, now=now)) from exc
    now = deps.clock() if deps.clock is not None else None
    return prepare(verified, now=now, gateway_key=deps.gateway_key).message


async def submit(data: bytes, account: Account, deps: SubmitDeps) -> Accepted:
    """Run a declaration through every stage. Raises Rejected (400/422, with CEB900),
    ForbiddenError, ConflictError, StoreError."""
    # The parsed tree stays inside check_submission: with many requests waiting for the
    # commit at once, their trees would otherwise stay alive and crowd the CPU caches.
    message = await off_loop(lambda: check_submission(data, account, deps), len(data), deps.limits,
                             deps.executor)
    return await persist(message, deps.store)


# ---------------------------------------------------------------- receipts

@dataclass(frozen=True)
class CheckedReceipt:
    """A valid receipt message whose signature (if any, or if required) verified."""

    validated: Validated
    signer: str | None


def customs_identities(account: Account) -> tuple[str, ...]:
    """The identities a customs account's certificates are registered for: its codes and DXP id."""
    return (*sorted(account.codes), *([account.dxp_id] if account.dxp_id else []))


def verify_customs(validated: Validated, registry: Registry, policy: Policy, accounts: Accounts,
                   customs: Account, *, required: bool) -> CheckedReceipt:
    """The receipt (or the DxpMsg it came in) must be signed by a customs account's certificate
    when ``required``; any signature present must verify.  A bare receipt names no sender, so
    its certificate must be registered for one of ``customs``' codes or its DXP id (the
    posting account). Raises SignatureError."""
    opened = validated.opened
    signer: str | None = None
    env = opened.envelope_parsed
    if env is not None and _envelope_signed(env.root):
        v = dsig_verify(env, registry, policy=policy)
        acc = accounts.by_dxp_id(v.signer)
        if acc is None or not acc.is_customs:
            raise SignatureError(f"envelope signed for {v.signer!r}, which is not a customs account",
                                 code="CEBGW-SIG-CERT-UNREGISTERED", field="SenderId")
        signer = v.entry.name
    if _signed(opened.ident.root):
        if not customs.is_customs:
            raise SignatureError(f"account {customs.name!r} is not a customs account",
                                 code="CEBGW-SIG-CERT-UNREGISTERED", field="Signature")
        signer = dsig_verify(opened.ident, registry, policy=policy,
                             expected_signers=customs_identities(customs)).entry.name
    if required and signer is None:
        raise SignatureError("receipts must be signed by customs", code="CEBGW-SIG-MISSING",
                             field="Signature")
    return CheckedReceipt(validated, signer)


def _envelope_signed(root: etree._Element) -> bool:
    return any(el.tag == f"{{{DS_NS}}}Signature" for el in root.iterchildren())


@dataclass(frozen=True)
class Delivered:
    """What happened to one receipt record."""

    record: routing.ReceiptRecord
    result: ReceiptResult


@dataclass(frozen=True)
class ReceiptDeps:
    """What :func:`receive` looks things up in."""

    catalog: Catalog
    registry: Registry
    policy: Policy
    store: Store
    lookup: routing.DeclarationLookup
    accounts: Accounts
    limits: Limits
    require_signature: bool
    executor: Executor | None = None  # where bodies of limits.offload_bytes and more are checked


def check_receipt(data: bytes, deps: ReceiptDeps, customs: Account) -> CheckedReceipt:
    """Every stage of a receipt before routing. Raises InputError/SignatureError."""
    opened = open_envelope(identify(parse_body(data, deps.limits), deps.catalog), deps.catalog, deps.limits)
    return verify_customs(validate_receipt(require_kind(opened, "receipt"), deps.limits.max_findings),
                          deps.registry, deps.policy, deps.accounts, customs, required=deps.require_signature)


async def receive(data: bytes, deps: ReceiptDeps, customs: Account) -> tuple[str, list[Delivered]]:
    """Run a receipt message posted by the ``customs`` account through every stage; returns its
    type and each record's fate. Raises InputError/SignatureError for a message that cannot be
    taken at all."""
    checked = await off_loop(lambda: check_receipt(data, deps, customs), len(data), deps.limits,
                             deps.executor)
    opened = checked.validated.opened
    ident = opened.ident
    records = routing.records_of(ident)
    receiver = opened.envelope.trans.receiver_ids if opened.envelope is not None else ()
    answers = ident.type.answers
    declaration = deps.catalog.types.get(answers) if answers else None
    out: list[Delivered] = []
    for rec in records:
        routed = await routing.correlate(rec, ident.type, deps.lookup, deps.accounts, receiver, declaration)
        result = await deps.store.put_receipt(NewReceipt(
            message_type=ident.type.code, guid=rec.guid, data=ident.parsed.data, record_no=rec.record_no,
            status=rec.status, return_time=rec.return_time, info=rec.info, business_keys=rec.keys,
            declaration_id=routed.declaration_id, mailboxes=routed.mailboxes, reason=routed.reason,
            declaration_record=routed.record_no, assigned_keys=routed.assigned))
        out.append(Delivered(rec, result))
    return ident.type.code, out


async def reroute(receipt_id: int, message_id: int, store: Store, accounts: Accounts,
                  catalog: Catalog) -> ReceiptResult:
    """An operator attaches dead letter ``receipt_id`` to declaration ``message_id``: it is
    delivered like a correlated receipt, to the declaration's tenant and its ALL/RET
    subscribers, and the numbers it carries (the type's alt_keys) become the declaration's keys.
    Raises NotFoundError when either does not exist or the letter was rerouted."""
    ref = await store.declaration(message_id)
    if ref is None:
        raise NotFoundError(f"declaration {message_id} does not exist")
    boxes = routing.subscriber_mailboxes(ref, accounts)
    mtype = catalog.types.get(ref.message_type)
    assign = mtype.alt_keys if mtype is not None else ()
    return await store.reroute_dead_letter(receipt_id, message_id, boxes, assign)
