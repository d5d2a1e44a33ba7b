"""The durable store: declarations, their receipts, the customs outbox and the mailboxes.

:class:`Store` is the interface every backend implements; the records it takes and
returns are frozen dataclasses defined here.  :func:`open_store` builds a backend from
a URL.  SQL lives in this package and nowhere else.

Promises every backend keeps:

* A write returns only once it is durable (committed and synced).
* Declarations are append-only: a change is a new message; state lives apart.
* The same tenant submitting the same bytes again gets the first result back with
  ``duplicate=True`` and nothing is queued twice; the same tenant reusing a ``guid``
  for different bytes gets :class:`~gateway.errors.ConflictError`.
* A tenant never sees another tenant's messages or mail (``None``/empty, not an error).
* Nothing is dropped: a receipt that matches no declaration becomes a dead letter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from ..errors import ConfigError, register
from ..state import State

MAX_ID = 2**63 - 1  # the largest row id or cursor: SQLite integers (and PostgreSQL bigint) are 64-bit signed

SubscribeStatus = Literal["ALL", "DATA", "RET"]
Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``); injectable so tests control leases."""

register("CEBGW-STORE-SCHEMA", 503, 2, "-3999", "store schema is newer than this gateway",
         "存储结构版本高于本网关版本")
register("CEBGW-STORE-CLOSED", 503, 2, "-3999", "store is closed", "存储已关闭")
register("CEBGW-CONFIG-STORE-URL", 500, 2, "-3999", "store URL not supported", "不支持的存储地址")


@dataclass(frozen=True)
class Subscriber:
    """A ``BaseSubscribe`` entry (spec §4.2)."""

    dxp_address: str
    status: SubscribeStatus


@dataclass(frozen=True)
class ParcelDoc:
    """One record of a parcel declaration (CEB311/411/511/621) as the comparison reads it:
    ``fields`` is JSON ``{"head": {...}, "lines": [{...}, ...], "sender": copCode}``; a waybill
    has ``ebp_code == ""``."""

    record_no: int
    ebp_code: str
    order_no: str
    fields: str


@dataclass(frozen=True)
class NewMessage:
    """A validated declaration to store and queue for customs.

    ``guid`` must be the root ``guid`` attribute of ``data`` (so equal bytes carry equal
    guids); ``business_keys`` has one dict per business record, in document order.
    ``envelope_parts``, when the envelope is exactly ``head + base64(data) + tail``, is
    ``(head, tail)``: the store then need not look for the message's bytes in it (it keeps
    only the parts around them either way), and ``envelope`` may be left empty (``b""``)
    rather than built.
    """

    tenant: str
    sender_code: str
    message_type: str
    guid: str
    data: bytes
    business_keys: Sequence[dict[str, str]]
    envelope: bytes
    cop_msg_id: str
    subscribers: Sequence[Subscriber] = ()
    envelope_parts: tuple[bytes, bytes] | None = None
    edition: str | None = None  # the edition of the standard the message follows (2018, 202205)
    record_guids: Sequence[str] = ()  # each record's head guid, in record order
    parcel_docs: Sequence[ParcelDoc] = ()  # its records that are documents of a parcel
    held: bool = False  # stored held back from customs (an inventory list the pre-flight holds)
    # run inside the write transaction, before anything of the message is written: raising a
    # GatewayError refuses the message (nothing written) and leaves the rest of a batch alone
    guard: Guard | None = field(default=None, compare=False)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the exact submitted bytes (computed, so it cannot disagree)."""
        return hashlib.sha256(self.data).hexdigest()


class Versions(Protocol):
    """What a :attr:`NewMessage.guard` may read, inside the write transaction that stores the
    message: the store as it stands, with the messages written before it in the same
    transaction (the same group commit) included, each of them still ``declared``."""

    def declarations(self, message_type: str, keys: dict[str, str]) -> list[DeclarationRef]:
        """:meth:`Store.find_declarations`, at this point of the transaction."""
        ...

    def parcel_versions(self, ebp_code: str, order_no: str) -> list[ParcelVersion]:
        """:meth:`Store.parcel_versions`, at this point of the transaction."""
        ...


Guard = Callable[[Versions], None]
"""A check :meth:`Store.put_message` runs in its transaction (see :attr:`NewMessage.guard`), so
that what it judges cannot change before the message is stored: the document lifecycle's."""


