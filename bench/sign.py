"""Signing and verification throughput per algorithm on a 10-item CEB621 (prints, asserts nothing).

Next to each figure, measured in the same run on the same message:

- raw: the crypto library's sign/verify of 2 kB, nothing else;
- ceiling: the whole job done directly in a few lines of lxml + cryptography (parse, C14N,
  digest, RSA; for signing also building the Signature and serializing the document), with no
  checks beyond what makes it correct: what the C libraries alone cost;
- signxml: the same job with signxml in process (key and certificate objects loaded once);
- xmlsec1: per file, process start included, when it is installed.

Last, the issue-14 table rows (bench/_table.py).  Run: ``.venv/bin/python bench/sign.py
[--seconds 1.0] [--rows FILE]``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.catalog import load as load_catalog  # noqa: E402
from gateway.dsig import load_key, load_registry, sign, verify  # noqa: E402
from gateway.dsig.algorithms import suite  # noqa: E402
from gateway.dsig.certutil import key_name, public_key  # noqa: E402
from gateway.xmlio import parse  # noqa: E402

sys.path.append(str(ROOT / "bench"))  # for _table (after ROOT: bench/gateway.py must not hide the package)
from _table import Row, emit  # noqa: E402

SANDBOX = ROOT / "certs" / "sandbox"
MESSAGE = ROOT / "tests" / "dsig" / "fixtures" / "ceb621_10.xml"


def rate(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    fn()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(20):
            fn()
        n += 20
    return n / elapsed


# ---------------------------------------------------------------- ceiling: lxml + cryptography directly

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
DS = "{" + DS_NS + "}"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
SIG_URIS = {"http://www.w3.org/2000/09/xmldsig#rsa-sha1": hashes.SHA1,
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": hashes.SHA256}
DIGEST_URIS = {"http://www.w3.org/2000/09/xmldsig#sha1": "sha1",
               "http://www.w3.org/2001/04/xmlenc#sha256": "sha256"}


def ceiling_verify(signed: bytes, pub: rsa.RSAPublicKey) -> None:
    """Parse, C14N SignedInfo, enveloped transform + C14N of the document, digest, RSA verify."""
    root = etree.fromstring(signed, PARSER)
    sig = root.find(DS + "Signature")
    if sig is None:
        raise InvalidSignature("no signature")
    si = sig[0]
    ref, method = si.find(DS + "Reference"), si.find(DS + "SignatureMethod")
    dmethod = ref.find(DS + "DigestMethod") if ref is not None else None
    if ref is None or ref.get("URI") != "" or method is None or dmethod is None:
        raise InvalidSignature("not an enveloped signature of the document")
    h = SIG_URIS[str(method.get("Algorithm"))]()
    digest_name = DIGEST_URIS[str(dmethod.get("Algorithm"))]
    digest = base64.b64decode(ref.findtext(DS + "DigestValue") or "")
    value = base64.b64decode(sig.findtext(DS + "SignatureValue") or "")
    canonical_si = etree.tostring(si, method="c14n", exclusive=False, with_comments=False)
    tail, prev = sig.tail, sig.getprevious()
    root.remove(sig)  # the enveloped-signature transform: the element goes, the text after it stays
    if tail:
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            root.text = (root.text or "") + tail
    canonical = etree.tostring(root.getroottree(), method="c14n", exclusive=False, with_comments=False)
    if hashlib.new(digest_name, canonical).digest() != digest:
        raise InvalidSignature("digest mismatch")
    pub.verify(value, canonical_si, padding.PKCS1v15(), h)


def ceiling_signer(alg: str, priv: rsa.RSAPrivateKey, cert: x509.Certificate) -> Callable[[bytes], bytes]:
    """Parse, C14N, digest, SignedInfo C14N in place, RSA sign, serialize: an enveloped signature
    as the gateway makes it (same SignedInfo and KeyInfo), last child of the root."""
    s = suite(alg)
    h = SIG_URIS[s.signature.value]
    key_info = (f"<ds:KeyInfo><ds:KeyName>{key_name(cert)}</ds:KeyName><ds:X509Data><ds:X509Certificate>"
                f"{base64.b64encode(cert.public_bytes(Encoding.DER)).decode()}</ds:X509Certificate></ds:X509Data>"
                "</ds:KeyInfo>")
    template = (f'<ds:Signature xmlns:ds="{DS_NS}"><ds:SignedInfo>'
                '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>'
                f'<ds:SignatureMethod Algorithm="{s.signature.value}"/><ds:Reference URI="">'
                '<ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
                f'</ds:Transforms><ds:DigestMethod Algorithm="{s.digest.value}"/>'
                "<ds:DigestValue>{}</ds:DigestValue></ds:Reference></ds:SignedInfo>"
                "<ds:SignatureValue/>" + key_info + "</ds:Signature>")
    digest_name = DIGEST_URIS[s.digest.value]

    def sign_it(data: bytes) -> bytes:
        root = etree.fromstring(data, PARSER)
        canonical = etree.tostring(root.getroottree(), method="c14n", exclusive=False, with_comments=False)
        digest = base64.b64encode(hashlib.new(digest_name, canonical).digest()).decode()
        sig = etree.fromstring(template.format(digest), PARSER)
        root.append(sig)
        canonical_si = etree.tostring(sig[0], method="c14n", exclusive=False, with_comments=False)
        sig[1].text = base64.b64encode(priv.sign(canonical_si, padding.PKCS1v15(), h())).decode()
        return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")

    return sign_it


# ---------------------------------------------------------------- peers: signxml, xmlsec1

class _SignerAllowingSHA1(XMLSigner):
    """signxml refuses SHA-1 by default; the customs profile is rsa-sha1 (signxml's documented way)."""

    def check_deprecated_methods(self) -> None:
        pass


SX_CONFIG = SignatureConfiguration(
    signature_methods=frozenset({SignatureMethod.RSA_SHA1, SignatureMethod.RSA_SHA256}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA1, DigestAlgorithm.SHA256}))


