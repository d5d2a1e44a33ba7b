"""One sandbox data directory per session; each test gets its own store database."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gateway.accounts import read_accounts, write_accounts
from gateway.sandbox import datadir

from .kit import Sandbox
from .parcelkit import POLICIES


@pytest.fixture(scope="session")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sandbox")
    datadir.ensure(root, url="http://127.0.0.1:0")
    return root


@pytest.fixture
def sb(sandbox_dir: Path, tmp_path: Path) -> Sandbox:
    info = datadir.ensure(sandbox_dir, url="http://127.0.0.1:0")
    settings = datadir.settings_for(sandbox_dir).with_(store_url=f"sqlite:///{tmp_path / 'gw.db'}")
    return Sandbox(sandbox_dir, info, settings)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sandbox data directory of its own, whose accounts carry :data:`POLICIES`."""
    root = tmp_path_factory.mktemp("sandbox-preflight")
    datadir.ensure(root, url="http://127.0.0.1:0")
    path = datadir.settings_for(root).accounts_path
    accounts = read_accounts(path)
    write_accounts(path, type(accounts)(tuple(replace(a, preflight=POLICIES.get(a.name, "off"))
                                              for a in accounts.accounts)))
    return root


@pytest.fixture
def psb(policy_dir: Path, tmp_path: Path) -> Sandbox:
    info = datadir.ensure(policy_dir, url="http://127.0.0.1:0")
    settings = datadir.settings_for(policy_dir).with_(store_url=f"sqlite:///{tmp_path / 'gw.db'}")
    return Sandbox(policy_dir, info, settings)
