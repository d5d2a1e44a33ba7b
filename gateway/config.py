"""One frozen settings object, built and validated at start, then passed down.

:func:`load` reads a TOML file (``cebgw serve --config FILE``);
:func:`gateway.sandbox.datadir.settings_for` builds the settings of a sandbox data directory.
Nothing reads settings from globals.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

from .catalog import EDITIONS
from .dsig.algorithms import DEFAULT_ALLOWED, DEFAULT_MIN_RSA_BITS, SUITES, Policy
from .errors import DEFAULT_MAX_FINDINGS, ConfigError
from .intake import DEFAULT_OFFLOAD_BYTES
from .transportconfig import TransportSettings
from .transportconfig import from_mapping as transport_from_mapping
from .xmlio import (
    DEFAULT_MAX_ATTRIBUTES,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_NAMESPACES,
    DEFAULT_MAX_NODES,
)

DEFAULT_CERT_GRACE_S = 3600.0          # a message signed just before expiry may still be in transit
DEFAULT_APP_TIME_WINDOW_S = 86400.0    # appTime further than a day from the receiving time: a warning
DEFAULT_AUDIT_CHECKPOINT_S = 300.0     # signed checkpoints of the audit chains, and one on shutdown


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to start; :meth:`check` raises ConfigError when inconsistent."""

    store_url: str
    registry_path: Path
    accounts_path: Path
    max_body_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_nodes: int = DEFAULT_MAX_NODES              # elements and attributes per message
    max_attributes: int = DEFAULT_MAX_ATTRIBUTES    # per element
    max_namespaces: int = DEFAULT_MAX_NAMESPACES    # in scope at one element
    max_findings: int = DEFAULT_MAX_FINDINGS        # per answer; the rest are counted
    # Bodies this large are parsed and checked on a worker thread, not on the event loop.
    offload_bytes: int = DEFAULT_OFFLOAD_BYTES
    # A connection that has not sent a complete request head within this time is closed (the
    # same timer closes idle keep-alive connections); a body must arrive within body_timeout_s.
    header_timeout_s: float = 30.0
    body_timeout_s: float = 60.0
    allowed_algorithms: frozenset[str] = field(default_factory=lambda: DEFAULT_ALLOWED)
    min_rsa_bits: int = DEFAULT_MIN_RSA_BITS
    require_customs_signature: bool = True
    sign_envelopes: bool = False              # spec §9.1: envelope signatures are unusual
    gateway_key: Path | None = None
    gateway_cert: Path | None = None
    lease_timeout_s: float = 60.0
    long_poll_max_s: float = 30.0
    outbox_max_batch: int = 100
    mailbox_max_batch: int = 500
    accounts_check_interval_s: float = 1.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # Group commit: under sustained load a commit waits this long for more submissions to
    # share its sync (fewer syncs and WAL pages per message; adds at most this to latency).
    commit_delay_ms: float = 0.0
    # SQLite page cache of the store's write connection, per serving process.  The indexes
    # that take random inserts (guid, business keys) outgrow a small cache as the store grows;
    # a larger one keeps their pages in memory, at the cost of that much RSS.
    cache_mb: int = 2
    # Threads per serving process that sign DXP envelopes (sign_envelopes) off the event loop;
    # 0 signs on it.  The signing releases the GIL, so threads pay off where a process has a
    # core to spare; with a worker per core they only add hand-overs (docs/performance.md).
    sign_threads: int = 0
    # The editions of the standard this deployment takes declarations in (both by default).
    accept_editions: tuple[str, ...] = EDITIONS
    # Certificates are checked at the sender's appTime and at the time the gateway receives the
    # message, give or take this grace; an appTime further than the window from the receiving
    # time is a warning (CEBGW-APPTIME-SKEW; 0 turns that check off).
    cert_grace_s: float = DEFAULT_CERT_GRACE_S
    app_time_window_s: float = DEFAULT_APP_TIME_WINDOW_S
    # Seconds between signed checkpoints of the audit chains (one more on shutdown); 0: only on
    # shutdown and by `cebgw audit checkpoint`.  Signed with gateway_key/gateway_cert: without
    # them the gateway signs none (and `cebgw audit verify` says the log is unanchored).
    audit_checkpoint_s: float = DEFAULT_AUDIT_CHECKPOINT_S
    # [transport.amqp] and [transport.folder] (gateway/transportconfig.py): off unless given.
    transport: TransportSettings = field(default_factory=TransportSettings)
    # The personal limits the pre-flight comparison checks (CNY, exact decimals; spec §12 rule 13).
    single_limit: Decimal = Decimal("5000")
    annual_limit: Decimal = Decimal("26000")

    @cached_property
    def policy(self) -> Policy:
        """The signature verification policy these settings describe (made once: every
        submission asks for it)."""
        return Policy(allowed=self.allowed_algorithms, min_rsa_bits=self.min_rsa_bits)

    def check(self) -> Settings:
        """Return ``self`` if consistent; raise :class:`ConfigError` naming the first problem."""
        from .store import check_url  # deferred: the store package imports nothing from here
        check_url(self.store_url)
        if self.max_body_bytes < 1024:
            raise ConfigError("max_body_bytes must be at least 1024", field="max_body_bytes")
        if not 8 <= self.max_depth <= 256:
            raise ConfigError("max_depth must be between 8 and 256", field="max_depth")
        if self.max_nodes < 1000:
            raise ConfigError("max_nodes must be at least 1000", field="max_nodes")
        if not 4 <= self.max_attributes <= 10_000:
            raise ConfigError("max_attributes must be between 4 and 10000", field="max_attributes")
        if not 4 <= self.max_namespaces <= 10_000:
            raise ConfigError("max_namespaces must be between 4 and 10000", field="max_namespaces")
        if not 1 <= self.max_findings <= 100_000:
            raise ConfigError("max_findings must be between 1 and 100000", field="max_findings")
        if self.offload_bytes < 0:
            raise ConfigError("offload_bytes must be 0 or more", field="offload_bytes")
        if self.header_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise ConfigError("header_timeout_s and body_timeout_s must be > 0", field="header_timeout_s")
        unknown = set(self.allowed_algorithms) - set(SUITES)
        if unknown or not self.allowed_algorithms:
            raise ConfigError(f"allowed_algorithms: unknown or empty {sorted(unknown)}",
                              field="allowed_algorithms")
        if self.min_rsa_bits < 1024:
            raise ConfigError("min_rsa_bits below 1024 is never acceptable", field="min_rsa_bits")
        if self.sign_envelopes and (self.gateway_key is None or self.gateway_cert is None):
            raise ConfigError("sign_envelopes needs gateway_key and gateway_cert", field="gateway_key")
        if self.lease_timeout_s <= 0 or self.long_poll_max_s < 0:
            raise ConfigError("lease_timeout_s must be > 0 and long_poll_max_s >= 0", field="lease_timeout_s")
        if not 0 <= self.commit_delay_ms <= 100:
            raise ConfigError("commit_delay_ms must be between 0 and 100", field="commit_delay_ms")
        if not 1 <= self.cache_mb <= 65536:
            raise ConfigError("cache_mb must be between 1 and 65536", field="cache_mb")
        if not 0 <= self.sign_threads <= 64:
            raise ConfigError("sign_threads must be between 0 and 64", field="sign_threads")
        if not self.accept_editions or set(self.accept_editions) - set(EDITIONS):
            raise ConfigError(f"accept_editions must name one or both of {', '.join(EDITIONS)}; "
                              f"got {list(self.accept_editions)}", field="accept_editions")
        if not 0 <= self.cert_grace_s <= 7 * 86400:
            raise ConfigError("cert_grace_s must be between 0 and 604800 (7 days)", field="cert_grace_s")
        if self.app_time_window_s < 0:
            raise ConfigError("app_time_window_s must be >= 0 (0: not checked)", field="app_time_window_s")
        if self.audit_checkpoint_s < 0:
            raise ConfigError("audit_checkpoint_s must be >= 0 (0: on shutdown only)",
                              field="audit_checkpoint_s")
        if (self.gateway_key is None) != (self.gateway_cert is None):
            raise ConfigError("gateway_key and gateway_cert go together", field="gateway_key")
        if min(self.outbox_max_batch, self.mailbox_max_batch) < 1:
            raise ConfigError("batch limits must be positive", field="outbox_max_batch")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together", field="tls_cert")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("tls_client_ca needs tls_cert and tls_key", field="tls_client_ca")
        self.transport.check()
        for name in ("registry_path", "accounts_path"):
            if not Path(getattr(self, name)).is_file():
                raise ConfigError(f"{name}: {getattr(self, name)} does not exist", field=name)
        return self

    def with_(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and checked (``cebgw serve --db``; tests, for short timeouts)."""
        return replace(self, **changes).check()


_PATHS = ("registry_path", "accounts_path", "gateway_key", "gateway_cert", "tls_cert", "tls_key",
          "tls_client_ca")
_FLOATS = ("lease_timeout_s", "long_poll_max_s", "accounts_check_interval_s", "commit_delay_ms",
           "header_timeout_s", "body_timeout_s", "cert_grace_s", "app_time_window_s", "audit_checkpoint_s")
_INTS = ("max_body_bytes", "max_depth", "min_rsa_bits", "outbox_max_batch", "mailbox_max_batch",
         "cache_mb", "sign_threads", "max_nodes", "max_attributes", "max_namespaces", "max_findings",
         "offload_bytes")
_BOOLS = ("require_customs_signature", "sign_envelopes")


_DECIMALS = ("single_limit", "annual_limit")


def from_mapping(data: dict[str, Any], base: Path) -> Settings:
    """Settings from a parsed TOML table; relative paths are taken from ``base``. Raises ConfigError."""
    known = {"store_url", "allowed_algorithms", "accept_editions", "transport", *_PATHS, *_FLOATS, *_INTS,
             *_BOOLS, *_DECIMALS}
    extra = set(data) - known
    if extra:
        raise ConfigError(f"unknown settings: {sorted(extra)}", field=sorted(extra)[0])
    kw: dict[str, Any] = {}
    try:
        for name in _PATHS:
            if name in data:
                p = Path(str(data[name]))
                kw[name] = p if p.is_absolute() else base / p
        kw.update({n: float(data[n]) for n in _FLOATS if n in data})
        kw.update({n: int(data[n]) for n in _INTS if n in data})
        for n in _DECIMALS:
            if n in data:
                try:
                    kw[n] = Decimal(str(data[n]))
                except ArithmeticError:
                    raise ConfigError(f"{n} must be a decimal amount, e.g. \"5000\"", field=n) from None
        for n in _BOOLS:
            if n in data:
                if not isinstance(data[n], bool):
                    raise ConfigError(f"{n} must be true or false", field=n)
                kw[n] = data[n]
        if "allowed_algorithms" in data:
            kw["allowed_algorithms"] = frozenset(str(a) for a in data["allowed_algorithms"])
        if "accept_editions" in data:
            raw = data["accept_editions"]
            if not isinstance(raw, list):
                raise ConfigError("accept_editions must be a list, e.g. [\"202205\", \"2018\"]",
                                  field="accept_editions")
            kw["accept_editions"] = tuple(str(e) for e in raw)
        kw["store_url"] = str(data["store_url"])
        if "transport" in data:
            if not isinstance(data["transport"], dict):
                raise ConfigError("[transport] must be a table", field="transport")
            kw["transport"] = transport_from_mapping(data["transport"], base)
        for required in ("registry_path", "accounts_path"):
            if required not in kw:
                raise ConfigError(f"{required} is required", field=required)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"bad settings: {exc}") from None
    return Settings(**kw).check()


def load(path: str | Path) -> Settings:
    """Read and check a TOML settings file. Raises ConfigError."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: {exc}") from None
    return from_mapping(data, p.resolve().parent)
