"""Signing and verification throughput per algorithm on a 10-item CEB621 (prints, asserts nothing).

Next to each figure: the raw signature operation of the crypto library in the same run, and
xmlsec1 per file (process start included) when it is installed.  Run: ``.venv/bin/python bench/sign.py``.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.catalog import load as load_catalog  # noqa: E402
from gateway.dsig import load_key, load_registry, sign, verify  # noqa: E402
from gateway.dsig.algorithms import suite  # noqa: E402
from gateway.dsig.certutil import public_key  # noqa: E402
from gateway.xmlio import parse  # noqa: E402

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


def main() -> None:
    print(
        f"machine: {platform.platform()}; {platform.processor() or platform.machine()}; "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}"
    )
    data = MESSAGE.read_bytes()
    print(f"message: {MESSAGE.relative_to(ROOT)} ({len(data)} bytes, 10 items); one core, per second\n")
    registry = load_registry(SANDBOX / "registry.toml")
    head = ("algorithm", "sign", "raw sign", "verify", "tree only", "raw verify", "xmlsec1/file")
    print("{:<11} {:>8} {:>9} {:>8} {:>10} {:>11} {:>13}".format(*head))
    for alg in ("rsa-sha1", "rsa-sha256", "sm2-sm3"):
        s = suite(alg)
        fam = s.family
        key = load_key(SANDBOX / f"ecommerce-{fam}.key.pem", SANDBOX / f"ecommerce-{fam}.cert.pem")
        signed = sign(data, key, alg=alg)
        to_sign = data[:2000]
        raw_sig = key.sign(to_sign, s)
        pub = public_key(key.certificate)
        sign_rate = rate(lambda: sign(data, key, alg=alg))  # noqa: B023 - used within the iteration
        raw_sign = rate(lambda: key.sign(to_sign, s))  # noqa: B023
        verify_rate = rate(lambda: verify(load_catalog().identify(parse(signed)), registry))  # noqa: B023
        ident = load_catalog().identify(parse(signed))  # what the pipeline hands to verify
        tree_rate = rate(lambda: verify(ident, registry))  # noqa: B023
        raw_verify = rate(lambda: pub.verify(raw_sig, to_sign, s))  # noqa: B023
        xs = xmlsec1_rate(signed) if fam == "rsa" else None
        xs_text = f"{xs:13.0f}" if xs is not None else f"{'n/a':>13}"
        print(
            f"{alg:<11} {sign_rate:8.0f} {raw_sign:9.0f} {verify_rate:8.0f} {tree_rate:10.0f} "
            f"{raw_verify:11.0f} {xs_text}"
        )
    print(
        "\nverify includes xmlio.parse of the signed bytes, tree only is verify of an already parsed"
        "\nand identified message (as in the pipeline); raw = the library's sign/verify of 2 kB."
    )
    print("targets per core: RSA verify >= 5,000/s; RSA-2048 sign >= 1,200/s; SM2 measured.")


if __name__ == "__main__":
    main()
