"""Verify a customs enveloped signature, exactly this profile and nothing more (spec §10).

:func:`verify` returns a :class:`VerifiedSignature` saying what was verified: the root element
(the only content the signature covers), the signer's certificate and registry entry,
and the algorithm suite.  Every refusal is a :class:`~gateway.errors.SignatureError`
(or :class:`~gateway.errors.CertificateError`) with its own code.  Order of checks:
structure and position, algorithms, certificate identity and registration, revocation,
key strength, digest, signature value, and last the validity window at signing time,
because the signing time (``appTime``) is only trusted once the signature holds, and
(when the caller says when it received the message) at receiving time too.

Cost: a Signature laid out exactly as the profile writes it is recognised in one short
pass (:func:`_profile_nodes`); anything else goes through the detailed checks
(:func:`_checked_nodes`), which accept a superset of it and name the fault; one function,
:func:`_signature_nodes`, chooses.  What only
depends on the certificate (base64, fingerprint, serial) is remembered by the registry,
so what remains per message is mostly the C14N, the digest and the public-key operation.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter, methodcaller
from typing import NamedTuple

from cryptography import x509
from lxml import etree

from .. import errors
from ..catalog import BEIJING, CEB_NS, DS_NS, DXP_NS, Identified, MessageType
from ..errors import CertificateError, SignatureError
from ..xmlio import Parsed
from . import certutil, layout
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

_DS = f"{{{DS_NS}}}"
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"
_APP_TIME_TAG = f"{{{CEB_NS}}}appTime"
_SIGNED_INFO = _DS + "SignedInfo"
_SIGNATURE_VALUE = _DS + "SignatureValue"
_KEY_INFO = _DS + "KeyInfo"
_C14N_METHOD = _DS + "CanonicalizationMethod"
_SIGNATURE_METHOD = _DS + "SignatureMethod"
_REFERENCE = _DS + "Reference"
_TRANSFORMS = _DS + "Transforms"
_TRANSFORM = _DS + "Transform"
_DIGEST_METHOD = _DS + "DigestMethod"
_DIGEST_VALUE = _DS + "DigestValue"
_KEY_NAME = _DS + "KeyName"
_X509_DATA = _DS + "X509Data"
_X509_CERTIFICATE = _DS + "X509Certificate"
_SIGNATURE_CHILDREN = (_SIGNED_INFO, _SIGNATURE_VALUE, _KEY_INFO)
_C14N_URI = Algorithm.C14N.value
_ALLOWED_TRANSFORMS = ((Algorithm.ENVELOPED.value,), (Algorithm.ENVELOPED.value, _C14N_URI))


@dataclass(frozen=True)
class VerifiedSignature:
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


class _Nodes(NamedTuple):
    """The parts of a Signature whose shape and algorithms have been checked."""

    signed_info: etree._Element
    suite: Suite
    digest_value: etree._Element
    signature_value: etree._Element
    key_name: etree._Element
    certificate: etree._Element


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
        return certutil.decode_base64(el.text or "")
    except ValueError:
        raise _fail("CEBGW-SIG-MALFORMED", f"{fld} is not base64", fld) from None


def _scan(root: etree._Element) -> tuple[etree._Element, etree._Element | None]:
    """The one ``ds:Signature`` of the document and its first ``appTime``, found in one walk."""
    sigs: list[etree._Element] = []
    app_time: etree._Element | None = None
    # One C-level walk for both tags: each tag-filtered iter() walks the whole tree,
    # even when only its first match is taken.
    for el in root.iter(layout.SIGNATURE_TAG, _APP_TIME_TAG):
        if el.tag == layout.SIGNATURE_TAG:
            sigs.append(el)
        elif app_time is None:
            app_time = el
    if not sigs:
        raise _fail("CEBGW-SIG-MISSING", "the message carries no ds:Signature", "Signature")
    if len(sigs) > 1:
        raise _fail(
            "CEBGW-SIG-MULTIPLE", f"{len(sigs)} ds:Signature elements; exactly one is allowed", "Signature"
        )
    return sigs[0], app_time


def _check_position(root: etree._Element, sig: etree._Element, mtype: MessageType) -> None:
    if sig is root or not layout.position_ok(root, sig, mtype):
        where = "before ExtendMessage or last" if layout.signature_goes_before_extend(mtype) else "last"
        raise _fail(
            "CEBGW-SIG-WRAPPING", f"ds:Signature must be a direct child of the root, {where}", "Signature"
        )


def _check_children(sig: etree._Element) -> None:
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


def _check_xml_attributes(root: etree._Element, sig: etree._Element) -> None:
    if any(str(n).startswith(_XML_NS) for n in (*root.keys(), *sig.keys())):
        raise _fail(
            "CEBGW-SIG-MALFORMED", "xml:* attributes on the root or Signature are not supported", "Signature"
        )


def _profile_shape(transforms: int) -> list[tuple[object, int]]:
    """The profile's Signature as (tag, number of child nodes) of each node in document order."""
    return [
        (layout.SIGNATURE_TAG, 3),
        (_SIGNED_INFO, 3),
        (_C14N_METHOD, 0),
        (_SIGNATURE_METHOD, 0),
        (_REFERENCE, 3),
        (_TRANSFORMS, transforms),
        *[(_TRANSFORM, 0)] * transforms,
        (_DIGEST_METHOD, 0),
        (_DIGEST_VALUE, 0),
        (_SIGNATURE_VALUE, 0),
        (_KEY_INFO, 2),
        (_KEY_NAME, 0),
        (_X509_DATA, 1),
        (_X509_CERTIFICATE, 0),
    ]


