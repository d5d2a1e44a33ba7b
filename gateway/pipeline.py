"""The one place that knows the order of the stages.

Declarations::

    JSON → translate (map to CEB XML, sign with the account's custody key) → the XML path below
    bytes → parse → identify → open (unwrap DxpMsg/DxpMsgSv) → declaration? → validate
          → appTime near the receiving time? (a warning) → authorise (copCode is the account's)
          → verify signature (certificate valid at appTime and at receipt) → prepare (record + DXP
          envelope) → lifecycle (a cancellation or return: the list it names) → persist (durable;
          appType against the enterprise's earlier versions, in the same transaction)
          → pre-flight (the parcel's documents compared; warn or hold) → Accepted

Receipts::

    bytes → parse → identify → open → receipt? → validate → verify customs signature
          → records → routing.correlate → deliver (store.put_receipt) → Delivered

Each stage is a function from one frozen result to the next, so the type checker keeps
the order.  Lookups (store, registry, accounts, clock, key) come in as parameters.
A declaration rejected for its content raises :class:`Rejected`, which carries the
CEB900 receipt the e-port would have sent.  The stages up to validate (stage 5) live in
``intake.py``, which needs no keys or store; they are re-exported here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from lxml import etree

from . import ceb900, lifecycle, mapping, routing
from .accounts import Account, Accounts, CustodyKeys
from .catalog import CEB_NS, CURRENT_EDITION, Catalog, MessageType
from .config import DEFAULT_APP_TIME_WINDOW_S, DEFAULT_CERT_GRACE_S, Settings
from .dsig import KeyProvider, Policy, Registry, sign_around, signature_required
from .dsig import sign as dsig_sign
from .dsig import verify as dsig_verify
from .envelope import creat_time, new_cop_msg_id, receiver_for, wrap_parts
from .errors import (
    Finding,
    ForbiddenError,
    GatewayError,
    IdentifyError,
    InputError,
    NotFoundError,
    ParseError,
    SignatureError,
    UsageError,
)

# The stages of intake.py, re-exported: callers name them as stages of the one pipeline.
from .intake import (
    Limits as Limits,
)
from .intake import (
    Opened as Opened,
)
from .intake import (
    Validated as Validated,
)
from .intake import (
    check_message as check_message,
)
from .intake import (
    identify as identify,
)
from .intake import (
    open_envelope as open_envelope,
)
from .intake import (
    parse_body as parse_body,
)
from .intake import (
    require_kind as require_kind,
)
from .intake import (
    signed as signed,
)
from .intake import (
    validate as validate,
)
from .intake import (
    validate_bytes as validate_bytes,
)
from .intake import (
    validate_receipt as validate_receipt,
)
from .intake import (
    without_signature as without_signature,
)
from .mapping.jsonschema import json_schema, markdown
from .preflight import Evaluation, Preflight, document_of, parcel_records
from .reconcile import ParcelKey
from .store import Guard, NewMessage, NewReceipt, ReceiptResult, Store, Subscriber
from .validate import EDITIONS, apptime, detect
from .validate.xsd import schema_path as xsd_path
from .xmlio import (
    first_children,
    parse,
    text,
)


class Rejected(InputError):
    """A submission refused for its content; ``ceb900`` is the receipt that says why, and
    ``message_type`` the catalogue code of the message, if it got as far as being identified."""

    def __init__(self, cause: GatewayError, ceb900_xml: bytes, message_type: str | None = None) -> None:
        super().__init__(cause.message, code=cause.code, findings=cause.findings, field=cause.field,
                         omitted=cause.omitted)
        self.cause = cause
        self.ceb900 = ceb900_xml
        self.message_type = message_type

    @property
    def http_status(self) -> int:
        return self.cause.http_status


def limits_of(settings: Settings) -> Limits:
    """The limits a server's settings give every message."""
    s = settings
    return Limits(s.max_body_bytes, s.max_depth, s.max_nodes, s.max_attributes, s.max_namespaces,
                  s.max_findings, s.offload_bytes)


@dataclass(frozen=True)
class TimePolicy:
    """How far the gateway's clock may be from a certificate's window (``cert_grace``) and from
    the sender's ``appTime`` (``app_time_window``, zero: not checked) before it objects."""

    cert_grace: timedelta = timedelta(seconds=DEFAULT_CERT_GRACE_S)
    app_time_window: timedelta = timedelta(seconds=DEFAULT_APP_TIME_WINDOW_S)


