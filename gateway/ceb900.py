"""The CEB900 format-check receipt the e-port would send for a rejected submission (spec §5.5).

:func:`build` renders a :class:`~gateway.errors.GatewayError` (with all its findings) as a
``CEB900Message`` that validates against ``xsd/ceb-import.xsd``.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from lxml import etree

from .catalog import BEIJING, CEB_NS
from .errors import GatewayError

MAX_INFO = 5000
MAX_TYPE = 15
MAX_COP_MSG_ID = 255
# Characters XML 1.0 cannot carry, even in CDATA.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def return_time(now: datetime | None = None) -> str:
    """``yyyyMMddHHmmssSSS`` in Beijing time."""
    t = (now or datetime.now(BEIJING)).astimezone(BEIJING)
    return t.strftime("%Y%m%d%H%M%S") + f"{t.microsecond // 1000:03d}"


def return_info(error: GatewayError) -> str:
    """``code: message; code: message …`` over the error findings the error carries (and how many
    more it left out), at most 5000 characters."""
    parts = [f"{f.code}: {f.field + ': ' if f.field else ''}{f.message}"
             for f in error.findings if f.severity == "error"] or [f"{error.code}: {error.message}"]
    if error.omitted:
        parts.append(f"and {error.omitted} more finding(s) not listed")
    text = "; ".join(parts)
    return text if len(text) <= MAX_INFO else text[:MAX_INFO - 1] + "…"


def _cdata_text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    # oriBizMessage must not be empty (XSD minLength 1), even when what was sent was.
    return _NOT_XML.sub("\ufffd", text) if text.strip() else "(empty message)"


def build(error: GatewayError, *, original: bytes, ori_cop_msg_id: str, ori_message_type: str | None,
          now: datetime | None = None, guid: str | None = None) -> bytes:
    """A CEB900Message rejecting ``original`` for ``error``.

    ``ori_message_type`` is the root name (``CEB311Message``) or ``None`` for "Unknown";
    ``ori_cop_msg_id`` the CopMsgId of the envelope the message came in (or was given).
    The original bytes are carried as CDATA (split around any ``]]>``), decoded leniently.
    """
    mtype = ori_message_type if ori_message_type and len(ori_message_type) <= MAX_TYPE else "Unknown"
    root = etree.Element(f"{{{CEB_NS}}}CEB900Message", nsmap={None: CEB_NS})  # type: ignore[dict-item]
    root.set("guid", guid or str(uuid.uuid4()).upper())
    root.set("version", "1.0")
    rec = etree.SubElement(root, f"{{{CEB_NS}}}MessageReturn")
    values = (
        ("guid", str(uuid.uuid4()).upper()),
        ("returnStatus", error.spec.ceb_status),
        ("returnInfo", return_info(error)),
        ("returnTime", return_time(now)),
        ("oriCopMsgId", (ori_cop_msg_id or "-")[:MAX_COP_MSG_ID]),
        ("oriMessageType", mtype),
    )
    for name, value in values:
        etree.SubElement(rec, f"{{{CEB_NS}}}{name}").text = _NOT_XML.sub("\ufffd", value)
    ori = etree.SubElement(rec, f"{{{CEB_NS}}}oriBizMessage")
    ori.text = "\ufffc"  # placeholder, replaced by the CDATA sections below
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    chunks = _cdata_text(original).split("]]>")
    cdata = "]]]]><![CDATA[>".join(chunks)
    return body.replace("\ufffc".encode(), f"<![CDATA[{cdata}]]>".encode())
