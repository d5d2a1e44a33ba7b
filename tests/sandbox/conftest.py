"""A sandbox data directory of its own for each test (tokens, accounts) and its store."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.sandbox import datadir
from tests.service.kit import Sandbox


@pytest.fixture
def sb(tmp_path: Path) -> Sandbox:
    root = tmp_path / "sandbox"
    info = datadir.ensure(root, url="http://127.0.0.1:0")
    settings = datadir.settings_for(root).with_(store_url=f"sqlite:///{tmp_path / 'gw.db'}")
    return Sandbox(root, info, settings)