@dataclass(frozen=True)
class PutResult:
    """Where a declaration was stored; ``duplicate`` when these bytes were stored before."""

    message_id: int
    duplicate: bool
    received_at: datetime
    chain_hash: str


@dataclass(frozen=True)
class TimelineEntry:
    """One receipt record linked to a declaration."""

    receipt_id: int
    message_type: str
    status: str
    return_time: str
    info: str
    received_at: datetime


@dataclass(frozen=True)
class MessageRecord:
    """A stored declaration with its current state and receipts in ``returnTime`` order."""

    id: int
    tenant: str
    message_type: str
    guid: str
    sender_code: str
    business_keys: tuple[dict[str, str], ...]
    subscribers: tuple[Subscriber, ...]
    state: State
    received_at: datetime
    data: bytes
    timeline: tuple[TimelineEntry, ...]
    edition: str | None = None  # the edition of the standard it follows; None if stored before editions


@dataclass(frozen=True)
class OutboxItem:
    """An envelope leased to the customs intranet; ``attempts`` counts leases including this one."""

    id: int
    message_id: int
    envelope: bytes
    attempts: int


@dataclass(frozen=True)
class DeclarationRef:
    """A declaration found by business keys; ``record_no`` is the matching record (0-based)."""

    message_id: int
    tenant: str
    message_type: str
    guid: str
    sender_code: str
    record_no: int
    state: State
    received_at: datetime
    subscribers: tuple[Subscriber, ...]
    record_guid: str = ""  # the matching record's head guid ("" if unknown)


@dataclass(frozen=True)
class ParcelVersion:
    """One version of one document of a parcel: the declaration record, its state, its fields
    (as :class:`ParcelDoc`), whether it is held back from customs and whether customs got it."""

    message_id: int
    record_no: int
    message_type: str
    tenant: str
    sender_code: str
    guid: str
    state: State
    received_at: datetime
    fields: str  # "" when not kept at the time (see preflight.parcel_records): ``data`` has them
    held: bool
    sent: bool
    data: bytes | None = None  # the declaration's bytes, given when ``fields`` is ""


@dataclass(frozen=True)
class ParcelOutcome:
    """The latest comparison of a parcel: ``findings`` as JSON, ``basis`` the newest message id
    it saw."""

    ebp_code: str
    order_no: str
    basis: int
    findings: str
    updated_at: datetime


@dataclass(frozen=True)
class HeldList:
    """An inventory list held back from customs."""

    message_id: int
    tenant: str
    ebp_code: str
    order_no: str
    held_at: datetime


@dataclass(frozen=True)
class NewReceipt:
    """One receipt record (a ``…Return`` element) and the exact bytes of the message carrying it.

    ``declaration_id`` is the correlated declaration, or ``None`` to file it as a dead
    letter (with ``reason``).  ``mailboxes`` are the tenants to deliver to besides the
    declaration's own tenant, which always receives it.  ``assigned_keys`` are numbers
    customs assigned to record ``declaration_record`` of that declaration (preNo, invtNo,
    sumNo…); they become extra business keys :meth:`Store.find_declarations` matches.
    """

    message_type: str
    guid: str
    data: bytes
    record_no: int
    status: str
    return_time: str
    info: str
    business_keys: dict[str, str]
    declaration_id: int | None
    mailboxes: Sequence[str] = ()
    reason: str = ""
    declaration_record: int = 0
    assigned_keys: Mapping[str, str] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ReceiptResult:
    """What storing a receipt did: the state change and who got it.

    ``duplicate`` when this record of these bytes was stored before (nothing redelivered).
    """

    receipt_id: int
    declaration_id: int | None
    dead_letter: bool
    duplicate: bool
    state_before: State | None
    state_after: State | None
    outcome: str
    delivered_to: tuple[str, ...]


