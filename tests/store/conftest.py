"""Store fixtures: a database (SQLite path or PostgreSQL URL) and a clock the test moves.

A test taking ``db`` runs on both stores unless marked ``sqlite_only`` (it checks SQLite itself:
its file, its lock, its triggers' text); ``db`` is then a file path or a ``postgresql://`` URL with
a schema of the test's own (see tests/pgkit.py), and ``storekit.any_store`` opens either.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pgkit import fresh_schema
from storekit import FakeClock


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only")
        kinds = ["sqlite"] if only else ["sqlite", "postgresql"]
        metafunc.parametrize("db_kind", kinds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path, db_kind: str) -> Iterator[str]:
    if db_kind == "sqlite":
        yield str(tmp_path / "gw.db")
        return
    with fresh_schema("store") as url:
        yield url
