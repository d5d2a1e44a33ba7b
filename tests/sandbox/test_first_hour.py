"""The first hour with the sandbox, as a new user has it: `make run` (``cebgw serve --sandbox``)
run for real, what it prints run as printed in a fresh shell, the samples and the README's
signing example accepted, and a bad setting refused before anything is printed."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import EXIT_INVALID, EXIT_USAGE
from gateway.sandbox import banner, datadir

ROOT = Path(__file__).resolve().parents[2]
VALID = ROOT / "samples" / "valid"
CEB = "{http://www.chinaport.gov.cn/ceb}"
# `make run` is `.venv/bin/cebgw serve --sandbox`: the script beside the interpreter running the tests.
CEBGW = Path(sys.executable).parent / "cebgw"
SERVE = [str(CEBGW)] if CEBGW.is_file() else [sys.executable, "-m", "gateway.cli.main"]
CEBGW_CMD = shlex.join(SERVE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_path() -> str:
    """PATH as a fresh shell has it: without the virtual environment (nor any other cebgw)."""
    dirs = [d for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if d and not (Path(d) / "cebgw").exists()]
    path = os.pathsep.join(dirs)
    assert shutil.which("cebgw", path=path) is None
    return path


def fresh_env() -> dict[str, str]:
    return {"PATH": fresh_path(), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    data: Path
    log: Path

    def banner(self) -> str:
        """What the server printed once listening (waits for it)."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = self.log.read_text(encoding="utf-8")
            if "/v1/receipts" in text:  # the banner's last command: it is printed in one write
                return text
            assert self.proc.poll() is None, f"cebgw serve exited: {self.proc.returncode}\n{self.stderr()}"
            time.sleep(0.1)
        raise AssertionError(f"no banner within 90 s:\n{self.log.read_text(encoding='utf-8')}")

    def stderr(self) -> str:
        return (self.log.parent / "serve.err").read_text(encoding="utf-8")

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = json.loads((self.data / datadir.INFO_FILE).read_text(encoding="utf-8"))
        return info

    def token_for(self, data: bytes) -> str:
        """The token of the sandbox account that owns the message's copCode."""
        cop = re.search(rb"<(?:\w+:)?copCode>([^<]+)<", data)
        assert cop is not None
        code = cop.group(1).decode()
        return str(next(a["token"] for a in self.info()["accounts"] if code in a["codes"]))

    def post(self, data: bytes, token: str) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(self.url + "/v1/messages", data=data, method="POST", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/xml"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return int(r.status), json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read())


def serve(tmp_path: Path, *extra: str, port: int | None = None) -> tuple[subprocess.Popen[bytes], Path, int]:
    """Start ``cebgw serve --sandbox`` from the repository root, as `make run` does."""
    port = port or _free_port()
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    cmd = [*SERVE, "serve", "--sandbox", "--data", str(tmp_path / "sbx"), "--port", str(port), *extra]
    with out.open("wb") as o, err.open("wb") as e:  # files, not pipes nobody drains
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=o, stderr=e, start_new_session=True)
    return proc, out, port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    proc, out, port = serve(tmp_path)
    try:
        yield Served(proc, f"http://127.0.0.1:{port}", tmp_path / "sbx", out)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _run(command: str, cwd: Path = ROOT,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env or fresh_env(), capture_output=True,
                          text=True, timeout=100)


def test_every_line_the_banner_prints_runs_as_printed_in_a_fresh_shell(served: Served) -> None:
    if shutil.which("curl", path=fresh_path()) is None:
        pytest.skip("curl is not installed: the banner's curl lines cannot be run here")
    text = served.banner()
    lines = text.splitlines()
    commands = [line for line in lines if line.strip() and not line.startswith("#")]
    assert len(commands) >= 4, text
    assert not [c for c in commands if c.split()[0] == "cebgw"], "a bare cebgw fails in a fresh shell"
    outputs = []
    for command in commands:
        done = _run(command)
        assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    # What they did: an order and a signed inventory list accepted, both answered, receipts there.
    everything = "\n".join(outputs)
    assert '"message_type": "CEB311"' in everything and "CEB621 id=" in everything
    assert "CEB311 message 1 record 0: CEB312 status 120 -> delivered" in everything
    assert "CEB622 status 120 -> delivered" in everything
    assert '"message_type": "CEB312"' in everything and '"message_type": "CEB622"' in everything
    # The whole banner, comments and all, is a script that runs again (a second `make run` on the
    # same data directory prints the same): the same bytes are accepted again, nothing is left to answer.
    again = _run("set -e\n" + text)
    assert again.returncode == 0, again.stderr
    assert "(already accepted)" in again.stdout


