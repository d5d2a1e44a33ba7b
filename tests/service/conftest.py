"""One sandbox data directory per session; each test gets its own store database.

A test taking ``sb`` runs on both stores (SQLite, and a PostgreSQL schema of its own: see
tests/pgkit.py) unless marked ``sqlite_only`` (it reads or damages the SQLite file itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pgkit import fresh_schema

from gateway.sandbox import datadir

from .kit import Sandbox


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
