#!/usr/bin/env python3
"""Instructions per message, counted by valgrind's callgrind: issue 14's figures without the clock.

On a shared VM the same code's timings drift by 25 % from one run to the next, and by 3× from
one machine of the same kind to another (docs/performance.md), so a change worth a few percent
cannot be told from the noise by timing it.  callgrind counts the instructions a process
executes, in user space: the same count in every run of the same code on the same input (the
hash seed is fixed), whatever else the machine is doing.  Each measure runs in a process of
its own under callgrind with the counting off through start-up (imports, schema compilation,
key loading, a warm-up of 40 messages) and on only while the measured messages go through:

* in process, per signed 10-item CEB621 (distinct messages, as bench/gateway.py makes them):
  ``validate`` (``validate_bytes``: parse, XSD, rules; what ``cebgw validate`` does per file)
  against its ceiling, lxml parse + the plain import XSD (bench/validate.py's); RSA-SHA1
  ``verify`` incl. parse against bench/sign.py's ceiling (lxml + cryptography directly);
  ``sign`` incl. parse against that file's ceiling signer; ``check_submission`` (every stage
  before the store); ``pipeline.submit`` on a SQLite store, 16 at a time (the durable path
  without HTTP);
* a server, ``--workers 1``, driven by wrk with bench/gateway_submit.lua (16 connections, each
  message posted once; every thread of the process counted): ``cebgw serve`` (the sandbox, its
  SQLite store), against the empty aiohttp handler (the ceiling) and the aiohttp + signxml
  peer (bench/peers.py), on the same messages.

Kernel work (system calls, the network, fsync) is not counted: read the rows as the user-space
CPU a message costs.  Time per instruction differs between the stages (libxml2's parser runs
more instructions per cycle than Python's interpreter), so instructions are a measure to compare
the same stage before and after a change, and ours with its ceiling, not a rate.

    .venv/bin/python bench/instructions.py [--messages 200] [--only validate,serve,...] [--rows FILE]

Needs valgrind (``make sysdeps``); without it, says so and exits 0.  About 3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # for _table (after ROOT: bench/gateway.py must not hide the package)
from _table import Row, emit  # noqa: E402

WARM_UP = 40
CONNECTIONS = 16
IN_PROCESS = ("ceiling-validate", "validate", "ceiling-verify", "verify", "ceiling-sign", "sign", "check",
              "submit")
SERVERS = ("serve", "peer-empty", "peer-signxml")


def _bench_module(name: str) -> Any:
    """bench/NAME.py as a module (bench/gateway.py cannot be imported by its name: the package has it)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the measured work (child side)

