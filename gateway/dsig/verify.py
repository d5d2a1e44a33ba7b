"""Verify a customs enveloped signature, exactly this profile and nothing more (spec §10).

:func:`verify` returns a :class:`Verified` saying what was verified: the root element
(the only content the signature covers), the signer's certificate and registry entry,
and the algorithm suite.  Every refusal is a :class:`~gateway.errors.SignatureError`
(or :class:`~gateway.errors.CertificateError`) with its own code.  Order of checks:
structure and position, algorithms, certificate identity and registration, revocation,
key strength, digest, signature value, and last the validity window at signing time,
because the signing time (``appTime``) is only trusted once the signature holds.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from lxml import etree

from .. import errors
from ..catalog import CEB_NS, DXP_NS, Identified, MessageType
from ..catalog import load as load_catalog
from ..errors import CertificateError, SignatureError
from ..xmlio import Parsed
from . import layout
from .algorithms import DEFAULT_POLICY, Algorithm, Policy, Suite, suite_for_uris
from .registry import Entry, Registry

errors.register(
    "CEBGW-SIG-KEYNAME",
    422,
    1,
    "-1001",
    "KeyName is not the certificate's serial number",
    "KeyName与证书序列号不符",
)

BEIJING = timezone(timedelta(hours=8))
_DS = f"{{{layout.DS_NS}}}"
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"
_SIGNATURE_CHILDREN = (_DS + "SignedInfo", _DS + "SignatureValue", _DS + "KeyInfo")
_ALLOWED_TRANSFORMS = ((Algorithm.ENVELOPED.value,), (Algorithm.ENVELOPED.value, Algorithm.C14N.value))


@dataclass(frozen=True)
class Verified:
    """What a valid signature covers and who made it.

    ``root`` is the signed element (the whole document); callers process only it.
    ``signed_at`` is the time the certificate was checked against.
    """

    parsed: Parsed
    message_type: MessageType
    root: etree._Element
    certificate: x509.Certificate
    entry: Entry
    suite: Suite
    signer: str
    signed_at: datetime


def _fail(code: str, msg: str, fld: str | None = None) -> SignatureError:
    return SignatureError(msg, code=code, field=fld)


def signature_required(mtype: MessageType, root: etree._Element) -> bool:
    """True when the catalogue says this message must be signed (``when_declared``: appStatus 2)."""
    if mtype.signature == "required":
        return True
    if mtype.signature == "when_declared":
        return any((el.text or "").strip() == "2" for el in root.iter(f"{{{CEB_NS}}}appStatus"))
    return False


def _only(parent: etree._Element, tag: str, where: str) -> etree._Element:
    found = list(parent.iterchildren(tag))  # C-level filter; findall goes through ElementPath
    if len(found) != 1:
        raise _fail(
            "CEBGW-SIG-MALFORMED",
            f"{where}: expected exactly one {tag.rpartition('}')[2]}",
            tag.rpartition("}")[2],
        )
    return found[0]


def _b64(el: etree._Element, fld: str) -> bytes:
    try:
        return base64.b64decode("".join((el.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise _fail("CEBGW-SIG-MALFORMED", f"{fld} is not base64", fld) from None


def _find_signature(root: etree._Element) -> etree._Element:
    sigs = list(root.iter(layout.SIGNATURE_TAG))
    if not sigs:
        raise _fail("CEBGW-SIG-MISSING", "the message carries no ds:Signature", "Signature")
    if len(sigs) > 1:
        raise _fail(
            "CEBGW-SIG-MULTIPLE", f"{len(sigs)} ds:Signature elements; exactly one is allowed", "Signature"
        )
    return sigs[0]


def _check_shape(root: etree._Element, sig: etree._Element, mtype: MessageType) -> None:
    if sig is root or not layout.position_ok(root, sig, mtype):
        where = "before ExtendMessage or last" if layout.signature_goes_before_extend(mtype) else "last"
        raise _fail(
            "CEBGW-SIG-WRAPPING", f"ds:Signature must be a direct child of the root, {where}", "Signature"
        )
    children = layout.element_children(sig)
    extra = [c for c in children if c.tag not in _SIGNATURE_CHILDREN]
    if extra:
        # Anything inside Signature is outside the digest: business content there is unsigned.
        raise _fail(
            "CEBGW-SIG-WRAPPING", f"unsigned content inside ds:Signature: {extra[0].tag}", "Signature"
        )
    if [c.tag for c in children] != list(_SIGNATURE_CHILDREN):
        raise _fail(
            "CEBGW-SIG-MALFORMED", "ds:Signature must hold SignedInfo, SignatureValue, KeyInfo", "Signature"
        )
    if any(n.startswith(_XML_NS) for el in (root, sig) for n in map(str, el.attrib)):
        raise _fail(
            "CEBGW-SIG-MALFORMED", "xml:* attributes on the root or Signature are not supported", "Signature"
        )


def _check_signed_info(si: etree._Element, policy: Policy) -> tuple[Suite, bytes]:
    """The suite and the DigestValue, after checking SignedInfo has exactly the profile's shape."""
    c14n = _only(si, _DS + "CanonicalizationMethod", "SignedInfo")
    if c14n.get("Algorithm") != Algorithm.C14N.value or len(c14n):
        raise _fail(
            "CEBGW-SIG-ALGORITHM",
            f"CanonicalizationMethod {c14n.get('Algorithm')!r}: only inclusive C14N 1.0 is allowed",
            "CanonicalizationMethod",
        )
    sm = _only(si, _DS + "SignatureMethod", "SignedInfo")
    refs = list(si.iterchildren(_DS + "Reference"))
    if len(refs) != 1:
        raise _fail("CEBGW-SIG-REFERENCE", f"{len(refs)} References; exactly one is allowed", "Reference")
    ref = refs[0]
    if ref.get("URI") != "":
        raise _fail(
            "CEBGW-SIG-REFERENCE", f'Reference URI {ref.get("URI")!r}; only URI="" is allowed', "Reference"
        )
    transforms = list(ref.iterchildren(_DS + "Transforms"))
    if len(transforms) != 1:
        raise _fail(
            "CEBGW-SIG-REFERENCE", "the Reference needs the enveloped-signature transform", "Transforms"
        )
    algs = []
    for t in layout.element_children(transforms[0]):
        if t.tag != _DS + "Transform" or len(t):
            raise _fail("CEBGW-SIG-REFERENCE", "transforms take no parameters here", "Transform")
        algs.append(t.get("Algorithm") or "")
    if tuple(algs) not in _ALLOWED_TRANSFORMS:
        raise _fail(
            "CEBGW-SIG-REFERENCE",
            f"transforms {algs}: only enveloped-signature (+ inclusive C14N) are allowed",
            "Transform",
        )
    dm = _only(ref, _DS + "DigestMethod", "Reference")
    found = suite_for_uris(sm.get("Algorithm") or "", dm.get("Algorithm") or "")
    if found is None or not policy.allows(found) or len(sm) or len(dm):
        raise _fail(
            "CEBGW-SIG-ALGORITHM",
            f"SignatureMethod {sm.get('Algorithm')!r} with DigestMethod {dm.get('Algorithm')!r} "
            f"is not allowed (allowed: {sorted(policy.allowed)})",
            "SignatureMethod",
        )
    known = {_DS + "Transforms", _DS + "DigestMethod", _DS + "DigestValue"}
    if any(c.tag not in known for c in layout.element_children(ref)):
        raise _fail("CEBGW-SIG-MALFORMED", "unexpected element in Reference", "Reference")
    if len(layout.element_children(si)) != 3:
        raise _fail("CEBGW-SIG-MALFORMED", "unexpected element in SignedInfo", "SignedInfo")
    return found, _b64(_only(ref, _DS + "DigestValue", "Reference"), "DigestValue")