def time_policy_of(settings: Settings) -> TimePolicy:
    """The time policy of a server's settings."""
    return TimePolicy(timedelta(seconds=settings.cert_grace_s), timedelta(seconds=settings.app_time_window_s))


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
    edition: str | None = None
    warnings: tuple[Finding, ...] = ()
    preflight: tuple[Evaluation, ...] = ()  # the comparisons of its parcels this submission ran


# ---------------------------------------------------------------- declarations

_COP_CODE = etree.XPath("string(c:BaseTransfer/c:copCode)", namespaces={"c": CEB_NS})


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


def check_app_time(validated: Validated, received: datetime, window: timedelta) -> Validated:
    """Stage 5b: a warning for each ``appTime`` further than ``window`` from ``received``,
    the time the gateway received the message (the code ``CEBGW-APPTIME-SKEW``)."""
    found = apptime.findings(validated.opened.ident.root, received, window)
    return replace(validated, warnings=(*validated.warnings, *found)) if found else validated


def verify_signature(authorised: Authorised, registry: Registry, policy: Policy, *,
                     received: datetime | None = None, grace: timedelta = timedelta(0)) -> Verified:
    """Stage 7: a required signature must be present; any present signature must verify
    and belong to a certificate registered for the copCode, valid at the signing time and
    (when ``received`` is given) at the receiving time give or take ``grace``.
    Raises SignatureError."""
    ident = authorised.validated.opened.ident
    if not signed(ident.root):
        if signature_required(ident.type, ident.root):
            raise SignatureError(f"{ident.type.code} must be signed", code="CEBGW-SIG-MISSING",
                                 field="Signature")
        return Verified(authorised, None)
    v = dsig_verify(ident, registry, policy=policy, sender_code=authorised.sender_code, received_at=received,
                    grace=grace)
    return Verified(authorised, v.entry.name)


_SUBSCRIBE = f"{{{CEB_NS}}}BaseSubscribe"
_SUBSCRIBER_FIELDS = (f"{{{CEB_NS}}}status", f"{{{CEB_NS}}}dxpAddress")


def subscribers_of(root: etree._Element) -> tuple[Subscriber, ...]:
    """The BaseSubscribe entries with a known status."""
    out: list[Subscriber] = []
    for el in root.iterchildren(_SUBSCRIBE):
        found = first_children(el, _SUBSCRIBER_FIELDS)
        status, address = text(found.get(_SUBSCRIBER_FIELDS[0])), text(found.get(_SUBSCRIBER_FIELDS[1]))
        if status in ("ALL", "DATA", "RET") and address:
            out.append(Subscriber(address, status))  # type: ignore[arg-type]  # checked just above
    return tuple(out)


def prepare(verified: Verified, *, now: datetime | None = None,
            gateway_key: KeyProvider | None = None, held: bool = False,
            parcel_fields: bool = True, business_keys: list[dict[str, str]] | None = None,
            guard: Guard | None = None) -> Prepared:
    """Stage 8: the store record and the DxpMsg for customs (CopMsgId kept from the sender's
    envelope, else new; Data = the exact submitted bytes), signed by ``gateway_key`` if given;
    with its records' guids and parcel documents (their fields too, with ``parcel_fields``),
    stored ``held`` back from customs if asked (``business_keys``: its records' keys, if the
    caller has read them already), checked by ``guard`` as it is stored."""
    auth = verified.authorised
    opened = auth.validated.opened
    ident, mtype = opened.ident, opened.type
    cop_msg_id = opened.cop_msg_id or new_cop_msg_id()
    data = ident.parsed.data
    head, tail = wrap_parts(msg_type=mtype.root, sender_id=auth.account.dxp_id,
                            receiver_ids=(receiver_for(mtype.flow),), cop_msg_id=cop_msg_id,
                            created=creat_time(now))
    # Unsigned, the envelope is head + base64(data) + tail: the store keeps just those parts,
    # so it is not built here.  Signed, it is built and signed whole (sign_envelope).
    guids, docs = parcel_records(ident, with_fields=parcel_fields)
    message = NewMessage(
        tenant=auth.account.name, sender_code=auth.sender_code, message_type=mtype.code,
        guid=ident.root.get("guid", ""), data=data,
        business_keys=mtype.business_keys(ident.root) if business_keys is None else business_keys,
        envelope=b"", cop_msg_id=cop_msg_id,
        subscribers=subscribers_of(ident.root), envelope_parts=(head, tail), edition=auth.validated.edition,
        record_guids=guids, parcel_docs=docs, held=held and bool(docs), guard=guard)
    if gateway_key is not None:
        message = sign_envelope(message, gateway_key)
    return Prepared(verified, message)


