"""The registry file: loading, clear errors, includes, revocation files, expiry, add."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.dsig import load_registry
from gateway.dsig.registry import Registry, add_entry
from gateway.errors import ConfigError

from .conftest import ECOMMERCE_CODE, SANDBOX


def test_sandbox_registry(registry: Registry) -> None:
    assert len(registry.entries) == 16
    names = {e.name for e in registry.for_identity(ECOMMERCE_CODE)}
    assert names == {"ecommerce-rsa", "ecommerce-sm2"}
    assert {e.name for e in registry.for_identity("DXPENT0000458762")} == names
    e = registry.entries[0]
    assert registry.by_der(e.der) is e


def test_repo_default_registry_includes_sandbox() -> None:
    reg = load_registry(SANDBOX.parent / "registry.toml")
    assert len(reg.entries) == 16


def _write(tmp_path: Path, text: str) -> Path:
    shutil.copy(SANDBOX / "platform-rsa.cert.pem", tmp_path / "p.pem")
    path = tmp_path / "registry.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "text,fragment",
    [
        ('[[cert]]\nname = "a"\nfile = "p.pem"\n', "cert[0] (a): an entry needs at least one code"),
        ('[[cert]]\nname = "a"\nfile = "missing.pem"\ncodes = ["X"]\n', "cert[0] (a): file: cannot read"),
        ('[[cert]]\nname = "a"\nfile = "registry.toml"\ncodes = ["X"]\n', "cert[0] (a): file:"),
        ('[[cert]]\nfile = "p.pem"\ncodes = ["X"]\n', "cert[0]: name is required"),
        ('[[cert]]\nname = "a"\nfile = "p.pem"\ncodes = "X"\n', "codes must be a list"),
        ('[[cert]]\nname = "a"\nfile = "p.pem"\ncodes = ["X"]\ncolour = 1\n', "unknown field(s) ['colour']"),
        (
            '[[cert]]\nname = "a"\nfile = "p.pem"\ncodes = ["X"]\nnot_after = 2030-01-01\n',
            "not_after must be",
        ),
        (
            '[[cert]]\nname = "a"\nfile = "p.pem"\ncodes = ["X"]\n'
            '[[cert]]\nname = "b"\nfile = "p.pem"\ncodes = ["Y"]\n',
            "registered twice",
        ),
        ("warn_days = -1\n", "warn_days"),
        ("this is not toml", "not valid TOML"),
        ('revoked = ["nope.txt"]\n', "revoked: cannot read"),
    ],
)
def test_clear_errors(tmp_path: Path, text: str, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_registry(path)
    assert fragment in exc.value.message
    assert str(tmp_path) in exc.value.message


def test_revoked_file_and_bad_serial(tmp_path: Path) -> None:
    (tmp_path / "revoked.txt").write_text("# comment\n0A:0B  # colon form\nff\n", encoding="utf-8")
    reg = load_registry(_write(tmp_path, 'revoked = ["revoked.txt"]\n'))
    assert reg.revoked_serials == {0x0A0B, 0xFF}
    (tmp_path / "revoked.txt").write_text("zz\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"revoked.txt:1"):
        load_registry(tmp_path / "registry.toml")


def test_narrowed_window_and_expiry_warnings(tmp_path: Path) -> None:
    soon = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    reg = load_registry(
        _write(
            tmp_path, f'[[cert]]\nname = "a"\nfile = "p.pem"\ncodes = ["X"]\nnot_after = {soon.isoformat()}\n'
        )
    )
    assert reg.entries[0].not_after == soon
    assert [e.name for e in reg.expiring(datetime.now(UTC), 30)] == ["a"]
    assert reg.expiring(datetime.now(UTC), 5) == []


def test_add_entry(tmp_path: Path) -> None:
    path = _write(tmp_path, "warn_days = 30\n")
    entry = add_entry(path, tmp_path / "p.pem", name="platform", codes=["3301964J31"], dxp_ids=["DXPENT1"])
    assert entry.may_sign_for("DXPENT1")
    assert load_registry(path).entries[0].name == "platform"
    with pytest.raises(ConfigError, match="registered twice"):
        add_entry(path, tmp_path / "p.pem", name="again", codes=["Y"], dxp_ids=[])
    assert "again" not in path.read_text(encoding="utf-8")
