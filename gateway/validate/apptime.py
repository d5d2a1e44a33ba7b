"""The sender's ``appTime`` against the time the gateway received the message (a policy window).

``appTime`` is the time the declaration was made, in Beijing time, written by the sender.
Customs judges it; the gateway only says when it is far from the receiving time (a clock
that is wrong, or a date set back to fit a certificate's validity).  A warning, not an
error: see docs/decisions.md ("appTime far from the receiving time").
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from lxml import etree

from ..catalog import CEB_NS
from ..errors import Finding, register
from ..xmlio import element_path

CODE = "CEBGW-APPTIME-SKEW"
register(CODE, 422, 1, "-2999", "appTime is far from the time the gateway received the message",
         "申报时间(appTime)与网关接收时间相差过大")

BEIJING = timezone(timedelta(hours=8))
_APP_TIME = f"{{{CEB_NS}}}appTime"


def _beijing(text: str) -> datetime | None:
    """``yyyyMMddHHmmss`` in Beijing time, or ``None`` (a malformed value is the format rule's)."""
    if len(text) != 14 or not text.isascii() or not text.isdigit():
        return None
    try:
        return datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
                        int(text[12:14]), tzinfo=BEIJING)
    except ValueError:
        return None


def findings(root: etree._Element, received: datetime, window: timedelta) -> list[Finding]:
    """One warning per ``appTime`` more than ``window`` before or after ``received`` (an aware
    datetime); nothing when all are within it or ``window`` is zero (the check is off)."""
    if window <= timedelta(0):
        return []
    out: list[Finding] = []
    for el in root.iter(_APP_TIME):
        text = (el.text or "").strip()
        when = _beijing(text)
        if when is None:
            continue
        skew = when - received
        if abs(skew) > window:
            # No receiving time in the text: the same bytes sent again get the same answer.
            direction = "before" if skew < timedelta(0) else "after"
            out.append(Finding(
                CODE, f"appTime {text} (Beijing time) is more than {_span(window)} {direction} the time "
                "the gateway received the message", severity="warning", path=element_path(el),
                field="appTime"))
    return out


def _span(d: timedelta) -> str:
    seconds = int(d.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} s"
