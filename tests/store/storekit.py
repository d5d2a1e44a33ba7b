"""Store test kit: an injectable clock, message and receipt builders, an asyncio runner."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from gateway.store import NewMessage, NewReceipt, Subscriber
from gateway.store.sqlite import SqliteStore


def aio(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test function on a fresh event loop (no pytest-asyncio needed)."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))
    return run


@dataclass
class FakeClock:
    """Seconds since the epoch that move only when a test says so."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds



def any_store(db: str, *, clock: FakeClock | None = None) -> Any:
    """The store ``db`` names: a SQLite file path, or a ``postgresql://`` URL (the ``db`` fixture)."""
    if db.startswith("postgresql://"):
        from gateway.store.postgres import PostgresStore

        return PostgresStore(db, clock=clock)
    return SqliteStore(db, clock=clock)


def message(n: int = 0, *, tenant: str = "acme", sender: str = "3301960001", mtype: str = "CEB621",
            guid: str | None = None, keys: list[dict[str, str]] | None = None,
            subscribers: tuple[Subscriber, ...] = (), body: str = "") -> NewMessage:
    """A declaration whose bytes differ for every ``n`` (and ``body``)."""
    guid = guid or str(uuid.uuid5(uuid.NAMESPACE_OID, f"{tenant}/{sender}/{n}")).upper()
    data = (f'<ceb:{mtype}Message xmlns:ceb="http://www.chinaport.gov.cn/ceb" guid="{guid}" version="1.0">'
            f"<n>{n}</n>{body}</ceb:{mtype}Message>").encode()
    return NewMessage(
        tenant=tenant, sender_code=sender, message_type=mtype, guid=guid, data=data,
        business_keys=keys if keys is not None else [{"copNo": f"COP{n}"}],
        envelope=b"<dxp:DxpMsg>" + data + b"</dxp:DxpMsg>", cop_msg_id=f"MSG{n}", subscribers=subscribers)


def receipt(status: str, declaration_id: int | None, *, n: int = 0, return_time: str | None = None,
            mailboxes: tuple[str, ...] = (), keys: dict[str, str] | None = None,
            mtype: str = "CEB622", record_no: int = 0, reason: str = "") -> NewReceipt:
    """One receipt record; the message bytes differ per ``status`` and ``n``."""
    rt = return_time or f"20240101120000{n:03d}"
    data = f"<ceb:{mtype}Message><r>{status}/{n}/{rt}</r></ceb:{mtype}Message>".encode()
    return NewReceipt(message_type=mtype, guid=str(uuid.uuid4()).upper(), data=data, record_no=record_no,
                      status=status, return_time=rt, info=f"info {status}",
                      business_keys=keys if keys is not None else {"copNo": f"COP{n}"},
                      declaration_id=declaration_id, mailboxes=mailboxes, reason=reason)