def test_the_banner_names_the_committed_keys_and_paths_from_the_repository_root(tmp_path: Path) -> None:
    info = datadir.ensure(tmp_path / "sbx", url="http://127.0.0.1:1")
    text = banner.render(info, info_path=tmp_path / "sbx" / datadir.INFO_FILE, cwd=ROOT)
    assert "--key certs/sandbox/customs-rsa.key.pem --cert certs/sandbox/customs-rsa.cert.pem" in text
    assert "@samples/valid/CEB311.xml" in text and "# keys, certificates and registry: certs/sandbox" in text
    cebgw = banner.cebgw_command(ROOT)
    assert "/" in cebgw.split()[0]  # a path, not a bare name a fresh shell cannot find
    assert all(line == "" or line.startswith("#") or line.startswith(("curl ", f"{cebgw} "))
               for line in text.splitlines()), text


def _signed_declarations() -> list[Path]:
    return sorted(p for p in VALID.glob("*.xml") if b"<ds:Signature" in p.read_bytes())


# Samples the document lifecycle refuses once the others are in (gateway.lifecycle): CEB621.xml
# and CEB621-empty.xml declare the copNo CEB621-2018.xml declared; the cancellations and returns
# name an invtNo no customs receipt assigned.
LIFECYCLE_REFUSED = {
    "CEB621.xml": "CEBGW-LIFECYCLE-DUPLICATE", "CEB621-empty.xml": "CEBGW-LIFECYCLE-DUPLICATE",
    "CEB623.xml": "CEBGW-LIFECYCLE-INVTNO", "CEB623-empty.xml": "CEBGW-LIFECYCLE-INVTNO",
    "CEB625.xml": "CEBGW-LIFECYCLE-INVTNO", "CEB625-empty.xml": "CEBGW-LIFECYCLE-INVTNO"}


def test_every_signed_sample_is_accepted_by_the_sandbox(served: Served) -> None:
    served.banner()
    files = _signed_declarations()
    assert len(files) >= 5
    for path in files:
        data = path.read_bytes()
        status, body = served.post(data, served.token_for(data))
        if path.name in LIFECYCLE_REFUSED:
            assert body["error"]["code"] == LIFECYCLE_REFUSED[path.name], f"{path.name}: {status} {body}"
            continue
        assert status == 202, f"{path.name}: {status} {body}"


