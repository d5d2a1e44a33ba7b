"""Sign a CEB message or DXP envelope the customs way (spec §10), without re-serializing it.

The ``<ds:Signature>`` text is spliced into the original bytes at its schema position;
every other byte of the document stays as it was.  Steps:

1. parse (hardened) and identify the message; refuse one that is already signed;
2. Reference digest = digest(C14N 1.0 of the document as received); because the
   signature text is inserted with no surrounding whitespace, this is exactly the
   enveloped-signature transform of the final document;
3. build ``SignedInfo`` and canonicalize it inside the root's start tag, so it
   inherits the namespaces in scope in the final document (inclusive C14N);
4. sign those bytes with the key provider and splice the values in.
"""

from __future__ import annotations

import base64
import re

from lxml import etree

from ..catalog import Catalog, MessageType
from ..catalog import load as load_catalog
from ..errors import SignatureError
from ..xmlio import parse
from . import certutil, layout
from .algorithms import DEFAULT_SUITE_FOR, Algorithm, Suite, suite
from .keys import KeyProvider

_XML_NS = "{http://www.w3.org/XML/1998/namespace}"
_QNAME = re.compile(rb"<([^\s/>]+)")
_SIGNED_INFO_TAG = f"{{{layout.DS_NS}}}SignedInfo"


def _signed_info(s: Suite, digest_b64: str) -> str:
    return (
        "<ds:SignedInfo>"
        f'<ds:CanonicalizationMethod Algorithm="{Algorithm.C14N.value}"/>'
        f'<ds:SignatureMethod Algorithm="{s.signature.value}"/>'
        '<ds:Reference URI="">'
        f'<ds:Transforms><ds:Transform Algorithm="{Algorithm.ENVELOPED.value}"/></ds:Transforms>'
        f'<ds:DigestMethod Algorithm="{s.digest.value}"/>'
        f"<ds:DigestValue>{digest_b64}</ds:DigestValue>"
        "</ds:Reference>"
        "</ds:SignedInfo>"
    )


def _signature(signed_info: str, value_b64: str, key_name: str, cert_b64: str) -> bytes:
    return (
        f'<ds:Signature xmlns:ds="{layout.DS_NS}">'
        f"{signed_info}"
        f"<ds:SignatureValue>{value_b64}</ds:SignatureValue>"
        "<ds:KeyInfo>"
        f"<ds:KeyName>{key_name}</ds:KeyName>"
        f"<ds:X509Data><ds:X509Certificate>{cert_b64}</ds:X509Certificate></ds:X509Data>"
        "</ds:KeyInfo>"
        "</ds:Signature>"
    ).encode("ascii")


def _resolve_suite(alg: Suite | str | None, key: KeyProvider) -> Suite:
    if alg is None:
        return DEFAULT_SUITE_FOR[key.family]
    if isinstance(alg, Suite):
        return alg
    try:
        return suite(alg)
    except KeyError:
        raise SignatureError(
            f"unknown algorithm {alg!r} (rsa-sha1, rsa-sha256, sm2-sm3)", code="CEBGW-SIG-ALGORITHM"
        ) from None


def canonical_signed_info(root_start_tag: bytes, signature_text: bytes) -> bytes:
    """Inclusive C14N of ``SignedInfo`` as it sits in the final document.

    Only the root is an ancestor of the signature, so the root's start tag (with its
    namespace declarations) around the signature text gives the same context.
    """
    m = _QNAME.match(root_start_tag)
    if m is None:
        raise SignatureError("cannot read the root start tag", code="CEBGW-SIG-MALFORMED")
    mini = root_start_tag + signature_text + b"</" + m.group(1) + b">"
    mini_root = parse(mini, source="SignedInfo").root
    signed_info = mini_root.find(f"{layout.SIGNATURE_TAG}/{_SIGNED_INFO_TAG}")
    if signed_info is None:  # pragma: no cover - we built it
        raise SignatureError("SignedInfo not found", code="CEBGW-SIG-MALFORMED")
    return etree.tostring(signed_info, method="c14n", exclusive=False, with_comments=False)


def sign(
    data: bytes,
    key: KeyProvider,
    *,
    alg: Suite | str | None = None,
    message_type: MessageType | None = None,
    catalog: Catalog | None = None,
    source: str = "-",
) -> bytes:
    """Return ``data`` with an enveloped customs signature by ``key``.

    ``alg`` is a suite or its name (default: ``rsa-sha1`` for RSA keys, the customs
    profile; ``sm2-sm3`` for SM2 keys).  The position comes from the message type
    (identified through the catalogue unless ``message_type`` is given).  Promises:
    the result equals ``data`` with one ``<ds:Signature>`` inserted.  Raises
    :class:`~gateway.errors.ParseError`/:class:`~gateway.errors.IdentifyError` for bad
    input, :class:`~gateway.errors.SignatureError` for an already signed message or
    an algorithm the key cannot do, and whatever the key provider raises.
    """
    s = _resolve_suite(alg, key)
    if s.family != key.family:
        raise SignatureError(f"a {key.family.upper()} key cannot sign {s.name}", code="CEBGW-SIG-ALGORITHM")
    parsed = parse(data, source=source)
    root = parsed.root
    mtype = message_type or (catalog or load_catalog()).identify(parsed).type
    if root.tag == layout.SIGNATURE_TAG or next(root.iter(layout.SIGNATURE_TAG), None) is not None:
        raise SignatureError(f"{source}: the message is already signed", code="CEBGW-SIG-MULTIPLE")
    if any(str(name).startswith(_XML_NS) for name in root.attrib):
        raise SignatureError(
            f"{source}: xml:* attributes on the root are not supported in signed messages",
            code="CEBGW-SIG-MALFORMED",
        )
    try:
        offset, (tag_start, tag_end) = layout.insertion_offset(parsed.data, root, mtype)
    except ValueError as exc:
        raise SignatureError(
            f"{source}: cannot place the signature: {exc}", code="CEBGW-SIG-MALFORMED"
        ) from None

    canonical_doc = etree.tostring(root.getroottree(), method="c14n", exclusive=False, with_comments=False)
    digest_b64 = base64.b64encode(s.digest_bytes(canonical_doc)).decode("ascii")
    cert = key.certificate
    cert_b64 = base64.b64encode(certutil.der(cert)).decode("ascii")
    signed_info = _signed_info(s, digest_b64)
    kname = certutil.key_name(cert)

    root_tag = parsed.data[tag_start:tag_end]
    to_sign = canonical_signed_info(root_tag, _signature(signed_info, "", kname, cert_b64))
    value_b64 = base64.b64encode(key.sign(to_sign, s)).decode("ascii")
    sig_text = _signature(signed_info, value_b64, kname, cert_b64)
    return parsed.data[:offset] + sig_text + parsed.data[offset:]
