"""DXP transport envelopes (spec §9): wrap a CEB message in ``DxpMsg``, unwrap ``DxpMsg``/``DxpMsgSv``.

The business message travels as base64 of its exact bytes, so a signed message is
never re-serialized on its way to customs.
"""

from __future__ import annotations

import base64
import binascii
import functools
import html
import os
import random
import time
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from .catalog import BEIJING, DXP_NS
from .errors import EnvelopeError
from .xmlio import Parsed, parse, text

RECEIVER_IMPORT = "DXPEDCCEB0000002"
RECEIVER_EXPORT = "DXPEDCCEB0000003"

_D = f"{{{DXP_NS}}}"


@dataclass(frozen=True)
class TransInfo:
    """The routing header of a ``DxpMsg``."""

    cop_msg_id: str
    sender_id: str
    receiver_ids: tuple[str, ...]
    created: str
    msg_type: str


@dataclass(frozen=True)
class Unwrapped:
    """The business message inside an envelope, with the envelope's header."""

    trans: TransInfo
    inner: Parsed
    sv_msg_id: str | None = None


def unwrap(envelope: Parsed, *, max_bytes: int | None = None, **bounds: int) -> Unwrapped:
    """Open a ``DxpMsg`` (or a ``DxpMsgSv`` around one) and parse the business message in ``Data``
    (``max_bytes`` and ``bounds`` are the parser's limits, see :func:`gateway.xmlio.parse`).

    Raises :class:`EnvelopeError` when the envelope has no usable ``Data``.
    """
    root, sv_id = _dxp_msg(envelope)
    trans = _trans(root)
    data_el = root.find(_D + "Data")
    if data_el is None or not (data_el.text or "").strip():
        raise EnvelopeError(f"{envelope.source}: DxpMsg has no Data", field="Data")
    try:
        raw = base64.b64decode("".join((data_el.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{envelope.source}: Data is not valid base64", field="Data") from None
    limits = dict(bounds) if max_bytes is None else {**bounds, "max_bytes": max_bytes}
    inner = parse(raw, source=f"{envelope.source}#Data", **limits)
    return Unwrapped(trans, inner, sv_id)


def trans_info(envelope: Parsed) -> TransInfo:
    """The routing header of a ``DxpMsg`` (or of the one in a ``DxpMsgSv``), ``Data`` left unread.
    Raises :class:`EnvelopeError` when it is not an envelope."""
    return _trans(_dxp_msg(envelope)[0])


def _dxp_msg(envelope: Parsed) -> tuple[etree._Element, str | None]:
    root = envelope.root
    sv_id: str | None = None
    if root.tag == _D + "DxpMsgSv":
        sv_id = text(root.find(f"{_D}SvNo/{_D}MsgId")) or None
        inner_env = root.find(_D + "DxpMsg")
        if inner_env is None:
            raise EnvelopeError(f"{envelope.source}: DxpMsgSv has no DxpMsg", field="DxpMsg")
        root = inner_env
    if root.tag != _D + "DxpMsg":
        raise EnvelopeError(f"{envelope.source}: not a DxpMsg envelope", field="DxpMsg")
    return root, sv_id


def _trans(root: etree._Element) -> TransInfo:
    ti = root.find(_D + "TransInfo")
    return TransInfo(
        cop_msg_id=text(ti.find(_D + "CopMsgId")) if ti is not None else "",
        sender_id=text(ti.find(_D + "SenderId")) if ti is not None else "",
        receiver_ids=tuple(text(r) for r in root.iterfind(f"{_D}TransInfo/{_D}ReceiverIds/{_D}ReceiverId")),
        created=text(ti.find(_D + "CreatTime")) if ti is not None else "",
        msg_type=text(ti.find(_D + "MsgType")) if ti is not None else "",
    )


class _IdBits(random.Random):
    """Random bits for ids (not secrets): seeded from the OS once per process and again in a
    forked child, so no two processes share a sequence; one ``os.urandom`` call per id cost
    ~25 µs under load."""

    def __init__(self) -> None:
        super().__init__(os.urandom(32))
        os.register_at_fork(after_in_child=lambda: self.seed(os.urandom(32)))


_ID_BITS = _IdBits()


def new_cop_msg_id() -> str:
    """A new uppercase UUID for ``CopMsgId``: version 7 (RFC 9562), so ids made later sort
    later and the store's index on them grows at one end instead of at random pages."""
    ms = time.time_ns() // 1_000_000
    rand = _ID_BITS.getrandbits(74)  # 12 bits for rand_a, 62 for rand_b
    value = ((ms & (1 << 48) - 1) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
             | 0b10 << 62 | rand & (1 << 62) - 1)
    h = f"{value:032X}"  # what str(uuid.UUID(int=value)).upper() writes, without the object
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def creat_time(now: datetime | None = None) -> str:
    """``yyyy-MM-ddTHH:mm:ss`` in Beijing time, as DXP ``CreatTime`` expects."""
    if now is None:
        return _creat_time_at(int(time.time()))
    return now.astimezone(BEIJING).strftime("%Y-%m-%dT%H:%M:%S")


@functools.lru_cache(maxsize=4)
def _creat_time_at(epoch_second: int) -> str:
    # Every submission needs one, thousands per second: format each second once.
    return datetime.fromtimestamp(epoch_second, BEIJING).strftime("%Y-%m-%dT%H:%M:%S")


def receiver_for(flow: str) -> str:
    """The customs CEB system's DXP id for an import or export message."""
    return RECEIVER_EXPORT if flow == "export" else RECEIVER_IMPORT


def wrap(data: bytes, *, msg_type: str, sender_id: str, receiver_ids: tuple[str, ...],
         cop_msg_id: str | None = None, created: str | None = None,
         file_name: str | None = None) -> bytes:
    """Build a ``DxpMsg`` carrying ``data`` (the exact bytes, base64) for the receivers."""
    head, tail = wrap_parts(msg_type=msg_type, sender_id=sender_id, receiver_ids=receiver_ids,
                            cop_msg_id=cop_msg_id, created=created, file_name=file_name)
    return head + base64.b64encode(data) + tail


def _escape(value: str) -> str:
    """``&``, ``<`` and ``>`` as references: xml.sax.saxutils.escape's set, without importing it
    (it imports urllib and http.client)."""
    return html.escape(value, quote=False)


def wrap_parts(*, msg_type: str, sender_id: str, receiver_ids: tuple[str, ...],
               cop_msg_id: str | None = None, created: str | None = None,
               file_name: str | None = None) -> tuple[bytes, bytes]:
    """The bytes of :func:`wrap`'s ``DxpMsg`` before and after the base64 of the message."""
    if not 1 <= len(receiver_ids) <= 5:
        raise EnvelopeError("a DxpMsg names 1 to 5 receivers", field="ReceiverId")
    cop_msg_id = cop_msg_id or new_cop_msg_id()
    # Written as text, not built as a tree: on the hot path of every submission, and the
    # only variable parts are escaped header values and base64 (which needs no escaping).
    e = _escape
    receivers = "".join(f"<dxp:ReceiverId>{e(r)}</dxp:ReceiverId>" for r in receiver_ids)
    head = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<dxp:DxpMsg xmlns:dxp="{DXP_NS}" ver="1.0">'
        f"<dxp:TransInfo><dxp:CopMsgId>{e(cop_msg_id)}</dxp:CopMsgId><dxp:SenderId>{e(sender_id)}</dxp:SenderId>"
        f"<dxp:ReceiverIds>{receivers}</dxp:ReceiverIds>"
        f"<dxp:CreatTime>{e(created or creat_time())}</dxp:CreatTime>"
        f"<dxp:MsgType>{e(msg_type)}</dxp:MsgType></dxp:TransInfo><dxp:Data>"
    )
    tail = (f"</dxp:Data><dxp:AddInfo><dxp:FileName>{e(file_name or f'{msg_type}_{cop_msg_id}.xml')}"
            "</dxp:FileName></dxp:AddInfo></dxp:DxpMsg>")
    return head.encode("utf-8"), tail.encode("utf-8")