async def persist(m: NewMessage, store: Store) -> Accepted:
    """Stage 9: one durable transaction (idempotent on the same bytes; ConflictError on a reused guid)."""
    put = await store.put_message(m)
    return Accepted(put.message_id, m.guid, m.message_type, tuple(m.business_keys), put.duplicate, m.edition)


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
    editions: tuple[str, ...] = EDITIONS
    times: TimePolicy = TimePolicy()
    executor: Executor | None = None  # where bodies of limits.offload_bytes and more are checked
    signer: Executor | None = None  # where envelopes are signed (None: inline, on the caller's thread)
    custody: CustodyKeys | None = None
    preflight: Preflight | None = None  # None: no pre-flight comparison
    lifecycle: bool = True  # refuse what the document's lifecycle does not allow (gateway.lifecycle)


def _now(clock: Callable[[], datetime] | None) -> datetime:
    return clock() if clock is not None else datetime.now(UTC)


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


def check_submission(data: bytes, account: Account,
                     deps: SubmitDeps) -> tuple[NewMessage, tuple[Finding, ...], lifecycle.Facts | None]:
    """Every stage of a declaration before the store: the record to persist (its lifecycle
    guard with it, :func:`lifecycle.guard`), the warnings and what the lifecycle stage before
    the store needs of the message (a cancellation or return; else ``None``). Raises Rejected
    (400/422, with CEB900), ForbiddenError."""
    known: MessageType | None = None  # the type, as far as identified
    cop_msg_id: str | None = None
    received = _now(deps.clock)
    try:
        ident = identify(parse_body(data, deps.limits), deps.catalog)
        known = ident.type
        opened = open_envelope(ident, deps.catalog, deps.limits)
        known, cop_msg_id = opened.type, opened.cop_msg_id
        validated = check_app_time(validate(require_kind(opened, "declaration"), deps.editions,
                                            deps.limits.max_findings), received, deps.times.app_time_window)
        verified = verify_signature(authorise(validated, account), deps.registry, deps.policy,
                                    received=received, grace=deps.times.cert_grace)
    except (InputError, SignatureError) as exc:
        now = deps.clock() if deps.clock is not None else None
        receipt = ceb900.build(exc, original=data, ori_cop_msg_id=cop_msg_id or new_cop_msg_id(),
                               ori_message_type=known.root if known else None, now=now)
        raise Rejected(exc, receipt, known.code if known else None) from exc
    now = deps.clock() if deps.clock is not None else None
    keys = opened.type.business_keys(opened.ident.root)  # read once: the lifecycle and the record
    facts = lifecycle.facts_of(opened.ident, keys) if deps.lifecycle else None
    pre = deps.preflight
    comparing = pre is not None and pre.active()  # else the parcel documents' fields are not kept
    held = comparing and pre is not None and pre.holds(account.name, opened.type.code)
    inline_key = deps.gateway_key if deps.signer is None else None  # else submit signs it off the loop
    guard = lifecycle.guard(facts, account.name, deps.catalog) if facts is not None else None
    message = prepare(verified, now=now, gateway_key=inline_key, held=held, parcel_fields=comparing,
                      business_keys=keys, guard=guard).message
    before_store = facts if facts is not None and facts.code in lifecycle.LIST_OF else None
    return message, validated.warnings, before_store


