"""Sign a CEB message or DXP envelope the customs way (spec §10), without re-serializing it.

The ``<ds:Signature>`` text is spliced into the original bytes at its schema position;
every other byte of the document stays as it was.  Steps:

1. parse (hardened) and identify the message; refuse one that is already signed;
2. Reference digest = digest(C14N 1.0 of the document as received); because the
   signature text is inserted with no surrounding whitespace, this is exactly the
   enveloped-signature transform of the final document;
3. build ``SignedInfo`` and canonicalize it under the parsed root, so it inherits
   the namespaces in scope in the final document (inclusive C14N);
4. sign those bytes with the key provider and splice the values in.

The document is parsed once; what only depends on the certificate (its base64 and
KeyName) is remembered per certificate.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography import x509
from lxml import etree

from ..catalog import DS_NS, Catalog, MessageType
from ..catalog import load as load_catalog
from ..errors import SignatureError
from ..xmlio import parse, parse_own
from . import certutil, layout
from .algorithms import DEFAULT_SUITE_FOR, Algorithm, Suite, suite
from .keys import KeyProvider

_XML_NS = "{http://www.w3.org/XML/1998/namespace}"


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
        f'<ds:Signature xmlns:ds="{DS_NS}">'
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


def canonical_signed_info(root: etree._Element, signed_info: str) -> bytes:
    """Inclusive C14N of ``signed_info`` as it will sit in the final document.

    The signature is a direct child of the root, so its SignedInfo inherits exactly the
    root's namespaces (xml:* attributes are refused before this): attached to the root,
    anywhere among its children, it canonicalizes as in the final document.  ``root`` is
    the signer's own parse of the message and is left as it was.
    """
    text = f'<ds:Signature xmlns:ds="{DS_NS}">{signed_info}</ds:Signature>'
    sig = parse_own(text.encode("utf-8"))  # our own markup
    root.append(sig)
    try:
        return etree.tostring(sig[0], method="c14n", exclusive=False, with_comments=False)
    finally:
        root.remove(sig)


@lru_cache(maxsize=64)
def _key_info_text(cert: x509.Certificate) -> tuple[str, str]:
    """The certificate's ``KeyName`` and base64 DER, worked out once per certificate."""
    return certutil.key_name(cert), base64.b64encode(certutil.der(cert)).decode("ascii")


def _canonical_document(root: etree._Element, source: str) -> bytes:
    try:
        return etree.tostring(root.getroottree(), method="c14n", exclusive=False, with_comments=False)
    except etree.C14NError:  # libxml2 refuses relative namespace URIs
        raise SignatureError(
            f"{source}: the message cannot be canonicalized (relative namespace URI?)",
            code="CEBGW-SIG-MALFORMED",
        ) from None


def sign(
    data: bytes,
    key: KeyProvider,
    *,
    alg: Suite | str | None = None,
    message_type: MessageType | None = None,
    catalog: Catalog | None = None,
    source: str = "-",
    replace: bool = False,
) -> bytes:
    """Return ``data`` with an enveloped customs signature by ``key``.

    ``alg`` is a suite or its name (default: ``rsa-sha1`` for RSA keys, the customs
    profile; ``sm2-sm3`` for SM2 keys).  The position comes from the message type
    (identified through the catalogue unless ``message_type`` is given).  Promises:
    the result equals ``data`` with one ``<ds:Signature>`` inserted.  With ``replace``,
    an already signed message is first stripped of its signature (:func:`unsign`) and
    signed again; without it, it is refused.  Raises
    :class:`~gateway.errors.ParseError`/:class:`~gateway.errors.IdentifyError` for bad
    input, :class:`~gateway.errors.SignatureError` for an already signed message
    (``CEBGW-SIG-MULTIPLE``) or an algorithm the key cannot do, and whatever the key
    provider raises.
    """
    if replace:
        data = unsign(data, source=source)
    s, root, offset = _placed(data, key, alg, message_type, catalog, source)
    return data[:offset] + _signature_over(s, key, root, _canonical_document(root, source)) + data[offset:]


