"""The verifier's fast path, the detailed checks and the per-certificate memo give the same answers."""

from __future__ import annotations

import base64
import copy
import random
import re
import sys

import pytest
from lenient import identified_keeping_markup, parse_keeping_markup
from lxml import etree

from gateway.dsig import Policy, sign, verify
from gateway.dsig.algorithms import Algorithm
from gateway.dsig.layout import SIGNATURE_TAG
from gateway.dsig.registry import Registry
from gateway.errors import SignatureError
from gateway.sandbox import samplegen

from .conftest import identified, key_for

V = sys.modules["gateway.dsig.verify"]  # the module (the package exports its verify function)
DS = "{http://www.w3.org/2000/09/xmldsig#}"
FAMILY = {"rsa-sha1": "rsa", "rsa-sha256": "rsa", "sm2-sm3": "sm2"}
POLICIES = (Policy(), Policy(allowed=frozenset({"rsa-sha256"})))
ENVELOPED = f'<ds:Transform Algorithm="{Algorithm.ENVELOPED.value}"/>'
C14N = f'<ds:Transform Algorithm="{Algorithm.C14N.value}"/>'


def _signature(data: bytes) -> tuple[etree._Element, etree._Element]:
    root = parse_keeping_markup(data).root
    sig = root.find(SIGNATURE_TAG)
    assert sig is not None
    return root, sig


@pytest.mark.parametrize("alg", sorted(FAMILY))
@pytest.mark.parametrize("second_transform", [False, True])
def test_fast_path_matches_detailed_checks(ceb621: bytes, alg: str, second_transform: bool) -> None:
    signed = sign(ceb621, key_for(ceb621, FAMILY[alg]), alg=alg)
    if second_transform:
        signed = signed.replace(ENVELOPED.encode(), (ENVELOPED + C14N).encode())
    _, sig = _signature(signed)
    fast = V._profile_nodes(sig, Policy())
    assert fast is not None and fast.suite.name == alg
    assert fast == V._checked_nodes(sig, Policy())


@pytest.mark.parametrize(
    "old,new",
    [
        (b"<ds:SignedInfo>", b"<ds:SignedInfo><!-- comments are not canonicalized -->"),
        (b"<ds:KeyInfo>", b"<ds:KeyInfo><?pi outside SignedInfo?>"),
        (b"</ds:SignatureValue>", b"</ds:SignatureValue>\n<!-- c -->\n"),
        (
            b"<ds:KeyName>",
            b"<ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data><ds:KeyName>",
        ),
    ],
)
def test_unusual_but_valid_layouts_take_the_detailed_path(
    ceb621: bytes, registry: Registry, old: bytes, new: bytes
) -> None:
    signed = sign(ceb621, key_for(ceb621, "rsa"))
    m = re.search(rb"<ds:X509Data><ds:X509Certificate>([^<]+)</ds:X509Certificate></ds:X509Data>", signed)
    assert m is not None
    if b"{cert}" in new:  # KeyInfo (not signed) written X509Data first
        signed = signed.replace(m.group(), b"")
        new = new.replace(b"{cert}", m.group(1))
    odd = signed.replace(old, new, 1)
    assert odd != signed
    _, sig = _signature(odd)
    assert V._profile_nodes(sig, Policy()) is None
    assert verify(identified_keeping_markup(odd), registry).entry.name == "ecommerce-rsa"


def _mutate(sig: etree._Element, rng: random.Random) -> None:
    """One random structural or attribute change somewhere inside ``sig``."""
    nodes = list(sig.iter())
    target = rng.choice(nodes)
    kind = rng.randrange(8)
    parent = target.getparent()
    if kind == 0 and target is not sig and parent is not None:
        parent.remove(target)
    elif kind == 1 and target is not sig and parent is not None:
        parent.insert(parent.index(target), copy.deepcopy(target))
    elif kind == 2 and target is not sig and parent is not None:
        dest = rng.choice([n for n in sig.iter(etree.Element) if target not in n.iterancestors()])
        if dest is not target:
            parent.remove(target)
            dest.insert(rng.randrange(len(dest) + 1), target)
    elif kind == 3 and isinstance(target.tag, str):
        target.insert(rng.randrange(len(target) + 1), etree.Comment("c"))
    elif kind == 4 and isinstance(target.tag, str):
        name = rng.choice(["Transform", "Reference", "Object", "KeyName", "DigestValue"])
        target.insert(rng.randrange(len(target) + 1), etree.Element(DS + name))
    elif kind == 5 and isinstance(target.tag, str):
        value = rng.choice([a.value for a in Algorithm] + ["", "#x", "http://evil.example/"])
        target.set(rng.choice(["Algorithm", "URI"]), value)
    elif kind == 6 and isinstance(target.tag, str):
        for name in list(target.keys()):
            del target.attrib[name]
    elif kind == 7 and parent is not None and len(parent) > 1:
        i, j = rng.sample(range(len(parent)), 2)
        a, b = parent[i], parent[j]
        parent.replace(a, etree.Comment("swap"))
        parent.replace(b, a)
        parent.replace(parent[i], b)


