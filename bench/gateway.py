#!/usr/bin/env python3
"""End-to-end submission benchmark: ``cebgw serve`` on SQLite driven by wrk.

Pre-generates distinct signed 10-item CEB621 declarations (guid, orderNo and copNo vary, so
none is an idempotent duplicate), then runs, each against a real server process:

1. accepted/s flat out (wrk, ``--connections`` connections; only 202s count), p50/p99, and
   again with ``--wide`` connections (many clients at once: what the server can carry when
   the clients' round trips are not the limit);
2. p50/p99 at a fixed offered rate (``--rate``, paced in bench/gateway_submit.lua);
3. accepted/s with DXP envelope signing on (``sign_envelopes = true`` through ``--config``);
4. memory over a longer run (``--count``, default 100,000; ``--quick`` 10,000), RSS at intervals;

and, for comparison, on the same messages with the same wrk script and worker count: the ceiling,
an empty aiohttp handler (``peer-empty``), and the peer, a plain aiohttp + signxml server that
parses, verifies against the sender's certificate and commits each submission to SQLite before
its 202 (``peer-signxml``, flat out and at the paced rate; both in bench/peers.py); and the
in-process pipeline (``pipeline.submit`` with a SqliteStore, no HTTP).  Prints figures with the
machine and the targets, last the issue-14 table rows (bench/_table.py); asserts nothing.

    .venv/bin/python bench/gateway.py [--quick] [--count N] [--workers 2] [--dir /real/disk]

With ``--db postgresql://…`` it runs instead the nodes comparison: accepted/s, p50/p99 and CPU per
accepted message of one SQLite process, then of 1, 2 and 3 nodes on PostgreSQL (N processes
sharing the port through SO_REUSEPORT, the kernel as their load balancer; each its own store
connection pool and group commit), each on a fresh schema of that database (dropped after), plus
the PostgreSQL server's own CPU per message.

    .venv/bin/python bench/gateway.py --db postgresql://postgres@127.0.0.1/test [--nodes-count 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway import pipeline  # noqa: E402
from gateway.accounts import AccountFile  # noqa: E402
from gateway.catalog import load as load_catalog  # noqa: E402
from gateway.dsig import load_key, load_registry, sign  # noqa: E402
from gateway.dsig.keys import KeyProvider  # noqa: E402
from gateway.sandbox import datadir, samplegen  # noqa: E402
from gateway.store import open_store  # noqa: E402

sys.path.append(str(ROOT / "bench"))  # for _table (after ROOT: bench/gateway.py must not hide the package)
from _table import Row, emit  # noqa: E402

CEBGW = [sys.executable, "-m", "gateway.cli.main"]
LUA = ROOT / "bench" / "gateway_submit.lua"
PEERS = ROOT / "bench" / "peers.py"
COP_NO = re.compile(rb"(<ceb:copNo>COP\d{8})\d{6}(</ceb:copNo>)")
APP_TIME = re.compile(rb"<ceb:appTime>\d{14}</ceb:appTime>")
TARGET_RATE, TARGET_P99_MS = 3000, 50
TARGET_SIGNED_RATE = 2500  # issue 14: with envelope signing on


# ---------------------------------------------------------------- messages

_KEY: KeyProvider | None = None


def _init_worker(key: str, cert: str) -> None:
    global _KEY  # one parsed key per generator process (a PEM parse costs ~40 ms)
    _KEY = load_key(key, cert)


def _write_one(job: tuple[int, str]) -> None:
    seed, path = job
    assert _KEY is not None
    data = samplegen.build("CEB621", lines=10, seed=seed)
    # samplegen's copNo repeats every 1000 seeds; make it unique (orderNo and guid already are).
    data, n = COP_NO.subn(rb"\g<1>%06d\g<2>" % (seed % 10**6), data)
    assert n == 1, "CEB621 layout changed: no copNo"
    # appTime when the bench runs, as a sender writes it: samplegen's fixed date is soon more than
    # the gateway's window (a day) away, and every submission would then carry the skew warning.
    now = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() + 8 * 3600)).encode()  # Beijing time
    data, n = APP_TIME.subn(b"<ceb:appTime>" + now + b"</ceb:appTime>", data)
    assert n == 1, "CEB621 layout changed: no appTime"
    Path(path).write_bytes(sign(data, _KEY, alg="rsa-sha1"))


def generate(folder: Path, count: int, key: str, cert: str) -> list[Path]:
    """COUNT signed CEB621 files (seeds 1..COUNT), made on every CPU."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:06d}.xml" for i in range(count)]
    jobs = [(i + 1, str(p)) for i, p in enumerate(paths)]
    with multiprocessing.get_context("spawn").Pool(os.cpu_count(), _init_worker, (key, cert)) as pool:
        for _ in pool.imap_unordered(_write_one, jobs, chunksize=200):
            pass
    return paths


