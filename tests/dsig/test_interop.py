"""Other implementations agree: xmlsec1 (both directions), signxml, gmssl and the openssl CLI for SM2."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from gateway.dsig import certutil, sign, verify
from gateway.dsig.layout import SIGNATURE_TAG
from gateway.dsig.registry import Registry
from gateway.xmlio import parse

from .conftest import SANDBOX, identified, key_for

DS = "{http://www.w3.org/2000/09/xmldsig#}"


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is required in CI (make sysdeps installs it)")
        pytest.skip(f"{tool} not installed (apt-get install {tool}, or `make sysdeps`)")
    return path


@pytest.mark.parametrize("alg", ["rsa-sha1", "rsa-sha256"])
@pytest.mark.parametrize("fixture", ["ceb621_10", "ceb303"])
def test_xmlsec1_verifies_ours(
    request: pytest.FixtureRequest, tmp_path: Path, alg: str, fixture: str
) -> None:
    xmlsec1 = _need("xmlsec1")
    data: bytes = request.getfixturevalue(fixture)
    signed = tmp_path / "signed.xml"
    signed.write_bytes(sign(data, key_for(data, "rsa"), alg=alg))
    run = subprocess.run(
        [xmlsec1, "--verify", "--trusted-pem", str(SANDBOX / "ca-rsa.cert.pem"), str(signed)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr


TEMPLATE = (
    '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
    '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>'
    '<ds:SignatureMethod Algorithm="{sm}"/><ds:Reference URI=""><ds:Transforms>'
    '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></ds:Transforms>'
    '<ds:DigestMethod Algorithm="{dm}"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo>'
    "<ds:SignatureValue/><ds:KeyInfo><ds:KeyName>{kn}</ds:KeyName><ds:X509Data/></ds:KeyInfo></ds:Signature>\n"
)


@pytest.mark.parametrize(
    "sm,dm",
    [
        ("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1"),
        ("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "http://www.w3.org/2001/04/xmlenc#sha256"),
    ],
)
def test_we_verify_xmlsec1(ceb621_10: bytes, registry: Registry, tmp_path: Path, sm: str, dm: str) -> None:
    xmlsec1 = _need("xmlsec1")
    kn = certutil.key_name(key_for(ceb621_10, "rsa").certificate)
    template = tmp_path / "template.xml"
    template.write_bytes(
        ceb621_10.replace(
            b"</ceb:CEB621Message>", TEMPLATE.format(sm=sm, dm=dm, kn=kn).encode() + b"</ceb:CEB621Message>"
        )
    )
    out = tmp_path / "signed.xml"
    key = f"{SANDBOX / 'ecommerce-rsa.key.pem'},{SANDBOX / 'ecommerce-rsa.cert.pem'}"
    run = subprocess.run(
        [xmlsec1, "--sign", "--privkey-pem", key, "--output", str(out), str(template)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    v = verify(identified(out.read_bytes()), registry)
    assert v.entry.name == "ecommerce-rsa"


@pytest.mark.parametrize("alg", ["rsa-sha1", "rsa-sha256"])
def test_signxml_verifies_ours(ceb303: bytes, alg: str) -> None:
    from signxml import DigestAlgorithm, SignatureMethod, XMLVerifier  # type: ignore[attr-defined]
    from signxml.exceptions import InvalidInput
    from signxml.verifier import SignatureConfiguration

    signed = sign(ceb303, key_for(ceb303, "rsa"), alg=alg)
    cert_pem = (SANDBOX / "platform-rsa.cert.pem").read_text()
    if alg == "rsa-sha1":
        with pytest.raises(InvalidInput):  # signxml refuses SHA-1 unless configured to accept it
            XMLVerifier().verify(signed, x509_cert=cert_pem)
        config = SignatureConfiguration(
            signature_methods=frozenset({SignatureMethod.RSA_SHA1}),
            digest_algorithms=frozenset({DigestAlgorithm.SHA1}),
        )
    else:
        config = SignatureConfiguration()
    result = XMLVerifier().verify(signed, x509_cert=cert_pem, expect_config=config)
    assert etree.QName(result.signed_xml).localname == "CEB303Message"


def _sm2_signed_info(ceb621: bytes) -> tuple[bytes, bytes, bytes]:
    """(canonical SignedInfo, raw r‖s signature, SPKI DER) of an SM2-signed message."""
    signed = sign(ceb621, key_for(ceb621, "sm2"))
    sig = parse(signed).root.find(SIGNATURE_TAG)
    assert sig is not None
    si = sig.find(f"{DS}SignedInfo")
    assert si is not None
    c14n = etree.tostring(si, method="c14n")
    value = base64.b64decode(sig.findtext(f"{DS}SignatureValue") or "")
    pub = certutil.public_key(key_for(ceb621, "sm2").certificate).key
    from tongsuopy.crypto import serialization as gm_ser

    spki = pub.public_bytes(gm_ser.Encoding.DER, gm_ser.PublicFormat.SubjectPublicKeyInfo)
    return c14n, value, spki


def test_gmssl_verifies_our_sm2(ceb621: bytes) -> None:
    from gmssl import sm2

    c14n, value, _ = _sm2_signed_info(ceb621)
    numbers = certutil.public_key(key_for(ceb621, "sm2").certificate).key.public_numbers()
    xy = format(numbers.x, "064x") + format(numbers.y, "064x")
    crypt = sm2.CryptSM2(public_key=xy, private_key=None)
    crypt.public_key = xy  # gmssl lstrip("04")s the key, which corrupts keys whose x starts with 0 or 4
    assert crypt.verify_with_sm3(value.hex(), c14n)
    assert not crypt.verify_with_sm3(value.hex(), c14n + b" ")


def test_openssl_verifies_our_sm2(ceb621: bytes, tmp_path: Path) -> None:
    openssl = _need("openssl")
    c14n, value, spki = _sm2_signed_info(ceb621)
    (tmp_path / "si.xml").write_bytes(c14n)
    der = encode_dss_signature(int.from_bytes(value[:32], "big"), int.from_bytes(value[32:], "big"))
    (tmp_path / "sig.der").write_bytes(der)
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(spki) + b"-----END PUBLIC KEY-----\n"
    (tmp_path / "pub.pem").write_bytes(pem)
    run = subprocess.run(
        [
            openssl,
            "dgst",
            "-sm3",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
            "-sigopt",
            "distid:1234567812345678",
            "si.xml",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0 and "Verified OK" in run.stdout, run.stdout + run.stderr


def test_openssl_accepts_sandbox_sm2_chain() -> None:
    openssl = _need("openssl")
    run = subprocess.run(
        [
            openssl,
            "verify",
            "-vfyopt",
            "distid:1234567812345678",
            "-CAfile",
            str(SANDBOX / "ca-sm2.cert.pem"),
            str(SANDBOX / "ecommerce-sm2.cert.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_sm2_signature_value_is_raw_r_s(ceb621: bytes) -> None:
    _, value, _ = _sm2_signed_info(ceb621)
    assert len(value) == 64
