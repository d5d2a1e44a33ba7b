"""Receipts name no sender: their signer is the customs identity the caller expects."""

from __future__ import annotations

import pytest

from gateway.dsig import Registry, sign, verify
from gateway.errors import CertificateError, SignatureError
from gateway.sandbox import samplegen

from .conftest import ECOMMERCE_CODE, identified, sandbox_key

CUSTOMS_CODE = "CUSTOMS001"
CUSTOMS_DXP = "DXPEDCCEB0000002"


def _receipt(signer: str = "customs", family: str = "rsa") -> bytes:
    return sign(samplegen.build_receipt("CEB622", {"copNo": "X1"}), sandbox_key(signer, family))


@pytest.mark.parametrize("family", ["rsa", "sm2"])
def test_customs_signed_receipt_verifies_against_the_customs_code(family: str, registry: Registry) -> None:
    v = verify(identified(_receipt(family=family)), registry, sender_code=CUSTOMS_CODE)
    assert v.signer == CUSTOMS_CODE and v.entry.name == f"customs-{family}"
    v = verify(identified(_receipt(family=family)), registry, expected_signers=("NOTMINE", CUSTOMS_DXP))
    assert v.signer == CUSTOMS_DXP


def test_receipt_without_an_expected_signer_is_refused(registry: Registry) -> None:
    with pytest.raises(CertificateError, match="names no sender"):
        verify(identified(_receipt()), registry)


def test_receipt_signed_by_an_enterprise_certificate_is_refused(registry: Registry) -> None:
    forged = _receipt(signer="ecommerce")
    for kw in ({"sender_code": CUSTOMS_CODE}, {"expected_signers": (CUSTOMS_CODE, CUSTOMS_DXP)}):
        with pytest.raises(CertificateError) as err:
            verify(identified(forged), registry, **kw)  # type: ignore[arg-type]
        assert err.value.code == "CEBGW-SIG-CERT-UNREGISTERED"
    # the enterprise's own code does not make it a customs receipt either: the caller decides whom to expect
    assert verify(identified(forged), registry, sender_code=ECOMMERCE_CODE).entry.name == "ecommerce-rsa"


def test_tampered_receipt_still_fails_the_digest(registry: Registry) -> None:
    tampered = _receipt().replace(b"<copNo>X1</copNo>", b"<copNo>X2</copNo>")
    assert tampered != _receipt()
    with pytest.raises(SignatureError) as err:
        verify(identified(tampered), registry, sender_code=CUSTOMS_CODE)
    assert err.value.code == "CEBGW-SIG-DIGEST"


def test_declarations_must_meet_expected_signers_too(registry: Registry, ceb621: bytes) -> None:
    signed = sign(ceb621, sandbox_key("ecommerce", "rsa"))
    assert verify(identified(signed), registry, expected_signers=(ECOMMERCE_CODE,)).signer == ECOMMERCE_CODE
    with pytest.raises(CertificateError):
        verify(identified(signed), registry, expected_signers=(CUSTOMS_CODE,))