def _certificate(key_info: etree._Element) -> tuple[str, bytes]:
    kn = _only(key_info, _DS + "KeyName", "KeyInfo")
    x509_data = _only(key_info, _DS + "X509Data", "KeyInfo")
    if len(layout.element_children(key_info)) != 2:
        raise _fail("CEBGW-SIG-MALFORMED", "KeyInfo must hold KeyName and X509Data only", "KeyInfo")
    cert_el = _only(x509_data, _DS + "X509Certificate", "X509Data")
    if len(layout.element_children(x509_data)) != 1:
        raise _fail("CEBGW-SIG-MALFORMED", "X509Data must hold one X509Certificate only", "X509Data")
    return (kn.text or "").strip(), _b64(cert_el, "X509Certificate")


def _sender(root: etree._Element, mtype: MessageType) -> str:
    if mtype.is_envelope:
        steps = [f"{{{DXP_NS}}}TransInfo", f"{{{DXP_NS}}}SenderId"]
        if root.tag == f"{{{DXP_NS}}}DxpMsgSv":
            steps.insert(0, f"{{{DXP_NS}}}DxpMsg")
    else:
        steps = [f"{{{CEB_NS}}}BaseTransfer", f"{{{CEB_NS}}}copCode"]
    el: etree._Element | None = root
    for step in steps:
        el = next(el.iterchildren(step), None) if el is not None else None
    return (el.text or "").strip() if el is not None else ""