# Keyed by the number of nodes: with one Transform, or with the optional second (inclusive C14N);
# each as the tags and the child counts of the nodes, in document order.
_PROFILE_SHAPES: dict[int, tuple[tuple[object, ...], tuple[int, ...]]] = {
    len(shape): (tuple(tag for tag, _ in shape), tuple(size for _, size in shape))
    for shape in map(_profile_shape, (1, 2))
}
_NODES_WITHOUT_TRANSFORMS = len(_profile_shape(0))
_TAG = attrgetter("tag")
_ALGORITHM = methodcaller("get", "Algorithm")


def _profile_nodes(sig: etree._Element, policy: Policy) -> _Nodes | None:
    """The fast path: the nodes of a Signature written exactly the profile's way, else None.

    Exactly: schema order, no comments or PIs, nothing inside leaf elements, allowed
    algorithms and transforms, ``URI=""``.  Whatever it accepts, :func:`_checked_nodes`
    accepts with the same result; it raises nothing, so on None the detailed checks run
    and name the fault (or accept an unusual but valid layout).
    """
    # sig.iter() yields every node below sig, comments and PIs included, and len() counts
    # them; the (tag, child count) of every node in document order pins the whole tree
    # down, so two comparisons (counts, then tags) check the shape.
    nodes = tuple(sig.iter())
    shape = _PROFILE_SHAPES.get(len(nodes))
    if shape is None or tuple(map(len, nodes)) != shape[1] or tuple(map(_TAG, nodes)) != shape[0]:
        return None
    _, si, c14n, sm, ref, _, *rest = nodes
    steps = len(nodes) - _NODES_WITHOUT_TRANSFORMS
    dm, dv, sv, _, kn, _, cert = rest[steps:]
    if tuple(map(_ALGORITHM, rest[:steps])) not in _ALLOWED_TRANSFORMS:
        return None
    if c14n.get("Algorithm") != _C14N_URI or ref.get("URI") != "":
        return None
    found = suite_for_uris(sm.get("Algorithm") or "", dm.get("Algorithm") or "")
    if found is None or not policy.allows(found):
        return None
    return _Nodes(si, found, dv, sv, kn, cert)


