"""XML signatures the customs way (spec §10): sign, verify, algorithms, keys, certificate registry.

``sign(data, key)`` splices an enveloped ``ds:Signature`` into the original bytes;
``verify(identified, registry)`` returns a :class:`VerifiedSignature` naming what was signed and by whom.
"""

from .algorithms import DEFAULT_POLICY, Algorithm, Policy, Suite
from .keys import KeyProvider, RemoteSigner, SoftwareKey, load_key
from .registry import Entry, Registry
from .registry import load as load_registry
from .sign import sign, sign_around
from .verify import VerifiedSignature, signature_required, verify

__all__ = [
    "DEFAULT_POLICY",
    "Algorithm",
    "Entry",
    "KeyProvider",
    "Policy",
    "Registry",
    "RemoteSigner",
    "SoftwareKey",
    "Suite",
    "VerifiedSignature",
    "load_key",
    "load_registry",
    "sign",
    "sign_around",
    "signature_required",
    "verify",
]
