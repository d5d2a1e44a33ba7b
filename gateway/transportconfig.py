"""Settings of the transports beside HTTP pull: ``[transport.amqp]`` and ``[transport.folder]``.

Part of :class:`gateway.config.Settings` (its ``transport`` field); kept apart so the
transports' many keys do not crowd the service's.  Unknown keys are refused, as everywhere
in the settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

RECEIVERS = ("DXPEDCCEB0000002", "DXPEDCCEB0000003")  # customs import, export (spec §9.1)
ANY_SENDER = "*"


@dataclass(frozen=True)
class AmqpSettings:
    """Envelopes published to ``exchange`` with a routing key per receiver DXP id (the id itself
    unless ``routing_keys`` says otherwise); receipts consumed from ``receipts_queue``, refused
    ones published to ``dead_letter_queue`` with the reason."""

    url: str
    exchange: str = "cebgw"
    routing_keys: Mapping[str, str] = field(default_factory=dict)
    receipts_queue: str = "cebgw.receipts"
    dead_letter_queue: str = "cebgw.receipts.dead"
    # Queues to declare and bind to the exchange by receiver DXP id (where customs reads);
    # for a sandbox, or a broker the gateway owns.  Empty: the platform binds its own.
    customs_queues: Mapping[str, str] = field(default_factory=dict)
    customs_account: str = "customs"      # the account whose receipts these are (signer check)
    prefetch: int = 50
    confirm_timeout_s: float = 30.0
    batch: int = 100                      # envelopes leased and published per round
    poll_interval_s: float = 1.0          # outbox polling when idle (local submissions wake it at once)
    reconnect_max_s: float = 30.0         # back-off ceiling while the broker is away
    declare: bool = True                  # declare exchange and queues (durable) at start
    publish: bool = True
    consume: bool = True

    def routing_key(self, receiver_id: str) -> str:
        """The routing key of envelopes for ``receiver_id``."""
        return self.routing_keys.get(receiver_id, receiver_id)

    def redacted_url(self) -> str:
        """The URL without its password, for logs."""
        u = urlsplit(self.url)
        host = u.hostname or ""
        port = f":{u.port}" if u.port else ""
        user = f"{u.username}@" if u.username else ""
        return f"{u.scheme}://{user}{host}{port}{u.path}"


@dataclass(frozen=True)
class FolderPair:
    """A DXP client's folders: what it sends (we write envelopes there) and where it writes
    receipts (we read them).  ``dxp_id`` is the client's identity, the envelopes' ``SenderId``;
    ``*`` takes the senders no other pair names."""

    dxp_id: str
    send: Path
    receive: Path


@dataclass(frozen=True)
class FolderSettings:
    """The DXP clients' folder pairs, how often to look, and when a receipt file is finished."""

    pairs: tuple[FolderPair, ...]
    customs_account: str = "customs"
    poll_interval_s: float = 1.0
    settle_s: float = 1.0    # a file whose size and mtime held still this long is finished
    batch: int = 100

    def pair_for(self, sender_id: str) -> FolderPair | None:
        """The pair whose client sends for ``sender_id`` (or the ``*`` pair), ``None`` if none."""
        exact = next((p for p in self.pairs if p.dxp_id == sender_id), None)
        return exact or next((p for p in self.pairs if p.dxp_id == ANY_SENDER), None)


