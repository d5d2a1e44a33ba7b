"""PostgreSQL for tests: a fresh schema per test in the server CI has (``CEBGW_TEST_PG_URL``,
default ``postgresql://postgres@127.0.0.1:5432/test``), dropped afterwards, so parallel runs never
meet.  With ``CI=true`` an unreachable server fails the test; elsewhere it skips, saying why."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

PG_URL = os.environ.get("CEBGW_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def unreachable() -> str | None:
    """Why the test server cannot be used, or ``None``."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_URL} is unreachable ({' '.join(str(exc).split())})"
    return None


def require() -> None:
    """Fail (CI) or skip (elsewhere) unless the test server answers."""
    why = unreachable()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI must run the PostgreSQL tests")
        pytest.skip(f"{why}; set CEBGW_TEST_PG_URL or start PostgreSQL (CI=true makes this a failure)")


def url_for(schema: str) -> str:
    """The test server's URL with ``schema`` as its search_path."""
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"


def drop(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def fresh_schema(prefix: str = "t") -> Iterator[str]:
    """A URL naming a schema of its own (created by the store on open), dropped afterwards."""
    require()
    schema = f"cebgw_{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield url_for(schema)
    finally:
        drop(schema)
