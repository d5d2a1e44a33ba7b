"""Every refusal of the verifier, each with its own code (spec §10; the brief's defence list)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.dsig import Policy, sign, verify
from gateway.dsig.registry import Registry
from gateway.errors import SignatureError
from gateway.xmlio import parse

from .conftest import (
    ECOMMERCE_CODE,
    SIGNED_AT,
    identified,
    key_for,
    registry_with,
    sandbox_ca,
    signature_text,
)

DS = "http://www.w3.org/2000/09/xmldsig#"


def code_of(data: bytes, registry: Registry, **kwargs: object) -> str:
    with pytest.raises(SignatureError) as exc:
        verify(identified(data), registry, **kwargs)  # type: ignore[arg-type]
    return exc.value.code


@pytest.fixture(scope="module")
def signed621(ceb621: bytes) -> bytes:
    return sign(ceb621, key_for(ceb621, "rsa"), alg="rsa-sha256")


@pytest.fixture(scope="module")
def signed303(ceb303: bytes) -> bytes:
    return sign(ceb303, key_for(ceb303, "rsa"), alg="rsa-sha256")


def test_missing(ceb621: bytes, registry: Registry) -> None:
    assert code_of(ceb621, registry) == "CEBGW-SIG-MISSING"


def test_multiple_signatures(signed621: bytes, registry: Registry) -> None:
    sig = signature_text(signed621)
    twice = signed621.replace(b"</ceb:InventoryHead>", b"</ceb:InventoryHead>" + sig)
    assert code_of(twice, registry) == "CEBGW-SIG-MULTIPLE"


@pytest.mark.parametrize("uri", [b"#x", b"#xpointer(/)", b"http://evil.example/doc.xml"])
def test_reference_uri(signed621: bytes, registry: Registry, uri: bytes) -> None:
    bad = signed621.replace(b'<ds:Reference URI="">', b'<ds:Reference URI="' + uri + b'">')
    assert code_of(bad, registry) == "CEBGW-SIG-REFERENCE"


def test_reference_without_uri(signed621: bytes, registry: Registry) -> None:
    bad = signed621.replace(b'<ds:Reference URI="">', b"<ds:Reference>")
    assert code_of(bad, registry) == "CEBGW-SIG-REFERENCE"


def test_two_references(signed621: bytes, registry: Registry) -> None:
    ref = re.search(rb"<ds:Reference .*?</ds:Reference>", signed621, re.S)
    assert ref is not None
    bad = signed621.replace(ref.group(), ref.group() * 2)
    assert code_of(bad, registry) == "CEBGW-SIG-REFERENCE"


@pytest.mark.parametrize(
    "transforms",
    [
        b'<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"><ds:XPath>1</ds:XPath></ds:Transform>',
        b'<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>',
        b'<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"/>',
        b"",
    ],
)
def test_transforms(signed621: bytes, registry: Registry, transforms: bytes) -> None:
    env = b'<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
    bad = signed621.replace(env, transforms if not transforms else env + transforms)
    assert code_of(bad, registry) == "CEBGW-SIG-REFERENCE"


def test_enveloped_plus_inclusive_c14n_transform_is_fine(signed621: bytes, registry: Registry) -> None:
    # Allowed by the profile; the SignedInfo change breaks the value, not the structure checks.
    env = b'<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
    c14n = b'<ds:Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>'
    assert code_of(signed621.replace(env, env + c14n), registry) == "CEBGW-SIG-VALUE"


def test_signature_not_last_in_import(signed621: bytes, registry: Registry) -> None:
    sig = signature_text(signed621)
    moved = signed621.replace(sig, b"").replace(b"<ceb:BaseTransfer>", sig + b"<ceb:BaseTransfer>")
    assert code_of(moved, registry) == "CEBGW-SIG-WRAPPING"


def test_signature_nested_in_business_content(signed621: bytes, registry: Registry) -> None:
    sig = signature_text(signed621)
    moved = signed621.replace(sig, b"").replace(b"</ceb:InventoryHead>", sig + b"</ceb:InventoryHead>")
    assert code_of(moved, registry) == "CEBGW-SIG-WRAPPING"


def test_export_signature_moved_after_extend(signed303: bytes, registry: Registry) -> None:
    sig = signature_text(signed303)
    moved = signed303.replace(sig, b"").replace(b"</CEB303Message>", sig + b"</CEB303Message>")
    # the digest would still match (enveloped transform), so position is what protects
    assert code_of(moved, registry) == "CEBGW-SIG-WRAPPING"


def test_content_hidden_inside_signature(signed621: bytes, registry: Registry) -> None:
    obj = (
        b'<ds:Object><ceb:Inventory xmlns:ceb="http://www.chinaport.gov.cn/ceb">'
        b"<ceb:InventoryHead/></ceb:Inventory></ds:Object>"
    )
    bad = signed621.replace(b"</ds:KeyInfo>", b"</ds:KeyInfo>" + obj)
    assert code_of(bad, registry) == "CEBGW-SIG-WRAPPING"


@pytest.mark.parametrize(
    "old,new",
    [
        (b"REC-xml-c14n-20010315", b"REC-xml-c14n-20010315#WithComments"),
        (b"http://www.w3.org/TR/2001/REC-xml-c14n-20010315", b"http://www.w3.org/2001/10/xml-exc-c14n#"),
        (
            b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            b"http://www.w3.org/2000/09/xmldsig#hmac-sha1",
        ),
        (
            b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            b"http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
        ),
        (
            b"http://www.w3.org/2001/04/xmlenc#sha256",
            b"http://www.w3.org/2000/09/xmldsig#sha1",
        ),  # mixed suite
    ],
)
def test_algorithms(signed621: bytes, registry: Registry, old: bytes, new: bytes) -> None:
    assert code_of(signed621.replace(old, new, 1), registry) == "CEBGW-SIG-ALGORITHM"


def test_rsa_signature_method_with_sm2_certificate(ceb621: bytes, registry: Registry) -> None:
    signed = sign(ceb621, key_for(ceb621, "sm2"))
    bad = signed.replace(
        b"http://www.chinaport.gov.cn/2022/04/xmldsig#sm2-sm3",
        b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    ).replace(b"http://www.chinaport.gov.cn/2022/04/xmldsig#sm3", b"http://www.w3.org/2001/04/xmlenc#sha256")
    assert code_of(bad, registry) == "CEBGW-SIG-ALGORITHM"


def test_weak_rsa_key(ceb621: bytes, issue) -> None:  # type: ignore[no-untyped-def]
    key, entry = issue("rsa", bits=1024, name="legacy-1024")
    signed = sign(ceb621, key, alg="rsa-sha1")
    assert code_of(signed, registry_with(entry)) == "CEBGW-SIG-KEY-WEAK"
    legacy = Policy(min_rsa_bits=1024)
    assert verify(identified(signed), registry_with(entry), policy=legacy).entry.key.bits == 1024


def test_keyname_must_be_serial(signed621: bytes, registry: Registry) -> None:
    bad = re.sub(rb"<ds:KeyName>[0-9a-f]+</ds:KeyName>", b"<ds:KeyName>0001</ds:KeyName>", signed621)
    assert code_of(bad, registry) == "CEBGW-SIG-KEYNAME"


def test_keyname_leading_zeros_and_case_accepted(signed621: bytes, registry: Registry) -> None:
    m = re.search(rb"<ds:KeyName>([0-9a-f]+)</ds:KeyName>", signed621)
    assert m is not None
    ok = signed621.replace(m.group(1), b"00" + m.group(1).upper())
    assert verify(identified(ok), registry).entry.name == "ecommerce-rsa"


def test_unregistered_certificate(ceb621: bytes, issue) -> None:  # type: ignore[no-untyped-def]
    key, entry = issue("rsa", name="unregistered")
    signed = sign(ceb621, key)
    assert code_of(signed, registry_with()) == "CEBGW-SIG-CERT-UNREGISTERED"


def test_certificate_of_another_enterprise(ceb621: bytes, registry: Registry) -> None:
    from .conftest import sandbox_key

    signed = sign(ceb621, sandbox_key("payment", "rsa"))  # registered, but for 31222699S7
    assert code_of(signed, registry) == "CEBGW-SIG-CERT-UNREGISTERED"


def test_swapped_certificate(signed621: bytes, registry: Registry) -> None:
    # Another registered certificate of the same... no: of another enterprise, put into KeyInfo.
    import base64

    from gateway.dsig import certutil

    from .conftest import sandbox_key

    other = base64.b64encode(certutil.der(sandbox_key("ecommerce", "sm2").certificate))
    bad = re.sub(
        rb"<ds:X509Certificate>[^<]+</ds:X509Certificate>",
        b"<ds:X509Certificate>" + other + b"</ds:X509Certificate>",
        signed621,
    )
    bad = re.sub(
        rb"<ds:KeyName>[0-9a-f]+</ds:KeyName>",
        b"<ds:KeyName>"
        + certutil.key_name(sandbox_key("ecommerce", "sm2").certificate).encode()
        + b"</ds:KeyName>",
        bad,
    )
    assert code_of(bad, registry) == "CEBGW-SIG-ALGORITHM"


def test_expired(ceb621: bytes, issue) -> None:  # type: ignore[no-untyped-def]
    key, entry = issue(
        "rsa", name="old", not_before=SIGNED_AT - timedelta(days=400), not_after=SIGNED_AT - timedelta(days=1)
    )
    assert code_of(sign(ceb621, key), registry_with(entry)) == "CEBGW-SIG-CERT-EXPIRED"


def test_not_yet_valid(ceb621: bytes, issue) -> None:  # type: ignore[no-untyped-def]
    key, entry = issue(
        "sm2",
        name="future",
        not_before=SIGNED_AT + timedelta(days=1),
        not_after=SIGNED_AT + timedelta(days=400),
    )
    assert code_of(sign(ceb621, key), registry_with(entry)) == "CEBGW-SIG-CERT-NOT-YET-VALID"


def test_registry_narrows_window(ceb621: bytes, issue) -> None:  # type: ignore[no-untyped-def]
    key, entry = issue("rsa", name="narrowed", entry_not_after=SIGNED_AT - timedelta(hours=1))
    assert code_of(sign(ceb621, key), registry_with(entry)) == "CEBGW-SIG-CERT-EXPIRED"


def test_no_app_time_uses_now(ceb621: bytes, issue) -> None:  # type: ignore[no-untyped-def]
    data = re.sub(rb"<ceb:appTime>\d+</ceb:appTime>", b"", ceb621)
    key, entry = issue(
        "rsa", name="now", not_before=SIGNED_AT - timedelta(days=1), not_after=SIGNED_AT + timedelta(days=1)
    )
    signed = identified(sign(data, key))
    assert verify(signed, registry_with(entry), at=SIGNED_AT).signed_at == SIGNED_AT
    with pytest.raises(SignatureError) as exc:
        verify(signed, registry_with(entry), at=SIGNED_AT + timedelta(days=2))
    assert exc.value.code == "CEBGW-SIG-CERT-EXPIRED"


def test_revoked_by_serial_list(ceb621: bytes, issue) -> None:  # type: ignore[no-untyped-def]
    key, entry = issue("rsa", name="revoked")
    reg = registry_with(entry, revoked=(entry.serial,))
    assert code_of(sign(ceb621, key), reg) == "CEBGW-SIG-CERT-REVOKED"


def test_revoked_by_crl(ceb621: bytes, issue) -> None:  # type: ignore[no-untyped-def]
    key, entry = issue("rsa", name="crl-revoked")
    ca = sandbox_ca("rsa")
    now = datetime.now().astimezone()
    revoked = x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(now).build()
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now)
        .next_update(now + timedelta(days=7))
        .add_revoked_certificate(revoked)
        .sign(ca.key, hashes.SHA256())
    )
    assert code_of(sign(ceb621, key), Registry([entry], crls=[crl])) == "CEBGW-SIG-CERT-REVOKED"


def test_rotation_overlap(ceb621: bytes, issue) -> None:  # type: ignore[no-untyped-def]
    old_key, old = issue(
        "rsa",
        name="2025",
        not_before=SIGNED_AT - timedelta(days=300),
        not_after=SIGNED_AT + timedelta(days=30),
    )
    new_key, new = issue(
        "rsa",
        name="2026",
        not_before=SIGNED_AT - timedelta(days=30),
        not_after=SIGNED_AT + timedelta(days=700),
    )
    reg = registry_with(old, new)
    assert {e.name for e in reg.for_identity(ECOMMERCE_CODE)} == {"2025", "2026"}
    assert verify(identified(sign(ceb621, old_key)), reg).entry.name == "2025"
    assert verify(identified(sign(ceb621, new_key)), reg).entry.name == "2026"


def test_envelope_signed_by_dxp_sender(registry: Registry) -> None:
    from gateway.envelope import wrap

    from .conftest import sandbox_key

    env = wrap(
        b"<x/>", msg_type="CEB621Message", sender_id="DXPENT0000458762", receiver_ids=("DXPEDCCEB0000002",)
    )
    signed = sign(env, sandbox_key("ecommerce", "sm2"))
    root = parse(signed).root
    assert root[-1].tag == f"{{{DS}}}Signature"
    v = verify(identified(signed), registry, at=SIGNED_AT)
    assert v.signer == "DXPENT0000458762"
    assert (
        code_of(signed.replace(b"DXPENT0000458762", b"DXPENT0000458763"), registry, at=SIGNED_AT)
        == "CEBGW-SIG-CERT-UNREGISTERED"
    )


@pytest.mark.parametrize("leaf", ["KeyName", "X509Certificate", "SignatureValue"])
def test_app_time_hidden_in_signature_cannot_backdate(ceb621: bytes, issue, leaf: str) -> None:  # type: ignore[no-untyped-def]
    # A message without appTime is checked at `at`; an appTime put inside an unsigned part of the
    # Signature must not become the signing time (nor any other content hide there).
    data = re.sub(rb"<ceb:appTime>\d+</ceb:appTime>", b"", ceb621)
    key, entry = issue(
        "rsa", name="short", not_before=SIGNED_AT - timedelta(days=1), not_after=SIGNED_AT + timedelta(days=1)
    )
    signed = sign(data, key)
    hidden = f"<ceb:appTime>{SIGNED_AT:%Y%m%d%H%M%S}</ceb:appTime></ds:{leaf}>".encode()
    smuggled = signed.replace(f"</ds:{leaf}>".encode(), hidden, 1)
    later = SIGNED_AT + timedelta(days=2)
    assert code_of(signed, registry_with(entry), at=later) == "CEBGW-SIG-CERT-EXPIRED"
    assert code_of(smuggled, registry_with(entry), at=later) == "CEBGW-SIG-WRAPPING"