def _signer(root: etree._Element, mtype: MessageType, entry: Entry, sender_code: str | None,
            expected: Collection[str]) -> str:
    """Whom the message is signed for: its own sender field, or for a receipt (which has
    none) the caller's expected identity the certificate is registered for."""
    own = "" if mtype.kind == "receipt" else _sender(root, mtype)
    if mtype.kind == "receipt" and not expected and sender_code is None:
        raise CertificateError(
            "a receipt names no sender: verify it against the customs identity (sender_code=…)",
            field="Signature")
    if expected:
        matched = next((c for c in expected if entry.may_sign_for(c)), None)
        if matched is None:
            raise CertificateError(
                f"certificate {entry.name} ({entry.key_name}) is not registered for any of "
                f"{sorted(expected)}", field="Signature")
        return own or matched
    return own or (sender_code or "")


def _signing_time(root: etree._Element, at: datetime | None) -> datetime:
    app = next(root.iter(f"{{{CEB_NS}}}appTime"), None)
    text = (app.text or "").strip() if app is not None else ""
    if text:
        try:  # slicing, not strptime: a third of the cost of a whole verification otherwise
            if len(text) != 14 or not text.isdigit():
                raise ValueError(text)
            y, mo, d, h, mi, s = (
                int(text[i:j]) for i, j in ((0, 4), (4, 6), (6, 8), (8, 10), (10, 12), (12, 14))
            )
            return datetime(y, mo, d, h, mi, s, tzinfo=BEIJING)
        except ValueError:
            raise _fail("CEBGW-SIG-MALFORMED", f"appTime {text!r} is not yyyyMMddHHmmss", "appTime") from None
    return at or datetime.now(BEIJING)


def enveloped_c14n(root: etree._Element, sig: etree._Element) -> bytes:
    """Inclusive C14N 1.0 of the document without ``sig`` (the enveloped-signature transform).

    The tree is changed for the duration of the call and restored exactly (lxml's
    ``remove`` takes the element's tail with it, so the tail is kept on the previous
    node and given back afterwards).
    """
    parent = sig.getparent()
    assert parent is not None
    index = parent.index(sig)
    tail = sig.tail
    prev = sig.getprevious()
    prev_tail = prev.tail if prev is not None else None
    parent_text = parent.text
    try:
        sig.tail = None
        parent.remove(sig)
        if tail:
            if prev is not None:
                prev.tail = (prev_tail or "") + tail
            else:
                parent.text = (parent_text or "") + tail
        return etree.tostring(root.getroottree(), method="c14n", exclusive=False, with_comments=False)
    finally:
        if prev is not None:
            prev.tail = prev_tail
        else:
            parent.text = parent_text
        parent.insert(index, sig)
        sig.tail = tail


