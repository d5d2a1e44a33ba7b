"""The pre-flight settings: each account's policy in the accounts file, the limits in the settings."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.accounts import parse_accounts, render_accounts
from gateway.config import from_mapping
from gateway.errors import ConfigError

ACCOUNT = """
[[account]]
name = "ecommerce"
roles = ["ecommerce"]
codes = ["3301960A7Z"]
dxp_id = "DXPENT0000458762"
"""


def test_an_account_names_its_policy_and_it_reads_back() -> None:
    assert parse_accounts(ACCOUNT).accounts[0].preflight == "off"
    held = parse_accounts(ACCOUNT + 'preflight = "hold"\n')
    assert held.accounts[0].preflight == "hold"
    assert parse_accounts(render_accounts(held.accounts)).accounts[0].preflight == "hold"
    with pytest.raises(ConfigError, match="preflight must be one of off, warn, hold"):
        parse_accounts(ACCOUNT + 'preflight = "sometimes"\n')


def test_the_limits_are_exact_decimals_from_the_settings(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text("", encoding="utf-8")
    (tmp_path / "a.toml").write_text("", encoding="utf-8")
    base = {"store_url": "sqlite:///x.db", "registry_path": "r.toml", "accounts_path": "a.toml"}
    s = from_mapping({**base, "single_limit": "4999.99", "annual_limit": 30000}, tmp_path)
    assert (s.single_limit, s.annual_limit) == (Decimal("4999.99"), Decimal("30000"))
    assert from_mapping(base, tmp_path).annual_limit == Decimal("26000")
    with pytest.raises(ConfigError, match="single_limit must be a decimal amount"):
        from_mapping({**base, "single_limit": "lots"}, tmp_path)
