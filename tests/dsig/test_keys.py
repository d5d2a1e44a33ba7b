"""Key providers: PEM, PKCS#12, mismatches, and the HTTP remote signer against a test double."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from gateway.dsig import KeyProvider, RemoteSigner, SoftwareKey, load_key, sign, verify
from gateway.dsig.algorithms import suite
from gateway.dsig.certgen import cert_pem
from gateway.dsig.registry import Registry
from gateway.errors import KeyError_, SignerError

from .conftest import SANDBOX, identified, sandbox_key


def test_software_keys_are_providers() -> None:
    assert isinstance(sandbox_key("ecommerce", "rsa"), KeyProvider)
    assert sandbox_key("ecommerce", "sm2").family == "sm2"


def test_pkcs12_with_password(tmp_path: Path, ceb621: bytes, registry: Registry) -> None:
    k = sandbox_key("ecommerce", "rsa")
    p12 = pkcs12.serialize_key_and_certificates(
        b"ecommerce", k._key, k.certificate, None, BestAvailableEncryption(b"s3cret")
    )
    (tmp_path / "k.p12").write_bytes(p12)
    key = load_key(tmp_path / "k.p12", password="s3cret")
    assert verify(identified(sign(ceb621, key)), registry).entry.name == "ecommerce-rsa"
    with pytest.raises(KeyError_):
        load_key(tmp_path / "k.p12", password="wrong")


def test_key_must_match_certificate() -> None:
    with pytest.raises(KeyError_, match="does not belong"):
        load_key(SANDBOX / "ecommerce-rsa.key.pem", SANDBOX / "platform-rsa.cert.pem")
    with pytest.raises(KeyError_):
        load_key(SANDBOX / "ecommerce-sm2.key.pem", SANDBOX / "ecommerce-rsa.cert.pem")


def test_missing_files() -> None:
    with pytest.raises(KeyError_):
        load_key(SANDBOX / "nope.key.pem", SANDBOX / "ecommerce-rsa.cert.pem")


class _Double(BaseHTTPRequestHandler):
    key: SoftwareKey
    der_sm2 = False
    fail = False
    requests: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self._send(200, cert_pem(self.key.certificate), "application/x-pem-file")

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if self.fail:
            self._send(500, b"{}", "application/json")
            return
        sig = self.key.sign(base64.b64decode(body["data"]), suite(body["alg"]))
        if self.der_sm2:
            sig = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        self._send(
            200, json.dumps({"signature": base64.b64encode(sig).decode()}).encode(), "application/json"
        )

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet test server
        pass


@pytest.fixture
def signer_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, type[_Double]]]:
    family, der_sm2, fail = request.param
    handler = type(
        "H",
        (_Double,),
        {"key": sandbox_key("ecommerce", family), "der_sm2": der_sm2, "fail": fail, "requests": []},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(
    "signer_server",
    [("rsa", False, False), ("sm2", False, False), ("sm2", True, False)],
    indirect=True,
    ids=["rsa", "sm2-raw", "sm2-der"],
)
def test_remote_signer(signer_server: tuple[str, type[_Double]], ceb621: bytes, registry: Registry) -> None:
    url, handler = signer_server
    remote = RemoteSigner.connect(url + "/sign", cert_url=url + "/cert")
    assert isinstance(remote, KeyProvider)
    v = verify(identified(sign(ceb621, remote)), registry)
    assert v.entry.name == f"ecommerce-{remote.family}"
    assert handler.requests[0]["alg"] == v.suite.name


@pytest.mark.parametrize("signer_server", [("rsa", False, True)], indirect=True)
def test_remote_signer_failure(signer_server: tuple[str, type[_Double]], ceb621: bytes) -> None:
    url, _ = signer_server
    remote = RemoteSigner.connect(url + "/sign", certificate=sandbox_key("ecommerce", "rsa").certificate)
    with pytest.raises(SignerError):
        sign(ceb621, remote)


def test_remote_signer_unreachable() -> None:
    with pytest.raises(SignerError):
        RemoteSigner.connect("http://127.0.0.1:9/sign", cert_url="http://127.0.0.1:9/cert", timeout=2)