def _work(name: str, folder: Path, messages: list[bytes]) -> Callable[[int], object]:
    """Set up measure ``name`` (start-up, not counted) and return the work for message ``i``."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from lxml import etree

    from gateway import pipeline
    from gateway.accounts import AccountFile
    from gateway.catalog import load as load_catalog
    from gateway.dsig import load_key, load_registry, sign, verify
    from gateway.intake import validate_bytes
    from gateway.sandbox import datadir
    from gateway.store import open_store
    from gateway.xmlio import parse

    settings = datadir.settings_for(folder / "sandbox")
    account = AccountFile(settings.accounts_path).current().by_name("ecommerce")
    assert account is not None
    key_pem = ROOT / "certs" / "sandbox" / "ecommerce-rsa.key.pem"
    cert_pem = ROOT / "certs" / "sandbox" / "ecommerce-rsa.cert.pem"
    catalog = load_catalog()
    n = len(messages)
    if name == "ceiling-validate":
        schema = etree.XMLSchema(etree.parse(str(ROOT / "xsd" / "ceb-import.xsd")))
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        return lambda i: schema.validate(etree.fromstring(messages[i % n], parser))
    if name == "validate":
        return lambda i: validate_bytes(messages[i % n], catalog=catalog)
    if name in ("ceiling-sign", "sign"):  # the same messages before they were signed
        end = b"</ds:Signature>"
        messages = [m[:m.index(b"<ds:Signature")] + m[m.index(end) + len(end):] for m in messages]
    if name in ("ceiling-verify", "ceiling-sign"):
        sign_bench = _bench_module("sign")
        cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
        pub = cert.public_key()
        assert isinstance(pub, rsa.RSAPublicKey)
        if name == "ceiling-verify":
            return lambda i: sign_bench.ceiling_verify(messages[i % n], pub)
        priv = load_pem_private_key(key_pem.read_bytes(), None)
        assert isinstance(priv, rsa.RSAPrivateKey)
        signer = sign_bench.ceiling_signer("rsa-sha1", priv, cert)
        return lambda i: signer(messages[i % n])
    if name == "verify":
        registry = load_registry(settings.registry_path)
        return lambda i: verify(catalog.identify(parse(messages[i % n])), registry)
    if name == "sign":
        key = load_key(key_pem, cert_pem)
        return lambda i: sign(messages[i % n], key, alg="rsa-sha1")
    # check_submission reads nothing from the store: it is opened for submit's sake
    loop = asyncio.new_event_loop()
    store = open_store(f"sqlite:///{folder / f'{name}.db'}")
    deps = pipeline.SubmitDeps(catalog, load_registry(settings.registry_path), settings.policy, store,
                               pipeline.Limits(settings.max_body_bytes, settings.max_depth))
    if name == "check":
        return lambda i: pipeline.check_submission(messages[i % n], account, deps)
    if name == "submit":
        # each call submits CONNECTIONS messages at once, on one loop: the group commit at work
        async def batch(i: int) -> None:
            await asyncio.gather(*(pipeline.submit(messages[(i * CONNECTIONS + k) % n], account, deps)
                                   for k in range(CONNECTIONS)))
        return lambda i: loop.run_until_complete(batch(i))
    raise SystemExit(f"unknown measure {name}")


def child(name: str, folder: Path, count: int, go: Path) -> None:
    """Under callgrind: set up, warm up, say READY, wait for ``go``, do ``count`` messages, exit."""
    from gateway.service.app import settle_heap

    paths = sorted((folder / "messages").glob("*.xml"))
    work = _work(name, folder, [p.read_bytes() for p in paths[WARM_UP:]])
    calls = count // CONNECTIONS if name == "submit" else count
    if name == "submit":
        for i in range(WARM_UP // CONNECTIONS):
            work(calls + i)  # messages past the measured ones: each message is stored once
    else:
        for i in range(WARM_UP):
            work(i)  # the others keep no state: their first messages, once more when measured
    settle_heap()  # as a serving process does once started: the start-up heap frozen, GC less often
    print("READY", flush=True)
    while not go.exists():
        time.sleep(0.05)
    for i in range(calls):
        work(i)
    sys.stdout.flush()
    os._exit(0)


# ---------------------------------------------------------------- the parent side

def _callgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]


def _instructions(prefix: Path) -> int:
    """The instructions counted in every dump callgrind wrote under ``prefix`` (``prefix``, ``prefix.N``)."""
    total = 0
    for f in prefix.parent.glob(prefix.name + "*"):
        # a dump states its count twice, in "summary:" near the top and "totals:" at the end; the
        # first is 0 in the dumps callgrind_control asks for, so the larger is the count
        counts = [int(line.split()[1]) for line in f.read_text(errors="replace").splitlines()
                  if line.startswith(("summary:", "totals:"))]
        total += max(counts, default=0)
    return total


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False, timeout=120)


def in_process(name: str, folder: Path, count: int) -> float:
    """Instructions per message of measure ``name``."""
    out, go = folder / f"cg-{name}.out", folder / f"go-{name}"
    cmd = [*_callgrind(out), sys.executable, str(Path(__file__).resolve()), "--child", name,
           "--dir", str(folder), "--messages", str(count)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "READY":
        proc.kill()
        err = proc.communicate()[1][-2000:]
        raise RuntimeError(f"{name}: the measured process did not start:\n{line}{err}")
    _control(proc.pid, "-i", "on")
    go.touch()
    _, err = proc.communicate(timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: exit {proc.returncode}:\n{err[-2000:]}")
    calls = count // CONNECTIONS * CONNECTIONS if name == "submit" else count
    return _instructions(out) / calls


def server(name: str, folder: Path, count: int, gw: Any, token: str, cert: str) -> float:
    """Instructions per accepted message of a server process under callgrind, driven by wrk."""
    out = folder / f"cg-{name}.out"
    paths = sorted((folder / "messages").glob("*.xml"))
    log = folder / "server.log"
    db = folder / f"{name}.db"
    prefix = _callgrind(out)  # the hash seed comes from the environment (main sets it)
    if name == "serve":
        data = folder / f"sandbox-{name}"
        shutil.copytree(folder / "sandbox", data)
        for f in data.glob("gateway.db*"):
            f.unlink()
        ctx = gw.launch([*prefix, *gw.CEBGW, "serve", "--sandbox", "--data", str(data)], log, 1,
                        data / "gateway.db", startup_s=600)
    elif name == "peer-empty":
        counter = folder / "empty.count"
        ctx = gw.launch([*prefix, sys.executable, str(gw.PEERS), "empty", "--counter", str(counter)], log, 1,
                        counter, counter=counter, startup_s=600)
    else:
        ctx = gw.launch([*prefix, sys.executable, str(gw.PEERS), "signxml", "--cert", cert, "--db", str(db),
                         "--token", token], log, 1, db, table="submissions", startup_s=600)
    with ctx as srv:
        gw.drive(srv, paths[:WARM_UP], folder, token, connections=CONNECTIONS)
        _control(srv.proc.pid, "-i", "on")
        r = gw.drive(srv, paths[WARM_UP:WARM_UP + count], folder, token, connections=CONNECTIONS)
        _control(srv.proc.pid, "-i", "off")
        _control(srv.proc.pid, "-d")
    if r.accepted != count:
        raise RuntimeError(f"{name}: {r.accepted} of {count} messages accepted ({r.other_kinds}); see {log}")
    return _instructions(out) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200, help="measured messages per measure")
    parser.add_argument("--only", default=",".join(IN_PROCESS + SERVERS), help="measures to run")
    parser.add_argument("--rows", metavar="FILE", help="append the issue-14 table rows to FILE (JSON lines)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.dir), args.messages, Path(args.dir) / f"go-{args.child}")
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("bench/instructions.py: valgrind is missing (`make sysdeps`, or apt-get install valgrind);"
              " skipped")
        return
    only = [m for m in args.only.split(",") if m]
    unknown = set(only) - set(IN_PROCESS + SERVERS)
    if unknown:
        raise SystemExit(f"unknown measures: {', '.join(sorted(unknown))}")
    if any(m in SERVERS for m in only) and shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `make sysdeps` (or apt-get install -y wrk)")
    gw = _bench_module("gateway")
    os.environ["PYTHONHASHSEED"] = "0"  # every measured process inherits it: the same count every run
    from gateway.sandbox import datadir

    started = time.perf_counter()
    count = max(CONNECTIONS, args.messages // CONNECTIONS * CONNECTIONS)
    with tempfile.TemporaryDirectory(prefix="cebgw-instr-") as tmp_s:
        folder = Path(tmp_s)
        info = datadir.ensure(folder / "sandbox", url="http://127.0.0.1:0")
        acc = next(a for a in info["accounts"] if a["name"] == "ecommerce")
        gw._init_worker(acc["key"], acc["cert"])
        (folder / "messages").mkdir()
        for i in range(WARM_UP + count + CONNECTIONS * (WARM_UP // CONNECTIONS + 1)):
            gw._write_one((i + 1, str(folder / "messages" / f"{i:06d}.xml")))
        version = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()
        print(f"{gw._machine()}\n{version}; {count} measured messages per measure (signed 10-item CEB621),"
              f" {WARM_UP} before them not counted\n")
        got: dict[str, float] = {}
        for name in only:
            t0 = time.perf_counter()
            if name in SERVERS:
                got[name] = server(name, folder, count, gw, str(acc["token"]), str(acc["cert"]))
            else:
                got[name] = in_process(name, folder, count)
            print(f"  {name:<18} {got[name] / 1e3:10,.0f} k instructions per message   "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\n({time.perf_counter() - started:.0f} s in all)")
    summary(got, args.rows)


def summary(got: dict[str, float], rows_file: str | None) -> None:
    def k(name: str) -> float | None:
        return got[name] / 1e3 if name in got else None

    rows = [
        Row("k instructions/msg: validate (parse, XSD, rules), ceiling lxml parse + plain XSD",
            k("validate"), k("ceiling-validate"), [], "-", lower_is_better=True),
        Row("k instructions/msg: RSA-SHA1 verify incl. parse", k("verify"), k("ceiling-verify"), [], "-",
            lower_is_better=True),
        Row("k instructions/msg: RSA-SHA1 sign incl. parse", k("sign"), k("ceiling-sign"), [], "-",
            lower_is_better=True),
        Row("k instructions/msg: check_submission (every stage before the store)", k("check"), None, [], "-",
            lower_is_better=True),
        Row("k instructions/msg: pipeline.submit on SQLite, 16 at a time (no HTTP)", k("submit"), None, [],
            "-", lower_is_better=True),
        Row("k instructions/msg: durable HTTP submission, 1 worker, 16 conn; ceiling empty aiohttp",
            k("serve"), k("peer-empty"), [("aiohttp+signxml", k("peer-signxml"))], "-", lower_is_better=True),
    ]
    rows = [r for r in rows if r.ours is not None]
    print("\nuser-space instructions per message (valgrind callgrind; the same count in every run of the same"
          "\ncode): lower is better, so a ratio below 1× means ours executes fewer.")
    emit("issue 14, instructions per message (bench/instructions.py):", rows, rows_file)


if __name__ == "__main__":
    main()
