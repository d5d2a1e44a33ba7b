"""Sandbox certificates: a CA (RSA and SM2) and a key + certificate of each family per sandbox enterprise.

RSA certificates are built with pyca/cryptography; SM2 certificates (SM3withSM2,
OID 1.2.156.10197.1.501) are assembled with asn1crypto and signed with tongsuopy, since
pyca/cryptography cannot use SM2 keys.  Keys are written as unencrypted PKCS#8 PEM:
sandbox only, and only into the directory given (``certs/`` or a data directory).
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from tongsuopy.crypto import hashes as gm_hashes
from tongsuopy.crypto import serialization as gm_ser
from tongsuopy.crypto.asymciphers import ec as gm_ec

from . import certutil
from .algorithms import Family
from .registry import entry_toml

ORG = "ceb-gateway sandbox"


@dataclass(frozen=True)
class Issued:
    """A private key (cryptography RSA or tongsuopy SM2) and its certificate."""

    key: Any
    cert: x509.Certificate
    family: Family


def _serial() -> int:
    # 64-bit positive serials, like the customs U-Key certificates' short hex KeyNames.
    return secrets.randbits(63) | (1 << 62)


def _window(not_before: datetime | None, not_after: datetime | None, days: int) -> tuple[datetime, datetime]:
    nb = not_before or (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    return nb, not_after or nb + timedelta(days=days)


def _rsa_name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def issue_rsa(
    cn: str,
    ca: Issued | None = None,
    *,
    bits: int = 2048,
    serial: int | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    days: int = 3650,
    is_ca: bool = False,
) -> Issued:
    """A new RSA key and certificate, signed by ``ca`` (self-signed when ``ca`` is None)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    nb, na = _window(not_before, not_after, days)
    issuer_name = ca.cert.subject if ca else _rsa_name(cn)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_rsa_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial or _serial())
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not is_ca,
                content_commitment=not is_ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    signer = ca.key if ca else key
    return Issued(key, builder.sign(signer, hashes.SHA256()), "rsa")


def _sm2_name(cn: str) -> asn1_x509.Name:
    return asn1_x509.Name.build({"country_name": "CN", "organization_name": ORG, "common_name": cn})


def issue_sm2(
    cn: str,
    ca: Issued | None = None,
    *,
    serial: int | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    days: int = 3650,
    is_ca: bool = False,
) -> Issued:
    """A new SM2 key and SM3withSM2 certificate, signed by ``ca`` (self-signed when ``ca`` is None)."""
    key = gm_ec.generate_private_key(gm_ec.SM2())
    spki_der = key.public_key().public_bytes(gm_ser.Encoding.DER, gm_ser.PublicFormat.SubjectPublicKeyInfo)
    nb, na = _window(not_before, not_after, days)
    issuer = asn1_x509.Certificate.load(certutil.der(ca.cert)).subject if ca else _sm2_name(cn)
    usage = {"key_cert_sign", "crl_sign"} if is_ca else {"digital_signature", "non_repudiation"}
    sig_alg = {"algorithm": certutil.OID_SM3_WITH_SM2}
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial or _serial(),
            "signature": sig_alg,
            "issuer": issuer,
            "validity": {
                "not_before": asn1_x509.Time(name="utc_time", value=nb),
                "not_after": asn1_x509.Time(name="utc_time", value=na),
            },
            "subject": _sm2_name(cn),
            "subject_public_key_info": asn1_keys.PublicKeyInfo.load(spki_der),
            "extensions": [
                {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": is_ca}},
                {"extn_id": "key_usage", "critical": True, "extn_value": usage},
            ],
        }
    )
    signer = ca.key if ca else key
    signature = signer.sign(tbs.dump(), gm_ec.ECDSA(gm_hashes.SM3()))
    cert = asn1_x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": sig_alg, "signature_value": signature}
    )
    return Issued(key, x509.load_der_x509_certificate(cert.dump()), "sm2")


def issue(family: Family, cn: str, ca: Issued | None = None, **kwargs: Any) -> Issued:
    """:func:`issue_rsa` or :func:`issue_sm2` by family."""
    return issue_rsa(cn, ca, **kwargs) if family == "rsa" else issue_sm2(cn, ca, **kwargs)


def key_pem(key: Any) -> bytes:
    """Unencrypted PKCS#8 PEM of an RSA (cryptography) or SM2 (tongsuopy) private key."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    pem: bytes = key.private_bytes(gm_ser.Encoding.PEM, gm_ser.PrivateFormat.PKCS8, gm_ser.NoEncryption())
    return pem


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(ser.Encoding.PEM)


def write_pair(directory: Path, stem: str, issued: Issued) -> tuple[Path, Path]:
    """Write ``<stem>.key.pem`` (mode 0600) and ``<stem>.cert.pem``; returns (key path, cert path)."""
    key_path, crt_path = directory / f"{stem}.key.pem", directory / f"{stem}.cert.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem(issued.key))
    crt_path.write_bytes(cert_pem(issued.cert))
    return key_path, crt_path


def sandbox_enterprises() -> list[dict[str, Any]]:
    """The sandbox cast from ``gateway/sandbox/enterprises.toml``."""
    text = resources.files("gateway.sandbox").joinpath("enterprises.toml").read_text(encoding="utf-8")
    rows = tomllib.loads(text)["enterprise"]
    assert isinstance(rows, list)
    return rows


def init_sandbox(directory: str | os.PathLike[str], *, days: int = 3650, back_days: int = 365) -> Path:
    """Create the sandbox CA pair, an RSA-2048 and an SM2 certificate per sandbox enterprise,
    an empty revocation list and ``registry.toml``; returns the registry path.

    Certificates are valid from ``back_days`` ago (so sample messages with past ``appTime``
    verify) until ``days`` from now.  Raises ``FileExistsError`` if ``directory`` already
    holds a registry (never overwrites keys).
    """
    now = datetime.now(UTC).replace(microsecond=0)
    nb, na = now - timedelta(days=back_days), now + timedelta(days=days)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    registry = out / "registry.toml"
    if registry.exists():
        raise FileExistsError(f"{registry} exists; remove the sandbox directory to regenerate it")
    cas = {
        "rsa": issue_rsa("ceb-gateway sandbox RSA CA", is_ca=True, not_before=nb, not_after=na),
        "sm2": issue_sm2("ceb-gateway sandbox SM2 CA", is_ca=True, not_before=nb, not_after=na),
    }
    fams: tuple[Family, ...] = ("rsa", "sm2")
    for fam in fams:
        write_pair(out, f"ca-{fam}", cas[fam])
    (out / "revoked.txt").write_text(
        "# revoked certificate serial numbers, one hex serial per line\n", encoding="utf-8"
    )
    text = (
        "# Sandbox certificate registry, written by `cebgw certs init-sandbox`. SANDBOX KEYS ONLY.\n"
        'warn_days = 30\nrevoked = ["revoked.txt"]\n'
    )
    for ent in sandbox_enterprises():
        for fam in fams:
            issued = issue(fam, f"{ent['title']} ({fam.upper()})", cas[fam], not_before=nb, not_after=na)
            stem = f"{ent['name']}-{fam}"
            write_pair(out, stem, issued)
            text += entry_toml(stem, f"{stem}.cert.pem", [ent["code"]],
                               [ent["dxp_id"], *ent.get("also_dxp_ids", [])])
    registry.write_text(text, encoding="utf-8")
    return registry