@pytest.mark.parametrize("alg", sorted(FAMILY))
def test_fast_path_accepts_nothing_the_detailed_checks_refuse(ceb621: bytes, alg: str) -> None:
    """Differential check over random mutations of the Signature subtree."""
    signed = sign(ceb621, key_for(ceb621, FAMILY[alg]), alg=alg)
    rng = random.Random(f"fast-path-{alg}")
    fast_accepted = refused = 0
    for _ in range(400):
        root, sig = _signature(signed)
        for _ in range(rng.randint(1, 3)):
            _mutate(sig, rng)
        for policy in POLICIES:
            fast = V._profile_nodes(sig, policy)
            if fast is None:
                refused += 1
                continue
            fast_accepted += 1
            V._check_children(sig)  # the detailed path runs these first; they must pass
            assert V._checked_nodes(sig, policy) == fast
    assert fast_accepted > 20 and refused > 400  # the mutations reach both outcomes


def test_certificate_memo_keeps_the_keyname_check(ceb621: bytes, registry: Registry) -> None:
    signed = sign(ceb621, key_for(ceb621, "rsa"))
    assert verify(identified(signed), registry).entry.name == "ecommerce-rsa"  # certificate now remembered
    bad = re.sub(rb"<ds:KeyName>[0-9a-f]+</ds:KeyName>", b"<ds:KeyName>0001</ds:KeyName>", signed)
    with pytest.raises(SignatureError) as exc:
        verify(identified(bad), registry)
    assert exc.value.code == "CEBGW-SIG-KEYNAME"


def test_by_base64(registry: Registry) -> None:
    entry = registry.entries[0]
    text = base64.b64encode(entry.der).decode("ascii")
    fresh = Registry(registry.entries)
    assert fresh.by_base64(text) is entry
    assert fresh.by_base64(text) is entry  # from the memo
    wrapped = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    assert fresh.by_base64(wrapped) is entry
    unknown = base64.b64encode(b"\x30\x03\x02\x01\x01").decode("ascii")
    assert fresh.by_base64(unknown) is None
    assert unknown not in fresh._by_base64  # only registered certificates are remembered
    with pytest.raises(ValueError):
        fresh.by_base64("not base64!")


