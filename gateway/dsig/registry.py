"""The certificate registry: which certificate may sign for which enterprise, and until when.

One TOML file (``certs/registry.toml``) lists certificates by file, each with the
enterprise codes (copCode, ebpCode, ebcCode, payCode, logisticsCode, agentCode…) and DXP
ids it may sign for and an optional narrower validity window; revocation comes from
serial-number list files and CRLs.  Paths are relative to the file that names them::

    warn_days = 30                  # expiry warnings this many days ahead
    revoked = ["revoked.txt"]       # one hex serial per line, '#' comments
    crls = ["ca.crl"]               # PEM or DER CRLs
    include = ["sandbox/registry.toml"]

    [[cert]]
    name = "platform-rsa"
    file = "platform-rsa.cert.pem"
    codes = ["3301964J31"]
    dxp_ids = ["DXPENT0000458761"]
    not_after = 2026-12-31T23:59:59+08:00   # optional narrowing

An enterprise may have several certificates with overlapping windows (rotation).
The registry is loaded once and never changes; errors name the file, entry and field.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography import x509

from ..catalog import BEIJING
from ..errors import ConfigError
from . import certutil

_ENTRY_FIELDS = {"name", "file", "codes", "dxp_ids", "not_before", "not_after"}
_TOP_FIELDS = {"warn_days", "revoked", "crls", "include", "cert"}
_BASE64_MEMO_SIZE = 256  # certificate texts remembered per registry (each about 1-2 kB)


@dataclass(frozen=True)
class Entry:
    """One registered certificate and what it may sign for."""

    name: str
    path: Path
    certificate: x509.Certificate
    der: bytes
    fingerprint: str
    key: certutil.PublicKey
    codes: frozenset[str]
    dxp_ids: frozenset[str]
    not_before: datetime
    not_after: datetime

    @cached_property
    def serial(self) -> int:
        return self.certificate.serial_number  # a call into the X.509 library: once per entry

    @cached_property
    def beijing_window(self) -> tuple[datetime, datetime]:
        """``not_before`` and ``not_after`` in :data:`BEIJING` time, the zone of ``appTime``.

        Datetimes with the very same tzinfo compare field by field, without working out
        both UTC offsets; converted once per entry, they make the verifier's check cheap.
        """
        return self.not_before.astimezone(BEIJING), self.not_after.astimezone(BEIJING)

    @property
    def key_name(self) -> str:
        return certutil.key_name(self.certificate)

    def may_sign_for(self, identity: str) -> bool:
        """True when ``identity`` (an enterprise code or a DXP id) is registered for this certificate."""
        return identity in self.codes or identity in self.dxp_ids


def make_entry(
    cert: x509.Certificate,
    *,
    name: str,
    codes: Iterable[str] = (),
    dxp_ids: Iterable[str] = (),
    path: Path = Path("-"),
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Entry:
    """An entry for ``cert``; the window is the certificate's, narrowed by the optional bounds.

    Raises :class:`certutil.CertificateFormatError` for a key that is neither RSA nor SM2.
    """
    cert_der = certutil.der(cert)
    nb, na = certutil.not_before(cert), certutil.not_after(cert)
    if not_before is not None:
        nb = max(nb, not_before)
    if not_after is not None:
        na = min(na, not_after)
    return Entry(
        name,
        path,
        cert,
        cert_der,
        certutil.fingerprint(cert_der),
        certutil.public_key(cert),
        frozenset(codes),
        frozenset(dxp_ids),
        nb,
        na,
    )


class Registry:
    """Registered certificates, looked up by their DER bytes; revocation lists; expiry checks."""

    def __init__(
        self,
        entries: Iterable[Entry],
        *,
        revoked_serials: Iterable[int] = (),
        crls: Iterable[x509.CertificateRevocationList] = (),
        warn_days: int = 30,
        source: str = "-",
    ) -> None:
        self.entries: tuple[Entry, ...] = tuple(entries)
        self._by_fp = {e.fingerprint: e for e in self.entries}
        self._by_base64: dict[str, Entry] = {}
        self.revoked_serials = frozenset(revoked_serials)
        self.crls = tuple(crls)
        self.warn_days = warn_days
        self.source = source

    def by_der(self, cert_der: bytes) -> Entry | None:
        """The entry of exactly this certificate, or ``None`` when it is not registered."""
        return self._by_fp.get(certutil.fingerprint(cert_der))

    def by_base64(self, text: str) -> Entry | None:
        """The entry of the certificate written as base64 ``text`` (an ``X509Certificate``), or ``None``.

        Raises ``ValueError`` when ``text`` is not base64.  Texts of registered certificates
        are remembered, so a known sender's certificate costs one dictionary lookup rather
        than a decode and a SHA-256; the memo only holds registered certificates and is
        bounded, since one certificate can be written in many ways (line breaks).
        """
        entry = self._by_base64.get(text)
        if entry is None:
            entry = self.by_der(certutil.decode_base64(text))
            if entry is not None:
                if len(self._by_base64) >= _BASE64_MEMO_SIZE:
                    self._by_base64.clear()
                self._by_base64[text] = entry
        return entry

    def for_identity(self, identity: str) -> list[Entry]:
        """Every certificate that may sign for ``identity`` (code or DXP id)."""
        return [e for e in self.entries if e.may_sign_for(identity)]

    def is_revoked(self, entry: Entry) -> bool:
        """True when the serial is listed as revoked or a CRL of the certificate's issuer lists it."""
        serial = entry.serial
        if serial in self.revoked_serials:
            return True
        issuer = entry.certificate.issuer if self.crls else None
        for crl in self.crls:
            if crl.issuer == issuer and crl.get_revoked_certificate_by_serial_number(serial):
                return True
        return False

    def expiring(self, at: datetime, days: int | None = None) -> list[Entry]:
        """Entries whose window ends within ``days`` (default ``warn_days``) after ``at``, soonest first."""
        limit = at + timedelta(days=self.warn_days if days is None else days)
        return sorted((e for e in self.entries if e.not_after <= limit), key=lambda e: e.not_after)


