"""Transport tests: the sandbox as for the service tests, and the local RabbitMQ.

RabbitMQ tests run against ``CEBGW_TEST_AMQP_URL`` (default the local broker, guest/guest).
With ``CI=true`` an unreachable broker fails them; elsewhere they skip, saying why.  Each
test uses its own exchange and queue names, so parallel runs do not meet.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from service.kit import Sandbox

from gateway.sandbox import datadir
from gateway.sandbox.transports import sandbox_amqp
from gateway.transportconfig import AmqpSettings

from .kit import delete_names

AMQP_URL = os.environ.get("CEBGW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


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


def _reachable(url: str) -> str | None:
    u = urlsplit(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 5672), timeout=2):
            return None
    except OSError as exc:
        return f"RabbitMQ at {u.hostname}:{u.port or 5672} is unreachable ({exc})"


@pytest.fixture(scope="session")
def amqp_url() -> str:
    why = _reachable(AMQP_URL)
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI must run the AMQP tests")
        pytest.skip(f"{why}; set CEBGW_TEST_AMQP_URL or start RabbitMQ (CI=true makes this a failure)")
    return AMQP_URL


@pytest.fixture
def amqp(amqp_url: str) -> Iterator[AmqpSettings]:
    """The sandbox wiring under names of this test's own (deleted afterwards); short timeouts."""
    name = f"cebgw-test-{uuid.uuid4().hex[:10]}"
    s = sandbox_amqp(f"{amqp_url}?name={name}", prefix=name)
    from dataclasses import replace
    s = replace(s, poll_interval_s=0.05, reconnect_max_s=1.0, confirm_timeout_s=10.0)
    yield s
    asyncio.run(delete_names(s))
