"""Re-signing: ``sign(..., replace=True)``, ``unsign`` and ``cebgw sign --replace``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.dsig import Registry, sign, verify
from gateway.dsig.sign import unsign
from gateway.errors import SignatureError

from .conftest import FIXTURES, ROOT, SANDBOX, identified, key_for

Cli = Callable[..., tuple[int, str, str]]
SIG = b"<ds:Signature "  # the element, not SignatureValue or SignatureMethod
FIXTURE_NAMES = ("ceb621_1.xml", "ceb621_10.xml", "ceb303.xml")  # ceb303: signature before ExtendMessage


@pytest.mark.parametrize("name", FIXTURE_NAMES)
@pytest.mark.parametrize("family", ["rsa", "sm2"])
def test_unsign_gives_back_the_message_as_it_was_before_signing(name: str, family: str) -> None:
    original = (FIXTURES / name).read_bytes()
    signed = sign(original, key_for(original, family))
    assert unsign(signed) == original
    assert unsign(original) == original  # nothing to remove: unchanged


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_replace_signs_a_signed_message_again(name: str, registry: Registry) -> None:
    original = (FIXTURES / name).read_bytes()
    signed = sign(original, key_for(original, "rsa"))
    with pytest.raises(SignatureError) as info:
        sign(signed, key_for(original, "sm2"))
    assert info.value.code == "CEBGW-SIG-MULTIPLE"
    again = sign(signed, key_for(original, "sm2"), replace=True)
    assert again.count(SIG) == 1
    v = verify(identified(again), registry)
    assert v.suite.name == "sm2-sm3" and v.entry.name.endswith("-sm2")
    assert unsign(again) == original  # the old signature is gone without a trace


def test_replace_removes_every_signature_at_the_root(registry: Registry) -> None:
    original = (FIXTURES / "ceb621_1.xml").read_bytes()
    key = key_for(original, "rsa")
    signed = sign(original, key)
    sig = signed[signed.index(SIG):signed.index(b"</ds:Signature>") + len(b"</ds:Signature>")]
    twice = signed.replace(sig, sig + b"\n" + sig)
    assert twice.count(SIG) == 2
    again = sign(twice, key, replace=True)
    assert again.count(SIG) == 1
    verify(identified(again), registry)


def test_a_signature_inside_a_record_is_not_replaced() -> None:
    original = (FIXTURES / "ceb621_1.xml").read_bytes()
    assert b"</ceb:InventoryHead>" in original
    inner = b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>'
    nested = original.replace(b"</ceb:InventoryHead>", inner + b"</ceb:InventoryHead>", 1)
    with pytest.raises(SignatureError) as info:
        sign(nested, key_for(original, "rsa"), replace=True)
    assert info.value.code == "CEBGW-SIG-MALFORMED"
    assert "not a child of the message's root" in info.value.message


def test_cli_points_to_replace_and_replace_re_signs(cli: Cli, tmp_path: Path) -> None:
    signed = ROOT / "samples" / "valid" / "CEB621.xml"
    assert signed.read_bytes().count(SIG) == 1
    rsa = ("--key", str(SANDBOX / "ecommerce-rsa.key.pem"), "--cert", str(SANDBOX / "ecommerce-rsa.cert.pem"))
    sm2 = ("--key", str(SANDBOX / "ecommerce-sm2.key.pem"), "--cert", str(SANDBOX / "ecommerce-sm2.cert.pem"))
    out = tmp_path / "again.xml"
    code, stdout, err = cli("sign", str(signed), *sm2, "-o", str(out))
    assert code == 1 and stdout == "" and not out.exists()
    assert "already signed; give --replace" in err and "[CEBGW-SIG-MULTIPLE]" in err
    code, _, err = cli("sign", str(signed), *sm2, "--replace", "-o", str(out))
    assert code == 0, err
    reg = str(SANDBOX / "registry.toml")
    code, stdout, err = cli("verify", str(out), "--registry", reg, "--format", "json")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["algorithm"] == "sm2-sm3" and result["certificate"]["name"] == "ecommerce-sm2"
    # The sample was signed by `cebgw sign` with ecommerce-rsa (RSA signatures are deterministic):
    # replacing its signature with the same key gives it back byte for byte.
    code, _, err = cli("sign", str(out), *rsa, "--replace", "-o", str(tmp_path / "back.xml"))
    assert code == 0, err
    assert (tmp_path / "back.xml").read_bytes() == signed.read_bytes()
