"""X.509 helpers shared by signing, verification and the registry (RSA and SM2 certificates).

pyca/cryptography parses SM2 certificates (serial, names, validity) but cannot load their
public key (curve 1.2.156.10197.1.301), so SM2 public keys are taken out of the
SubjectPublicKeyInfo with asn1crypto and loaded with tongsuopy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from tongsuopy.crypto import hashes as gm_hashes
from tongsuopy.crypto import serialization as gm_serialization
from tongsuopy.crypto.asymciphers import ec as gm_ec
from tongsuopy.crypto.exceptions import InvalidSignature as GmInvalidSignature

from .algorithms import Family, Suite

OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_SM2_CURVE = "1.2.156.10197.1.301"
OID_SM3_WITH_SM2 = "1.2.156.10197.1.501"
SM2_RAW_SIGNATURE_LEN = 64

# Built once: padding and hash objects hold no state, and verify runs once per message.
_PKCS1V15 = padding.PKCS1v15()
_RSA_HASHES: dict[str, hashes.HashAlgorithm] = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256()}


class CertificateFormatError(ValueError):
    """The bytes are not a certificate this profile can use (translated by callers)."""


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes; raises :class:`CertificateFormatError`."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateFormatError(f"not an X.509 certificate: {exc}") from None


def der(cert: x509.Certificate) -> bytes:
    """The certificate's DER bytes."""
    return cert.public_bytes(Encoding.DER)


def decode_base64(text: str) -> bytes:
    """Base64 as XML-DSig writes it (whitespace anywhere is ignored); raises ``ValueError``."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def fingerprint(cert_der: bytes) -> str:
    """SHA-256 of the DER certificate, lowercase hex: the registry's lookup key."""
    return hashlib.sha256(cert_der).hexdigest()


def key_name(cert: x509.Certificate) -> str:
    """The customs ``KeyName``: the serial number in lowercase hex, ``format(serial, 'x')``."""
    return format(cert.serial_number, "x")


def not_before(cert: x509.Certificate) -> datetime:
    return cert.not_valid_before_utc


def not_after(cert: x509.Certificate) -> datetime:
    return cert.not_valid_after_utc


@dataclass(frozen=True)
class PublicKey:
    """A certificate's public key with what the verifier needs to know about it."""

    family: Family
    bits: int
    key: Any  # rsa.RSAPublicKey or a tongsuopy SM2 public key

    def verify(self, signature: bytes, data: bytes, s: Suite) -> bool:
        """True when ``signature`` (RSA PKCS#1 v1.5, or SM2 raw r‖s) is valid for ``data`` under ``s``."""
        if s.family != self.family:
            return False
        if self.family == "rsa":
            try:
                self.key.verify(signature, data, _PKCS1V15, _RSA_HASHES[s.hash_name])
            except InvalidSignature:
                return False
            return True
        if len(signature) != SM2_RAW_SIGNATURE_LEN:
            return False
        r = int.from_bytes(signature[:32], "big")
        s_ = int.from_bytes(signature[32:], "big")
        if r == 0 or s_ == 0:
            return False
        try:
            self.key.verify(encode_dss_signature(r, s_), data, gm_ec.ECDSA(gm_hashes.SM3()))
        except GmInvalidSignature:
            return False
        return True


def family_of(cert: x509.Certificate) -> Family:
    """``rsa`` or ``sm2``; raises :class:`CertificateFormatError` for any other key type."""
    spki = asn1_x509.Certificate.load(der(cert))["tbs_certificate"]["subject_public_key_info"]
    alg = spki["algorithm"]["algorithm"].dotted
    if alg == "1.2.840.113549.1.1.1":
        return "rsa"
    if alg == OID_EC_PUBLIC_KEY:
        params = spki["algorithm"]["parameters"]
        curve = params.chosen.dotted if params.name == "named" else ""
        if curve == OID_SM2_CURVE:
            return "sm2"
    raise CertificateFormatError(f"unsupported public key algorithm {alg} (only RSA and SM2)")


def public_key(cert: x509.Certificate) -> PublicKey:
    """The certificate's RSA or SM2 public key; raises :class:`CertificateFormatError`."""
    fam = family_of(cert)
    if fam == "rsa":
        try:
            key = cert.public_key()
        except UnsupportedAlgorithm as exc:
            raise CertificateFormatError(str(exc)) from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise CertificateFormatError("certificate says RSA but the key is not")
        return PublicKey("rsa", key.key_size, key)
    spki_der = asn1_x509.Certificate.load(der(cert))["tbs_certificate"]["subject_public_key_info"].dump()
    try:
        gm_key = gm_serialization.load_der_public_key(spki_der)
    except ValueError as exc:
        raise CertificateFormatError(f"bad SM2 public key: {exc}") from None
    return PublicKey("sm2", 256, gm_key)
