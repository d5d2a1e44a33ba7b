"""The demo's enterprises: parcels declared to a gateway in random order, and what they got back.

:func:`plan` draws N parcels (a share export, a share of the import ones deliberately
inconsistent: amount, consignee, payment company, missing payment, quota exceeded, a change
after acceptance); :class:`Enterprises` submits their documents through the gateway's HTTP API
as the platform, the e-commerce enterprise, the payment and logistics companies (and, for
export, the summary agent) would, in a random order, then reads every mailbox.  Export parcels
go on once released: the logistics company reports their departure (CEB509), the agent applies
for their summary (CEB701); an operator sends on what the gateway's pre-flight holds back.
:mod:`gateway.sandbox.demo_report` says what each sender was owed.  A client of the public API
like any other.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..dsig import KeyProvider, load_key, sign
from ..xmlio import local_name, parse
from .samplegen import build_parcel, build_record

IMPORT_KINDS = ("amount", "consignee", "payment_company", "missing_payment", "quota",
                "change_after_acceptance")
# What customs must name in its 100 answer for each inconsistency: "(document field)".
NAMED = {"amount": "(CEB411 amountPaid)", "consignee": "(CEB511 consignee)",
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
                query = f"after={self._cursor[name]}&limit=500"  # XML: the JSON view costs a parse per item
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
        await self.settle(session, lambda: sum(settled(s, self.run.held) for s in lists), len(lists),
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
            await self.settle(session, lambda: sum(settled(s, set()) for s in lists), len(lists), timeout,
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
    """The fields of the receipt record with ``status`` that ``s`` got (its receipt message may
    carry other declarations' records too: the one with this record's business keys)."""
    for r in s.receipts:
        if str(r["status"]) != status:
            continue
        keys: Mapping[str, str] = r.get("business_keys") or {}
        for rec in parse(str(r["xml"]).encode("utf-8"), source="receipt").root:
            if not isinstance(rec.tag, str):
                continue
            fields = {local_name(c.tag): (c.text or "").strip() for c in rec if isinstance(c.tag, str)}
            if fields.get("returnStatus") == status and all(fields.get(k) == v for k, v in keys.items()):
                return fields
    return {}


def _final_399(s: Sent) -> bool:
    return s.message_id is None or any(str(r["status"]) in ("399", "100") or str(r["status"]).startswith("-")
                                       for r in s.receipts)


def _accepted(s: Sent) -> bool:
    return any(str(r["status"]) in FINAL | {"120"} for r in s.receipts)


def settled(s: Sent, held: set[int]) -> bool:
    """A list has its answer: a final status, a negative code, (missing payment) the status 2
    that says what is missing, or the gateway holds it back (``held``)."""
    if s.message_id in held:
        return True
    st = s.statuses()
    if any(x in FINAL or x.startswith("-") for x in st):
        return True
    return s.parcel is not None and s.parcel.kind == "missing_payment" and "2" in st