def _err(where: str, msg: str, fld: str | None = None) -> ConfigError:
    return ConfigError(f"{where}: {msg}", field=fld)


def _str_list(value: Any, where: str, fld: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _err(where, f"{fld} must be a list of non-empty strings", fld)
    return list(value)


def _aware(value: Any, where: str, fld: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _err(where, f"{fld} must be a date-time with a UTC offset, e.g. 2026-01-01T00:00:00+08:00", fld)
    return value


def _load_entry(row: Any, index: int, base: Path, file: str) -> Entry:
    where = f"{file}: cert[{index}]"
    if not isinstance(row, dict):
        raise _err(where, "must be a table")
    unknown = set(row) - _ENTRY_FIELDS
    if unknown:
        raise _err(where, f"unknown field(s) {sorted(unknown)}", sorted(unknown)[0])
    name = row.get("name")
    if not isinstance(name, str) or not name:
        raise _err(where, "name is required", "name")
    where = f"{file}: cert[{index}] ({name})"
    rel = row.get("file")
    if not isinstance(rel, str) or not rel:
        raise _err(where, "file is required", "file")
    codes = _str_list(row.get("codes", []), where, "codes")
    dxp_ids = _str_list(row.get("dxp_ids", []), where, "dxp_ids")
    if not codes and not dxp_ids:
        raise _err(where, "an entry needs at least one code or dxp_id", "codes")
    path = base / rel
    try:
        cert = certutil.load_certificate(path.read_bytes())
        return make_entry(
            cert,
            name=name,
            codes=codes,
            dxp_ids=dxp_ids,
            path=path,
            not_before=_aware(row.get("not_before"), where, "not_before"),
            not_after=_aware(row.get("not_after"), where, "not_after"),
        )
    except OSError as exc:
        raise _err(where, f"file: cannot read {path}: {exc.strerror}", "file") from None
    except certutil.CertificateFormatError as exc:
        raise _err(where, f"file: {path}: {exc}", "file") from None


def _load_serials(path: Path, file: str) -> set[int]:
    out: set[int] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise _err(file, f"revoked: cannot read {path}: {exc.strerror}", "revoked") from None
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip().replace(":", "")
        if not text:
            continue
        try:
            out.add(int(text, 16))
        except ValueError:
            raise _err(f"{path}:{n}", f"not a hex serial number: {text!r}", "revoked") from None
    return out


def _load_crl(path: Path, file: str) -> x509.CertificateRevocationList:
    try:
        data = path.read_bytes()
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except OSError as exc:
        raise _err(file, f"crls: cannot read {path}: {exc.strerror}", "crls") from None
    except ValueError as exc:
        raise _err(file, f"crls: {path} is not a CRL: {exc}", "crls") from None


def _read(
    path: Path, seen: set[Path]
) -> tuple[list[Entry], set[int], list[x509.CertificateRevocationList], int]:
    file = str(path)
    real = path.resolve()
    if real in seen:
        raise _err(file, "included twice (include loop?)", "include")
    seen.add(real)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _err(file, f"cannot read the registry: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise _err(file, f"not valid TOML: {exc}") from None
    unknown = set(data) - _TOP_FIELDS
    if unknown:
        raise _err(file, f"unknown field(s) {sorted(unknown)}", sorted(unknown)[0])
    base = path.parent
    warn_days = data.get("warn_days", 30)
    if not isinstance(warn_days, int) or isinstance(warn_days, bool) or warn_days < 0:
        raise _err(file, "warn_days must be a non-negative integer", "warn_days")
    rows = data.get("cert", [])
    if not isinstance(rows, list):
        raise _err(file, "cert must be an array of tables ([[cert]])", "cert")
    entries = [_load_entry(row, i, base, file) for i, row in enumerate(rows)]
    serials: set[int] = set()
    for rel in _str_list(data.get("revoked", []), file, "revoked"):
        serials |= _load_serials(base / rel, file)
    crls = [_load_crl(base / rel, file) for rel in _str_list(data.get("crls", []), file, "crls")]
    for rel in _str_list(data.get("include", []), file, "include"):
        more, more_serials, more_crls, _ = _read(base / rel, seen)
        entries += more
        serials |= more_serials
        crls += more_crls
    return entries, serials, crls, warn_days


def load(path: str | os.PathLike[str]) -> Registry:
    """Read a registry file (and what it includes) once.

    Raises :class:`~gateway.errors.ConfigError` naming the file, entry and field of any fault,
    including a certificate registered twice.
    """
    p = Path(path)
    entries, serials, crls, warn_days = _read(p, set())
    seen: dict[str, Entry] = {}
    for e in entries:
        if e.fingerprint in seen:
            raise _err(
                str(e.path), f"certificate registered twice ({seen[e.fingerprint].name} and {e.name})", "file"
            )
        seen[e.fingerprint] = e
    return Registry(entries, revoked_serials=serials, crls=crls, warn_days=warn_days, source=str(p))


def entry_toml(name: str, file: str, codes: Iterable[str], dxp_ids: Iterable[str]) -> str:
    """The ``[[cert]]`` block for one entry (strings JSON-quoted, which TOML accepts for these)."""

    def arr(values: Iterable[str]) -> str:
        return "[" + ", ".join(json.dumps(v) for v in values) + "]"

    return (
        f"\n[[cert]]\nname = {json.dumps(name)}\nfile = {json.dumps(file)}\n"
        f"codes = {arr(codes)}\ndxp_ids = {arr(dxp_ids)}\n"
    )


def add_entry(
    registry_path: str | os.PathLike[str],
    cert_path: str | os.PathLike[str],
    *,
    name: str,
    codes: Iterable[str],
    dxp_ids: Iterable[str],
) -> Entry:
    """Append an entry for ``cert_path`` to the registry file, after checking the result still loads.

    Raises :class:`~gateway.errors.ConfigError` (and leaves the file unchanged) if it would not.
    """
    reg = Path(registry_path)
    cert = Path(cert_path).resolve()
    rel = os.path.relpath(cert, reg.parent.resolve())
    old = reg.read_text(encoding="utf-8") if reg.exists() else ""
    new = old + entry_toml(name, rel.replace(os.sep, "/"), list(codes), list(dxp_ids))
    tmp = reg.with_name(reg.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    try:
        loaded = load(tmp)
    except ConfigError:
        tmp.unlink()
        raise
    os.replace(tmp, reg)
    return next(e for e in loaded.entries if e.name == name and e.path.resolve() == cert)
