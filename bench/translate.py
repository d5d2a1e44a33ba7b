#!/usr/bin/env python3
"""Benchmark translation: JSON → signed CEB XML for a 10-item CEB621, next to XML → validated
(XSD + rules) of the same message in the same run, and XML → JSON; and what the same JSON → XML
costs through xmlschema's encoder (the path the gateway does not take: ``gateway/mapping/encode.py``).
In process, one core; prints messages/s and the microseconds each part costs (best of several
rounds); asserts nothing.

    .venv/bin/python bench/translate.py [--count 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.catalog import load as load_catalog  # noqa: E402
from gateway.dsig.keys import load_key  # noqa: E402
from gateway.dsig.sign import sign  # noqa: E402
from gateway.mapping import json_from_xml, loads, to_tree, xml_from_json  # noqa: E402
from gateway.sandbox import samplegen  # noqa: E402
from gateway.validate import findings_of  # noqa: E402
from gateway.xmlio import parse  # noqa: E402

CERTS = ROOT / "certs" / "sandbox"


def best_rate(fn: Callable[[], object], count: int, rounds: int) -> float:
    """Messages per second: the best of ``rounds`` runs of ``count`` calls."""
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(count):
            fn()
        best = min(best, time.perf_counter() - t)
    return count / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    catalog = load_catalog()
    key = load_key(CERTS / "ecommerce-rsa.key.pem", CERTS / "ecommerce-rsa.cert.pem")
    mtype = catalog.types["CEB621"]
    xml = sign(samplegen.build("CEB621", lines=10, seed=10), key, alg="rsa-sha1")
    doc_text = json.dumps(json_from_xml(parse(xml).root, mtype, "202205"), ensure_ascii=False).encode()

    def json_to_signed_xml() -> bytes:
        _, _, out = xml_from_json(loads(doc_text), catalog)
        return sign(out, key, message_type=mtype, alg="rsa-sha1")

    def json_to_xml() -> bytes:
        return xml_from_json(loads(doc_text), catalog)[2]

    def json_to_xml_by_xmlschema() -> object:
        return to_tree(loads(doc_text), mtype, "202205", with_xmlschema=True)

    def xml_validated() -> object:
        return findings_of(catalog.identify(parse(xml)))

    def xml_to_json() -> bytes:
        return json.dumps(json_from_xml(parse(xml).root, mtype, "202205"), ensure_ascii=False).encode()

    def sign_only() -> bytes:
        return sign(samplegen_unsigned, key, message_type=mtype, alg="rsa-sha1")

    samplegen_unsigned = json_to_xml()
    assert not [f for f in findings_of(catalog.identify(parse(json_to_signed_xml()))).findings
                if f.severity == "error"], "the translated message must be valid"
    for warm in (json_to_signed_xml, xml_validated, xml_to_json):
        for _ in range(20):
            warm()
    print(f"# bench/translate.py on {platform.node()}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}; one process, one core")
    print(f"# 10-item CEB621 ({len(xml)} bytes signed, {len(doc_text)} bytes JSON); "
          f"best of {args.rounds} x {args.count}")
    rows = [("JSON -> signed XML (map, write, sign)", json_to_signed_xml),
            ("  of which JSON -> XML (map, write)", json_to_xml),
            ("  (JSON -> XML by xmlschema's encoder instead)", json_to_xml_by_xmlschema),
            ("  of which signing (rsa-sha1)", sign_only),
            ("XML -> validated (parse, XSD + rules)", xml_validated),
            ("XML -> JSON (parse, xmlschema decode, map)", xml_to_json)]
    for name, fn in rows:
        rate = best_rate(fn, args.count, args.rounds)
        print(f"{name:<52} {rate:>9.0f} msg/s  {1e6 / rate:>8.0f} µs/msg")


if __name__ == "__main__":
    main()
