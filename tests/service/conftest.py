"""One sandbox data directory per session; each test gets its own store database.

A test taking ``sb`` runs on both stores (SQLite, and a PostgreSQL schema of its own: see
tests/pgkit.py) unless marked ``sqlite_only`` (it reads or damages the SQLite file itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from pgkit import fresh_schema

from gateway.accounts import read_accounts, write_accounts
from gateway.sandbox import datadir

from .kit import Sandbox
from .parcelkit import POLICIES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sb" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("store_kind", ["sqlite"] if only else ["sqlite", "postgresql"])


@pytest.fixture(scope="session")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sandbox")
    datadir.ensure(root, url="http://127.0.0.1:0")
    return root


@pytest.fixture
def sb(sandbox_dir: Path, tmp_path: Path, store_kind: str) -> Iterator[Sandbox]:
    info = datadir.ensure(sandbox_dir, url="http://127.0.0.1:0")
    if store_kind == "sqlite":
        settings = datadir.settings_for(sandbox_dir).with_(store_url=f"sqlite:///{tmp_path / 'gw.db'}")
        yield Sandbox(sandbox_dir, info, settings)
        return
    with fresh_schema("service") as url:
        yield Sandbox(sandbox_dir, info, datadir.settings_for(sandbox_dir).with_(store_url=url))


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