def test_by_base64_memo_is_bounded(registry: Registry) -> None:
    from gateway.dsig import registry as registry_module

    entry = registry.entries[0]
    text = base64.b64encode(entry.der).decode("ascii")
    fresh = Registry(registry.entries)
    # The same certificate written many ways (line breaks at different places).
    for i in range(registry_module._BASE64_MEMO_SIZE * 2):
        cut = 4 + i % (len(text) - 8)
        variant = text[:cut] + "\n" * (1 + i // (len(text) - 8)) + text[cut:]
        assert fresh.by_base64(variant) is entry
    assert len(fresh._by_base64) <= registry_module._BASE64_MEMO_SIZE


def test_relative_namespace_uri_is_refused_not_crashed(ceb621: bytes, registry: Registry) -> None:
    relative = b'<ceb:Inventory xmlns:x="relative">'
    with pytest.raises(SignatureError) as exc:
        sign(ceb621.replace(b"<ceb:Inventory>", relative, 1), key_for(ceb621, "rsa"))
    assert exc.value.code == "CEBGW-SIG-MALFORMED"
    signed = sign(ceb621, key_for(ceb621, "rsa"))
    for old, new in ((b"<ceb:Inventory>", relative), (b"<ds:Reference ", b'<ds:Reference xmlns:x="rel" ')):
        with pytest.raises(SignatureError) as exc:
            verify(identified(signed.replace(old, new, 1)), registry)
        assert exc.value.code == "CEBGW-SIG-MALFORMED"


@pytest.mark.parametrize(
    "declarations",
    [
        b' xmlns:ds="http://www.w3.org/2000/09/xmldsig#"',
        b' xmlns:ds="http://example.com/not-dsig"',
        b' xmlns="http://example.com/default" xmlns:z="urn:z"',
        b' xmlns:a="http://example.com/a?x=1&amp;y=2"',
    ],
)
def test_signed_info_context_from_the_root(ceb621: bytes, registry: Registry, declarations: bytes) -> None:
    """SignedInfo is canonicalized at signing with the root's namespaces, as the verifier sees it."""
    data = ceb621.replace(b" xmlns:ceb=", declarations + b" xmlns:ceb=", 1)
    assert data != ceb621
    for family in ("rsa", "sm2"):
        assert verify(identified(sign(data, key_for(data, family))), registry).root is not None


# ---------------------------------------------------------------- digest on the received bytes


@pytest.fixture(scope="module")
def canonical() -> bytes:
    """A signed 3-line CEB621 written as C14N writes it (samplegen's layout)."""
    doc = samplegen.build("CEB621", lines=3, seed=5)
    return sign(doc, key_for(doc, "rsa"))


def _verdict(data: bytes, registry: Registry) -> str:
    try:
        verify(identified_keeping_markup(data), registry)
    except SignatureError as exc:
        return exc.code
    except Exception as exc:  # noqa: BLE001 - the verdict names whatever refused it
        return type(exc).__name__
    return "valid"


def test_canonical_document_is_checked_without_canonicalizing(
    canonical: bytes, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed = canonical
    root, sig = _signature(signed)
    assert V._as_received(signed, root, sig) == V.enveloped_c14n(root, sig)

    def no_c14n(*_: object) -> bytes:
        raise AssertionError("the tree was canonicalized")

    monkeypatch.setattr(V, "enveloped_c14n", no_c14n)
    assert _verdict(signed, registry) == "valid"


@pytest.mark.parametrize(
    "old,new",
    [
        (b'version="1.0">', b"version='1.0'>"),                      # single quotes
        (b"\n  <ceb:Inventory>", b"\r\n  <ceb:Inventory>"),           # CRLF
        (b"<ceb:Inventory>", b"<!-- a comment --><ceb:Inventory>"),    # comments are not in C14N
        (b"<ceb:Inventory>", b"<ceb:Inventory><![CDATA[]]>"),          # CDATA section
        (b"<ceb:Inventory>", b"<!-- <ds:Signature> --><ceb:Inventory>"),  # a second start tag, in a comment
        (b"<?xml", b"<!-- before the root -->\n<?xml"),                 # not only an XML declaration first
    ],
)
def test_non_canonical_but_equivalent_documents_still_verify(
    canonical: bytes, registry: Registry, old: bytes, new: bytes
) -> None:
    signed = canonical
    odd = signed.replace(old, new, 1)
    assert odd != signed
    if old == b"<?xml":  # a comment may not precede the XML declaration: drop it instead
        odd = b"<!-- before the root -->\n" + signed[signed.index(b"?>") + 2:]
    assert _verdict(odd, registry) == "valid"


@pytest.mark.parametrize(
    "tail",
    [b"<?pi after the root?>", b"<!-- c --><?pi?>"],
)
def test_processing_instruction_after_the_root_is_not_signed(canonical: bytes, registry: Registry,
                                                             tail: bytes) -> None:
    # C14N keeps PIs outside the root; the signer's C had none, so the digest fails, as with
    # the full transform: the received-bytes path must not skip over them.
    signed = canonical
    assert _verdict(signed + tail, registry) == "CEBGW-SIG-DIGEST"


def test_received_bytes_path_agrees_with_the_full_transform(
    canonical: bytes, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Differential check: random byte edits of a signed document get the same verdict
    with and without the received-bytes path."""
    signed = canonical
    rng = random.Random("received-bytes")
    pieces = [b"<", b">", b"/", b" ", b"\n", b"<!---->", b"<ds:Signature>", b"</ds:Signature>",
              b"<ds:Signature ", b"</ceb:CEB621Message>", b"&lt;", b"a", b"1", b'"', b"<?p?>",
              "中".encode()]
    verdicts: dict[str, int] = {}
    for _ in range(1000):
        data = bytearray(signed)
        for _ in range(rng.randint(1, 2)):
            at = rng.randrange(len(data) + 1)
            if rng.random() < 0.5 and at < len(data):
                del data[at:at + rng.randint(1, 3)]
            else:
                data[at:at] = rng.choice(pieces)
        with_path = _verdict(bytes(data), registry)
        with monkeypatch.context() as m:
            m.setattr(V, "_as_received", lambda *_: None)
            without = _verdict(bytes(data), registry)
        assert with_path == without, bytes(data)
        verdicts[with_path] = verdicts.get(with_path, 0) + 1
    assert verdicts.get("valid", 0) > 10 and verdicts.get("CEBGW-SIG-DIGEST", 0) > 10, verdicts