def _check_signed_info(si: etree._Element, policy: Policy) -> tuple[Suite, etree._Element]:
    """The suite and the DigestValue element, after checking SignedInfo has exactly the profile's shape."""
    c14n = _only(si, _C14N_METHOD, "SignedInfo")
    if c14n.get("Algorithm") != _C14N_URI or len(c14n):
        raise _fail(
            "CEBGW-SIG-ALGORITHM",
            f"CanonicalizationMethod {c14n.get('Algorithm')!r}: only inclusive C14N 1.0 is allowed",
            "CanonicalizationMethod",
        )
    sm = _only(si, _SIGNATURE_METHOD, "SignedInfo")
    refs = list(si.iterchildren(_REFERENCE))
    if len(refs) != 1:
        raise _fail("CEBGW-SIG-REFERENCE", f"{len(refs)} References; exactly one is allowed", "Reference")
    ref = refs[0]
    if ref.get("URI") != "":
        raise _fail(
            "CEBGW-SIG-REFERENCE", f'Reference URI {ref.get("URI")!r}; only URI="" is allowed', "Reference"
        )
    transforms = list(ref.iterchildren(_TRANSFORMS))
    if len(transforms) != 1:
        raise _fail(
            "CEBGW-SIG-REFERENCE", "the Reference needs the enveloped-signature transform", "Transforms"
        )
    algs = []
    for t in layout.element_children(transforms[0]):
        if t.tag != _TRANSFORM or len(t):
            raise _fail("CEBGW-SIG-REFERENCE", "transforms take no parameters here", "Transform")
        algs.append(t.get("Algorithm") or "")
    if tuple(algs) not in _ALLOWED_TRANSFORMS:
        raise _fail(
            "CEBGW-SIG-REFERENCE",
            f"transforms {algs}: only enveloped-signature (+ inclusive C14N) are allowed",
            "Transform",
        )
    dm = _only(ref, _DIGEST_METHOD, "Reference")
    found = suite_for_uris(sm.get("Algorithm") or "", dm.get("Algorithm") or "")
    if found is None or not policy.allows(found) or len(sm) or len(dm):
        raise _fail(
            "CEBGW-SIG-ALGORITHM",
            f"SignatureMethod {sm.get('Algorithm')!r} with DigestMethod {dm.get('Algorithm')!r} "
            f"is not allowed (allowed: {sorted(policy.allowed)})",
            "SignatureMethod",
        )
    known = {_TRANSFORMS, _DIGEST_METHOD, _DIGEST_VALUE}
    if any(c.tag not in known for c in layout.element_children(ref)):
        raise _fail("CEBGW-SIG-MALFORMED", "unexpected element in Reference", "Reference")
    if len(layout.element_children(si)) != 3:
        raise _fail("CEBGW-SIG-MALFORMED", "unexpected element in SignedInfo", "SignedInfo")
    return found, _only(ref, _DIGEST_VALUE, "Reference")


def _key_info(key_info: etree._Element) -> tuple[etree._Element, etree._Element]:
    """The KeyName and X509Certificate elements, after checking KeyInfo holds just those."""
    kn = _only(key_info, _KEY_NAME, "KeyInfo")
    x509_data = _only(key_info, _X509_DATA, "KeyInfo")
    if len(layout.element_children(key_info)) != 2:
        raise _fail("CEBGW-SIG-MALFORMED", "KeyInfo must hold KeyName and X509Data only", "KeyInfo")
    cert_el = _only(x509_data, _X509_CERTIFICATE, "X509Data")
    if len(layout.element_children(x509_data)) != 1:
        raise _fail("CEBGW-SIG-MALFORMED", "X509Data must hold one X509Certificate only", "X509Data")
    return kn, cert_el


def _check_text_only(*leaves: etree._Element) -> None:
    # An element inside one of these is outside the digest (or, in DigestValue, outside the
    # profile); an appTime there would even pick the signing time of a message without one.
    for leaf in leaves:
        if layout.element_children(leaf):
            name = str(leaf.tag).rpartition("}")[2]
            raise _fail("CEBGW-SIG-WRAPPING", f"elements inside ds:{name}, which holds text only", name)


def _signature_nodes(sig: etree._Element, policy: Policy) -> _Nodes:
    """The parts of the Signature, after checking its shape and algorithms: at once when it is
    written exactly the profile's way (:func:`_profile_nodes`), else part by part
    (:func:`_checked_nodes`). Raises SignatureError with the code of the first fault."""
    fast = _profile_nodes(sig, policy)
    return fast if fast is not None else _checked_nodes(sig, policy)


