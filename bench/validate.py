#!/usr/bin/env python3
"""Benchmark `cebgw validate` against its C-library ceiling and a shell loop of `xmllint --schema`.

Writes COUNT signed CEB621 files for each item count (default 8,000 files of 10 items), runs
`cebgw validate --jobs J` over each folder (full validation: XSD + rules), the ceiling (lxml
parse + `XMLSchema.validate` of the plain xsd/ceb-import.xsd over the same files, in this
process, one core: libxml2 doing the schema part and nothing else) and a shell loop of xmllint
over a sample of the same files, and prints messages/s side by side with the ratios.
Then, in process, the microseconds one message of each size costs per stage (best of
several runs): parse, the whole validation (`findings_of`), and its parts.  Last, the
issue-14 table row(s) (bench/_table.py).  Prints figures only; asserts nothing.

    .venv/bin/python bench/validate.py [--count 8000] [--items 10] [--xmllint-sample 300] [--jobs 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.catalog import load as load_catalog  # noqa: E402
from gateway.dsig.keys import load_key  # noqa: E402
from gateway.dsig.sign import sign  # noqa: E402
from gateway.sandbox import samplegen  # noqa: E402
from gateway.validate import findings_of, overlay, rules, xsd  # noqa: E402
from gateway.xmlio import parse  # noqa: E402

sys.path.append(str(ROOT / "bench"))  # for _table (after ROOT: bench/gateway.py must not hide the package)
from _table import Row, emit  # noqa: E402

CERTS = ROOT / "certs" / "sandbox"
CEBGW = [sys.executable, "-m", "gateway.cli.main"]


def signed_message(items: int) -> bytes:
    """One signed CEB621 with ITEMS lines."""
    key = load_key(CERTS / "ecommerce-rsa.key.pem", CERTS / "ecommerce-rsa.cert.pem")
    return sign(samplegen.build("CEB621", lines=items, seed=items), key, alg="rsa-sha1")


def make_files(folder: Path, items: int, count: int) -> list[Path]:
    """COUNT CEB621 files with ITEMS lines each, signed once and varied by order number."""
    signed = signed_message(items)
    marker = b"<ceb:orderNo>"
    start = signed.index(marker) + len(marker)
    end = signed.index(b"<", start)
    order_no = signed[start:end]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        # Validation does not verify signatures: varying the order number keeps files distinct.
        new_no = order_no[: max(1, len(order_no) - 8)] + b"%08d" % i
        path = folder / f"CEB621-{items}-{i:06d}.xml"
        path.write_bytes(signed[:start] + new_no + signed[end:])
        paths.append(path)
    return paths


def run_cebgw(folder: Path, jobs: int) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    proc = subprocess.run([*CEBGW, "validate", "--format", "json", "--jobs", str(jobs), str(folder)],
                          capture_output=True, check=False, cwd=ROOT)
    elapsed = time.perf_counter() - started
    summary: dict[str, int] = json.loads(proc.stdout)["summary"]
    return elapsed, summary


def run_xmllint(paths: list[Path]) -> float:
    schema = str(ROOT / "xsd" / "ceb-import.xsd")
    script = 'for f in "$@"; do xmllint --noout --nonet --schema "$0" "$f" 2>/dev/null || true; done'
    started = time.perf_counter()
    subprocess.run(["sh", "-c", script, schema, *map(str, paths)], check=False)
    return time.perf_counter() - started


def run_ceiling(paths: list[Path]) -> tuple[float, int]:
    """The C libraries alone, in process, one core: read, parse (lxml, hardened like the gateway's
    parser) and validate against the plain import XSD, compiled once before the clock starts.
    Returns the seconds and how many files were valid."""
    schema = etree.XMLSchema(etree.parse(str(ROOT / "xsd" / "ceb-import.xsd")))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    valid = 0
    started = time.perf_counter()
    for path in paths:
        valid += schema.validate(etree.fromstring(path.read_bytes(), parser))
    return time.perf_counter() - started, valid


def per_call_us(fn: Callable[[], object], budget: float = 0.2, repeats: int = 5) -> float:
    """Microseconds per call: the best of REPEATS runs of about BUDGET seconds each."""
    started, n = time.perf_counter(), 0
    while time.perf_counter() - started < budget / 10:
        fn()
        n += 1
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n * 10):
            fn()
        best = min(best, (time.perf_counter() - t0) / (n * 10))
    return best * 1e6


def stage_costs(items: int) -> list[float]:
    """µs per call of each stage for one signed message of ITEMS lines (the same tree each time)."""
    data = signed_message(items)
    ident = load_catalog().identify(parse(data))
    root, t = ident.root, ident.type
    facts = overlay.validate(root, t)
    return [per_call_us(lambda: parse(data)), per_call_us(lambda: findings_of(ident)),
            per_call_us(lambda: overlay.validate(root, t)), per_call_us(lambda: rules.check(root, t, facts)),
            per_call_us(lambda: xsd.validate(root, t)), per_call_us(lambda: rules.check(root, t))]


def in_process(items_list: list[int]) -> None:
    """Per-stage cost of one message, in process, warm."""
    heads = ["items", "parse", "validate", "= overlay XSD", "+ rules", "| plain XSD", "all rules"]
    print("\nin process, µs per message (best of 5):")
    print(" ".join(f"{h:>{len(h) + 2}}" for h in heads))
    for items in items_list:
        costs = zip(stage_costs(items), heads[1:], strict=True)
        print(" ".join([f"{items:>7}"] + [f"{c:>{len(h) + 2}.1f}" for c, h in costs]))
    print("validate = findings_of: the overlay XSD (schema + code lists and formats), then the rules it")
    print("does not cover; an invalid message pays for the plain XSD and all rules on top.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8_000)
    parser.add_argument("--xmllint-sample", type=int, default=300)
    parser.add_argument("--items", type=int, nargs="+", default=[10])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rows", metavar="FILE", help="append the issue-14 table rows to FILE (JSON lines)")
    args = parser.parse_args()
    table: list[Row] = []

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    have_xmllint = shutil.which("xmllint") is not None
    if not have_xmllint:
        print("xmllint not found (Debian package libxml2-utils): the comparison column is left out")
    print(f"{'items':>5} {'jobs':>4} {'files':>6} {'cebgw msg/s':>12} {'per core':>9} "
          f"{'ceiling/core':>13} {'/ceiling':>8} {'xmllint msg/s':>14} {'ratio':>7}")
    with tempfile.TemporaryDirectory(prefix="cebgw-bench-") as tmp:
        for items in args.items:
            folder = Path(tmp) / f"items-{items}"
            paths = make_files(folder, items, args.count)
            lint_rate = None
            if have_xmllint:
                sample = paths[: args.xmllint_sample]
                lint_rate = len(sample) / run_xmllint(sample)
            ceil_s, ceil_valid = run_ceiling(paths)
            if ceil_valid != args.count:
                print(f"  warning: the ceiling found {args.count - ceil_valid} of {args.count} files invalid")
            ceiling = args.count / ceil_s
            for jobs in args.jobs:
                elapsed, summary = run_cebgw(folder, jobs)
                if summary["valid"] != args.count:
                    print(f"  warning: {summary['invalid']} of {args.count} files were invalid")
                rate = args.count / elapsed
                lint = f"{lint_rate:14.0f}" if lint_rate else f"{'-':>14}"
                ratio = f"{rate / lint_rate:6.1f}x" if lint_rate else f"{'-':>7}"
                print(f"{items:>5} {jobs:>4} {args.count:>6} {rate:12.0f} {rate / jobs:9.0f} "
                      f"{ceiling:13.0f} {rate / jobs / ceiling:7.2f}x {lint} {ratio}")
                table.append(Row(f"`cebgw validate`, rules on, {args.count:,} {items}-item CEB621 files, "
                                 f"--jobs {jobs}, msgs/s per core",
                                 rate / jobs, ceiling, [("xmllint loop", lint_rate)],
                                 ">= 4,000/s per core; >= 15× xmllint"))
            shutil.rmtree(folder)
    print("cebgw: whole command incl. start-up, schema compile, file reads; full validation (XSD + rules).")
    print("ceiling: in this process, one core: read + lxml parse + XMLSchema.validate (plain ceb-import.xsd,")
    print("compiled before the clock starts; no code lists, no rules); /ceiling = cebgw per core / ceiling.")
    print(f"xmllint: one process per file, a shell loop over the first {args.xmllint_sample} files; "
          "ratio = cebgw msg/s / xmllint msg/s (the table below divides per core).")
    in_process(args.items)
    emit("issue 14, validation (bench/validate.py):", table, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
