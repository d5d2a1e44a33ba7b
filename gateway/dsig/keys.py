"""Signing keys: the :class:`KeyProvider` interface and its software and remote implementations.

A key provider is built once per process (parsing a private key costs tens of
milliseconds) and then signs many messages.  A provider returns the final
``SignatureValue`` bytes: RSA PKCS#1 v1.5, or SM2 as 64-byte raw r‖s.

Hardware keys: a PKCS#11 HSM (or a customs U-Key behind a local service) plugs in as
another class with the same three members; see :class:`KeyProvider` and
``docs/signatures.md``.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import pkcs12
from tongsuopy.crypto import hashes as gm_hashes
from tongsuopy.crypto import serialization as gm_serialization
from tongsuopy.crypto.asymciphers import ec as gm_ec

from ..errors import KeyError_, SignerError
from . import certutil
from .algorithms import Family, Suite

_RSA_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}


@runtime_checkable
class KeyProvider(Protocol):
    """Something that holds a private key and its certificate and signs bytes.

    ``family`` is ``"rsa"`` or ``"sm2"``; ``certificate`` is the signer's X.509
    certificate (it goes into ``KeyInfo``); ``sign(data, suite)`` signs ``data`` (the
    canonical SignedInfo) and returns the ``SignatureValue`` bytes, raising
    :class:`~gateway.errors.KeyError_` or :class:`~gateway.errors.SignerError`.

    A PKCS#11 HSM provider implements the same three members: open the session and
    find the key object once in ``__init__`` (by label or id), read the certificate
    object once, and in ``sign`` call ``C_Sign`` with ``CKM_SHA1_RSA_PKCS`` /
    ``CKM_SHA256_RSA_PKCS`` or the vendor SM2 mechanism (``CKM_SM2_SM3`` style, with
    the default user ID ``1234567812345678``), converting DER to raw r‖s for SM2.
    """

    @property
    def family(self) -> Family: ...

    @property
    def certificate(self) -> x509.Certificate: ...

    def sign(self, data: bytes, suite: Suite) -> bytes: ...


def sm2_der_to_raw(sig_der: bytes) -> bytes:
    """DER ``SEQUENCE{r, s}`` → 64-byte r‖s; raises ``ValueError``."""
    r, s = decode_dss_signature(sig_der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _check_suite(family: Family, suite: Suite) -> None:
    if suite.family != family:
        raise KeyError_(f"a {family.upper()} key cannot sign {suite.name}")


class SoftwareKey:
    """A private key held in memory (RSA via cryptography, SM2 via tongsuopy), loaded once.

    Build it with :meth:`from_pem`, :meth:`from_pkcs12` or :func:`load_key`; the
    constructor checks that the key belongs to the certificate.
    """

    def __init__(self, private_key: Any, certificate: x509.Certificate) -> None:
        self._cert = certificate
        try:
            pub = certutil.public_key(certificate)
        except certutil.CertificateFormatError as exc:
            raise KeyError_(f"certificate unusable: {exc}") from None
        self._family: Family = pub.family
        if pub.family == "rsa":
            if not isinstance(private_key, rsa.RSAPrivateKey):
                raise KeyError_("the certificate is RSA but the key is not")
            if private_key.public_key().public_numbers() != pub.key.public_numbers():
                raise KeyError_("the key does not belong to the certificate")
        else:
            if not isinstance(private_key, gm_ec.EllipticCurvePrivateKey):
                raise KeyError_("the certificate is SM2 but the key is not")
            if private_key.public_key().public_numbers() != pub.key.public_numbers():
                raise KeyError_("the key does not belong to the certificate")
        self._key = private_key

    @property
    def family(self) -> Family:
        return self._family

    @property
    def certificate(self) -> x509.Certificate:
        return self._cert

    def sign(self, data: bytes, suite: Suite) -> bytes:
        """RSA PKCS#1 v1.5 or SM2 (SM3, default user ID) raw r‖s signature of ``data``."""
        _check_suite(self._family, suite)
        if self._family == "rsa":
            sig: bytes = self._key.sign(data, padding.PKCS1v15(), _RSA_HASHES[suite.hash_name]())
            return sig
        return sm2_der_to_raw(self._key.sign(data, gm_ec.ECDSA(gm_hashes.SM3())))

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_data: bytes, password: bytes | None = None) -> SoftwareKey:
        """From a PEM private key (PKCS#8 or traditional; RSA or SM2) and a PEM/DER certificate."""
        cert = _load_cert(cert_data)
        try:
            fam = certutil.family_of(cert)
        except certutil.CertificateFormatError as exc:
            raise KeyError_(f"certificate unusable: {exc}") from None
        try:
            if fam == "rsa":
                key: Any = ser.load_pem_private_key(key_pem, password)
            else:
                key = gm_serialization.load_pem_private_key(key_pem, password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyError_(f"cannot load the private key (or it is not {fam.upper()}): {exc}") from None
        return cls(key, cert)

    @classmethod
    def from_pkcs12(cls, data: bytes, password: bytes | None) -> SoftwareKey:
        """From a PKCS#12 file holding an RSA key and its certificate.

        SM2 PKCS#12 files are not supported (pyca/cryptography cannot read SM2 keys);
        export SM2 keys as PKCS#8 PEM instead.
        """
        try:
            key, cert, _extra = pkcs12.load_key_and_certificates(data, password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyError_(f"cannot open the PKCS#12 file (wrong password or not RSA?): {exc}") from None
        if key is None or cert is None:
            raise KeyError_("the PKCS#12 file must hold one private key and its certificate")
        return cls(key, cert)


def _load_cert(data: bytes) -> x509.Certificate:
    try:
        return certutil.load_certificate(data)
    except certutil.CertificateFormatError as exc:
        raise KeyError_(str(exc)) from None


def load_key(
    key_path: str | Path, cert_path: str | Path | None = None, password: str | bytes | None = None
) -> SoftwareKey:
    """A software key from files: ``.p12``/``.pfx`` (certificate inside) or PEM key + certificate.

    Raises :class:`~gateway.errors.KeyError_` for unreadable or mismatched files.
    """
    pw = password.encode() if isinstance(password, str) else password
    try:
        key_data = Path(key_path).read_bytes()
        cert_data = Path(cert_path).read_bytes() if cert_path is not None else None
    except OSError as exc:
        raise KeyError_(f"cannot read key or certificate: {exc}") from None
    if str(key_path).lower().endswith((".p12", ".pfx")):
        return SoftwareKey.from_pkcs12(key_data, pw)
    if cert_data is None:
        raise KeyError_("a PEM key needs its certificate (--cert)")
    return SoftwareKey.from_pem(key_data, cert_data, pw)


@dataclass(frozen=True)
class RemoteSigner:
    """A key kept by a signing service reached over HTTP (a U-Key host, an HSM front end).

    ``sign`` POSTs ``{"alg": suite name, "data": base64}`` as JSON to ``url`` and
    expects ``{"signature": base64}``: the ``SignatureValue`` bytes (SM2 as raw r‖s;
    a DER SM2 signature is accepted and converted).  Build it with :meth:`connect`,
    which fetches the certificate once from ``cert_url`` unless one is given.
    """

    url: str
    cert: x509.Certificate
    key_family: Family
    timeout: float = 10.0
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        certificate: x509.Certificate | None = None,
        cert_url: str | None = None,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
    ) -> RemoteSigner:
        """A remote signer for ``url``; raises :class:`~gateway.errors.SignerError` if the certificate
        cannot be fetched."""
        hdrs = tuple((headers or {}).items())
        if certificate is None:
            if cert_url is None:
                raise SignerError("a remote signer needs its certificate or a cert_url")
            certificate = _load_remote_cert(cert_url, timeout, hdrs)
        try:
            fam = certutil.family_of(certificate)
        except certutil.CertificateFormatError as exc:
            raise SignerError(f"remote signer certificate unusable: {exc}") from None
        return cls(url, certificate, fam, timeout, hdrs)

    @property
    def family(self) -> Family:
        return self.key_family

    @property
    def certificate(self) -> x509.Certificate:
        return self.cert

    def sign(self, data: bytes, suite: Suite) -> bytes:
        """Ask the service to sign; raises :class:`~gateway.errors.SignerError` on any failure."""
        _check_suite(self.key_family, suite)
        body = json.dumps({"alg": suite.name, "data": base64.b64encode(data).decode("ascii")}).encode()
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", **dict(self.headers)},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - configured URL
                answer = json.loads(resp.read())
            sig = base64.b64decode(answer["signature"], validate=True)
        except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise SignerError(f"remote signer {self.url} failed: {exc}") from None
        if suite.family == "sm2" and len(sig) != certutil.SM2_RAW_SIGNATURE_LEN:
            try:
                sig = sm2_der_to_raw(sig)
            except ValueError:
                raise SignerError(
                    "remote signer returned an SM2 signature that is neither r‖s nor DER"
                ) from None
        return sig


def _load_remote_cert(url: str, timeout: float, headers: tuple[tuple[str, str], ...]) -> x509.Certificate:
    req = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - configured URL
            data = resp.read()
        return certutil.load_certificate(data)
    except (OSError, ValueError) as exc:
        raise SignerError(f"cannot fetch the signer certificate from {url}: {exc}") from None