def verify(
    message: Parsed | Identified,
    registry: Registry,
    *,
    policy: Policy = DEFAULT_POLICY,
    sender_code: str | None = None,
    expected_signers: Collection[str] = (),
    at: datetime | None = None,
) -> Verified:
    """Verify the message's signature against the registry and the policy.

    ``sender_code``, when given (e.g. the authenticated account), must also be registered
    for the certificate.  A receipt (catalogue kind ``receipt``) names no sender of its
    own, so its signer is taken from the caller: ``sender_code`` and/or
    ``expected_signers`` (e.g. the customs account's codes and DXP id), of which the
    certificate must be registered for ``sender_code`` if given and for at least one of
    ``expected_signers`` if given; a receipt verified with neither is refused.  Other
    messages must also meet ``expected_signers`` when it is given.  ``at`` is "now" for
    messages without ``appTime``.  Promises: on
    return, the root and everything in it except the signature is exactly what the
    registered signer signed.  Raises :class:`~gateway.errors.SignatureError` or
    :class:`~gateway.errors.CertificateError` with a ``CEBGW-SIG-*`` code, or
    :class:`~gateway.errors.IdentifyError` for an unknown message type.
    """
    ident = message if isinstance(message, Identified) else load_catalog().identify(message)
    root, mtype = ident.root, ident.type
    sig = _find_signature(root)
    _check_shape(root, sig, mtype)
    si, sv_el, key_info = layout.element_children(sig)
    s, digest_value = _check_signed_info(si, policy)
    sig_value = _b64(sv_el, "SignatureValue")
    key_name, cert_der = _certificate(key_info)

    entry = registry.by_der(cert_der)
    if entry is None:
        raise CertificateError("the KeyInfo certificate is not in the registry", field="X509Certificate")
    try:
        named = int(key_name, 16)
    except ValueError:
        named = -1
    if named != entry.serial:
        raise _fail(
            "CEBGW-SIG-KEYNAME",
            f"KeyName {key_name!r} is not the certificate serial {entry.key_name}",
            "KeyName",
        )
    signer = _signer(root, mtype, entry, sender_code, expected_signers)
    for identity in (signer, sender_code):
        if identity is not None and not entry.may_sign_for(identity):
            raise CertificateError(
                f"certificate {entry.name} ({entry.key_name}) is not registered for sender {identity!r}",
                field="copCode",
            )
    if not signer:
        raise CertificateError(
            "the message names no sender (BaseTransfer/copCode or SenderId)", field="copCode"
        )
    if registry.is_revoked(entry):
        raise CertificateError(f"certificate {entry.key_name} is revoked", code="CEBGW-SIG-CERT-REVOKED")
    if s.family != entry.key.family:
        raise _fail(
            "CEBGW-SIG-ALGORITHM",
            f"{s.name} signature with a {entry.key.family.upper()} certificate",
            "SignatureMethod",
        )
    if entry.key.family == "rsa" and entry.key.bits < policy.min_rsa_bits:
        raise _fail(
            "CEBGW-SIG-KEY-WEAK", f"RSA-{entry.key.bits} key; the policy needs {policy.min_rsa_bits} bits"
        )

    if not hmac.compare_digest(s.digest_bytes(enveloped_c14n(root, sig)), digest_value):
        raise _fail("CEBGW-SIG-DIGEST", "the document does not match the signed digest", "DigestValue")
    signed_info_c14n = etree.tostring(si, method="c14n", exclusive=False, with_comments=False)
    if not entry.key.verify(sig_value, signed_info_c14n, s):
        raise _fail("CEBGW-SIG-VALUE", "the signature value does not verify", "SignatureValue")

    when = _signing_time(root, at)
    if when < entry.not_before:
        raise CertificateError(
            f"certificate {entry.key_name} is valid from {entry.not_before.isoformat()}, "
            f"signed at {when.isoformat()}",
            code="CEBGW-SIG-CERT-NOT-YET-VALID",
        )
    if when > entry.not_after:
        raise CertificateError(
            f"certificate {entry.key_name} expired {entry.not_after.isoformat()}, "
            f"signed at {when.isoformat()}",
            code="CEBGW-SIG-CERT-EXPIRED",
        )
    return Verified(ident.parsed, mtype, root, entry.certificate, entry, s, signer, when)