@dataclass(frozen=True)
class MailItem:
    """A receipt in a tenant's mailbox; ``cursor`` numbers the tenant's own mail (1, 2, 3, ...) in
    arrival order, so it says nothing of other tenants'.  ``data`` is the whole receipt message;
    ``record_no`` (0-based) is the record of it this item is about."""

    cursor: int
    receipt_id: int
    message_id: int
    declaration_type: str
    declaration_guid: str
    message_type: str
    record_no: int
    status: str
    return_time: str
    info: str
    business_keys: dict[str, str]
    data: bytes
    delivered_at: datetime


@dataclass(frozen=True)
class DeadLetter:
    """A receipt that matched no declaration, waiting for an operator."""

    receipt_id: int
    message_type: str
    guid: str
    status: str
    return_time: str
    info: str
    business_keys: dict[str, str]
    reason: str
    received_at: datetime


@dataclass(frozen=True)
class ChainBreak:
    """The first broken link of one sender's hash chain."""

    tenant: str
    sender_code: str
    message_id: int
    problem: Literal["data", "link", "hash"]
    expected: str
    found: str


@dataclass(frozen=True)
class AuditProblem:
    """One thing the audit found: ``kind`` (``integrity``, ``journal``, ``changed``, ``missing``,
    ``unjournaled``, ``rewritten``, ``checkpoint``), ``where`` (the rows or entries), ``detail``."""

    kind: str
    where: str
    detail: str


@dataclass(frozen=True)
class CheckpointClaim:
    """What a signed checkpoint says the store held at ``created_us``: the audit journal up to
    entry ``entry_id`` with link ``entry_link``, each ``(tenant, sender_code)`` chain's head as
    ``(message id, chain hash)``, the newest message id, and where the journal began
    (``start``: the last message id, receipt id and mailbox cursor older than it)."""

    created_us: int
    entry_id: int
    entry_link: str
    chains: dict[tuple[str, str], tuple[int, str]]
    max_message_id: int
    start: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True)
class AuditReport:
    """Result of recomputing hash chains and the audit journal; ``ok`` when nothing is wrong.

    ``heads`` maps ``(tenant, sender_code)`` to the last chain hash.  ``problems`` are the
    journal's, SQLite's integrity check's and the signed checkpoints' findings (see
    :class:`AuditProblem`); ``journal_head`` is the last entry's id and link.
    """

    messages_checked: int
    chains: int
    breaks: tuple[ChainBreak, ...]
    heads: dict[tuple[str, str], str] = field(default_factory=dict)
    problems: tuple[AuditProblem, ...] = ()
    journal_entries: int = 0
    journal_head: tuple[int, str] = (0, "0" * 64)
    checkpoints_checked: int = 0
    entries_since_checkpoint: int | None = None

    @property
    def ok(self) -> bool:
        return not self.breaks and not self.problems


@dataclass(frozen=True)
class StoreMetrics:
    """Figures for ``/metrics``."""

    declarations: dict[tuple[str, str], int]   # (message_type, state) -> count
    receipts: dict[tuple[str, str], int]       # (message_type, returnStatus) -> count
    outbox_depth: int
    mailbox_unacked: int
    dead_letters: int
    write_batches: int
    write_jobs: int


