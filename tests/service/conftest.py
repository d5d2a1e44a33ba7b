"""One sandbox data directory per session; each test gets its own store database."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.sandbox import datadir

from .kit import Sandbox


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
