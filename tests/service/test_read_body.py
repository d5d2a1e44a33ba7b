"""Reading a request body: whole at once when it came with its headers, else under a timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from gateway.config import Settings
from gateway.errors import ParseError, RequestTimeout
from gateway.service.handlers import _read_body
from gateway.service.keys import SETTINGS


def _request(payload: StreamReader, length: int) -> web.Request:
    app = web.Application()
    app[SETTINGS] = Settings(store_url="sqlite:///:memory:", registry_path=Path("r.toml"),
                             accounts_path=Path("a.toml"), body_timeout_s=0.2)
    return make_mocked_request("POST", "/v1/messages", headers={"Content-Length": str(length)},
                               payload=payload, app=app)


def _payload(data: bytes, *, eof: bool) -> StreamReader:
    payload = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    payload.feed_data(data)
    if eof:
        payload.feed_eof()
    return payload


async def _read(data: bytes, length: int, *, eof: bool, gone: bool = False) -> bytes:
    payload = _payload(data, eof=eof)
    if gone:
        payload.set_exception(ConnectionResetError("the client left"))
    return await _read_body(_request(payload, length), 1 << 20, length)


def test_a_body_that_came_whole_is_read_at_once() -> None:
    assert asyncio.run(_read(b"<a/>", 4, eof=True)) == b"<a/>"


def test_a_client_gone_after_its_whole_body_is_refused_as_ended_early() -> None:
    with pytest.raises(ParseError, match="ended early"):
        asyncio.run(_read(b"<a/>", 4, eof=True, gone=True))


def test_a_body_still_arriving_is_read_under_the_timeout() -> None:
    with pytest.raises(RequestTimeout):
        asyncio.run(_read(b"<a", 4, eof=False))
