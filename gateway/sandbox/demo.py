"""The demo's enterprises: parcels declared to a gateway in random order, and what they got back.

:func:`plan` draws N parcels (a share export, a share of the import ones deliberately
inconsistent: amount, consignee, payment company, missing payment, quota exceeded, a change
after acceptance); :class:`Enterprises` submits their documents through the gateway's HTTP API
as the platform, the e-commerce enterprise, the payment and logistics companies (and, for
export, the summary agent) would, in a random order, then reads every mailbox.  Export parcels
go on once released: the logistics company reports their departure (CEB509), the agent applies
for their summary (CEB701).  :func:`check` says what each sender was owed and did not get, or got
and was not owed; :func:`table` renders the run.  A client of the public API like any other.
"""

from __future__ import annotations

import asyncio
import random
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

from ..dsig import KeyProvider, load_key, sign
from ..xmlio import local_name, parse
from .samplegen import build_parcel, build_record

IMPORT_KINDS = ("amount", "consignee", "payment_company", "missing_payment", "quota",
                "change_after_acceptance")
# What customs must name in its 100 answer for each inconsistency: "(document field)".
_NAMED = {"amount": "(CEB411 amountPaid)", "consignee": "(CEB511 consignee)",
          "payment_company": "(CEB311 payCode)"}
_LIST = {"import": "CEB621", "export": "CEB603"}
FINAL = frozenset({"100", "700", "800"})
PREFLIGHT = "PREFLIGHT"  # returnStatus of the gateway's pre-flight finding receipts
IN_FLIGHT = 8  # submissions the enterprises have in flight at once


@dataclass(frozen=True)
class Parcel:
    """One planned parcel: its documents (code → unsigned bytes) and what is wrong with it."""

    order_no: str
    flow: str
    kind: str  # "consistent" or one of IMPORT_KINDS
    docs: Mapping[str, bytes]
    change: bytes | None = None  # the CEB621 appType 2 sent after acceptance


def _field(data: bytes, name: str) -> str:
    return next((el.text or "" for el in parse(data, source="demo").root.iter() if isinstance(el.tag, str)
                 and local_name(el.tag) == name), "")


def plan(n: int, inconsistent: float, export: float, seed: int) -> list[Parcel]:
    """``n`` parcels: ``round(n * export)`` export ones, and ``round(import * inconsistent)`` of the
    import ones inconsistent, the kinds taken in turn; the same for the same arguments."""
    rng = random.Random(f"demo/{seed}")
    n_export = round(n * export)
    n_import = n - n_export
    n_bad = round(n_import * inconsistent)
    kinds = ["consistent"] * (n_import - n_bad) + [IMPORT_KINDS[i % len(IMPORT_KINDS)] for i in range(n_bad)]
    rng.shuffle(kinds)
    out: list[Parcel] = []
    for i, kind in enumerate(kinds):
        order_no = f"DEMO{seed:04d}I{i:06d}"
        pseed = seed * 100_000 + i
        docs = dict(build_parcel(order_no, seed=pseed))
        change: bytes | None = None
        if kind == "amount":
            paid = _field(docs["CEB411"], "amountPaid")
            docs = dict(build_parcel(order_no, seed=pseed, changes={"CEB411": {"amountPaid": f"{paid}1"}}))
        elif kind == "consignee":
            docs = dict(build_parcel(order_no, seed=pseed, changes={"CEB511": {"consignee": "另一位收件人"}}))
        elif kind == "payment_company":
            docs = dict(build_parcel(order_no, seed=pseed, changes={"CEB311": {"payCode": "31222699X9"}}))
        elif kind == "missing_payment":
            del docs["CEB411"]
        elif kind == "quota":
            # over the single-transaction limit whatever the products: two cheapest lines x60 > 5000
            docs = dict(build_parcel(order_no, seed=pseed, qty_scale=60))
        elif kind == "change_after_acceptance":
            guid = f"{rng.getrandbits(32):08X}-0000-4000-8000-{rng.getrandbits(48):012X}"
            change = build_parcel(order_no, seed=pseed, changes={"CEB621": {"appType": "2", "guid": guid,
                                                                           "note": "变更收货信息"}})["CEB621"]
        out.append(Parcel(order_no, "import", kind, docs, change))
    for i in range(n_export):
        order_no = f"DEMO{seed:04d}E{i:06d}"
        out.append(Parcel(order_no, "export", "consistent", build_parcel(order_no, flow="export",
                                                                         seed=seed * 100_000 + 50_000 + i)))
    return out


@dataclass
class Sent:
    """One declaration as submitted: who sent it, what the gateway said, what came back."""

    parcel: Parcel | None
    code: str
    account: str
    http_status: int
    message_id: int | None
    error: str = ""
    receipts: list[dict[str, Any]] = field(default_factory=list)
    change: bool = False  # the appType 2 sent after acceptance

    def statuses(self) -> list[str]:
        """Customs' statuses, in the order they came (not the summary result, not pre-flight findings)."""
        return [str(r["status"]) for r in self.receipts
                if r["message_type"] != "CEB792" and str(r["status"]) != PREFLIGHT]

    def findings(self) -> list[str]:
        """The returnInfo of the gateway's pre-flight finding receipts for it."""
        return [str(r["info"]) for r in self.receipts if str(r["status"]) == PREFLIGHT]


