"""The customs intranet played against a gateway through its public HTTP API.

A :class:`Player` leases envelopes from ``/v1/customs/outbox`` as the customs account, opens
each as customs would (parse, name, unwrap, name: the same stages as
:func:`gateway.sandbox.customs.answers_to_envelope`), verifies the sender's signature against
the certificate registry, lets its :class:`~gateway.sandbox.district.District` decide, posts
each answer to ``/v1/customs/receipts`` (a receipt in a ``DxpMsg`` from the DXP id the
declaration went to, import or export, back to its sender, signed with the customs key), and
acknowledges the envelopes.  With ``rate`` it takes at most that many declarations a second,
as a busy district does; each round it rereads the channel rules and releases the lists an
operator took off manual review.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from ..catalog import BEIJING, Catalog, Identified
from ..catalog import load as load_catalog
from ..dsig import KeyProvider, Registry, sign, signature_required, verify
from ..envelope import unwrap, wrap
from ..errors import GatewayError, IdentifyError, UsageError
from ..xmlio import parse
from .channels import RulesFile
from .district import District
from .records import Outgoing, records_of
from .samplegen import build_receipts

Report = Callable[[str], None]


@dataclass
class Posted:
    """What the player sent and what the gateway did with it."""

    envelopes: int = 0
    declarations: int = 0
    receipts: int = 0
    refused: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


class Player:
    """Customs against the gateway at ``url`` with the customs account's ``token``."""

    def __init__(self, url: str, token: str, key: KeyProvider, registry: Registry, district: District, *,
                 rules: RulesFile | None = None, rate: float = 0.0, limit: int = 100,
                 report: Report | None = None) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.key, self.registry, self.district = key, registry, district
        self.rules = rules
        self.rate = rate
        self.limit = limit
        self.report = report or (lambda _: None)
        self.posted = Posted()
        self._catalog: Catalog = load_catalog()
        self._last_time = datetime.now(BEIJING)
        self._next_slot = 0.0

    async def run(self, session: aiohttp.ClientSession, *, follow: bool = False, wait: int = 20,
                  stop: asyncio.Event | None = None) -> Posted:
        """Answer what the outbox holds; with ``follow``, keep waiting for more (long polls of
        ``wait`` seconds) until ``stop`` is set. Raises GatewayError if the gateway refuses the
        customs account."""
        while stop is None or not stop.is_set():
            done = await self.round(session, wait=wait if follow else 0)
            if not done and not follow:
                break
        return self.posted

    async def round(self, session: aiohttp.ClientSession, *, wait: int = 0) -> int:
        """One lease: answer and acknowledge its envelopes; returns how many there were."""
        await self._review(session)
        async with session.get(f"{self.url}/v1/customs/outbox?limit={self.limit}&wait={wait}",
                               headers=self.headers, timeout=aiohttp.ClientTimeout(total=wait + 60)) as r:
            body: dict[str, Any] = await r.json()
            if r.status != 200:
                raise _refused("outbox", r.status, body)
        items = body.get("items", [])
        done: list[int] = []
        answers: list[Outgoing] = []
        for item in items:
            await self._pace()
            answers += self._answer(item)
            done.append(int(item["id"]))
            if self.rate > 0:  # paced: each declaration's answers as it is decided
                await self._send(session, answers)
                answers = []
        await self._send(session, answers)
        if done:
            async with session.post(f"{self.url}/v1/customs/outbox/ack", json={"ids": done},
                                    headers=self.headers) as r:
                if r.status != 200:
                    raise _refused("ack", r.status, await r.json())
        self.posted.envelopes += len(done)
        return len(done)

    async def _review(self, session: aiohttp.ClientSession) -> None:
        if self.rules is None:
            return
        self.district.rules = self.rules.current()
        await self._send(session, self.district.review())

    async def _pace(self) -> None:
        if self.rate <= 0:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next_slot = max(self._next_slot, now)
        delay = self._next_slot - now
        self._next_slot += 1.0 / self.rate
        if delay > 0:
            await asyncio.sleep(delay)

    def _answer(self, item: dict[str, Any]) -> list[Outgoing]:
        """The answers to one envelope; an envelope customs cannot read is reported (and
        acknowledged: it would come back unread forever)."""
        where = f"envelope {item.get('id')} (message {item.get('message_id')})"
        try:
            outer = self._catalog.identify(parse(str(item["envelope"]).encode("utf-8"), source="envelope"))
            if outer.type.code != "DxpMsg":
                raise IdentifyError(f"customs takes DxpMsg envelopes, not {outer.type.code}", field="DxpMsg")
            opened = unwrap(outer.parsed)
            ident = self._catalog.identify(opened.inner)
            if ident.type.kind != "declaration":
                raise IdentifyError(f"{ident.type.code} is not a declaration", field=ident.type.root)
        except (GatewayError, KeyError) as exc:
            self.posted.unreadable.append(f"{where}: {exc}")
            self.report(f"customs: {where}: cannot read it: {exc}")
            return []
        signature_ok = self._signature_ok(ident)
        customs_dxp = opened.trans.receiver_ids[0]
        out: list[Outgoing] = []
        for rec in records_of(ident, opened.trans.sender_id, customs_dxp):
            self.posted.declarations += 1
            out += self.district.take(rec, signature_ok=signature_ok)
        return out

    def _signature_ok(self, ident: Identified) -> bool:
        """The sender's signature verifies against the registry for its copCode (a message
        without one passes only where the catalogue does not require one)."""
        root = ident.root
        if root.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is None:
            return not signature_required(ident.type, root)
        t = ident.type
        cop = (root.findtext(f"{t.q('BaseTransfer')}/{t.q('copCode')}") or "").strip() or None
        try:
            verify(ident, self.registry, sender_code=cop)
        except GatewayError as exc:
            self.report(f"customs: {t.code}: signature refused: {exc}")
            return False
        return True

    def _return_time(self) -> str:
        """``yyyyMMddHHmmssSSS``, strictly increasing over the player's answers (so a
        declaration's receipts sort in the order customs sent them)."""
        now = datetime.now(BEIJING)
        self._last_time = max(now, self._last_time + timedelta(milliseconds=1))
        t = self._last_time
        return t.strftime("%Y%m%d%H%M%S") + f"{t.microsecond // 1000:03d}"

    async def _send(self, session: aiohttp.ClientSession, answers: list[Outgoing]) -> None:
        """Post ``answers`` as e-port does, in batches: one receipt message per receipt type,
        sender and receiver, up to 100 records, each record in the order decided; then the
        customs-issued messages (a summary result after the receipt that gave its sumNo)."""
        groups: dict[tuple[str, str, str], list[Outgoing]] = {}
        for out in answers:
            if out.message is None:
                groups.setdefault((out.receipt_type, out.customs_dxp, out.to_dxp), []).append(out)
        for (receipt_type, customs_dxp, to_dxp), outs in groups.items():
            for i in range(0, len(outs), 100):
                part = outs[i:i + 100]
                records = [{**o.fields, "returnStatus": o.status, "returnInfo": o.info,
                            "returnTime": self._return_time()} for o in part]
                data = build_receipts(receipt_type, records)
                await self._post(session, data, receipt_type, customs_dxp, to_dxp, part)
        for out in answers:
            if out.message is not None:
                await self._post(session, out.message, out.receipt_type, out.customs_dxp, out.to_dxp, [out])

    async def _post(self, session: aiohttp.ClientSession, data: bytes, receipt_type: str, customs_dxp: str,
                    to_dxp: str, outs: list[Outgoing]) -> None:
        signed = sign(wrap(data, msg_type=f"{receipt_type}Message", sender_id=customs_dxp,
                           receiver_ids=(to_dxp,)), self.key)
        async with session.post(f"{self.url}/v1/customs/receipts", data=signed,
                                headers={**self.headers, "Content-Type": "application/xml"}) as r:
            body: dict[str, Any] = await r.json()
        if r.status != 200:
            err = body.get("error", {})
            for out in outs:
                label = f"{out.declaration_type} {_name(out)}: {out.receipt_type} {out.status or 'issued'}"
                self.posted.refused.append(f"{label}: {r.status} {err.get('message')} [{err.get('code')}]")
            self.report(f"customs: {receipt_type} with {len(outs)} record(s) refused: {r.status} "
                        f"{err.get('message')} [{err.get('code')}]")
            return
        self.posted.receipts += len(outs)
        for out, rec in zip(outs, body.get("records", []), strict=False):
            to = ", ".join(rec.get("delivered_to") or []) or "nobody"
            label = f"{out.declaration_type} {_name(out)}: {out.receipt_type} {out.status or 'issued'}"
            self.report(f"{label} -> {rec.get('outcome')} (to {to}) {out.info}".rstrip())


def _name(out: Outgoing) -> str:
    f = out.fields
    names = ("orderNo", "copNo", "logisticsNo", "payTransactionId", "sumNo")
    return next((f[k] for k in names if f.get(k)), "")


def _refused(what: str, status: int, body: dict[str, Any]) -> GatewayError:
    err = body.get("error", {})
    return UsageError(f"the gateway refused the customs {what}: {status} {err.get('message')} "
                      f"[{err.get('code')}]")