class Store(Protocol):
    """The store interface; every method is a coroutine safe to call concurrently."""

    async def put_message(self, m: NewMessage) -> PutResult:
        """Store, index, chain and queue a declaration in one durable transaction.

        Raises ConflictError (``CEBGW-CONFLICT-GUID``) when the tenant used ``m.guid``
        for different bytes, what ``m.guard`` raises when it refuses the message (the same
        bytes again are answered as a duplicate first, unguarded), StoreError when the store
        cannot commit.
        """
        ...

    async def get_message(self, message_id: int, tenant: str) -> MessageRecord | None:
        """The declaration with its timeline, or ``None`` if absent or another tenant's."""
        ...

    async def lease_outbox(self, limit: int, visibility_timeout_s: float) -> list[OutboxItem]:
        """Up to ``limit`` envelopes in submission order, keeping each sender's order."""
        ...

    async def ack_outbox(self, ids: Sequence[int]) -> int:
        """Mark envelopes delivered; returns how many were newly acknowledged."""
        ...

    async def outbox_depth(self) -> int:
        """Envelopes not yet acknowledged (leased or not)."""
        ...

    async def find_declarations(self, message_type: str, keys: dict[str, str]) -> list[DeclarationRef]:
        """Declarations of that type with a record holding all ``keys`` (declared, or assigned by
        an earlier receipt's ``assigned_keys``); most recent first."""
        ...

    async def declaration(self, message_id: int) -> DeclarationRef | None:
        """The declaration ``message_id`` whatever its tenant (for operators), ``None`` if absent."""
        ...

    async def declarations_by_cop_msg_id(self, cop_msg_id: str) -> list[DeclarationRef]:
        """Every declaration sent in an envelope with this CopMsgId, newest first (senders choose
        their CopMsgIds, so several tenants may have used one)."""
        ...

    async def find_by_cop_msg_id(self, cop_msg_id: str) -> DeclarationRef | None:
        """The declaration sent to customs in the envelope with this CopMsgId (CEB900's
        ``oriCopMsgId``); the newest if several, ``None`` if none."""
        ...

    async def put_receipt(self, r: NewReceipt) -> ReceiptResult:
        """Store a receipt record, advance the declaration, record ``r.assigned_keys`` and deliver
        it, durably and at once (all or nothing).

        Raises NotFoundError when ``r.declaration_id`` names no declaration.
        """
        ...

    async def mailbox(self, tenant: str, after: int | None, limit: int) -> list[MailItem]:
        """The tenant's mail after ``after`` (``None``: after the last acknowledged cursor)."""
        ...

    async def mailbox_wait(self, tenant: str, after: int | None, limit: int, wait_s: float) -> list[MailItem]:
        """Like :meth:`mailbox`, but waits up to ``wait_s`` for mail to arrive when there is none."""
        ...

    async def outbox_wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for envelopes queued by another process or node (True when woken;
        False after the time, or at once when the store cannot tell, as SQLite cannot)."""
        ...

    async def ack_mailbox(self, tenant: str, cursor: int) -> None:
        """Mark the tenant's mail up to ``cursor`` read (clamped to what the tenant has)."""
        ...

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        """Unresolved dead letters, oldest first."""
        ...

    async def reroute_dead_letter(self, receipt_id: int, message_id: int,
                                  mailboxes: Sequence[str] = (), assign: Sequence[str] = ()) -> ReceiptResult:
        """Attach a dead letter to a declaration, advance it and deliver the receipt.

        ``assign`` names the receipt's key fields (preNo, invtNo, sumNo…) that become keys of the
        declaration's first record, as for a correlated receipt.  Raises NotFoundError when either
        does not exist or the letter was already rerouted.
        """
        ...

    async def audit_verify(self, tenant: str | None = None,
                           claims: Sequence[tuple[str, CheckpointClaim]] = ()) -> AuditReport:
        """Recompute every sender's hash chain (of ``tenant`` or all) from the stored bytes, and
        the audit journal from the rows; run the backend's integrity check; compare the store with
        each ``(label, claim)`` of a signed checkpoint (the caller checked the signatures)."""
        ...

    async def audit_state(self) -> CheckpointClaim:
        """What a checkpoint made now would sign: the journal head and every chain head."""
        ...

    async def put_checkpoint(self, claim: CheckpointClaim, document: bytes) -> int:
        """Keep a signed checkpoint document of ``claim``; returns its id."""
        ...

    async def checkpoints(self) -> list[tuple[int, int, bytes]]:
        """Every kept checkpoint as ``(id, created_us, signed document)``, oldest first."""
        ...

    async def metrics(self) -> StoreMetrics:
        """Counts for monitoring."""
        ...

    # ---- parcels (issue 11; gateway/store/parcelops.py)

    async def parcel_versions(self, ebp_code: str, order_no: str) -> list[ParcelVersion]:
        """Every version of every document of parcel (``ebp_code``, ``order_no``), oldest first;
        waybills (which carry no ebpCode) by ``order_no``; ``ebp_code == ""``: every platform's."""
        ...

    async def put_parcel_outcome(self, ebp_code: str, order_no: str, basis: int, findings: str) -> bool:
        """Keep the parcel's latest comparison unless one with a newer ``basis`` is kept; True if kept."""
        ...

    async def parcel_outcome(self, ebp_code: str, order_no: str) -> ParcelOutcome | None:
        """The parcel's latest comparison, ``None`` if never compared."""
        ...

    async def set_hold(self, message_id: int, held: bool, by: str = "") -> bool:
        """Hold a declaration's envelope back from customs (only while no lease or acknowledgement
        took it) or release it (``by``: who); True if that changed anything."""
        ...

    async def held_lists(self, tenant: str | None, limit: int) -> list[HeldList]:
        """Declarations held now (of ``tenant``, or all), oldest first."""
        ...

    async def record_spending(self, buyer_id: str, year: int, ebp_code: str, order_no: str,
                              amount: str) -> None:
        """Set what parcel (``ebp_code``, ``order_no``) counts against ``buyer_id``'s ``year``."""
        ...

    async def buyer_spent(self, buyer_id: str, year: int, ebp_code: str, order_no: str) -> str:
        """The sum (exact decimal text) of ``buyer_id``'s ``year`` over parcels other than this one."""
        ...

    async def close(self) -> None:
        """Finish pending writes and release the database; later calls raise StoreError."""
        ...


