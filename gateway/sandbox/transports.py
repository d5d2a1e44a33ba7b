"""The customs side over the AMQP and folder transports (sandbox, demos, tests).

The same answers as over HTTP (:func:`gateway.sandbox.customs.answers`), carried the way the
exchange platform would: envelopes read from the customs queues (or a DXP client's send
folder), signed receipts published to the receipts queue (or written into the receive folder).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiormq
from pamqp.commands import Basic

from ..dsig import KeyProvider
from ..envelope import RECEIVER_EXPORT, RECEIVER_IMPORT
from ..errors import GatewayError
from ..transportconfig import ANY_SENDER, AmqpSettings, FolderPair, FolderSettings
from .customs import Answer, answers_to_envelope

EXCHANGE = "cebgw"
RECEIPTS_QUEUE = "cebgw.receipts"
DEAD_LETTER_QUEUE = "cebgw.receipts.dead"


def customs_queue(receiver_id: str, prefix: str = "cebgw") -> str:
    """The sandbox's queue where customs (``receiver_id``) reads its envelopes."""
    return f"{prefix}.customs.{receiver_id}"


def sandbox_amqp(url: str, prefix: str = "cebgw") -> AmqpSettings:
    """The sandbox's AMQP wiring: default names (under ``prefix``), declared durable by the gateway."""
    return AmqpSettings(url=url, exchange=prefix, receipts_queue=f"{prefix}.receipts",
                        dead_letter_queue=f"{prefix}.receipts.dead",
                        customs_queues={r: customs_queue(r, prefix)
                                        for r in (RECEIVER_IMPORT, RECEIVER_EXPORT)})


def amqp_info(s: AmqpSettings) -> dict[str, object]:
    """The ``"amqp"`` entry of ``sandbox.json``: where customs reads and writes."""
    return {"url": s.url, "exchange": s.exchange, "customs_queues": dict(s.customs_queues),
            "receipts_queue": s.receipts_queue, "dead_letter_queue": s.dead_letter_queue}


def sandbox_folders(root: Path) -> FolderSettings:
    """The sandbox's DXP-client folders: one pair under ``root`` for every sender."""
    return FolderSettings((FolderPair(ANY_SENDER, root / "send", root / "receive"),), poll_interval_s=0.2)


def folders_info(s: FolderSettings) -> dict[str, object]:
    """The ``"folders"`` entry of ``sandbox.json``."""
    return {p.dxp_id: {"send": str(p.send), "receive": str(p.receive)} for p in s.pairs}


@dataclass
class Played:
    """What one round of playing customs did."""

    envelopes: int = 0
    receipts: int = 0
    failed: list[str] = field(default_factory=list)


Report = Callable[[str], None]


async def answer_amqp(url: str, queues: Sequence[str], receipts_queue: str, statuses: Sequence[str],
                      key: KeyProvider, *, info: str | None = None, report: Report = print) -> Played:
    """Take every envelope waiting in ``queues``, publish (confirmed) its receipts to
    ``receipts_queue``, then ack it; an envelope that cannot be answered is rejected to its queue's
    dead end (not requeued) and named in ``failed``."""
    played = Played()
    conn = await aiormq.connect(url)
    try:
        ch = await conn.channel(publisher_confirms=True)
        for queue in queues:
            while True:
                got = await ch.basic_get(queue, no_ack=False)
                if not isinstance(got.delivery, Basic.GetOk):
                    break
                tag = got.delivery.delivery_tag or 0
                try:
                    found = answers_to_envelope(got.body, statuses, key, info=info)
                except GatewayError as exc:
                    played.failed.append(f"{queue}: {exc.message}")
                    await ch.basic_reject(tag, requeue=False)
                    continue
                for a in found:
                    await ch.basic_publish(a.data, routing_key=receipts_queue, properties=Basic.Properties(
                        content_type="text/xml", content_encoding="utf-8", delivery_mode=2,
                        message_id=str(uuid.uuid4()).upper()))
                    report(_line(a))
                await ch.basic_ack(tag)
                played.envelopes += 1
                played.receipts += len(found)
    finally:
        await conn.close()
    return played


def answer_folder(send: Path, receive: Path, statuses: Sequence[str], key: KeyProvider, *,
                  info: str | None = None, report: Report = print) -> Played:
    """Play the DXP client and customs: answer each envelope in ``send`` (oldest first) with
    receipts written whole into ``receive``, then remove the envelope, as a client does once sent."""
    played = Played()
    files = sorted((p for p in send.glob("*.xml") if not p.name.startswith(".")),
                   key=lambda p: (p.stat().st_mtime_ns, p.name))
    for path in files:
        try:
            found = answers_to_envelope(path.read_bytes(), statuses, key, info=info)
        except GatewayError as exc:
            played.failed.append(f"{path}: {exc.message}")
            continue
        for a in found:
            _write_whole(receive, f"{a.receipt_type}Message_{str(uuid.uuid4()).upper()}.xml", a.data)
            report(_line(a))
        path.unlink()
        played.envelopes += 1
        played.receipts += len(found)
    return played


def _line(a: Answer) -> str:
    return f"{a.declaration_type} record {a.record_no}: {a.receipt_type} status {a.status} sent"


def _write_whole(folder: Path, name: str, data: bytes) -> None:
    tmp = folder / f".{name}.tmp"
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / name)