def sign_envelope(message: NewMessage, key: KeyProvider) -> NewMessage:
    """``message`` with its DxpMsg signed by ``key`` (the gateway's): the parts :func:`prepare`
    left, the tail now carrying the signature; what ``prepare(..., gateway_key=key)`` makes."""
    if message.envelope_parts is None:
        return message  # built (and signed, if it was to be) already
    head, tail = message.envelope_parts
    middle = base64.b64encode(message.data)
    try:
        # only the envelope's head and tail are parsed; it stays head + base64 + (signed) tail
        return replace(message, envelope_parts=(head, sign_around(head, middle, tail, key)))
    except ValueError:  # pragma: no cover - wrap_parts' envelopes always take the signature in the tail
        return replace(message, envelope=dsig_sign(head + middle + tail, key), envelope_parts=None)


async def check_lifecycle(message: NewMessage, facts: lifecycle.Facts, deps: SubmitDeps) -> None:
    """Stage 7b: a cancellation or return against the inventory list it names (:mod:`gateway.
    lifecycle`; the other checks run as the message is stored). Raises Rejected (409/422, with CEB900)."""
    try:
        await lifecycle.check(facts, message.tenant, deps.store, deps.catalog)
    except lifecycle.LifecycleError as exc:
        raise _refused(exc, message, deps) from exc


def _refused(exc: lifecycle.LifecycleError, message: NewMessage, deps: SubmitDeps) -> Rejected:
    """The lifecycle's refusal of ``message``, with its CEB900."""
    now = deps.clock() if deps.clock is not None else None
    receipt = ceb900.build(exc, original=message.data, ori_cop_msg_id=message.cop_msg_id,
                           ori_message_type=deps.catalog[message.message_type].root, now=now)
    return Rejected(exc, receipt, message.message_type)


async def submit(data: bytes, account: Account, deps: SubmitDeps) -> Accepted:
    """Run a declaration through every stage. Raises Rejected (400/409/422, with CEB900),
    ForbiddenError, ConflictError, StoreError."""
    # The parsed tree stays inside check_submission: with many requests waiting for the
    # commit at once, their trees would otherwise stay alive and crowd the CPU caches.
    message, warnings, facts = await off_loop(lambda: check_submission(data, account, deps), len(data),
                                              deps.limits, deps.executor)
    signed: asyncio.Future[NewMessage] | None = None
    if deps.gateway_key is not None and deps.signer is not None:
        # parsing, canonicalizing and RSA/SM2 release the GIL: the envelope is signed on another
        # thread while this one serves other requests (and checks a cancellation's list)
        loop = asyncio.get_running_loop()
        signed = loop.run_in_executor(deps.signer, sign_envelope, message, deps.gateway_key)
    if facts is not None:
        try:
            await check_lifecycle(message, facts, deps)
        except BaseException:
            if signed is not None:
                signed.cancel()  # not needed now; a signature already under way just finishes
            raise
    if signed is not None:
        message = await signed
    try:
        accepted = await persist(message, deps.store)  # the lifecycle's guard judges it there
    except lifecycle.LifecycleError as exc:
        raise _refused(exc, message, deps) from exc
    if warnings:
        accepted = replace(accepted, warnings=warnings)
    pre = deps.preflight
    if pre is not None and message.parcel_docs and pre.active():
        # the same bytes again: compared again (nothing new is sent), so the answer is the same
        parcels = list(dict.fromkeys(ParcelKey(d.ebp_code, d.order_no) for d in message.parcel_docs))
        accepted = replace(accepted, preflight=await preflight(parcels, pre, deps.store))
    return accepted


async def preflight(parcels: Sequence[ParcelKey], pre: Preflight, store: Store) -> tuple[Evaluation, ...]:
    """Stage 10: compare each parcel a stored declaration belongs to (a waybill, which names no
    platform: every platform's parcel with its order number) and act per the senders' policies."""
    out: list[Evaluation] = []
    for key in parcels:
        keys = [key]
        if not key.ebp_code:
            platforms = {document_of(v).get("ebpCode") for v in await store.parcel_versions("", key.order_no)}
            keys = [ParcelKey(p, key.order_no) for p in sorted(p for p in platforms if p)] or [key]
        for k in keys:
            out.append(await pre.evaluate(k, store))
    return tuple(out)


@dataclass(frozen=True)
class Translated:
    """A JSON declaration as the CEB XML it maps to, signed with the account's custody key;
    ``model`` turns the XML's element paths back into the JSON's."""

    data: bytes
    message_type: MessageType
    edition: str
    model: mapping.Model


