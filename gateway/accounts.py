"""The account registry: who may call the gateway, with which codes, DXP id, roles and tokens.

Accounts live in a TOML file that operators edit while the service runs; an
:class:`AccountFile` rereads it when its modification time changes (looking at most
once per ``check_interval_s``).  API tokens are stored only as SHA-256 hex digests and
compared in constant time.  File format::

    [[account]]
    name = "ecommerce"
    roles = ["ecommerce", "agent"]          # or ["customs"], ["operator"]
    codes = ["3301960A7Z"]                  # copCode/ebcCode/... values it owns
    dxp_id = "DXPENT0000458762"
    certificates = ["ecommerce-rsa"]        # registry entry names
    token_sha256 = ["<hex>"]
    client_cert_sha256 = []                 # mutual-TLS client certificate fingerprints
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

ROLES = frozenset({"platform", "ecommerce", "payment", "logistics", "agent", "site_operator",
                   "customs", "operator"})


@dataclass(frozen=True)
class Account:
    """One caller of the API (an enterprise, the customs intranet, or an operator)."""

    name: str
    roles: frozenset[str]
    codes: frozenset[str]
    dxp_id: str
    certificates: tuple[str, ...] = ()
    token_hashes: tuple[str, ...] = ()
    client_cert_hashes: tuple[str, ...] = ()

    @property
    def is_customs(self) -> bool:
        return "customs" in self.roles

    @property
    def is_operator(self) -> bool:
        """Customs and operator accounts may look at and reroute dead letters."""
        return bool({"customs", "operator"} & self.roles)


def hash_token(token: str) -> str:
    """SHA-256 hex of a token, as stored in the accounts file."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh random API token and its hash: ``(token, sha256 hex)``."""
    token = "cebgw_" + secrets.token_urlsafe(32)
    return token, hash_token(token)


@dataclass(frozen=True)
class Accounts:
    """An immutable snapshot of the registry."""

    accounts: tuple[Account, ...]

    def by_token(self, token: str) -> Account | None:
        """The account holding ``token`` (constant-time compare over every stored hash)."""
        digest = hash_token(token)
        found: Account | None = None
        for acc in self.accounts:
            for h in acc.token_hashes:
                if hmac.compare_digest(h, digest):
                    found = acc
        return found

    def by_client_cert(self, fingerprint: str) -> Account | None:
        """The account a mutual-TLS client certificate (SHA-256 hex of its DER) belongs to."""
        fp = fingerprint.lower()
        return next((a for a in self.accounts
                     if any(hmac.compare_digest(fp, h.lower()) for h in a.client_cert_hashes)), None)

    def by_dxp_id(self, dxp_id: str) -> Account | None:
        return next((a for a in self.accounts if a.dxp_id == dxp_id), None)

    def by_name(self, name: str) -> Account | None:
        return next((a for a in self.accounts if a.name == name), None)


def _strs(row: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = row.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of strings", field=key)
    return tuple(value)


def parse_accounts(text: str, source: str = "accounts") -> Accounts:
    """Accounts from TOML text. Raises ConfigError for a malformed file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    rows = data.get("account", [])
    if not isinstance(rows, list):
        raise ConfigError(f"{source}: [[account]] tables expected", field="account")
    out: list[Account] = []
    for i, row in enumerate(rows):
        where = f"{source}: account {i + 1}"
        name, dxp_id = row.get("name"), row.get("dxp_id", "")
        if not isinstance(name, str) or not name or not isinstance(dxp_id, str):
            raise ConfigError(f"{where}: name and dxp_id must be strings", field="name")
        roles = frozenset(_strs(row, "roles", where))
        if roles - ROLES:
            raise ConfigError(f"{where}: unknown roles {sorted(roles - ROLES)}", field="roles")
        out.append(Account(name, roles, frozenset(_strs(row, "codes", where)), dxp_id,
                           _strs(row, "certificates", where), _strs(row, "token_sha256", where),
                           _strs(row, "client_cert_sha256", where)))
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: account names must be unique", field="name")
    return Accounts(tuple(out))


def render_accounts(accounts: Iterable[Account]) -> str:
    """TOML text for ``accounts`` (what :func:`parse_accounts` reads back)."""
    def arr(values: Iterable[str]) -> str:
        return "[" + ", ".join(f'"{v}"' for v in sorted(values)) + "]"

    parts = ["# ceb-gateway accounts; tokens are stored as SHA-256 hex only.\n"]
    for a in accounts:
        parts.append(
            f'\n[[account]]\nname = "{a.name}"\nroles = {arr(a.roles)}\ncodes = {arr(a.codes)}\n'
            f'dxp_id = "{a.dxp_id}"\ncertificates = {arr(a.certificates)}\n'
            f"token_sha256 = {arr(a.token_hashes)}\nclient_cert_sha256 = {arr(a.client_cert_hashes)}\n")
    return "".join(parts)


class AccountFile:
    """The registry file, reread when it changes (checked at most once per ``check_interval_s``).

    A file that becomes malformed keeps the last good snapshot (the service keeps
    serving); :attr:`last_error` says why.  Raises ConfigError at construction if the
    first read fails.
    """

    def __init__(self, path: str | os.PathLike[str], *, check_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._interval = check_interval_s
        self._clock = clock
        self._mtime = self._stat()
        self._snapshot = self._read()
        self._checked = clock()
        self.last_error: str | None = None

    def _stat(self) -> int:
        try:
            return self.path.stat().st_mtime_ns
        except OSError as exc:
            raise ConfigError(f"accounts file {self.path}: {exc}") from None

    def _read(self) -> Accounts:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"accounts file {self.path}: {exc}") from None
        return parse_accounts(text, str(self.path))

    def current(self) -> Accounts:
        """The current snapshot, reloading first if the file changed since the last look."""
        now = self._clock()
        if now - self._checked < self._interval:
            return self._snapshot
        self._checked = now
        try:
            mtime = self._stat()
            if mtime != self._mtime:
                self._snapshot, self._mtime, self.last_error = self._read(), mtime, None
        except ConfigError as exc:
            self.last_error = exc.message
        return self._snapshot