@dataclass
class Run:
    """Everything the enterprises sent and received."""

    sent: list[Sent] = field(default_factory=list)
    mail: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stray: list[str] = field(default_factory=list)
    seconds: float = 0.0
    held: set[int] = field(default_factory=set)       # lists the gateway held back from customs
    released: set[int] = field(default_factory=set)   # held lists an operator sent on
    departed: int = 0  # waybills whose departure customs confirmed
    submit_seconds: float = 0.0  # submitting every parcel document (customs answering meanwhile)


Progress = Callable[[int, int, str], None]


class Enterprises:
    """The sandbox's enterprises (``sandbox.json``'s accounts) against the gateway at ``url``."""

    def __init__(self, info: Mapping[str, Any], url: str, *, seed: int = 0,
                 progress: Progress | None = None) -> None:
        self.url = url.rstrip("/")
        self.accounts = {a["name"]: a for a in info["accounts"]}
        self.by_code = {c: a["name"] for a in info["accounts"] for c in a["codes"]}
        self.operator = {"Authorization": f"Bearer {info['customs']['token']}"}  # customs is an operator
        self.keys: dict[str, KeyProvider] = {}
        self.rng = random.Random(f"enterprises/{seed}")
        self.seed = seed
        self.progress = progress or (lambda done, total, what: None)
        self.run = Run(mail={name: [] for name in self.accounts})
        self._cursor = dict.fromkeys(self.accounts, 0)
        self._by_id: dict[int, Sent] = {}

    def _key(self, name: str) -> KeyProvider:
        if name not in self.keys:
            acc = self.accounts[name]
            self.keys[name] = load_key(acc["key"], acc["cert"])
        return self.keys[name]

    async def submit(self, session: aiohttp.ClientSession, data: bytes, code: str,
                     parcel: Parcel | None, *, change: bool = False) -> Sent:
        """Sign ``data`` as the enterprise its copCode names and post it."""
        name = self.by_code[_field(data, "copCode")]
        signed = sign(data, self._key(name))
        async with session.post(f"{self.url}/v1/messages", data=signed,
                                headers={"Authorization": f"Bearer {self.accounts[name]['token']}",
                                         "Content-Type": "application/xml"}) as r:
            body: dict[str, Any] = await r.json()
        mid = body.get("id") if r.status in (200, 202) else None
        err = body.get("error", {})
        why = f"{err.get('code')}: {err.get('message')}" if err else ""
        sent = Sent(parcel, code, name, r.status, mid, why, change=change)
        self.run.sent.append(sent)
        if mid is not None:
            self._by_id[int(mid)] = sent
        return sent

    async def collect(self, session: aiohttp.ClientSession) -> int:
        """Read every mailbox from where it was left (and what the gateway holds back); returns
        how many receipts came."""
        async with session.get(f"{self.url}/v1/held?limit=1000", headers=self.operator) as r:
            body: dict[str, Any] = await r.json()
        if r.status == 200:
            self.run.held |= {int(i["message_id"]) for i in body.get("items", [])}
        got = 0
        for name, acc in self.accounts.items():
            while True:
                query = f"after={self._cursor[name]}&limit=500&format=json"
                async with session.get(f"{self.url}/v1/receipts?{query}",
                                       headers={"Authorization": f"Bearer {acc['token']}"}) as r:
                    body = await r.json()
                items = body.get("items", [])
                if not items:
                    break
                self._cursor[name] = int(body["cursor"])
                for item in items:
                    got += 1
                    self.run.mail[name].append(item)
                    sent = self._by_id.get(int(item["message_id"])) if item.get("message_id") else None
                    if sent is None or sent.account != name:
                        self.run.stray.append(f"{name} got {item['message_type']} {item['status']} for "
                                              f"message {item.get('message_id')}, not one of its own")
                    else:
                        sent.receipts.append(item)
        return got

    async def settle(self, session: aiohttp.ClientSession, done: Callable[[], int], total: int,
                     timeout: float, what: str) -> None:
        """Read mailboxes until ``done()`` reaches ``total`` or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            await self.collect(session)
            now_done = done()
            self.progress(now_done, total, what)
            if now_done >= total or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.1)

    async def play(self, session: aiohttp.ClientSession, parcels: Sequence[Parcel], *,
                   timeout: float = 120.0) -> Run:
        """The whole demo: every document in random order, then changes after acceptance, then
        the export parcels' departure and summary."""
        start = time.monotonic()
        docs = [(p, code, data) for p in parcels for code, data in p.docs.items()]
        self.rng.shuffle(docs)
        # the enterprises work at once: a few submissions in flight, in the shuffled order
        for i in range(0, len(docs), IN_FLIGHT):
            batch = docs[i:i + IN_FLIGHT]
            await asyncio.gather(*(self.submit(session, data, code, p) for p, code, data in batch))
            self.progress(min(i + IN_FLIGHT, len(docs)), len(docs), "documents submitted")
            if i % (IN_FLIGHT * 5) == 0:
                await self.collect(session)
        self.run.submit_seconds = time.monotonic() - start
        lists = [s for s in self.run.sent if s.parcel is not None and s.code == _LIST[s.parcel.flow]
                 and s.message_id is not None]
        await self.settle(session, lambda: sum(_settled(s, self.run.held) for s in lists), len(lists),
                          timeout, "lists answered or held")
        await self._release_held(session, lists, timeout)
        changes = [(s.parcel, s.parcel.change) for s in lists
                   if s.parcel is not None and s.parcel.change is not None and _accepted(s)]
        for p, data in changes:
            await self.submit(session, data, "CEB621", p, change=True)
        changed = [s for s in self.run.sent if s.change]
        await self.settle(session, lambda: sum(bool(s.receipts) or s.message_id is None for s in changed),
                          len(changed), timeout, "changes answered")
        await self._export(session, lists, timeout)
        await self.collect(session)
        self.run.seconds = time.monotonic() - start
        return self.run

    async def _release_held(self, session: aiohttp.ClientSession, lists: Sequence[Sent],
                            timeout: float) -> None:
        """An operator sends every list the gateway holds on to customs, as it is."""
        held = sorted(self.run.held)
        for mid in held:
            async with session.post(f"{self.url}/v1/held/{mid}/release", headers=self.operator) as r:
                if r.status == 200:
                    self.run.released.add(mid)
        self.run.held = set(held)
        if held:
            await self.settle(session, lambda: sum(_settled(s, set()) for s in lists), len(lists), timeout,
                              "lists answered")

    async def _export(self, session: aiohttp.ClientSession, lists: Sequence[Sent], timeout: float) -> None:
        released = [s for s in lists if s.code == "CEB603" and "800" in s.statuses()]
        if not released:
            return
        waybills = [_record(s, "800").get("logisticsNo", "") or _field(s.parcel.docs["CEB603"], "logisticsNo")
                    for s in released if s.parcel is not None]
        invts = [_record(s, "800").get("invtNo", "") for s in released]
        departure = build_record("CEB509", {"copNo": f"DEP{self.seed:04d}{len(waybills):06d}"},
                                 [{"gnum": str(i + 1), "logisticsNo": w} for i, w in enumerate(waybills)],
                                 seed=self.seed)
        dep = await self.submit(session, departure, "CEB509", None)
        await self.settle(session, lambda: int(_final_399(dep)), 1, timeout, "departure confirmed")
        if "399" in dep.statuses():
            self.run.departed = len(waybills)
        apply = build_record("CEB701", {"copNo": f"SUM{self.seed:04d}{len(invts):06d}"},
                             [{"invtNo": n} for n in invts], seed=self.seed)
        summ = await self.submit(session, apply, "CEB701", None)
        await self.settle(session, lambda: int(any(r["message_type"] == "CEB792" for r in summ.receipts)),
                          1, timeout, "summary result")