def translate(data: bytes, account: Account, deps: SubmitDeps, *,
              message_type: str | None = None) -> Translated:
    """Stage 0 for JSON: the account must allow custody signing (ForbiddenError, 403, before the
    JSON is read); the JSON is mapped to the CEB XML of its type and edition (MappingError naming
    each JSON path) and signed with the account's key.  What follows is the XML path."""
    if deps.custody is None:
        raise ForbiddenError("this gateway holds no keys for its accounts: send signed CEB XML",
                             code="CEBGW-AUTH-CUSTODY")
    key = deps.custody.key_for(account)
    if len(data) > deps.limits.max_bytes:
        raise ParseError(f"{len(data)} bytes exceeds the limit of {deps.limits.max_bytes}",
                         code="CEBGW-PARSE-TOO-LARGE")
    doc = mapping.loads(data, source="request")
    codes = sorted(account.codes)
    # guids the JSON leaves out are derived from the account and the exact JSON: a retried POST
    # is the same declaration (200, or 409 once appTime's default has moved on), never a second
    seed = hashlib.sha256(account.name.encode() + b"\0" + data).hexdigest()
    ctx = mapping.Context(code=codes[0] if len(codes) == 1 else None, dxp_id=account.dxp_id or None,
                          clock=deps.clock, seed=seed)
    mtype, edition, xml = mapping.xml_from_json(doc, deps.catalog, message_type=message_type, ctx=ctx)
    if mtype.kind != "declaration":
        raise IdentifyError(f"{mtype.root} is a {mtype.kind}; this endpoint takes a declaration",
                            field="messageType")
    return Translated(dsig_sign(xml, key, message_type=mtype), mtype, edition, mapping.model(mtype, edition))


async def submit_json(data: bytes, account: Account, deps: SubmitDeps, *,
                      message_type: str | None = None) -> Accepted:
    """A JSON declaration: :func:`translate`, then :func:`submit` on the signed XML, so it is
    stored, queued and audited as that XML.  Refusals name JSON paths (``/order/0/orderHead/
    acturalPaid``).  Raises Rejected (with CEB900), ForbiddenError, ConflictError, StoreError."""
    try:
        translated = translate(data, account, deps, message_type=message_type)
    except InputError as exc:
        receipt = ceb900.build(exc, original=data, ori_cop_msg_id=new_cop_msg_id(), ori_message_type=None,
                               now=deps.clock() if deps.clock is not None else None)
        raise Rejected(exc, receipt) from exc
    try:
        return await submit(translated.data, account, deps)
    except Rejected as exc:
        cause = _at_json_paths(exc.cause, translated.model)
        raise Rejected(cause, exc.ceb900, exc.message_type) from exc


def _at_json_paths(exc: GatewayError, model: mapping.Model) -> GatewayError:
    """``exc`` with each finding's element path given as the JSON path it came from."""
    found = tuple(replace(f, path=mapping.json_path(f.path, model), line=None) if f.path else f
                  for f in exc.findings)
    out = type(exc)(exc.message, code=exc.code, findings=found, field=exc.field)
    return out


def message_type_of(data: bytes, catalog: Catalog, limits: Limits) -> str | None:
    """The catalogue code of the message in ``data`` (opened from its envelope), or ``None`` if it
    cannot be identified: for naming a refusal that is not a :class:`Rejected` (which says it)."""
    try:
        return open_envelope(identify(parse_body(data, limits), catalog), catalog, limits).type.code
    except GatewayError:
        return None


# ---------------------------------------------------------------- receipts

@dataclass(frozen=True)
class CheckedReceipt:
    """A valid receipt message whose signature (if any, or if required) verified."""

    validated: Validated
    signer: str | None


def customs_identities(account: Account) -> tuple[str, ...]:
    """The identities a customs account's certificates are registered for: its codes and DXP ids."""
    return (*sorted(account.codes), *account.dxp_ids)