@dataclass(frozen=True)
class TransportSettings:
    """``[transport]``: each transport is off unless its table is given."""

    amqp: AmqpSettings | None = None
    folder: FolderSettings | None = None

    def check(self) -> None:
        """Raise ConfigError naming the first inconsistent setting."""
        a = self.amqp
        if a is not None:
            if urlsplit(a.url).scheme not in ("amqp", "amqps"):
                raise ConfigError("transport.amqp.url must be an amqp:// or amqps:// URL", field="url")
            if not a.exchange or not a.receipts_queue or not a.dead_letter_queue:
                raise ConfigError("transport.amqp: exchange, receipts_queue and dead_letter_queue "
                                  "must be named", field="exchange")
            if a.receipts_queue == a.dead_letter_queue:
                raise ConfigError("transport.amqp: the dead-letter queue must not be the receipts queue",
                                  field="dead_letter_queue")
            if not 1 <= a.prefetch <= 10000 or not 1 <= a.batch <= 10000:
                raise ConfigError("transport.amqp: prefetch and batch must be between 1 and 10000",
                                  field="prefetch")
            if min(a.confirm_timeout_s, a.poll_interval_s, a.reconnect_max_s) <= 0:
                raise ConfigError("transport.amqp: timeouts and intervals must be > 0",
                                  field="confirm_timeout_s")
        f = self.folder
        if f is not None and a is not None and a.publish:
            # The outbox is one queue: two outbound transports would take envelopes by chance.
            raise ConfigError("transport.amqp and transport.folder would both send the outbox; set "
                              "publish = false in [transport.amqp] to take only receipts from it",
                              field="publish")
        if f is not None:
            if not f.pairs:
                raise ConfigError("transport.folder needs at least one [[transport.folder.pairs]]",
                                  field="pairs")
            ids = [p.dxp_id for p in f.pairs]
            if len(set(ids)) != len(ids):
                raise ConfigError("transport.folder: one pair per DXP id", field="dxp_id")
            dirs = [d.resolve() for p in f.pairs for d in (p.send, p.receive)]
            if len(set(dirs)) != len(dirs):
                raise ConfigError("transport.folder: every send and receive folder must be its own",
                                  field="pairs")
            if min(f.poll_interval_s, f.settle_s) <= 0 or f.batch < 1:
                raise ConfigError("transport.folder: poll_interval_s, settle_s and batch must be > 0",
                                  field="poll_interval_s")


Kinds = Mapping[str, type | tuple[type, ...]]


def _take(data: Mapping[str, Any], where: str, kinds: Kinds) -> dict[str, Any]:
    extra = set(data) - set(kinds)
    if extra:
        raise ConfigError(f"unknown settings in [{where}]: {sorted(extra)}", field=sorted(extra)[0])
    out: dict[str, Any] = {}
    for key, value in data.items():
        kind = kinds[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"[{where}] {key} has the wrong type", field=key)
        out[key] = value
    return out


_AMQP_KEYS: dict[str, type | tuple[type, ...]] = {
    "url": str, "exchange": str, "routing_keys": dict, "receipts_queue": str, "dead_letter_queue": str,
    "customs_queues": dict, "customs_account": str, "prefetch": int, "confirm_timeout_s": float, "batch": int,
    "poll_interval_s": float, "reconnect_max_s": float, "declare": bool, "publish": bool, "consume": bool}
_FOLDER_KEYS: dict[str, type | tuple[type, ...]] = {
    "pairs": list, "customs_account": str, "poll_interval_s": float, "settle_s": float, "batch": int}
_PAIR_KEYS: dict[str, type | tuple[type, ...]] = {"dxp_id": str, "send": str, "receive": str}


def from_mapping(data: Mapping[str, Any], base: Path) -> TransportSettings:
    """``[transport]`` from parsed TOML; relative folders are taken from ``base``. Raises ConfigError."""
    extra = set(data) - {"amqp", "folder"}
    if extra:
        raise ConfigError(f"unknown settings in [transport]: {sorted(extra)}", field=sorted(extra)[0])
    amqp: AmqpSettings | None = None
    folder: FolderSettings | None = None
    if "amqp" in data:
        kw = _take(_table(data["amqp"], "transport.amqp"), "transport.amqp", _AMQP_KEYS)
        if "url" not in kw:
            raise ConfigError("[transport.amqp] url is required", field="url")
        for name in ("routing_keys", "customs_queues"):
            if not all(isinstance(v, str) and v for v in kw.get(name, {}).values()):
                raise ConfigError(f"[transport.amqp] {name} maps DXP ids to names (strings)", field=name)
        amqp = AmqpSettings(**kw)
    if "folder" in data:
        kw = _take(_table(data["folder"], "transport.folder"), "transport.folder", _FOLDER_KEYS)
        pairs = []
        for i, row in enumerate(kw.pop("pairs", [])):
            p = _take(_table(row, f"transport.folder.pairs[{i}]"), f"transport.folder.pairs[{i}]", _PAIR_KEYS)
            if set(p) != set(_PAIR_KEYS):
                raise ConfigError(f"[transport.folder.pairs[{i}]] needs dxp_id, send and receive",
                                  field="pairs")
            send, receive = (Path(p[k]) if Path(p[k]).is_absolute() else base / p[k]
                             for k in ("send", "receive"))
            pairs.append(FolderPair(p["dxp_id"], send, receive))
        folder = FolderSettings(pairs=tuple(pairs), **kw)
    out = TransportSettings(amqp, folder)
    out.check()
    return out


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"[{where}] must be a table", field=where)
    return value
