"""Store fixtures: a database path and a clock the test moves."""

from __future__ import annotations

from pathlib import Path

import pytest
from storekit import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "gw.db")