def _record(s: Sent, status: str) -> dict[str, str]:
    return next((dict(r.get("record") or {}) for r in s.receipts if str(r["status"]) == status), {})


def _final_399(s: Sent) -> bool:
    return s.message_id is None or any(str(r["status"]) in ("399", "100") or str(r["status"]).startswith("-")
                                       for r in s.receipts)


def _accepted(s: Sent) -> bool:
    return any(str(r["status"]) in FINAL | {"120"} for r in s.receipts)


def _settled(s: Sent, held: set[int]) -> bool:
    """A list has its answer: a final status, a negative code, (missing payment) the status 2
    that says what is missing, or the gateway holds it back (``held``)."""
    if s.message_id in held:
        return True
    st = s.statuses()
    if any(x in FINAL or x.startswith("-") for x in st):
        return True
    return s.parcel is not None and s.parcel.kind == "missing_payment" and "2" in st


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
    if kind in _NAMED:
        info = str(s.receipts[-1]["info"]) if s.receipts else ""
        ok = st == ["2", "100"] and _NAMED[kind] in info
        return None if ok else f"got {st} ({info}), owed 2, 100 naming {_NAMED[kind]}"
    if kind == "quota":
        ok = len(st) == 2 and st[0] == "2" and st[1].startswith("-")
        return None if ok else f"got {st}, owed 2 then a negative code"
    if st[:2] == ["2", "120"] and st[2:] in _CHANNELLED:
        return None
    return f"got {st}, owed 2, 120, then 800, or 500 and 800 or 700"


_FOUND = {**_NAMED, "quota": "(CEB621 "}  # what the pre-flight finding names, by kind


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
        ("waiting for a document", str(sum(_settled(s, set()) and s.statuses() == ["2"] for s in lists))),
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