def test_the_readme_signing_example_is_accepted_and_verifies(served: Served, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^\$ (cebgw sign [^\n]*?)\\\n\s+([^\n]*)$", readme, re.M)
    assert found is not None, "the README's `cebgw sign` example"
    command = f"{found.group(1)} {found.group(2)}"
    verify = re.search(r"^\$ (cebgw verify signed\.xml)\n(\S+ valid \S+ signed for \S+ by \S+)", readme, re.M)
    assert verify is not None, "the README's `cebgw verify` example"
    # Run as the README shows, in a copy of the layout it assumes (the repository root: its
    # certs/ and samples/), with cebgw installed on the PATH.
    for name in ("certs", "samples"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**fresh_env(), "PATH": f"{CEBGW.parent}{os.pathsep}{fresh_path()}"}
    done = _run(command, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    done = _run(verify.group(1), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(verify.group(2)), (done.stdout, verify.group(2))
    served.banner()
    data = (tmp_path / "signed.xml").read_bytes()
    status, body = served.post(data, served.token_for(data))
    assert status == 202, body


@pytest.mark.parametrize("family", ["rsa", "sm2"])
def test_what_the_sandbox_keys_sign_verifies(tmp_path: Path, family: str) -> None:
    info = datadir.ensure(tmp_path / "sbx", url="http://127.0.0.1:1")
    prefix = "" if family == "rsa" else "sm2_"
    for path in sorted((ROOT / "samples" / "unsigned").glob("*.xml")):
        data = path.read_bytes()
        cop = re.search(rb"<(?:\w+:)?copCode>([^<]+)<", data)
        assert cop is not None
        acc = next(a for a in info["accounts"] if cop.group(1).decode() in a["codes"])
        out = tmp_path / f"{path.stem}-{family}.xml"
        key, cert = acc[prefix + "key"], acc[prefix + "cert"]
        done = _run(f"{CEBGW_CMD} sign {path} --key {key} --cert {cert} -o {out}")
        assert done.returncode == 0, done.stderr
        done = _run(f"{CEBGW_CMD} verify {out}")  # the default registry, certs/registry.toml
        assert done.returncode == 0, f"{path.name}: {done.stdout} {done.stderr}"
        assert f"by {acc['name']}-{family}" in done.stdout


def test_a_data_directory_holds_no_keys_and_an_old_one_is_moved_to_the_committed_set(tmp_path: Path) -> None:
    d = tmp_path / "sbx"
    first = datadir.ensure(d, url="http://127.0.0.1:1")
    assert not list(d.rglob("*.key.pem"))
    assert Path(first["customs"]["key"]) == datadir.SANDBOX_CERTS / "customs-rsa.key.pem"
    settings = datadir.settings_for(d)
    assert settings.registry_path == datadir.SANDBOX_CERTS / "registry.toml"
    # A directory made when the sandbox had a CA of its own: tokens kept, keys now certs/sandbox.
    old = json.loads((d / datadir.INFO_FILE).read_text(encoding="utf-8"))
    for row in [*old["accounts"], old["customs"]]:
        row["key"] = str(d / "certs" / "x.key.pem")
        row["cert"] = str(d / "certs" / "x.cert.pem")
    del old["customs"]["name"]
    (d / datadir.INFO_FILE).write_text(json.dumps(old), encoding="utf-8")
    again = datadir.ensure(d, url="http://127.0.0.1:2")
    assert again["customs"]["token"] == first["customs"]["token"]
    assert again["customs"]["key"] == first["customs"]["key"]
    assert [a["key"] for a in again["accounts"]] == [a["key"] for a in first["accounts"]]


@pytest.mark.parametrize("extra", [
    ("--db", "postgresql://127.0.0.1:1/test"),
    ("--db", "mysql://127.0.0.1/test"),
    ("--db", "sqlite:///"),
    ("--workers", "0"),
])
def test_a_bad_setting_is_refused_before_anything_is_printed(tmp_path: Path, extra: tuple[str, ...]) -> None:
    proc, out, _ = serve(tmp_path, *extra)
    try:
        code = proc.wait(90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    err = (tmp_path / "serve.err").read_text(encoding="utf-8")
    assert code in (EXIT_INVALID, EXIT_USAGE), err  # a gateway error's exit code, not an internal error
    assert out.read_text(encoding="utf-8") == "", "nothing on stdout: no banner, no tokens"
    assert err.startswith("cebgw: ") and "cebgw_" not in err and "Traceback" not in err, err


def test_a_port_in_use_is_refused_before_anything_is_printed(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        proc, out, _ = serve(tmp_path, port=int(busy.getsockname()[1]))
        try:
            code = proc.wait(90)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
    err = (tmp_path / "serve.err").read_text(encoding="utf-8")
    assert code == 2 and "cannot listen on 127.0.0.1:" in err, err
    assert out.read_text(encoding="utf-8") == ""


def _listeners(port: int) -> int:
    """How many sockets listen on 127.0.0.1:``port`` (with SO_REUSEPORT, one per worker)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1] == f"0100007F:{port:04X}" and r.split()[3] == "0A")


def test_with_two_workers_the_banner_comes_once_from_a_listening_worker(tmp_path: Path) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to count the workers' listening sockets")
    proc, out, port = serve(tmp_path, "--workers", "2")
    try:
        Served(proc, f"http://127.0.0.1:{port}", tmp_path / "sbx", out).banner()
        deadline = time.monotonic() + 60
        while _listeners(port) < 2:  # both workers up: each prints, if at all, as it starts listening
            assert time.monotonic() < deadline and proc.poll() is None, "the second worker did not listen"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    text = out.read_text(encoding="utf-8")
    assert text.count("listening on") == 1, text
