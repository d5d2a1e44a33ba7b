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
    custody_key = "/etc/cebgw/keys/ecommerce.key.pem"   # optional: the gateway holds this key and
    custody_cert = "/etc/cebgw/keys/ecommerce.cert.pem" # signs the account's JSON submissions with it
    preflight = "warn"                      # three-order comparison before customs: off (default),
                                            # warn (finding receipts) or hold (and hold its lists)
    also_dxp_ids = []                       # optional: more DXP ids it answers for (customs)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .dsig.keys import KeyProvider, load_key
from .errors import ConfigError, ForbiddenError

PREFLIGHT_POLICIES = ("off", "warn", "hold")
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
    custody_key: str = ""   # a key the gateway holds and signs JSON submissions with ("" = none)
    custody_cert: str = ""
    preflight: str = "off"  # PREFLIGHT_POLICIES: what the pre-flight comparison does for it
    # More DXP ids the account answers for: customs is DXPEDCCEB0000002 (import) and
    # DXPEDCCEB0000003 (export) at once, one intranet behind both.
    also_dxp_ids: tuple[str, ...] = ()

    @property
    def dxp_ids(self) -> tuple[str, ...]:
        """Every DXP id of the account: ``dxp_id`` first, then ``also_dxp_ids``."""
        return (self.dxp_id, *self.also_dxp_ids) if self.dxp_id else self.also_dxp_ids

    @property
    def custody(self) -> bool:
        """Whether the gateway may sign for this account (its JSON submissions)."""
        return bool(self.custody_key)

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
        return next((a for a in self.accounts if dxp_id and dxp_id in a.dxp_ids), None)

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
        preflight = row.get("preflight", "off")
        if preflight not in PREFLIGHT_POLICIES:
            raise ConfigError(f"{where}: preflight must be one of {', '.join(PREFLIGHT_POLICIES)}",
                              field="preflight")
        custody_key, custody_cert = row.get("custody_key", ""), row.get("custody_cert", "")
        if not isinstance(custody_key, str) or not isinstance(custody_cert, str):
            raise ConfigError(f"{where}: custody_key and custody_cert must be file paths",
                              field="custody_key")
        if custody_key and not custody_cert and not custody_key.lower().endswith((".p12", ".pfx")):
            raise ConfigError(f"{where}: a PEM custody_key needs its custody_cert", field="custody_cert")
        out.append(Account(name, roles, frozenset(_strs(row, "codes", where)), dxp_id,
                           _strs(row, "certificates", where), _strs(row, "token_sha256", where),
                           _strs(row, "client_cert_sha256", where), custody_key, custody_cert,
                           preflight=preflight, also_dxp_ids=_strs(row, "also_dxp_ids", where)))
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: account names must be unique", field="name")
    certs = [h.lower() for a in out for h in a.client_cert_hashes]
    if len(set(certs)) != len(certs):
        raise ConfigError(f"{source}: a client certificate authenticates one account only",
                          field="client_cert_sha256")
    return Accounts(tuple(out))