def _placed(data: bytes, key: KeyProvider, alg: Suite | str | None, message_type: MessageType | None,
            catalog: Catalog | None, source: str) -> tuple[Suite, etree._Element, int]:
    """The suite, the parsed root and the byte offset where the signature of ``data`` goes;
    raises as :func:`sign` does for what it cannot sign."""
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
        offset = layout.insertion_offset(parsed.data, root, mtype)
    except ValueError as exc:
        raise SignatureError(
            f"{source}: cannot place the signature: {exc}", code="CEBGW-SIG-MALFORMED"
        ) from None
    return s, root, offset


def _signature_over(s: Suite, key: KeyProvider, root: etree._Element, canonical: bytes) -> bytes:
    """The ``ds:Signature`` text by ``key`` over ``canonical``, the document's canonical form."""
    digest_b64 = base64.b64encode(s.digest_bytes(canonical)).decode("ascii")
    kname, cert_b64 = _key_info_text(key.certificate)
    signed_info = _signed_info(s, digest_b64)
    value_b64 = base64.b64encode(key.sign(canonical_signed_info(root, signed_info), s)).decode("ascii")
    return _signature(signed_info, value_b64, kname, cert_b64)


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_MARK = b"CEBGWxMIDDLExOFxTHExDOCUMENT"  # base64 letters, so the probe's text is one text node


def sign_around(head: bytes, middle: bytes, tail: bytes, key: KeyProvider, *,
                alg: Suite | str | None = None, catalog: Catalog | None = None, source: str = "-") -> bytes:
    """The tail of :func:`sign`'s result for ``head + middle + tail``, whose ``middle`` is
    base64 text (a DXP envelope's ``Data``), computed without building or parsing the whole:
    ``head + middle + sign_around(head, middle, tail, key)`` equals ``sign(head + middle + tail,
    key)`` byte for byte (RSA; an SM2 signature differs only in its random value).

    Canonicalization leaves base64 text as it is, so the canonical form of the whole is that of
    ``head + MARK + tail`` with ``middle`` in place of the mark: only that small probe is parsed
    and canonicalized, and the digest runs over the pieces.  Raises ``ValueError`` when ``middle``
    is not base64 or the signature would not go into ``tail``; otherwise as :func:`sign`.
    """
    if middle.translate(None, _BASE64_ALPHABET):
        raise ValueError("the middle part is not base64 text")
    s, root, offset = _placed(head + _MARK + tail, key, alg, None, catalog, source)
    offset -= len(head) + len(_MARK)
    canonical = _canonical_document(root, source)
    at = canonical.find(_MARK)
    if offset < 0 or at < 0 or canonical.count(_MARK) != 1 or (head + tail).find(_MARK) >= 0:
        raise ValueError("the signature would not go into the tail, or the mark is not unique")
    whole = canonical[:at] + middle + canonical[at + len(_MARK):]
    return tail[:offset] + _signature_over(s, key, root, whole) + tail[offset:]


def unsign(data: bytes, *, source: str = "-") -> bytes:
    """``data`` without the ``ds:Signature`` elements that are direct children of its root,
    every other byte as it was: for a message :func:`sign` signed, the message before signing.

    Promises: the result holds no ``ds:Signature``.  Raises :class:`~gateway.errors.ParseError`
    for bad input and :class:`~gateway.errors.SignatureError` (``CEBGW-SIG-MALFORMED``) for a
    signature anywhere else (inside a record, or as the root), which is not one to replace.
    """
    parsed = parse(data, source=source)
    root = parsed.root
    children = layout.element_children(root)
    mine = [i for i, c in enumerate(children) if c.tag == layout.SIGNATURE_TAG]
    if root.tag == layout.SIGNATURE_TAG or sum(1 for _ in root.iter(layout.SIGNATURE_TAG)) != len(mine):
        raise SignatureError(f"{source}: a ds:Signature that is not a child of the message's root element "
                             "cannot be replaced", code="CEBGW-SIG-MALFORMED")
    if not mine:
        return parsed.data
    try:
        spans = layout.scan(parsed.data)
        if len(spans.child_starts) != len(children) or len(spans.child_ends) != len(children):
            raise ValueError("markup scan and tree disagree")
    except ValueError as exc:
        raise SignatureError(f"{source}: cannot find the signature's bytes: {exc}",
                             code="CEBGW-SIG-MALFORMED") from None
    out = parsed.data
    for i in reversed(mine):
        out = out[: spans.child_starts[i]] + out[spans.child_ends[i]:]
    return out
