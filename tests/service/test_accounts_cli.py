"""``cebgw accounts``: onboarding an enterprise, rotating its token, registering its mutual-TLS
certificate and removing it, on a file a running gateway picks up without a restart."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.accounts import parse_accounts, read_accounts

from .kit import Sandbox, aio, running

Cli = Callable[..., tuple[int, str, str]]


def _token(out: str) -> str:
    (line,) = out.strip().splitlines()
    assert line.startswith("cebgw_")
    return line


def test_add_list_rotate_and_remove(cli: Cli, tmp_path: Path) -> None:
    path = str(tmp_path / "accounts.toml")
    code, out, err = cli("accounts", "add", "acme", "--roles", "ecommerce", "agent", "--codes", "3301960A7Z",
                         "--dxp-id", "DXPENT0000458762", "--certificate", "acme-rsa", "--accounts", path)
    assert code == 0, err
    first = _token(out)
    assert "shown only once" in err and first not in Path(path).read_text()   # only its hash is stored
    found = read_accounts(path).by_token(first)
    assert found is not None
    assert (found.name, found.roles, found.codes, found.dxp_id, found.certificates) == (
        "acme", frozenset({"ecommerce", "agent"}), frozenset({"3301960A7Z"}), "DXPENT0000458762",
        ("acme-rsa",))
    assert Path(path).stat().st_mode & 0o777 == 0o600

    code, out, _ = cli("accounts", "add", "customs", "--roles", "customs", "--accounts", path)
    assert code == 0
    code, out, _ = cli("accounts", "list", "--format", "json", "--accounts", path)
    rows = json.loads(out)
    assert [(r["name"], r["tokens"]) for r in rows] == [("acme", 1), ("customs", 1)]
    assert "cebgw_" not in out and first not in out

    code, out, _ = cli("accounts", "token", "acme", "--accounts", path)
    second = _token(out)
    assert None not in (read_accounts(path).by_token(first), read_accounts(path).by_token(second))
    code, out, _ = cli("accounts", "token", "acme", "--replace", "--accounts", path)
    third = _token(out)
    accounts = read_accounts(path)
    assert accounts.by_token(first) is None and accounts.by_token(second) is None
    assert accounts.by_token(third) is not None

    code, out, _ = cli("accounts", "remove", "acme", "--accounts", path)
    assert code == 0 and read_accounts(path).by_token(third) is None
    assert [a.name for a in read_accounts(path).accounts] == ["customs"]
    code, out, _ = cli("accounts", "list", "--accounts", path)
    assert out.startswith("customs ")


def test_client_certificate_fingerprint_is_what_mutual_tls_presents(cli: Cli, tmp_path: Path,
                                                                    sb: Sandbox) -> None:
    path = tmp_path / "accounts.toml"
    shutil.copy(sb.settings.accounts_path, path)
    cert = Path(sb.account("ecommerce")["cert"])
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(Encoding.DER)
    (tmp_path / "client.der").write_bytes(der)
    code, out, err = cli("accounts", "client-cert", "ecommerce", str(cert), "--accounts", str(path))
    assert code == 0, err
    fingerprint = hashlib.sha256(der).hexdigest()   # what the middleware computes from the TLS peer
    assert fingerprint in out
    found = read_accounts(path).by_client_cert(fingerprint)
    assert found is not None and found.name == "ecommerce"
    # the same certificate, DER this time, cannot be registered twice (nor for another account)
    der_file = str(tmp_path / "client.der")
    code, _, err = cli("accounts", "client-cert", "payment", der_file, "--accounts", str(path))
    assert code == 2 and "registered for ecommerce already" in err
    code, _, err = cli("accounts", "client-cert", "ecommerce", str(cert), "--remove", "--accounts", str(path))
    assert code == 0 and read_accounts(path).by_client_cert(fingerprint) is None
    code, _, err = cli("accounts", "client-cert", "ecommerce", str(cert), "--remove", "--accounts", str(path))
    assert code == 2 and "is not registered for ecommerce" in err


@pytest.mark.parametrize("argv,needle", [
    (("add", "x", "--roles", "ecommerce", "--codes", "C1"), "needs its enterprise codes and its DXP id"),
    (("add", "x", "--roles", "ecommerce", "--dxp-id", "DXPENT1"), "needs its enterprise codes"),
    (("add", "x", "--roles", "wizard"), "roles ['wizard']"),
    (("add", "bad name", "--roles", "customs"), "account name 'bad name'"),
    (("add", "x", "--roles", "payment", "--codes", "C1", "--dxp-id", "DXP-WITH-DASH"), "dxp_id"),
    (("add", "acme", "--roles", "customs"), "account 'acme' exists already"),
    (("add", "y", "--roles", "payment", "--codes", "3301960A7Z", "--dxp-id", "DXPENT2"),
     "codes ['3301960A7Z'] belong to account 'acme'"),
    (("add", "y", "--roles", "payment", "--codes", "C9", "--dxp-id", "DXPENT0000458762"),
     "DXP id DXPENT0000458762 belongs to account 'acme'"),
    (("token", "nobody"), "no account 'nobody'"),
    (("remove", "nobody"), "no account 'nobody'"),
    (("client-cert", "acme", "accounts.toml"), "not an X.509 certificate"),
    (("client-cert", "acme", "missing.pem"), "cannot read missing.pem"),
])
def test_bad_requests_name_the_problem_and_leave_the_file_alone(cli: Cli, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                argv: tuple[str, ...], needle: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CEBGW_ACCOUNTS", "accounts.toml")
    assert cli("accounts", "add", "acme", "--roles", "ecommerce", "--codes", "3301960A7Z",
               "--dxp-id", "DXPENT0000458762")[0] == 0
    before = Path("accounts.toml").read_bytes()
    code, out, err = cli("accounts", *argv)
    assert code != 0 and needle in err, err
    assert out == "" and Path("accounts.toml").read_bytes() == before


def test_without_a_file_it_asks_which(cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CEBGW_ACCOUNTS", raising=False)
    code, _, err = cli("accounts", "list")
    assert code == 2 and "--accounts FILE" in err
    code, _, err = cli("accounts", "list", "--accounts", str(tmp_path / "none.toml"))
    assert code != 0 and "no such accounts file" in err


def test_names_with_quotes_and_unicode_survive_the_file(tmp_path: Path) -> None:
    from gateway.accounts import Account, Accounts, write_accounts
    odd = Account("q", frozenset({"customs"}), frozenset({'a"b\\c', "跨境"}), "DXP1")
    write_accounts(tmp_path / "a.toml", Accounts((odd,)))
    assert parse_accounts((tmp_path / "a.toml").read_text(encoding="utf-8")).accounts == (odd,)


@aio
async def test_a_running_gateway_takes_changes_without_restart(cli: Cli, tmp_path: Path, sb: Sandbox) -> None:
    path = tmp_path / "accounts.toml"
    shutil.copy(sb.settings.accounts_path, path)
    settings = sb.settings.with_(accounts_path=path, accounts_check_interval_s=0.0)
    async with running(settings) as api:
        code, out, _ = cli("accounts", "add", "newco", "--roles", "logistics", "--codes", "9999999999",
                           "--dxp-id", "DXPLGS0000000099", "--accounts", str(path))
        assert code == 0
        token = _token(out)
        status, _ = await api.get(token, "/v1/receipts")
        assert status == 200
        code, out, _ = cli("accounts", "token", "newco", "--replace", "--accounts", str(path))
        rotated = _token(out)
        await asyncio.sleep(0.01)  # a new modification time
        assert (await api.get(token, "/v1/receipts"))[0] == 401
        assert (await api.get(rotated, "/v1/receipts"))[0] == 200
        assert cli("accounts", "remove", "newco", "--accounts", str(path))[0] == 0
        assert (await api.get(rotated, "/v1/receipts"))[0] == 401
