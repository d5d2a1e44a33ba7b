"""Fixtures for the signature tests: the committed sandbox certificates, messages, helpers."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization as ser
from tongsuopy.crypto import serialization as gm_ser

from gateway.catalog import Identified
from gateway.catalog import load as load_catalog
from gateway.dsig import Registry, SoftwareKey, certgen, certutil, load_key, load_registry
from gateway.dsig.registry import Entry, make_entry
from gateway.xmlio import parse

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "certs" / "sandbox"
FIXTURES = Path(__file__).parent / "fixtures"
BEIJING = timezone(timedelta(hours=8))
SIGNED_AT = datetime(2026, 1, 15, 10, 30, tzinfo=BEIJING)  # appTime of the fixtures

ECOMMERCE_CODE = "3301960A7Z"  # copCode of ceb621 fixtures
PLATFORM_CODE = "3301964J31"  # copCode of ceb303


@cache
def sandbox_key(who: str, family: str) -> SoftwareKey:
    return load_key(SANDBOX / f"{who}-{family}.key.pem", SANDBOX / f"{who}-{family}.cert.pem")


@cache
def sandbox_ca(family: str) -> certgen.Issued:
    pem = (SANDBOX / f"ca-{family}.key.pem").read_bytes()
    key = ser.load_pem_private_key(pem, None) if family == "rsa" else gm_ser.load_pem_private_key(pem, None)
    cert = certutil.load_certificate((SANDBOX / f"ca-{family}.cert.pem").read_bytes())
    return certgen.Issued(key, cert, "rsa" if family == "rsa" else "sm2")


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry(SANDBOX / "registry.toml")


@pytest.fixture(scope="session")
def ceb621() -> bytes:
    return (FIXTURES / "ceb621_1.xml").read_bytes()


@pytest.fixture(scope="session")
def ceb621_10() -> bytes:
    return (FIXTURES / "ceb621_10.xml").read_bytes()


@pytest.fixture(scope="session")
def ceb303() -> bytes:
    return (FIXTURES / "ceb303.xml").read_bytes()


def key_for(message: bytes, family: str) -> SoftwareKey:
    """The sandbox key of the enterprise that sends ``message`` (by its copCode)."""
    return sandbox_key("platform" if b"CEB303Message" in message[:400] else "ecommerce", family)


def registry_with(*entries: Entry, revoked: tuple[int, ...] = ()) -> Registry:
    return Registry(entries, revoked_serials=revoked)


def software_key(issued: certgen.Issued) -> SoftwareKey:
    return SoftwareKey(issued.key, issued.cert)


@pytest.fixture(scope="session")
def issue() -> Callable[..., tuple[SoftwareKey, Entry]]:
    """Issue a fresh certificate from the sandbox CA and a registry entry for the ecommerce sender."""

    def make(
        family: str = "rsa",
        *,
        codes: tuple[str, ...] = (ECOMMERCE_CODE,),
        name: str = "extra",
        entry_not_before: datetime | None = None,
        entry_not_after: datetime | None = None,
        **kwargs: object,
    ) -> tuple[SoftwareKey, Entry]:
        kwargs.setdefault("not_before", SIGNED_AT - timedelta(days=365))
        issued = certgen.issue(family, f"test {name}", sandbox_ca(family), **kwargs)  # type: ignore[arg-type]
        entry = make_entry(
            issued.cert, name=name, codes=codes, not_before=entry_not_before, not_after=entry_not_after
        )
        return software_key(issued), entry

    return make


def signature_text(signed: bytes) -> bytes:
    m = re.search(rb"<ds:Signature .*?</ds:Signature>", signed, re.S)
    assert m is not None
    return m.group()


def identified(data: bytes) -> Identified:
    """``data`` parsed and identified by the catalogue, as the pipeline hands it to verify."""
    return load_catalog().identify(parse(data))