def _checked_nodes(sig: etree._Element, policy: Policy) -> _Nodes:
    """The slow path: check the Signature part by part, raising with the code of the first fault."""
    _check_children(sig)
    si, sv_el, key_info = layout.element_children(sig)
    s, dv = _check_signed_info(si, policy)
    kn, cert_el = _key_info(key_info)
    _check_text_only(dv, sv_el, kn, cert_el)
    return _Nodes(si, s, dv, sv_el, kn, cert_el)


def _registered(registry: Registry, nodes: _Nodes) -> Entry:
    """The registry entry of the KeyInfo certificate, whose serial KeyName must name."""
    try:
        entry = registry.by_base64(nodes.certificate.text or "")
    except ValueError:
        raise _fail("CEBGW-SIG-MALFORMED", "X509Certificate is not base64", "X509Certificate") from None
    if entry is None:
        raise CertificateError("the KeyInfo certificate is not in the registry", field="X509Certificate")
    key_name = (nodes.key_name.text or "").strip()
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
    return entry


# Where the sender is named, as child steps from the root.
_CEB_SENDER = (f"{{{CEB_NS}}}BaseTransfer", f"{{{CEB_NS}}}copCode")
_DXP_SENDER = (f"{{{DXP_NS}}}TransInfo", f"{{{DXP_NS}}}SenderId")
_DXP_SV_SENDER = (f"{{{DXP_NS}}}DxpMsg", *_DXP_SENDER)
_DXP_SV_TAG = f"{{{DXP_NS}}}DxpMsgSv"


def _sender(root: etree._Element, mtype: MessageType) -> str:
    if mtype.is_envelope:
        steps = _DXP_SV_SENDER if root.tag == _DXP_SV_TAG else _DXP_SENDER
    else:
        steps = _CEB_SENDER
    el: etree._Element | None = root
    for step in steps:
        el = next(el.iterchildren(step), None) if el is not None else None
    return (el.text or "").strip() if el is not None else ""


def _signer(
    root: etree._Element, mtype: MessageType, entry: Entry, sender_code: str | None, expected: Collection[str]
) -> str:
    """Whom the message is signed for: its own sender field, or for a receipt (which has
    none) the caller's expected identity the certificate is registered for."""
    own = "" if mtype.kind == "receipt" else _sender(root, mtype)
    if mtype.kind == "receipt" and not expected and sender_code is None:
        raise CertificateError(
            "a receipt names no sender: verify it against the customs identity (sender_code=…)",
            field="Signature",
        )
    if expected:
        matched = next((c for c in expected if entry.may_sign_for(c)), None)
        if matched is None:
            raise CertificateError(
                f"certificate {entry.name} ({entry.key_name}) is not registered for any of "
                f"{sorted(expected)}",
                field="Signature",
            )
        return own or matched
    return own or (sender_code or "")


def _check_signer(registry: Registry, entry: Entry, signer: str, sender_code: str | None) -> None:
    """The certificate must be registered for the signer and the caller's sender, and not revoked."""
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


def _check_key(s: Suite, entry: Entry, policy: Policy) -> None:
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


def _signing_time(app_time: etree._Element | None, at: datetime | None) -> datetime:
    """The first ``appTime`` (Beijing time), else ``at`` or now."""
    text = (app_time.text or "").strip() if app_time is not None else ""
    if text:
        try:  # slicing, not strptime: a third of the cost of a whole verification otherwise
            if len(text) != 14 or not text.isdigit():
                raise ValueError(text)
            return datetime(
                int(text[0:4]),
                int(text[4:6]),
                int(text[6:8]),
                int(text[8:10]),
                int(text[10:12]),
                int(text[12:14]),
                tzinfo=BEIJING,
            )
        except ValueError:
            raise _fail("CEBGW-SIG-MALFORMED", f"appTime {text!r} is not yyyyMMddHHmmss", "appTime") from None
    return at or datetime.now(BEIJING)


def _check_window(entry: Entry, when: datetime) -> None:
    not_before, not_after = entry.beijing_window
    if when < not_before:
        raise CertificateError(
            f"certificate {entry.key_name} is valid from {entry.not_before.isoformat()}, "
            f"signed at {when.isoformat()}",
            code="CEBGW-SIG-CERT-NOT-YET-VALID",
        )
    if when > not_after:
        raise CertificateError(
            f"certificate {entry.key_name} expired {entry.not_after.isoformat()}, "
            f"signed at {when.isoformat()}",
            code="CEBGW-SIG-CERT-EXPIRED",
        )


