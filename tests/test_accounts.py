"""The accounts registry's own rules, without the CLI: a client certificate authenticates one
account only, whether it is registered through with_client_cert or written into the file."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.accounts import (
    Account,
    Accounts,
    parse_accounts,
    render_accounts,
    with_client_cert,
    without_client_cert,
)
from gateway.errors import ConfigError

FP = "ab" * 32


def _registry() -> Accounts:
    return Accounts((Account("acme", frozenset({"ecommerce"}), frozenset({"C1"}), "DXP1"),
                     Account("bolt", frozenset({"payment"}), frozenset({"C2"}), "DXP2")))


def test_a_client_certificate_is_registered_for_one_account_only() -> None:
    accounts = with_client_cert(_registry(), "acme", FP.upper())
    holder = accounts.by_client_cert(FP)
    assert holder is not None and holder.name == "acme"
    for name in ("acme", "bolt"):
        with pytest.raises(ConfigError, match="registered for acme already"):
            with_client_cert(accounts, name, FP)
    removed = without_client_cert(accounts, "acme", FP)
    assert removed.by_client_cert(FP) is None
    with pytest.raises(ConfigError, match="not registered for acme"):
        without_client_cert(removed, "acme", FP)
    with pytest.raises(ConfigError, match="no account 'nobody'"):
        with_client_cert(removed, "nobody", FP)


def test_a_file_giving_one_certificate_to_two_accounts_is_refused() -> None:
    rows = [replace(a, client_cert_hashes=(FP,)) for a in _registry().accounts]
    with pytest.raises(ConfigError, match="one account only"):
        parse_accounts(render_accounts(rows))
