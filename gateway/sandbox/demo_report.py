"""What the demo's senders were owed, and the demo's table.

:func:`check` compares what each sender got (:class:`gateway.sandbox.demo.Run`) with what it was
owed for what it declared; :func:`table` renders the run; :func:`progress_bar` draws the demo's
progress.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ..xmlio import local_name, parse
from .demo import NAMED, Parcel, Progress, Run, Sent, settled

# ---------------------------------------------------------------- what was owed

_CHANNELLED = (["800"], ["500", "800"], ["500", "700"])


def owed(s: Sent) -> str | None:
    """What is wrong with what ``s``'s sender got for it (``None``: exactly what it was owed)."""
    st, code = s.statuses(), s.code
    if s.change:
        if s.message_id is None and "LIFECYCLE" in s.error:
            return None  # the gateway refused the change itself: nothing goes to customs
        return None if len(st) == 1 and st[0].startswith("-") else f"change after acceptance got {st}"
    if s.message_id is None:
        return f"refused by the gateway: {s.http_status} {s.error}"
    if code in ("CEB509", "CEB701"):
        if st != ["2", "399"]:
            return f"got {st}, owed 2, 399"
        if code == "CEB701" and not any(r["message_type"] == "CEB792" for r in s.receipts):
            return "no summary result (CEB792)"
        return None
    kind = s.parcel.kind if s.parcel is not None else "consistent"
    if code not in ("CEB621", "CEB603"):
        return None if st in (["2", "120"], ["2", "399"]) else f"got {st}, owed 2 then 120 (or 399)"
    if kind == "missing_payment":
        ok = st == ["2"] and "支付信息不存在" in str(s.receipts[0]["info"])
        return None if ok else f"got {st}, owed one 2 saying the payment is missing"
    if kind in NAMED:
        info = str(s.receipts[-1]["info"]) if s.receipts else ""
        ok = st == ["2", "100"] and NAMED[kind] in info
        return None if ok else f"got {st} ({info}), owed 2, 100 naming {NAMED[kind]}"
    if kind == "quota":
        ok = len(st) == 2 and st[0] == "2" and st[1].startswith("-")
        return None if ok else f"got {st}, owed 2 then a negative code"
    if st[:2] == ["2", "120"] and st[2:] in _CHANNELLED:
        return None
    return f"got {st}, owed 2, 120, then 800, or 500 and 800 or 700"


_FOUND = {**NAMED, "quota": "(CEB621 "}  # what the pre-flight finding names, by kind


def check(run: Run, preflight: str = "off") -> list[str]:
    """Every problem: a declaration whose sender did not get exactly what it was owed, a receipt
    a sender got for what it did not send, a receipt delivered twice; with a ``preflight`` policy
    (``warn``, ``hold``), an inconsistent parcel without a finding receipt naming what is wrong, a
    consistent one with any, a list held that is not an inconsistent parcel's."""
    problems: list[str] = []
    for s in run.sent:
        why = owed(s)
        if why is not None:
            name = s.parcel.order_no if s.parcel is not None else s.code
            problems.append(f"{s.account}: {s.code} {name}{' (change)' if s.change else ''}: {why}")
    by_parcel: dict[str, list[Sent]] = {}
    for s in run.sent:
        if s.parcel is not None:
            by_parcel.setdefault(s.parcel.order_no, []).append(s)
    for order_no, sents in by_parcel.items():
        parcel = sents[0].parcel
        assert parcel is not None
        found = [f for s in sents for f in s.findings()]
        wanted = _FOUND.get(parcel.kind) if preflight != "off" else None
        if wanted is None and found:
            problems.append(f"{order_no} ({parcel.kind}): pre-flight finding receipts owed none: {found[:2]}")
        if wanted is not None and not any(wanted in f for f in found):
            problems.append(f"{order_no} ({parcel.kind}): no pre-flight finding receipt naming {wanted}")
        for s in sents:
            if s.message_id in run.held and (preflight != "hold" or parcel.kind not in _FOUND):
                problems.append(f"{order_no} ({parcel.kind}): the gateway held its list")
    problems.extend(run.stray)
    for name, items in run.mail.items():
        ids = Counter(int(i["receipt_id"]) for i in items)
        dup = [k for k, n in ids.items() if n > 1]
        if dup:
            problems.append(f"{name}: {len(dup)} receipt(s) delivered more than once")
    return problems