def _check_received(entry: Entry, received: datetime, grace: timedelta) -> None:
    """The certificate must also be valid when the gateway received the message (give or take
    ``grace``): ``appTime`` is the sender's own word, so a backdated one proves nothing."""
    not_before, not_after = entry.beijing_window
    if received < not_before - grace:
        raise CertificateError(
            f"certificate {entry.key_name} is valid from {entry.not_before.isoformat()}, "
            f"received at {received.isoformat()}",
            code="CEBGW-SIG-CERT-NOT-YET-VALID",
        )
    if received > not_after + grace:
        raise CertificateError(
            f"certificate {entry.key_name} expired {entry.not_after.isoformat()}, "
            f"received at {received.isoformat()} (grace {grace})",
            code="CEBGW-SIG-CERT-EXPIRED",
        )


def _c14n(node: etree._Element | etree._ElementTree) -> bytes:
    """Inclusive C14N 1.0 without comments of a document or (with its context) an element."""
    try:
        return etree.tostring(node, method="c14n", exclusive=False, with_comments=False)
    except etree.C14NError:  # libxml2 refuses relative namespace URIs
        raise _fail(
            "CEBGW-SIG-MALFORMED", "the message cannot be canonicalized (relative namespace URI?)"
        ) from None


def enveloped_c14n(root: etree._Element, sig: etree._Element) -> bytes:
    """Inclusive C14N 1.0 of the document without ``sig`` (the enveloped-signature transform).

    The tree is changed for the duration of the call and restored exactly (lxml's
    ``remove`` takes the element's tail with it, so the tail is kept on the previous
    node and given back afterwards).  This beats copying the tree, and canonicalizing
    the document (not the root element) keeps what lies outside the root, as xmlsec1 does.
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
        return _c14n(root.getroottree())
    finally:
        if prev is not None:
            prev.tail = prev_tail
        else:
            parent.text = parent_text
        parent.insert(index, sig)
        sig.tail = tail


_XML_DECLARATION = re.compile(rb"(?:\xef\xbb\xbf)?(?:<\?xml[^>]*\?>)?[ \t\r\n]*")
# What may follow the name in a start tag (not SignatureValue/SignatureMethod): space, > or /.
_START_TAG_NAME_ENDS = frozenset(b" \t\r\n/>")
_LT, _SLASH, _GT = ord("<"), ord("/"), ord(">")


def _only_tags(data: bytes, name: bytes, start: int, end: int) -> tuple[int, int] | None:
    """Offsets of the start tag ``<name`` (followed by a space, ``>`` or ``/``) and of the end
    tag ``</name>`` in ``data[start:end]``, or ``None`` unless each occurs there exactly once,
    the end tag after the start tag.

    Both tags contain ``name``, so one ``find`` pass over its occurrences (overlapping ones
    included) sees every candidate of either kind.  A name has no ``<``, so an end tag after
    the start tag also begins after the whole ``<name`` and the character following it.
    """
    opening = closing = -1
    n = len(name)
    at = data.find(name, start + 1, end)
    while at >= 0:
        after = at + n
        before = data[at - 1]
        if before == _LT:
            if after < end and data[after] in _START_TAG_NAME_ENDS:
                if opening >= 0:
                    return None
                opening = at - 1
        elif (before == _SLASH and at - 2 >= start and data[at - 2] == _LT
              and after < end and data[after] == _GT):
            if closing >= 0:
                return None
            closing = at - 2
        at = data.find(name, at + 1, end)
    if opening < 0 or closing <= opening:
        return None
    return opening, closing


def _as_received(data: bytes, root: etree._Element, sig: etree._Element) -> bytes | None:
    """The received bytes of the root element with the Signature element's bytes cut out, or
    ``None`` when they cannot be cut out unambiguously.

    Most senders write the document the way C14N does (double quotes, namespace
    declarations first, no empty-element tags, LF line ends); then these bytes *are* the
    canonical form and their digest can be checked without canonicalizing the tree.  Why a
    match proves what the full transform would: if ``digest(bytes) == DigestValue``, the
    bytes are the signer's canonical document C (the digest's collision resistance, the
    assumption of the standard path too).  They are the received root element minus the
    one span from the Signature's start tag to its end tag; that span is the parsed
    Signature element itself, because its start and end tags each occur exactly once in
    the document (:func:`_only_tags`), so the tree without the Signature is the tree of C,
    whose C14N is C.  Anything before the root other than an XML declaration, or after it
    other than whitespace, sends the caller to the full C14N (which keeps processing
    instructions there).
    """
    prolog = _XML_DECLARATION.match(data)
    start = prolog.end() if prolog is not None else 0
    end = len(data.rstrip(b" \t\r\n"))
    qname = layout.qname(root)
    if not (data.startswith(f"<{qname}".encode(), start) and data.endswith(f"</{qname}>".encode(), 0, end)):
        return None
    sig_qname = layout.qname(sig).encode()
    tags = _only_tags(data, sig_qname, start, end)
    if tags is None:
        return None
    opening, closing = tags
    return data[start:opening] + data[closing + len(sig_qname) + 3:end]


def _digest_matches(data: bytes, root: etree._Element, sig: etree._Element, s: Suite,
                    digest_value: bytes) -> bool:
    """The Reference digest check: on the received bytes when they are already canonical
    (:func:`_as_received`), else on the C14N of the tree without the Signature."""
    received = _as_received(data, root, sig)
    if received is not None and hmac.compare_digest(s.digest_bytes(received), digest_value):
        return True
    return hmac.compare_digest(s.digest_bytes(enveloped_c14n(root, sig)), digest_value)


def verify(
    ident: Identified,
    registry: Registry,
    *,
    policy: Policy = DEFAULT_POLICY,
    sender_code: str | None = None,
    expected_signers: Collection[str] = (),
    at: datetime | None = None,
    received_at: datetime | None = None,
    grace: timedelta = timedelta(0),
) -> VerifiedSignature:
    """Verify the signature of a message the catalogue has identified (the pipeline's identify
    stage, or ``catalog.identify``) against the registry and the policy.

    ``sender_code``, when given (e.g. the authenticated account), must also be registered
    for the certificate.  A receipt (catalogue kind ``receipt``) names no sender of its
    own, so its signer is taken from the caller: ``sender_code`` and/or
    ``expected_signers`` (e.g. the customs account's codes and DXP id), of which the
    certificate must be registered for ``sender_code`` if given and for at least one of
    ``expected_signers`` if given; a receipt verified with neither is refused.  Other
    messages must also meet ``expected_signers`` when it is given.  ``at`` is "now" for
    messages without ``appTime``.  ``received_at``, when given, is when the gateway received
    the message: the certificate must be valid then too, give or take ``grace`` (the
    signing time is the sender's word).  Promises: on
    return, the root and everything in it except the signature is exactly what the
    registered signer signed.  Raises :class:`~gateway.errors.SignatureError` or
    :class:`~gateway.errors.CertificateError` with a ``CEBGW-SIG-*`` code.
    """
    root, mtype = ident.root, ident.type
    sig, app_time = _scan(root)
    _check_position(root, sig, mtype)
    _check_xml_attributes(root, sig)
    nodes = _signature_nodes(sig, policy)
    s = nodes.suite
    digest_value = _b64(nodes.digest_value, "DigestValue")
    sig_value = _b64(nodes.signature_value, "SignatureValue")

    entry = _registered(registry, nodes)
    signer = _signer(root, mtype, entry, sender_code, expected_signers)
    _check_signer(registry, entry, signer, sender_code)
    _check_key(s, entry, policy)

    if not _digest_matches(ident.parsed.data, root, sig, s, digest_value):
        raise _fail("CEBGW-SIG-DIGEST", "the document does not match the signed digest", "DigestValue")
    if not entry.key.verify(sig_value, _c14n(nodes.signed_info), s):
        raise _fail("CEBGW-SIG-VALUE", "the signature value does not verify", "SignatureValue")

    when = _signing_time(app_time, at)
    _check_window(entry, when)
    if received_at is not None:
        _check_received(entry, received_at, grace)
    return VerifiedSignature(ident.parsed, mtype, root, entry.certificate, entry, s, signer, when)