def signxml_signer(alg: str) -> XMLSigner:
    sig, dig = {"rsa-sha1": (SignatureMethod.RSA_SHA1, DigestAlgorithm.SHA1),
                "rsa-sha256": (SignatureMethod.RSA_SHA256, DigestAlgorithm.SHA256)}[alg]
    return _SignerAllowingSHA1(method=SignatureConstructionMethod.enveloped, signature_algorithm=sig,
                               digest_algorithm=dig, c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0)


def xmlsec1_rate(signed: bytes, files: int = 30) -> float | None:
    exe = shutil.which("xmlsec1")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "signed.xml"
        path.write_bytes(signed)
        cmd = [exe, "--verify", "--trusted-pem", str(SANDBOX / "ca-rsa.cert.pem"), str(path)]
        start = time.perf_counter()
        for _ in range(files):
            subprocess.run(cmd, capture_output=True, check=True)
        return files / (time.perf_counter() - start)


def xmlsec1_sign_rate(signed: bytes, files: int = 30) -> float | None:
    """``xmlsec1 --sign`` per file, on a template made from our signed message (values emptied,
    KeyInfo an empty X509Data that xmlsec1 fills with the certificate)."""
    exe = shutil.which("xmlsec1")
    if exe is None:
        return None
    tmpl = re.sub(rb"<ds:DigestValue>[^<]*</ds:DigestValue>", b"<ds:DigestValue/>", signed)
    tmpl = re.sub(rb"<ds:SignatureValue>[^<]*</ds:SignatureValue>", b"<ds:SignatureValue/>", tmpl)
    tmpl = re.sub(rb"<ds:KeyInfo>.*</ds:KeyInfo>", b"<ds:KeyInfo><ds:X509Data/></ds:KeyInfo>", tmpl,
                  flags=re.S)
    key = f"{SANDBOX / 'ecommerce-rsa.key.pem'},{SANDBOX / 'ecommerce-rsa.cert.pem'}"
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "template.xml", Path(tmp) / "out.xml"
        path.write_bytes(tmpl)
        cmd = [exe, "--sign", "--privkey-pem", key, "--output", str(out), str(path)]
        start = time.perf_counter()
        for _ in range(files):
            subprocess.run(cmd, capture_output=True, check=True)
        elapsed = time.perf_counter() - start
        subprocess.run([exe, "--verify", "--trusted-pem", str(SANDBOX / "ca-rsa.cert.pem"), str(out)],
                       capture_output=True, check=True)  # it really signed
        return files / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each in-process measurement")
    parser.add_argument("--xmlsec1-files", type=int, default=30, help="files per xmlsec1 measurement")
    parser.add_argument("--rows", metavar="FILE", help="append the issue-14 table rows to FILE (JSON lines)")
    args = parser.parse_args()
    secs = args.seconds
    print(
        f"machine: {platform.platform()}; {platform.processor() or platform.machine()}; "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}"
    )
    data = MESSAGE.read_bytes()
    print(f"message: {MESSAGE.relative_to(ROOT)} ({len(data)} bytes, 10 items); one core, per second\n")
    registry = load_registry(SANDBOX / "registry.toml")
    head = ("algorithm", "sign", "ceiling", "signxml", "raw sign", "xmlsec1/file",
            "verify", "tree only", "ceiling", "signxml", "raw verify", "xmlsec1/file")
    widths = (11, 7, 8, 8, 9, 13, 7, 10, 8, 8, 11, 13)
    print(" ".join(f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(head, widths,
                                                                                            strict=True))))
    table: list[Row] = []
    verifier = XMLVerifier()
    for alg in ("rsa-sha1", "rsa-sha256", "sm2-sm3"):
        s = suite(alg)
        fam = s.family
        key_pem, cert_pem = SANDBOX / f"ecommerce-{fam}.key.pem", SANDBOX / f"ecommerce-{fam}.cert.pem"
        key = load_key(key_pem, cert_pem)
        signed = sign(data, key, alg=alg)
        to_sign = data[:2000]
        raw_sig = key.sign(to_sign, s)
        pub = public_key(key.certificate)
        sign_rate = rate(lambda: sign(data, key, alg=alg), secs)  # noqa: B023 - used within the iteration
        raw_sign = rate(lambda: key.sign(to_sign, s), secs)  # noqa: B023
        verify_rate = rate(lambda: verify(load_catalog().identify(parse(signed)), registry), secs)  # noqa: B023
        ident = load_catalog().identify(parse(signed))  # what the pipeline hands to verify
        tree_rate = rate(lambda: verify(ident, registry), secs)  # noqa: B023
        raw_verify = rate(lambda: pub.verify(raw_sig, to_sign, s), secs)  # noqa: B023
        c_sign = c_verify = sx_sign = sx_verify = xs = xs_sign = None
        if fam == "rsa":
            priv = load_pem_private_key(key_pem.read_bytes(), None)
            cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
            rsa_pub = cert.public_key()
            assert isinstance(priv, rsa.RSAPrivateKey) and isinstance(rsa_pub, rsa.RSAPublicKey)
            # The ceiling must do the real job: what it signs, we verify; what we sign, it verifies.
            ceiling_sign = ceiling_signer(alg, priv, cert)
            verify(load_catalog().identify(parse(ceiling_sign(data))), registry)
            ceiling_verify(signed, rsa_pub)
            try:
                ceiling_verify(signed.replace(b"<ceb:appType>1<", b"<ceb:appType>2<"), rsa_pub)
                raise SystemExit("the ceiling verifier accepted a modified message")
            except InvalidSignature:
                pass
            c_sign = rate(lambda: ceiling_sign(data), secs)  # noqa: B023
            c_verify = rate(lambda: ceiling_verify(signed, rsa_pub), secs)  # noqa: B023
            signer = signxml_signer(alg)
            verifier.verify(signer.sign(etree.fromstring(data, PARSER), key=priv, cert=[cert]),
                            x509_cert=cert, expect_config=SX_CONFIG)
            sx_sign = rate(lambda: etree.tostring(  # noqa: B023
                signer.sign(etree.fromstring(data, PARSER), key=priv, cert=[cert])), secs)  # noqa: B023
            sx_verify = rate(lambda: verifier.verify(etree.fromstring(signed, PARSER),  # noqa: B023
                                                     x509_cert=cert, expect_config=SX_CONFIG), secs)  # noqa: B023
            xs = xmlsec1_rate(signed, args.xmlsec1_files)
            xs_sign = xmlsec1_sign_rate(signed, args.xmlsec1_files)
        cells = [sign_rate, c_sign, sx_sign, raw_sign, xs_sign, verify_rate, tree_rate, c_verify, sx_verify,
                 raw_verify, xs]
        print(" ".join([f"{alg:<11}"] + [f"{v:>{w}.0f}" if v is not None else f"{'n/a':>{w}}"
                                         for v, w in zip(cells, widths[1:], strict=True)]))
        bits = "RSA-2048" if fam == "rsa" else "SM2"
        table.append(Row(f"{bits} verify incl. parse /s per core ({alg})", verify_rate, c_verify,
                         [("xmlsec1/file", xs), ("signxml", sx_verify)] if fam == "rsa" else [],
                         ">= 5,000/s" if fam == "rsa" else "measured"))
        table.append(Row(f"{bits} sign incl. parse /s per core ({alg})", sign_rate, c_sign,
                         [("xmlsec1/file", xs_sign), ("signxml", sx_sign)] if fam == "rsa" else [],
                         ">= 1,200/s" if fam == "rsa" else "measured"))
    print(
        "\nverify includes xmlio.parse of the signed bytes, tree only is verify of an already parsed"
        "\nand identified message (as in the pipeline); raw = the library's sign/verify of 2 kB."
        "\nceiling = parse + C14N + digest + RSA directly with lxml + cryptography (sign also builds"
        "\nthe Signature and serializes); signxml in process, key and certificate loaded once;"
        "\nxmlsec1 = one process per file (start-up included; verify also checks the chain to the CA)."
    )
    print("targets per core: RSA verify >= 5,000/s; RSA-2048 sign >= 1,200/s; SM2 measured.")
    table.sort(key=lambda r: "sign" in r.measure)
    emit("issue 14, signatures (bench/sign.py):", table, args.rows)


if __name__ == "__main__":
    main()