def verify_customs(validated: Validated, registry: Registry, policy: Policy, accounts: Accounts,
                   customs: Account, *, required: bool, received: datetime | None = None,
                   grace: timedelta = timedelta(0)) -> CheckedReceipt:
    """The receipt (or the DxpMsg it came in) must be signed by a customs account's certificate
    when ``required``; any signature present must verify.  A bare receipt names no sender, so
    its certificate must be registered for one of ``customs``' codes or its DXP id (the
    posting account).  Certificates must be valid at ``received`` too (give or take ``grace``).
    Raises SignatureError."""
    opened = validated.opened
    signer: str | None = None
    env = opened.envelope_ident
    if env is not None and signed(env.root):
        v = dsig_verify(env, registry, policy=policy, received_at=received, grace=grace)
        acc = accounts.by_dxp_id(v.signer)
        if acc is None or not acc.is_customs:
            raise SignatureError(f"envelope signed for {v.signer!r}, which is not a customs account",
                                 code="CEBGW-SIG-CERT-UNREGISTERED", field="SenderId")
        signer = v.entry.name
    if signed(opened.ident.root):
        if not customs.is_customs:
            raise SignatureError(f"account {customs.name!r} is not a customs account",
                                 code="CEBGW-SIG-CERT-UNREGISTERED", field="Signature")
        signer = dsig_verify(opened.ident, registry, policy=policy,
                             expected_signers=customs_identities(customs), received_at=received,
                             grace=grace).entry.name
    if required and signer is None:
        raise SignatureError("receipts must be signed by customs", code="CEBGW-SIG-MISSING",
                             field="Signature")
    return CheckedReceipt(validated, signer)


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
    clock: Callable[[], datetime] | None = None
    times: TimePolicy = TimePolicy()
    executor: Executor | None = None  # where bodies of limits.offload_bytes and more are checked


def check_receipt(data: bytes, deps: ReceiptDeps, customs: Account) -> CheckedReceipt:
    """Every stage of a receipt before routing. Raises InputError/SignatureError."""
    opened = open_envelope(identify(parse_body(data, deps.limits), deps.catalog), deps.catalog, deps.limits)
    return verify_customs(validate_receipt(require_kind(opened, "receipt"), deps.limits.max_findings),
                          deps.registry, deps.policy, deps.accounts, customs, required=deps.require_signature,
                          received=_now(deps.clock), grace=deps.times.cert_grace)


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


def receipt_json(data: bytes, record_no: int, catalog: Catalog) -> dict[str, object]:
    """Record ``record_no`` of a stored receipt message as the JSON :mod:`gateway.mapping` writes
    (its type, edition and that one record; ``returnInfo`` parsed into code and text)."""
    ident = without_signature(identify(parse(data, source="stored receipt"), catalog))
    edition = detect(ident)[0] or CURRENT_EDITION
    doc = mapping.to_json(ident.root, ident.type, edition)
    top = mapping.model(ident.type, edition).body.children[0]
    records = doc.get(top.json)
    if isinstance(records, list) and 0 < record_no <= len(records):
        doc[top.json] = [records[record_no - 1]]
    return doc


def describe(code: str, edition: str | None, fmt: str, catalog: Catalog) -> tuple[str, str]:
    """A message type's JSON described as ``json-schema``, ``markdown`` or its ``xsd`` (the schema
    file of its flow), in ``edition`` (default: the newest it has): ``(text, media type)``.
    Raises NotFoundError for an unknown type, UsageError for a bad format or edition."""
    mtype = catalog.types.get(code)
    if mtype is None or mtype.is_envelope:
        raise NotFoundError(f"no CEB message type {code!r}")
    edition = edition or next(e for e in EDITIONS if e in mtype.editions)
    if edition not in mtype.editions:
        raise UsageError(f"{code} has no {edition} edition (it has {', '.join(mtype.editions)})",
                         field="edition")
    if fmt == "json-schema":
        text = json.dumps(json_schema(mtype, edition), ensure_ascii=False, indent=2) + "\n"
        return text, "application/json"
    if fmt == "markdown":
        return markdown(mtype, edition), "text/markdown"
    if fmt == "xsd":
        return xsd_path(mtype, edition=edition).read_text(encoding="utf-8"), "application/xml"
    raise UsageError("format must be json-schema, markdown or xsd", field="format")


def stored_record(data: bytes, record_no: int, catalog: Catalog) -> dict[str, str]:
    """Record ``record_no`` of a receipt message the store kept (what :func:`receive` took), as its
    leaf fields by local name: parse → identify → :func:`routing.record_fields`."""
    return routing.record_fields(identify(parse(data, source="stored receipt"), catalog), record_no)


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