# ---------------------------------------------------------------- server

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=30) as r:
        answer: dict[str, object] = json.loads(r.read())
        return answer


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (workers, multiprocessing helpers)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for kid in kids:
            out.extend(_tree(int(kid)))
    return out


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tcp_sockets(port: int, state: str) -> list[str]:
    """Inodes of the local TCP sockets on ``port`` in ``state`` (hex, as /proc/net/tcp writes
    it: ``0A`` LISTEN, ``01`` ESTABLISHED)."""
    inodes = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.append(fields[9])
    return inodes


def _listeners(port: int) -> int:
    """Sockets listening on ``port`` (each ``--workers`` process has its own, SO_REUSEPORT)."""
    return len(_tcp_sockets(port, "0A"))


def _connections_per_worker(server: Server) -> list[int]:
    """Established client connections held by each serving process (how the kernel spread them)."""
    inodes = set(_tcp_sockets(int(server.url.rsplit(":", 1)[1]), "01"))
    counts = []
    for pid in server.pids():
        held = 0
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    held += 1
        except OSError:
            continue
        if held:
            counts.append(held)
    return sorted(counts)


def _is_server(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"resource_tracker" not in cmd


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    workers: int
    db: Path
    _count: sqlite3.Connection | None = None

    def pids(self) -> list[int]:
        """The serving processes: the parent and its workers (not multiprocessing's tracker)."""
        return [p for p in _tree(self.proc.pid) if _is_server(p)]

    def rss_mb(self, field: str = "VmRSS") -> list[float]:
        return [_status_kb(p, field) / 1024 for p in self.pids()]

    pg_url: str | None = None
    _pg: object | None = None
    table: str = "outbox"       # the table whose ids count the accepted (a peer's own table)
    counter: Path | None = None  # the empty peer's answer counters (one 8-byte slot per worker)

    def accepted(self) -> int:
        """Declarations stored so far, read from the database file (the outbox's ids run 1..n,
        nobody drains it during a run): asking the server 10 times a second would measure our
        polling too (``/healthz`` counts the pending outbox on the server's reader connections,
        whose page caches then fill with that growing index).  The empty peer stores nothing:
        its workers count their answers in a shared file."""
        if self.counter is not None:
            raw = self.counter.read_bytes()
            return sum(struct.unpack(f"{len(raw) // 8}q", raw))
        if self.pg_url is not None:
            import psycopg

            if self._pg is None:
                self._pg = psycopg.connect(self.pg_url, autocommit=True)
            row = self._pg.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()  # type: ignore[attr-defined]
            return int(row[0])
        if self._count is None:
            self._count = sqlite3.connect(self.db, timeout=30)
            self._count.execute("PRAGMA query_only=ON")
        (n,) = self._count.execute(f"SELECT COALESCE(MAX(id), 0) FROM {self.table}").fetchone()
        return int(n)


@contextmanager
def serve(args: list[str], log: Path, workers: int, db: Path, pg_url: str | None = None) -> Iterator[Server]:
    """``cebgw serve ARGS --workers N`` in its own process group; stopped (group-wide) on exit."""
    with launch([*CEBGW, "serve", *args], log, workers, db, pg_url=pg_url) as server:
        yield server


@contextmanager
def serve_peer(kind: str, args: list[str], log: Path, workers: int, db: Path, *, table: str = "outbox",
               counter: Path | None = None) -> Iterator[Server]:
    """``bench/peers.py KIND ARGS --workers N``, started and stopped like ``cebgw serve``."""
    with launch([sys.executable, str(PEERS), kind, *args], log, workers, db, table=table,
                counter=counter) as server:
        yield server


@contextmanager
def launch(cmd: list[str], log: Path, workers: int, db: Path, *, pg_url: str | None = None,
           table: str = "outbox", counter: Path | None = None, startup_s: float = 60) -> Iterator[Server]:
    """``CMD --port P --workers N`` in its own process group, once healthy and every worker
    listening (within ``startup_s``); stopped (group-wide) on exit."""
    port = _free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([*cmd, "--port", str(port), "--workers", str(workers)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    server = Server(proc, f"http://127.0.0.1:{port}", workers, db, pg_url=pg_url, table=table,
                    counter=counter)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}; see {log}")
            try:
                _get_json(server.url + "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not healthy after {startup_s:.0f} s; see {log}") from None
                time.sleep(0.05)
        # With workers, each must be listening before load starts: the kernel spreads new
        # connections over the sockets listening at that moment, and a worker that binds after
        # wrk has connected would get none of them (seen: all 32 connections on one worker).
        while workers > 1 and _listeners(port) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{_listeners(port)} of {workers} workers listening after"
                                   f" {startup_s:.0f} s; see {log}")
            time.sleep(0.05)
        yield server
    finally:
        # `serve --workers N` leaves its workers running when the parent alone is signalled,
        # so the whole process group (ours: start_new_session) is stopped.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


def config_file(data: Path, path: Path, db: Path, *, sign_envelopes: bool) -> Path:
    """A ``--config`` TOML with the sandbox's accounts and certificates and its own database."""
    s = datadir.settings_for(data)
    path.write_text(
        f'store_url = "sqlite:///{db}"\n'
        f'registry_path = "{s.registry_path}"\naccounts_path = "{s.accounts_path}"\n'
        f'gateway_key = "{s.gateway_key}"\ngateway_cert = "{s.gateway_cert}"\n'
        f"require_customs_signature = true\nsign_envelopes = {'true' if sign_envelopes else 'false'}\n",
        encoding="utf-8")
    return path


# ---------------------------------------------------------------- load

@dataclass
class LoadResult:
    accepted: int          # server side: new rows in the outbox (the rate counts these)
    wrk_accepted: int      # client side: 202 answers
    other: int             # answers other than 202 (broken down in ``other_kinds``)
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    rss: list[tuple[int, list[float]]]
    other_kinds: str = ""
    server_cpu_s: float = 0.0  # user + system CPU of the serving processes during the run
    wrk_cpu_s: float = 0.0
    split: tuple[int, ...] = ()  # client connections per serving process, sampled during the run
    counted: int = 0  # rows stored within ``seconds`` (the loaded interval), which the rate divides

    @property
    def cpu_us_per_msg(self) -> float:
        return self.server_cpu_s / self.accepted * 1e6 if self.accepted else 0.0

    @property
    def rate(self) -> float:
        return (self.counted or self.accepted) / self.seconds if self.seconds else 0.0


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def drive(server: Server, bodies: list[Path], tmp: Path, token: str, *, connections: int, rate: int = 0,
          samples: int = 0) -> LoadResult:
    """Post every body once with wrk; returns when the server has stored them all (or stalls)."""
    listfile = tmp / f"list-{time.monotonic_ns()}.txt"
    listfile.write_text("".join(f"{p}\n" for p in bodies), encoding="utf-8")
    base = server.accepted()
    target = base + len(bodies)
    marks = [base + len(bodies) * k // samples for k in range(1, samples + 1)] if samples else []
    rss: list[tuple[int, list[float]]] = [(0, server.rss_mb())] if samples else []
    cmd = ["wrk", "-t1", f"-c{connections}", "-d3600s", "--timeout", "30s", "-s", str(LUA), server.url,
           "--", str(listfile), token, str(rate), "1"]
    pids = server.pids()
    cpu0 = sum(_cpu_s(p) for p in pids)
    start = time.monotonic()
    wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    done, last_change, seen = base, start, base
    wrk_cpu = 0.0
    split: list[int] | None = None
    # Stalled: nothing new stored for 10 s once the load is under way; before the first row, wrk
    # may still be loading its bodies (100,000 of them take tens of seconds on a slow machine).
    def stalled() -> bool:
        return time.monotonic() - last_change >= (10 if done > base else 180)

    under_way: tuple[float, int] | None = None  # when the first stored rows were seen, and how many
    while done < target and wrk.poll() is None and not stalled():
        time.sleep(0.1)
        done = server.accepted()
        if under_way is None and done > base:
            under_way = (time.monotonic(), done)
        if not split and done > base:  # once the load is under way: wrk may take seconds to load its list
            split = _connections_per_worker(server)
        if done != seen:
            seen, last_change = done, time.monotonic()
        while marks and done >= marks[0]:
            rss.append((marks.pop(0) - base, server.rss_mb()))
        wrk_cpu = _cpu_s(wrk.pid) or wrk_cpu
    server_cpu = sum(_cpu_s(p) for p in pids) - cpu0
    # The rate is taken over the loaded interval, from the first new rows seen to the last (both
    # polled every 0.1 s): before it, wrk reads its bodies into memory (seconds, for tens of
    # thousands of them), and the server has nothing to do.
    since, counted = (under_way[0], done - under_way[1]) if under_way is not None else (start, done - base)
    if last_change - since <= 0 or counted <= 0:
        since, counted = start, done - base
    if wrk.poll() is None:
        wrk.send_signal(signal.SIGINT)  # wrk prints its summary (and our done()) on SIGINT
    try:
        # with 100,000 bodies in its Lua state wrk takes a while to wind down (its GC)
        out = wrk.communicate(timeout=300)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        wrk.kill()  # never left running to load the next runs
        out = wrk.communicate()[0].decode(errors="replace")
    m = re.search(r"WRK_RESULT (.*)", out)
    if m is None:
        raise RuntimeError(f"wrk gave no result:\n{out}")
    f = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    for first in re.findall(r"WRK_FIRST_OTHER (.*)", out):
        print(f"  (first answer other than 202: {first[:300]})")
    return LoadResult(done - base, f["accepted"], f["other"], f["errors"], last_change - since,
                      f["p50_us"] / 1000, f["p99_us"] / 1000, rss,
                      f"200 (replays) {f['dup200']}, 4xx {f['c4xx']}, 5xx {f['c5xx']}", server_cpu, wrk_cpu,
                      tuple(split or ()), counted)


# ---------------------------------------------------------------- in-process

async def _in_process(data: Path, db: Path, bodies: list[bytes], concurrency: int) -> float:
    s = datadir.settings_for(data)
    account = AccountFile(s.accounts_path).current().by_name("ecommerce")
    assert account is not None
    store = open_store(f"sqlite:///{db}")
    try:
        deps = pipeline.SubmitDeps(load_catalog(), load_registry(s.registry_path), s.policy, store,
                                   pipeline.Limits(s.max_body_bytes, s.max_depth))
        todo = iter(bodies)

        async def submitter() -> None:
            for body in todo:
                accepted = await pipeline.submit(body, account, deps)
                assert not accepted.duplicate

        start = time.perf_counter()
        await asyncio.gather(*(submitter() for _ in range(concurrency)))
        return len(bodies) / (time.perf_counter() - start)
    finally:
        await store.close()


# ---------------------------------------------------------------- report

def _machine() -> str:
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(" [")[0]
    return (f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs ({cpu}), "
            f"Linux {platform.release()}, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, {wrk}")


def _line(name: str, r: LoadResult, target: str) -> str:
    extra = "" if r.accepted == r.wrk_accepted and not r.other and not r.errors else (
        f"  [wrk counted {r.wrk_accepted} 202s, {r.other} other answers ({r.other_kinds}),"
        f" {r.errors} socket errors]")
    secs = max(r.seconds, 1e-9)
    return (f"{name:<34} {r.accepted:>7} in {r.seconds:6.1f} s  {r.rate:7.0f} accepted/s  "
            f"p50 {r.p50_ms:6.1f} ms  p99 {r.p99_ms:7.1f} ms   {target}{extra}\n"
            f"{'':<34} server CPU {r.cpu_us_per_msg:.0f} µs/msg ({r.server_cpu_s / secs:.2f} cores),"
            f" wrk {r.wrk_cpu_s / secs:.2f} cores,"
            f" connections per worker {'/'.join(map(str, r.split)) or '?'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000, help="messages in the memory run")
    parser.add_argument("--quick", action="store_true", help="a 10,000-message memory run, shorter others")
    parser.add_argument("--workers", type=int, default=2, help="server processes (falls back to 1)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=2000, help="offered messages/s of the paced run")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--throughput-count", type=int, default=20_000, help="messages in the flat-out runs")
    parser.add_argument("--dir", default=None, help="directory for data and databases (default: a temp dir)")
    parser.add_argument("--wide", type=int, default=128, help="connections of the 'wide' flat-out run")
    parser.add_argument("--db", default=None, metavar="URL",
                        help="postgresql://…: run the nodes comparison (SQLite, then 1-3 PostgreSQL nodes)")
    parser.add_argument("--nodes-count", type=int, default=3000,
                        help="messages per run of the nodes comparison")
    parser.add_argument("--runs", default="flat,wide,rate,signed,peer-empty,peer-signxml,one,inproc,memory",
                        help="comma-separated subset of: flat,wide,rate,signed,peer-empty,peer-signxml,"
                             "one,inproc,memory (peer-signxml also runs paced when rate is in)")
    parser.add_argument("--rows", metavar="FILE", help="append the issue-14 table rows to FILE (JSON lines)")
    args = parser.parse_args()
    runs = set(args.runs.split(","))
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: `make sysdeps` (or apt-get install -y wrk)")
    if args.quick:
        args.count, args.throughput_count, args.rate_seconds = 10_000, 10_000, 5.0
    n_tput = args.throughput_count
    n_rate = int(args.rate * args.rate_seconds)
    print(_machine())
    if args.db:
        nodes_comparison(args)
        return
    print("store: SQLite WAL, synchronous=FULL (a 202 is sent after the commit is synced)")
    res: dict[str, LoadResult] = {}
    workers = args.workers
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="cebgw-bench-") as tmp_s:
        tmp = Path(tmp_s)
        data = tmp / "sandbox"
        info = datadir.ensure(data, url="http://127.0.0.1:0")
        acc = next(a for a in info["accounts"] if a["name"] == "ecommerce")
        token = str(acc["token"])
        pool_size = max(args.count if "memory" in runs else 0, 2 * n_tput + n_rate)
        started = time.perf_counter()
        paths = generate(tmp / "messages", pool_size, acc["key"], acc["cert"])
        size = sum(p.stat().st_size for p in paths[:100]) / 100
        print(f"generated {pool_size} signed 10-item CEB621 (~{size / 1024:.1f} KiB each) "
              f"in {time.perf_counter() - started:.0f} s; database directory {tmp}")
        print(f"load: wrk, 1 thread, {args.connections} connections ({args.wide} in the wide run, "
              f"{max(args.connections, 64)} paced), each message posted once")
        print()

        log = tmp / "server.log"
        print(f"{'run':<34} {'msgs':>7}    {'time':>6}    {'rate':>7}             {'':>5}"
              f"{'latency':>20}   target")
        # 1 + 2: the sandbox server (its own gateway.db), flat out, then paced.
        try:
            ctx = serve(["--sandbox", "--data", str(data)], log, workers, data / "gateway.db")
            server = ctx.__enter__()
        except RuntimeError as exc:
            if workers == 1:
                raise
            print(f"NOTE: --workers {workers} failed ({exc}); falling back to 1 worker")
            workers = 1
            ctx = serve(["--sandbox", "--data", str(data)], log, workers, data / "gateway.db")
            server = ctx.__enter__()
        try:
            label = f"{workers} worker(s)"
            if "flat" in runs:
                r = res["flat"] = drive(server, paths[:n_tput], tmp, token, connections=args.connections)
                print(_line(f"flat out, {args.connections} conn, {label}", r, f">= {TARGET_RATE} accepted/s"))
            if "wide" in runs:
                wide = paths[n_tput + n_rate:2 * n_tput + n_rate]
                r = drive(server, wide, tmp, token, connections=args.wide)
                print(_line(f"flat out, {args.wide} conn, {label}", r, f">= {TARGET_RATE} accepted/s"))
            if "rate" in runs:
                r = res["rate"] = drive(server, paths[n_tput:n_tput + n_rate], tmp, token,
                                        connections=max(args.connections, 64), rate=args.rate)
                print(_line(f"offered {args.rate}/s, {label}", r,
                            f"p99 < {TARGET_P99_MS} ms at {args.rate}/s"))
            peak = server.rss_mb("VmHWM")
            print(f"{'':<34} server peak RSS (VmHWM) per process: "
                  f"{', '.join(f'{m:.0f}' for m in peak)} MB; total {sum(peak):.0f} MB")
        finally:
            ctx.__exit__(None, None, None)

        # 3: the same messages with envelope signing on (a fresh database).
        if "signed" in runs:
            cfg = config_file(data, tmp / "signed.toml", tmp / "signed.db", sign_envelopes=True)
            with serve(["--config", str(cfg)], log, workers, tmp / "signed.db") as server:
                r = res["signed"] = drive(server, paths[:n_tput], tmp, token, connections=args.connections)
                print(_line(f"flat out, signed envelopes, {label}", r, f">= {TARGET_SIGNED_RATE} accepted/s"))

        # The ceiling and the peer (bench/peers.py): same messages, wrk script and worker count.
        conn = args.connections
        if "peer-empty" in runs:
            counter = tmp / "empty.count"
            with serve_peer("empty", ["--counter", str(counter)], log, workers, counter,
                            counter=counter) as server:
                r = res["peer-empty"] = drive(server, paths[:n_tput], tmp, token, connections=conn)
                print(_line(f"peer empty aiohttp, {conn} conn", r, "(ceiling: the HTTP alone)"))
        if "peer-signxml" in runs:
            db = tmp / "peer.db"
            peer_args = ["--cert", str(acc["cert"]), "--db", str(db), "--token", token]
            with serve_peer("signxml", peer_args, log, workers, db, table="submissions") as server:
                r = res["peer-signxml"] = drive(server, paths[:n_tput], tmp, token, connections=conn)
                print(_line(f"peer aiohttp+signxml, {conn} conn", r, "(peer)"))
                if "rate" in runs:
                    r = res["peer-signxml-rate"] = drive(server, paths[n_tput:n_tput + n_rate], tmp, token,
                                                         connections=max(conn, 64), rate=args.rate)
                    print(_line(f"peer aiohttp+signxml, {args.rate}/s", r, "(peer)"))

        # SQLite serialises writers across processes: show what one process does
        if workers > 1 and "one" in runs:
            cfg = config_file(data, tmp / "one.toml", tmp / "one.db", sign_envelopes=False)
            with serve(["--config", str(cfg)], log, 1, tmp / "one.db") as server:
                r = drive(server, paths[:n_tput], tmp, token, connections=args.connections)
                print(_line("flat out, 1 worker (comparison)", r, f">= {TARGET_RATE} accepted/s"))

        # in-process pipeline, no HTTP, on the same messages (a fresh database, one process).
        if "inproc" in runs:
            bodies = [p.read_bytes() for p in paths[:n_tput]]
            rate = asyncio.run(_in_process(data, tmp / "inproc.db", bodies, args.connections))
            print(f"{'in-process pipeline.submit':<34} {len(bodies):>7} messages {rate:9.0f} accepted/s "
                  f"(one process, {args.connections} concurrent submitters, no HTTP)")
            del bodies

        # 4: memory over the longer run (a fresh database).
        if "memory" in runs:
            memory_run(args, data, tmp, log, workers, paths, token)
    summary(args, workers, res)


def summary(args: argparse.Namespace, workers: int, res: dict[str, LoadResult]) -> None:
    """The issue-14 rows: ours, the empty handler's ceiling, the aiohttp + signxml peer."""
    def rate_of(key: str) -> float | None:
        return res[key].rate if key in res else None

    peer_rate = res.get("peer-signxml-rate")
    peer_name = "aiohttp+signxml"
    if peer_rate is not None and peer_rate.rate < 0.95 * args.rate:
        peer_name += f" (fell behind: {peer_rate.rate:,.0f}/s)"
    flat = f"{workers} workers, flat out ({args.connections} conn)"
    p99 = res["rate"].p99_ms if "rate" in res else None
    rows = [
        Row(f"durable signed submissions over HTTP, {flat}, accepted/s", rate_of("flat"),
            rate_of("peer-empty"), [("aiohttp+signxml", rate_of("peer-signxml"))], f">= {TARGET_RATE:,}/s"),
        Row(f"p99 ms at {args.rate:,}/s offered, {workers} workers", p99, None,
            [(peer_name, peer_rate.p99_ms if peer_rate else None)], f"< {TARGET_P99_MS} ms",
            lower_is_better=True),
        Row(f"the same with envelope signing on, {flat}, accepted/s", rate_of("signed"), None, [],
            f">= {TARGET_SIGNED_RATE:,}/s"),
    ]
    print("\nceiling: an empty aiohttp handler (reads the body, answers 202); peer: aiohttp + lxml +"
          "\nsignxml verify + SQLite INSERT, grouped commit (bench/peers.py); same wrk script and workers."
          "\ntime and rate: from the first stored rows seen to the last (wrk loading its bodies before"
          "\nthat is left out); msgs: every row the run stored.")
    emit("issue 14, submissions over HTTP (bench/gateway.py):", rows, args.rows)


def memory_run(args: argparse.Namespace, data: Path, tmp: Path, log: Path, workers: int, paths: list[Path],
               token: str) -> None:
    """RSS of the server processes over ``--count`` messages (a fresh database)."""
    label = f"{workers} worker(s)"
    print()
    cfg = config_file(data, tmp / "memory.toml", tmp / "memory.db", sign_envelopes=False)
    with serve(["--config", str(cfg)], log, workers, tmp / "memory.db") as server:
        r = drive(server, paths[:args.count], tmp, token, connections=args.connections, samples=10)
        print(_line(f"memory run, {label}", r, "flat memory"))
        print(f"  RSS (MB) per server process over {args.count} messages:")
        for n, mb in r.rss:
            print(f"  {n:>8} msgs  {'  '.join(f'{m:7.1f}' for m in mb)}   total {sum(mb):7.1f}")
        if len(r.rss) > 2:
            early, last = sum(r.rss[2][1]), sum(r.rss[-1][1])
            print(f"  growth from {r.rss[2][0]} messages to the end: {last - early:+.1f} MB "
                  f"({(last - early) / max(early, 1) * 100:+.1f} %); target: flat")
        peak = server.rss_mb("VmHWM")
        print(f"  peak RSS (VmHWM) per process: {', '.join(f'{m:.0f}' for m in peak)} MB")


# ---------------------------------------------------------------- nodes on PostgreSQL

def _postgres_cpu_s() -> float:
    """CPU seconds of every PostgreSQL server process on this machine (the database's side)."""
    total = 0.0
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() in ("postgres", "postmaster"):
                    total += _cpu_s(int(d.name))
            except OSError:
                continue
    return total


def _schema_url(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def nodes_comparison(args: argparse.Namespace) -> None:
    """SQLite (one process) next to 1, 2 and 3 PostgreSQL nodes, on the same messages."""
    import psycopg

    n = args.nodes_count
    print(f"nodes comparison: {n} messages per run, wrk {args.connections} connections; PostgreSQL at "
          f"{args.db.split('@')[-1]}; the nodes share this machine's cores with the database and wrk")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="cebgw-bench-") as tmp_s:
        tmp = Path(tmp_s)
        data = tmp / "sandbox"
        info = datadir.ensure(data, url="http://127.0.0.1:0")
        acc = next(a for a in info["accounts"] if a["name"] == "ecommerce")
        token = str(acc["token"])
        paths = generate(tmp / "messages", n, acc["key"], acc["cert"])
        log = tmp / "server.log"
        print(f"{'run':<34} {'msgs':>7}    {'time':>6}    {'rate':>7}             {'':>5}"
              f"{'latency':>20}   target")
        with serve(["--sandbox", "--data", str(data)], log, 1, data / "gateway.db") as server:
            r = drive(server, paths, tmp, token, connections=args.connections)
        print(_line("SQLite, 1 process", r, "(baseline)"))
        print(f"{'':<34} gateway CPU {r.cpu_us_per_msg:.0f} µs per accepted message")
        for nodes in (1, 2, 3):
            schema = f"cebgw_bench_{os.getpid()}_{nodes}"
            url = _schema_url(args.db, schema)
            try:
                with serve(["--sandbox", "--data", str(data), "--db", url], log, nodes, data / "unused",
                           pg_url=url) as server:
                    server.accepted()  # connect before the clock starts
                    pg0 = _postgres_cpu_s()
                    r = drive(server, paths, tmp, token, connections=args.connections)
                    pg_cpu = _postgres_cpu_s() - pg0
                print(_line(f"PostgreSQL, {nodes} node(s)", r, "(compare with SQLite)"))
                print(f"{'':<34} gateway CPU {r.cpu_us_per_msg:.0f} µs per accepted message "
                      f"(all nodes; per node the same work), PostgreSQL server CPU "
                      f"{pg_cpu / max(r.accepted, 1) * 1e6:.0f} µs per message; "
                      f"connections per node {list(r.split)}")
            finally:
                with psycopg.connect(args.db, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


if __name__ == "__main__":
    main()