def check_url(url: str) -> None:
    """Raise ConfigError (naming what is expected) unless :func:`open_store` can open ``url``."""
    if url.startswith(("postgres://", "postgresql://")):
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError:
            raise ConfigError("a postgresql:// store needs the postgres extra: "
                              "pip install 'ceb-gateway[postgres]'",
                              code="CEBGW-CONFIG-STORE-URL", field="store_url") from None
        return
    if url == "sqlite://:memory:" or (url.startswith("sqlite:///") and len(url) > len("sqlite:///")):
        return
    raise ConfigError(f"unsupported store URL {url.split('://', 1)[0]!r}://…; expected sqlite:///path",
                      code="CEBGW-CONFIG-STORE-URL", field="store_url")


def open_store(url: str, *, clock: Clock | None = None, commit_delay_s: float = 0.0,
               cache_mb: int | None = None) -> Store:
    """Open (creating and migrating if needed) the store named by ``url``.

    ``sqlite:///relative/or/absolute/path.db`` (``sqlite:////abs/path`` also works) or
    ``sqlite://:memory:`` for a private in-memory store, or ``postgresql://…`` (libpq's URL; the
    store lives in the first schema of ``options=-csearch_path=…``, see :mod:`.postgres`).  Raises
    ConfigError for any other URL.  ``commit_delay_s``: how long
    a busy writer waits for more writes to share one sync; ``cache_mb``: the write connection's
    page cache (SQLite's default, 2 MB, when None).
    """
    from .sqlite import SqliteStore  # deferred: keeps the interface importable alone

    check_url(url)
    if url.startswith(("postgres://", "postgresql://")):
        from .postgres import PostgresStore

        return PostgresStore(url, clock=clock)
    if url == "sqlite://:memory:":
        return SqliteStore(":memory:", clock=clock)
    return SqliteStore(url[len("sqlite:///"):], clock=clock, commit_delay_s=commit_delay_s,
                       cache_mb=cache_mb)