def _reason(r: Mapping[str, Any]) -> str:
    """``13036 CEB411 amountPaid`` (customs' code and the field it names), ``-621012 清单已入库…``."""
    status, info = str(r["status"]), str(r["info"])
    m = re.search(r"\[Code:(\d+);Desc:([^(\]]*)(?:\(([^)]*)\))?", info)
    what = f"{m.group(1)} {m.group(3) or m.group(2)}" if m else info.split("：")[0][:30]
    return f"{status} {what}" if status.startswith("-") else what


def table(run: Run, parcels: Sequence[Parcel], problems: Sequence[str], *, preflight: str) -> str:
    """The run as a table (what the demo prints)."""
    sent = run.sent
    lists = [s for s in sent if s.code in ("CEB621", "CEB603") and not s.change]
    seen = Counter(x for s in lists for x in s.statuses())
    rejected = Counter(_reason(r) for s in sent for r in s.receipts
                       if str(r["status"]) == "100" or str(r["status"]).startswith("-"))
    summarised = sum(len(set(_lines(r, "invtNo"))) for s in sent for r in s.receipts
                     if r["message_type"] == "CEB792")
    exported = sum(s.code == "CEB603" and "800" in s.statuses() for s in lists)
    n_exp = sum(p.flow == "export" for p in parcels)
    rows: list[tuple[str, str]] = [
        ("parcels", f"{len(parcels)} ({len(parcels) - n_exp} import, {n_exp} export; "
                    f"{sum(p.kind != 'consistent' for p in parcels)} deliberately inconsistent)"),
        ("inconsistent by kind", ", ".join(f"{k} {n}" for k, n in sorted(Counter(
            p.kind for p in parcels if p.kind != "consistent").items())) or "none"),
        ("documents submitted", str(len(sent))),
        ("accepted by the gateway", str(sum(s.message_id is not None for s in sent))),
        ("refused by the gateway", ", ".join(f"{e} {n}" for e, n in Counter(
            s.error.split(':')[0] for s in sent if s.message_id is None).items()) or "0"),
        ("pre-flight policy", preflight),
        ("pre-flight finding receipts", _findings(run)),
        ("held by the gateway", f"{len(run.held)} list(s), {len(run.released)} sent on by an operator"),
        ("lists accepted (120)", str(seen["120"])),
        ("inspected (500)", str(seen["500"])),
        ("released (800)", str(seen["800"])),
        ("returned (700)", str(seen["700"])),
        ("waiting for a document", str(sum(settled(s, set()) and s.statuses() == ["2"] for s in lists))),
        ("exported (released, departed)", f"{exported} released, {run.departed} departed"),
        ("summarised (CEB792)", str(summarised)),
        ("rejected by reason", ""),
        *[(f"  {why}", str(n)) for why, n in sorted(rejected.items())],
        ("receipts delivered", ""),
        *[(f"  {name}", str(len(items))) for name, items in run.mail.items() if items],
        ("end-to-end", f"{run.seconds:.1f} s, {rate(run, parcels):.1f} parcels/s"),
        ("check", "every sender got every receipt owed to it and nothing else" if not problems
         else f"{len(problems)} problem(s)"),
    ]
    width = max(_width(k) for k, _ in rows)
    return "\n".join(f"{k}{' ' * (width - _width(k))}  {v}".rstrip() for k, v in rows)


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _findings(run: Run) -> str:
    by = Counter(s.account for s in run.sent for _ in s.findings())
    total = sum(by.values())
    return f"{total}" + (f" ({', '.join(f'{k} {n}' for k, n in sorted(by.items()))})" if by else "")


def rate(run: Run, parcels: Sequence[Parcel]) -> float:
    """Parcels per second, end to end (submission to the last answer)."""
    return len(parcels) / run.seconds if run.seconds else 0.0


def _lines(item: Mapping[str, Any], name: str) -> list[str]:
    root = parse(str(item["xml"]).encode("utf-8"), source="receipt").root
    return [el.text or "" for el in root.iter() if isinstance(el.tag, str) and local_name(el.tag) == name]


def progress_bar(stream: TextIO = sys.stderr) -> Progress:
    """A one-line progress bar on ``stream`` (redrawn in place on a terminal)."""
    tty = stream.isatty()
    last: dict[str, int] = {}

    def show(done: int, total: int, what: str) -> None:
        if not tty and last.get(what) == done:
            return
        if not tty and done not in (total,) and done % max(1, total // 4):
            return
        last[what] = done
        width = 30
        filled = width * done // max(total, 1)
        end = "\n" if done >= total or not tty else ""
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what}{end}")
        stream.flush()
    return show
