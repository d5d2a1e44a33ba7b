"""Helpers for transport tests that run the workers without the HTTP service."""

from __future__ import annotations

import aiormq

from gateway import pipeline
from gateway.accounts import read_accounts
from gateway.catalog import load as load_catalog
from gateway.config import Settings
from gateway.dsig import load_registry
from gateway.store import Store
from gateway.transport.common import ReceiptTaker
from gateway.transportconfig import AmqpSettings


async def delete_names(s: AmqpSettings) -> None:
    """Delete a test's queues and exchange."""
    conn = await aiormq.connect(s.url)
    try:
        ch = await conn.channel()
        for q in (s.receipts_queue, s.dead_letter_queue, *s.customs_queues.values()):
            await ch.queue_delete(q)
        await ch.exchange_delete(s.exchange)
    finally:
        await conn.close()


def receipt_taker(s: Settings, store: Store) -> ReceiptTaker:
    """The receipt stages as the sandbox customs account, on ``store``."""
    return ReceiptTaker(load_catalog(), load_registry(s.registry_path), s.policy, store,
                        lambda: read_accounts(s.accounts_path),
                        pipeline.Limits(s.max_body_bytes, s.max_depth), s.require_customs_signature,
                        "customs")


async def submit(s: Settings, store: Store, owner: str, data: bytes) -> pipeline.Accepted:
    """Store a declaration through the submission stages, as ``owner``."""
    account = read_accounts(s.accounts_path).by_name(owner)
    assert account is not None
    deps = pipeline.SubmitDeps(load_catalog(), load_registry(s.registry_path), s.policy, store,
                               pipeline.Limits(s.max_body_bytes, s.max_depth))
    return await pipeline.submit(data, account, deps)
