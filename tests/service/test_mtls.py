"""Mutual TLS end to end: a client certificate from the configured CA stands in for a token."""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.accounts import parse_accounts, render_accounts
from gateway.service.app import build_app, ssl_context

from .kit import Sandbox, aio, declaration

NOW = datetime.now(UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(cn: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None, *,
           ca: bool = False, usage: x509.ObjectIdentifier | None = None,
           ip: str | None = None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    signer_key, issuer_name = (issuer[0], issuer[1].subject) if issuer else (key, _name(cn))
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - timedelta(hours=1)).not_valid_after(NOW + timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                            critical=True)
    if usage is not None:
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ip is not None:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                            critical=False)
    return key, b.sign(signer_key, hashes.SHA256())


Pair = tuple[ec.EllipticCurvePrivateKey, x509.Certificate]


def _write(d: Path, name: str, pair: Pair) -> tuple[Path, Path]:
    key, cert = pair
    kp, cp = d / f"{name}.key.pem", d / f"{name}.cert.pem"
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return kp, cp


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca = _issue("cebgw test CA", None, ca=True)
    other_ca = _issue("someone else's CA", None, ca=True)
    out: dict[str, Path] = {}
    out["ca_key"], out["ca"] = _write(tmp_path, "ca", ca)
    out["server_key"], out["server"] = _write(
        tmp_path, "server", _issue("127.0.0.1", ca, usage=ExtendedKeyUsageOID.SERVER_AUTH, ip="127.0.0.1"))
    out["client_key"], out["client"] = _write(
        tmp_path, "client", _issue("ecommerce client", ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH))
    out["unknown_key"], out["unknown"] = _write(
        tmp_path, "unknown", _issue("not registered", ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH))
    out["foreign_key"], out["foreign"] = _write(
        tmp_path, "foreign", _issue("other CA's client", other_ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH))
    return out


def _fingerprint(pem: Path) -> str:
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _client_ssl(pki: dict[str, Path], who: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    if who is not None:
        ctx.load_cert_chain(str(pki[who]), str(pki[f"{who}_key"]))
    return ctx


@aio
async def test_client_certificate_authenticates_without_a_token(sb: Sandbox, pki: dict[str, Path],
                                                                tmp_path: Path) -> None:
    accounts = parse_accounts(sb.settings.accounts_path.read_text(encoding="utf-8"))
    rows = [replace(a, client_cert_hashes=(_fingerprint(pki["client"]),)) if a.name == "ecommerce" else a
            for a in accounts.accounts]
    accounts_path = tmp_path / "accounts.toml"
    accounts_path.write_text(render_accounts(rows), encoding="utf-8")
    settings = sb.settings.with_(accounts_path=accounts_path, tls_cert=pki["server"],
                                 tls_key=pki["server_key"], tls_client_ca=pki["ca"])
    owner, data = declaration(sb, "CEB311", seed=51)
    assert owner == "ecommerce"
    runner = web.AppRunner(build_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context(settings))
    await site.start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    xml = {"Content-Type": "application/xml"}
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(url + "/v1/messages", data=data, headers=xml,
                                    ssl=_client_ssl(pki, "client")) as r:
                assert r.status == 202, await r.text()
                mid = (await r.json())["id"]
            async with session.get(f"{url}/v1/messages/{mid}", ssl=_client_ssl(pki, "client")) as r:
                assert r.status == 200 and (await r.json())["status"] == "declared"
            for who in (None, "unknown"):
                async with session.get(url + "/v1/receipts", ssl=_client_ssl(pki, who)) as r:
                    assert r.status == 401, who
                    assert (await r.json())["error"]["code"] == "CEBGW-AUTH-MISSING"
            # a bearer token still works over the same listener, without a client certificate
            async with session.get(f"{url}/v1/messages/{mid}", ssl=_client_ssl(pki, None),
                                   headers={"Authorization": f"Bearer {sb.token('ecommerce')}"}) as r:
                assert r.status == 200
            # a certificate from another CA does not get through the handshake
            with pytest.raises(aiohttp.ClientError):
                async with session.get(url + "/v1/receipts", ssl=_client_ssl(pki, "foreign")) as r:
                    await r.read()
    finally:
        await runner.cleanup()
