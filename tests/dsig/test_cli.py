"""``cebgw sign``, ``verify`` and ``certs`` in-process: exit codes, text and JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import FIXTURES, SANDBOX

Cli = Callable[..., tuple[int, str, str]]
REG = str(SANDBOX / "registry.toml")


@pytest.mark.parametrize("alg,family", [("rsa-sha1", "rsa"), ("rsa-sha256", "rsa"), ("sm2-sm3", "sm2")])
def test_sign_then_verify(cli: Cli, tmp_path: Path, alg: str, family: str) -> None:
    out = tmp_path / "signed.xml"
    code, _, err = cli(
        "sign",
        str(FIXTURES / "ceb621_1.xml"),
        "--key",
        str(SANDBOX / f"ecommerce-{family}.key.pem"),
        "--cert",
        str(SANDBOX / f"ecommerce-{family}.cert.pem"),
        "--alg",
        alg,
        "-o",
        str(out),
    )
    assert code == 0, err
    code, stdout, _ = cli("verify", str(out), "--registry", REG, "--format", "json")
    assert code == 0
    result = json.loads(stdout)
    assert result["valid"] is True and result["algorithm"] == alg and result["signer"] == "3301960A7Z"
    code, stdout, _ = cli("verify", str(out), "--registry", REG)
    assert code == 0 and "valid CEB621" in stdout


def test_verify_invalid(cli: Cli, tmp_path: Path) -> None:
    unsigned = FIXTURES / "ceb621_1.xml"
    code, stdout, _ = cli("verify", str(unsigned), "--registry", REG, "--format", "json")
    assert code == 1
    assert json.loads(stdout)["code"] == "CEBGW-SIG-MISSING"
    code, _, err = cli("verify", str(unsigned), "--registry", REG)
    assert code == 1 and "[CEBGW-SIG-MISSING]" in err
    (tmp_path / "bad.xml").write_bytes(b"<not xml")
    code, stdout, _ = cli("verify", str(tmp_path / "bad.xml"), "--registry", REG, "--format", "json")
    assert code == 1 and json.loads(stdout)["code"].startswith("CEBGW-PARSE")


def test_verify_usage_and_io_errors(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, _ = cli("verify", str(tmp_path / "missing.xml"), "--registry", REG)
    assert code == 2
    code, _, err = cli("verify", str(FIXTURES / "ceb621_1.xml"), "--registry", str(tmp_path / "none.toml"))
    assert code == 2 and "CEBGW-CONFIG" in err
    monkeypatch.setenv("CEBGW_REGISTRY", str(tmp_path / "env.toml"))
    code, _, err = cli("verify", str(FIXTURES / "ceb621_1.xml"))
    assert code == 2 and "env.toml" in err
    with pytest.raises(SystemExit) as exc:
        cli("verify", "--format", "yaml", "x.xml")
    assert exc.value.code == 2


def test_sign_errors(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli(
        "sign", str(FIXTURES / "ceb621_1.xml"), "--key", str(SANDBOX / "ecommerce-rsa.key.pem")
    )
    assert code == 2 and "--cert" in err
    code, _, _ = cli(
        "sign",
        str(tmp_path / "none.xml"),
        "--key",
        str(SANDBOX / "ecommerce-rsa.key.pem"),
        "--cert",
        str(SANDBOX / "ecommerce-rsa.cert.pem"),
    )
    assert code == 2


def test_certs_list_check_add(cli: Cli, tmp_path: Path) -> None:
    code, stdout, _ = cli("certs", "list", "--registry", REG, "--format", "json")
    assert code == 0 and len(json.loads(stdout)) == 16
    code, stdout, _ = cli("certs", "check", "--registry", REG, "--days", "30")
    assert code == 0 and "none expiring" in stdout
    code, stdout, _ = cli("certs", "check", "--registry", REG, "--days", "36500")
    assert code == 1 and "ecommerce-rsa" in stdout
    reg = tmp_path / "registry.toml"
    reg.write_text("", encoding="utf-8")
    code, stdout, _ = cli(
        "certs",
        "add",
        str(SANDBOX / "agent-sm2.cert.pem"),
        "--registry",
        str(reg),
        "--codes",
        "3301980B12",
        "X2",
        "--dxp-id",
        "DXPENT0000458765",
    )
    assert code == 0 and "agent-sm2" in stdout
    code, stdout, _ = cli("certs", "list", "--registry", str(reg), "--format", "json")
    assert json.loads(stdout)[0]["codes"] == ["3301980B12", "X2"]
    code, _, _ = cli("certs", "add", str(SANDBOX / "agent-sm2.cert.pem"), "--registry", str(reg))
    assert code == 2


def test_certs_init_sandbox(cli: Cli, tmp_path: Path) -> None:
    code, _, _ = cli("certs", "init-sandbox", "--dir", str(tmp_path / "sb"))
    assert code == 0
    code, stdout, _ = cli(
        "certs", "list", "--registry", str(tmp_path / "sb" / "registry.toml"), "--format", "json"
    )
    assert code == 0 and {r["family"] for r in json.loads(stdout)} == {"rsa", "sm2"}
    code, _, err = cli("certs", "init-sandbox", "--dir", str(tmp_path / "sb"))
    assert code == 2 and "exists" in err
