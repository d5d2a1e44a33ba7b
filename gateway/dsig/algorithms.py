"""Algorithm URIs, the suites the customs profile allows, and the verification policy.

This module is the one place that decides which algorithms are acceptable.  SHA-1 is
allowed on purpose: the customs RSA profile (spec §10.1) is RSA-SHA1 with a SHA-1
digest, and declarations signed that way must keep verifying.  A deployment that
wants to refuse it builds a :class:`Policy` without ``rsa-sha1``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any, Literal

Family = Literal["rsa", "sm2"]


class Algorithm(StrEnum):
    """Every algorithm URI the profile knows; the value is the URI written in the XML."""

    C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
    RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
    RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    SM2_SM3 = "http://www.chinaport.gov.cn/2022/04/xmldsig#sm2-sm3"
    SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
    SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
    SM3 = "http://www.chinaport.gov.cn/2022/04/xmldsig#sm3"


# The digest algorithms' hashlib constructors ("sm3" comes from OpenSSL 3 and has none of its own);
# a named constructor skips hashlib.new's lookup by name.
_HASHLIB_NEW: dict[Algorithm, Callable[[bytes], Any]] = {
    Algorithm.SHA1: hashlib.sha1,
    Algorithm.SHA256: hashlib.sha256,
    Algorithm.SM3: partial(hashlib.new, "sm3"),
}


@dataclass(frozen=True)
class Suite:
    """A signature method and the digest method that goes with it.

    ``hash_name`` is the hash inside the signature (hashlib/cryptography naming).
    """

    name: str
    signature: Algorithm
    digest: Algorithm
    family: Family
    hash_name: str

    def digest_bytes(self, data: bytes) -> bytes:
        """The Reference digest of ``data`` under this suite's DigestMethod."""
        digest: bytes = _HASHLIB_NEW[self.digest](data).digest()
        return digest


RSA_SHA1 = Suite("rsa-sha1", Algorithm.RSA_SHA1, Algorithm.SHA1, "rsa", "sha1")
RSA_SHA256 = Suite("rsa-sha256", Algorithm.RSA_SHA256, Algorithm.SHA256, "rsa", "sha256")
SM2_SM3 = Suite("sm2-sm3", Algorithm.SM2_SM3, Algorithm.SM3, "sm2", "sm3")

SUITES: dict[str, Suite] = {s.name: s for s in (RSA_SHA1, RSA_SHA256, SM2_SM3)}
_BY_URIS: dict[tuple[str, str], Suite] = {(s.signature.value, s.digest.value): s for s in SUITES.values()}

# The opt-in to SHA-1, in this one place: customs' official RSA profile is rsa-sha1.
DEFAULT_ALLOWED: frozenset[str] = frozenset({"rsa-sha1", "rsa-sha256", "sm2-sm3"})
DEFAULT_MIN_RSA_BITS = 2048
# Signing defaults: the official customs profiles (rsa-sha1 is what the 202205 spec names for RSA).
DEFAULT_SUITE_FOR: dict[Family, Suite] = {"rsa": RSA_SHA1, "sm2": SM2_SM3}


def suite(name: str) -> Suite:
    """The suite called ``name`` (``rsa-sha1``, ``rsa-sha256``, ``sm2-sm3``); raises ``KeyError``."""
    return SUITES[name]


def suite_for_uris(signature_uri: str, digest_uri: str) -> Suite | None:
    """The suite with exactly this SignatureMethod and DigestMethod, or ``None`` if the pair is unknown."""
    return _BY_URIS.get((signature_uri, digest_uri))


@dataclass(frozen=True)
class Policy:
    """What a verifier accepts.

    ``allowed`` names suites; ``min_rsa_bits`` is the smallest RSA modulus accepted
    (a legacy deployment may pass 1024 for old customs U-Keys).
    """

    allowed: frozenset[str] = field(default_factory=lambda: DEFAULT_ALLOWED)
    min_rsa_bits: int = DEFAULT_MIN_RSA_BITS

    def __post_init__(self) -> None:
        unknown = set(self.allowed) - set(SUITES)
        if unknown:
            raise ValueError(f"unknown algorithm suites in policy: {sorted(unknown)}")
        if self.min_rsa_bits < 1024:
            raise ValueError("min_rsa_bits below 1024 is never acceptable")

    def allows(self, s: Suite) -> bool:
        return s.name in self.allowed


DEFAULT_POLICY = Policy()