def render_accounts(accounts: Iterable[Account]) -> str:
    """TOML text for ``accounts`` (what :func:`parse_accounts` reads back)."""
    def string(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string

    def arr(values: Iterable[str]) -> str:
        return "[" + ", ".join(string(v) for v in sorted(values)) + "]"

    parts = ["# ceb-gateway accounts; tokens are stored as SHA-256 hex only.\n"]
    for a in accounts:
        parts.append(
            f"\n[[account]]\nname = {string(a.name)}\nroles = {arr(a.roles)}\ncodes = {arr(a.codes)}\n"
            f"dxp_id = {string(a.dxp_id)}\ncertificates = {arr(a.certificates)}\n"
            f"token_sha256 = {arr(a.token_hashes)}\nclient_cert_sha256 = {arr(a.client_cert_hashes)}\n"
            + (f"custody_key = {string(a.custody_key)}\ncustody_cert = {string(a.custody_cert)}\n"
               if a.custody_key else "")
            + (f"preflight = {string(a.preflight)}\n" if a.preflight != "off" else "")
            + (f"also_dxp_ids = {arr(a.also_dxp_ids)}\n" if a.also_dxp_ids else ""))
    return "".join(parts)


def read_accounts(path: str | os.PathLike[str], *, missing_ok: bool = False) -> Accounts:
    """The accounts in ``path`` (none if it does not exist and ``missing_ok``). Raises ConfigError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return Accounts(())
        raise ConfigError(f"{p}: no such accounts file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"accounts file {p}: {exc}") from None
    return parse_accounts(text, str(p))


def write_accounts(path: str | os.PathLike[str], accounts: Accounts) -> None:
    """Replace ``path`` with ``accounts`` at once (a running service rereads it whole, never
    half-written); readable by its owner only. Raises ConfigError."""
    p = Path(path)
    text = render_accounts(accounts.accounts)
    parse_accounts(text, str(p))  # what is written must read back
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {p}: {exc}") from None


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DXP_ID = re.compile(r"[A-Za-z0-9]{1,16}")  # TransInfo/SenderId: 1..16 (spec §9)
_CODE = re.compile(r"\S{1,64}")
# Accounts that send declarations need the codes they send for and the DXP id customs answers to.
_SENDING_ROLES = ROLES - {"customs", "operator"}


def new_account(name: str, roles: Iterable[str], codes: Iterable[str], dxp_id: str,
                certificates: Iterable[str] = ()) -> Account:
    """A checked account without tokens. Raises ConfigError naming the bad field."""
    role_set, code_set = frozenset(roles), frozenset(codes)
    if not _NAME.fullmatch(name):
        raise ConfigError(f"account name {name!r}: letters, digits, '.', '_' or '-', at most 64",
                          field="name")
    if not role_set or role_set - ROLES:
        raise ConfigError(f"roles {sorted(role_set - ROLES) or '(none)'}: "
                          f"each must be one of {sorted(ROLES)}", field="roles")
    bad = sorted(c for c in code_set if not _CODE.fullmatch(c))
    if bad:
        raise ConfigError(f"codes {bad}: no spaces, at most 64 characters", field="codes")
    if dxp_id and not _DXP_ID.fullmatch(dxp_id):
        raise ConfigError(f"dxp_id {dxp_id!r}: 1 to 16 letters or digits (DXP SenderId)", field="dxp_id")
    if role_set & _SENDING_ROLES and not (code_set and dxp_id):
        raise ConfigError(f"an account with roles {sorted(role_set & _SENDING_ROLES)} sends declarations: "
                          "it needs its enterprise codes and its DXP id",
                          field="codes" if not code_set else "dxp_id")
    return Account(name, role_set, code_set, dxp_id, tuple(certificates))


def with_account(accounts: Accounts, account: Account) -> Accounts:
    """``accounts`` plus ``account``. Raises ConfigError if its name, a code or its DXP id is taken."""
    if accounts.by_name(account.name) is not None:
        raise ConfigError(f"account {account.name!r} exists already", field="name")
    holder = accounts.by_dxp_id(account.dxp_id) if account.dxp_id else None
    if holder is not None:
        raise ConfigError(f"DXP id {account.dxp_id} belongs to account {holder.name!r}", field="dxp_id")
    for other in accounts.accounts:
        shared = sorted(account.codes & other.codes)
        if shared:
            raise ConfigError(f"codes {shared} belong to account {other.name!r}", field="codes")
    return Accounts((*accounts.accounts, account))


def replaced(accounts: Accounts, account: Account) -> Accounts:
    """``accounts`` with the account of the same name replaced by ``account``."""
    return Accounts(tuple(account if a.name == account.name else a for a in accounts.accounts))


def with_client_cert(accounts: Accounts, name: str, fingerprint: str) -> Accounts:
    """``accounts`` with the client certificate ``fingerprint`` (:func:`der_fingerprint`)
    registered for account ``name``.  A certificate authenticates one account only: raises
    ConfigError if any account holds it already, or if ``name`` does not exist."""
    account = _named(accounts, name)
    holder = accounts.by_client_cert(fingerprint)
    if holder is not None:
        raise ConfigError(f"client certificate sha256 {fingerprint} is registered for {holder.name} already",
                          field="client_cert_sha256")
    return replaced(accounts, replace(account, client_cert_hashes=(*account.client_cert_hashes,
                                                                   fingerprint.lower())))


def without_client_cert(accounts: Accounts, name: str, fingerprint: str) -> Accounts:
    """``accounts`` with the client certificate ``fingerprint`` no longer registered for account
    ``name``. Raises ConfigError if it is not registered for it, or if ``name`` does not exist."""
    account = _named(accounts, name)
    fp = fingerprint.lower()
    kept = tuple(h for h in account.client_cert_hashes if h.lower() != fp)
    if len(kept) == len(account.client_cert_hashes):
        raise ConfigError(f"client certificate sha256 {fingerprint} is not registered for {name}",
                          field="client_cert_sha256")
    return replaced(accounts, replace(account, client_cert_hashes=kept))


def _named(accounts: Accounts, name: str) -> Account:
    account = accounts.by_name(name)
    if account is None:
        raise ConfigError(f"no account {name!r}", field="name")
    return account


def without(accounts: Accounts, name: str) -> Accounts:
    """``accounts`` without the account ``name``."""
    return Accounts(tuple(a for a in accounts.accounts if a.name != name))


def der_fingerprint(der: bytes) -> str:
    """How an account's ``client_cert_sha256`` names a certificate: SHA-256 hex of its DER."""
    return hashlib.sha256(der).hexdigest()


def client_cert_fingerprint(cert_bytes: bytes) -> str:
    """:func:`der_fingerprint` of a certificate given as PEM or DER. Raises ConfigError if the
    bytes are not a certificate."""
    from .dsig.certutil import CertificateFormatError, der, load_certificate
    try:
        return der_fingerprint(der(load_certificate(cert_bytes)))
    except CertificateFormatError as exc:
        raise ConfigError(str(exc), field="client_cert") from None


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
        return read_accounts(self.path)

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


def with_custody(accounts: Accounts, name: str, key: str, cert: str) -> Accounts:
    """``accounts`` with the gateway holding ``key`` (and its ``cert``) to sign account ``name``'s
    JSON submissions; ``key`` "" takes custody away. Raises ConfigError if ``name`` does not exist."""
    account = _named(accounts, name)
    return replaced(accounts, replace(account, custody_key=key, custody_cert=cert if key else ""))


class CustodyKeys:
    """The keys the gateway holds for accounts that allow custody signing, each loaded once per
    process (parsing a private key costs tens of milliseconds) and reloaded when the accounts
    file names other files."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], KeyProvider] = {}
        self._lock = threading.Lock()

    def key_for(self, account: Account) -> KeyProvider:
        """The key that signs for ``account``. Raises ForbiddenError (``CEBGW-AUTH-CUSTODY``) when
        the account does not allow it, KeyError_ when its files cannot be loaded."""
        if not account.custody:
            raise ForbiddenError(f"account {account.name!r} does not let the gateway sign for it "
                                 "(custody_key in the accounts file): send signed CEB XML instead",
                                 code="CEBGW-AUTH-CUSTODY")
        where = (account.custody_key, account.custody_cert)
        with self._lock:
            key = self._keys.get(where)
            if key is None:
                key = self._keys[where] = load_key(where[0], where[1] or None)
        return key
