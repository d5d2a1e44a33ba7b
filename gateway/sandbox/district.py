"""A customs district deciding for itself: what it answers to each declaration it receives.

:class:`District` keeps what customs has on file (every record declared, the documents of each
parcel, the export lists released and departed, each buyer's year) and turns one declaration
into the receipts customs sends for it (:class:`Outgoing`), without I/O:

- every declaration: status 2 on receipt (reusing the record's guid, returnInfo echoing it);
  a second new declaration (appType 1) of keys on file, a change (appType 2) of a record customs
  has accepted (120 or later) or of none, or a signature that does not verify: a negative e-port
  code (spec §5.4, ``eport_codes.toml``);
- order, payment, waybill (import and export) and collection: 120 (or 399 where the receipt
  type knows no 120);
- an import inventory list: the three-order comparison of :mod:`gateway.reconcile` over the
  parcel's documents on file; while one is missing, status 2 says which ("…支付信息不存在")
  and the list waits; once complete: 100 with the first finding's ``[Code:NNNN;Desc:…]``, a
  negative code for a finding that has one (single and annual limits), or 120 and its channel
  (:mod:`gateway.sandbox.channels`): green 800 (or 300 while an operator holds it), red 500
  then 800 or 700.  A list that comes after its documents is decided at once; a document
  that completes a waiting list decides it;
- export: an inventory list (CEB603) 120 and its channel; a departure report (CEB509) 399
  (exit confirmed) for waybills of released lists, 100 naming any other; a summary application
  (CEB701) 399 with its ``sumNo``, then the summary result (CEB792) built from the released,
  departed and not yet summarised lists it names, or of its ebcCode declared in its period
  (``startTime``..``endTime``; lines with the same HS code share a ``gseqno``), or 100 naming a
  list that is none of those (or saying the period has none).

Each answer carries the business keys of the record it answers and any number customs assigns
(``preNo``, ``invtNo``, ``sumNo``), so the gateway correlates it (spec §5.1).  What a record and an
answer are, and the e-port codes: :mod:`gateway.sandbox.records`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from .. import reconcile
from ..catalog import BEIJING
from ..catalog import load as load_catalog
from .channels import ChannelRules
from .records import Outgoing, Record, eport
from .samplegen import build_record, receipt_fields

IMPORT_LIST, EXPORT_LIST, DEPARTURE, SUMMARY = "CEB621", "CEB603", "CEB509", "CEB701"
# The document a missing parcel document is named by in customs' status-2 text (spec §5.3, S15).
_MISSING_TEXT = {reconcile.ORDER: "订单信息不存在", reconcile.PAYMENT: "支付信息不存在",
                 reconcile.WAYBILL: "运单信息不存在"}
_MISSING_EN = {reconcile.ORDER: "order not yet received", reconcile.PAYMENT: "payment not yet received",
               reconcile.WAYBILL: "waybill not yet received"}
# Receipt types whose status list has no 120: their "accepted" is 399 (spec §8).
_CONCLUDED_ONLY = frozenset({"CEB506", "CEB508", "CEB510", "CEB606", "CEB702", "CEB216"})
ACCEPTED = frozenset({"120", "300", "399", "500", "700", "800", "899"})


@dataclass
class _OnFile:
    record: Record
    status: str = "2"


@dataclass
class _ExportList:
    record: Record
    invt_no: str
    released: bool = False
    departed: bool = False
    summarised: bool = False


@dataclass
class Tally:
    """What the district decided, for a run's summary."""

    received: int = 0
    answered: int = 0
    inspected: int = 0
    released: int = 0
    returned: int = 0
    manual_review: int = 0
    waiting: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    departed: int = 0
    summarised: int = 0

    def reject(self, why: str) -> None:
        self.rejected[why] = self.rejected.get(why, 0) + 1


class District:
    """Customs' files and decisions (see the module's text). Not thread-safe: one player."""

    def __init__(self, rules: ChannelRules, *, seed: int = 0, limits: reconcile.Limits | None = None,
                 now: datetime | None = None) -> None:
        """``rules`` decide the channels (replace them at any time), ``seed`` fixes every chance,
        ``limits`` are the personal limits in CNY; ``now`` fixes the time numbers are dated by
        (default: the clock, Beijing time)."""
        self.rules = rules
        self.seed = seed
        self.limits = limits or reconcile.Limits()
        self.history = reconcile.MemoryHistory()
        self.tally = Tally()
        self._on_file: dict[tuple[str, tuple[str, ...]], _OnFile] = {}
        self._parcels: dict[reconcile.ParcelKey, reconcile.Parcel] = {}
        self._by_waybill: dict[str, reconcile.ParcelKey] = {}     # import logisticsNo → parcel
        self._by_order: dict[str, reconcile.ParcelKey] = {}       # orderNo → parcel (for waybills)
        self._waiting: dict[reconcile.ParcelKey, _OnFile] = {}     # lists waiting for a document
        self._review: dict[str, _OnFile] = {}                      # copNo → list in manual review
        self._exports: dict[str, _ExportList] = {}                 # invtNo → export list
        self._serial = 0
        self._rng = random.Random(f"district/{seed}")
        self._fixed_now = now

    # ------------------------------------------------------------------ entry points

    def take(self, rec: Record, *, signature_ok: bool = True) -> list[Outgoing]:
        """The receipts for one record customs received (and for lists it completes)."""
        self.tally.received += 1
        if not signature_ok:
            return [self._negative(rec, "signature")]
        key = (rec.code, self._keys(rec))
        app_type = rec.get("appType") or "1"
        earlier = self._on_file.get(key)
        if app_type == "1" and earlier is not None and not earlier.status.startswith("-"):
            return [self._negative(rec, "duplicate")]
        if app_type == "2" and earlier is None:
            return [self._negative(rec, "no_such_declaration")]
        if app_type == "2" and earlier is not None and earlier.status in ACCEPTED:
            return [self._negative(rec, "change_after_acceptance")]
        if app_type not in ("1", "2"):
            return [self._negative(rec, "unsupported_app_type")]
        entry = _OnFile(rec)
        self._on_file[key] = entry
        if rec.code in reconcile.PARCEL_TYPES:
            return self._parcel_document(entry)
        first = self._out(rec, "2", self._declared_text(rec))
        if rec.code == EXPORT_LIST:
            return [first, *self._export_list(entry)]
        if rec.code == DEPARTURE:
            return [first, *self._departure(entry)]
        if rec.code == SUMMARY:
            return [first, *self._summary(entry)]
        return [first, self._accept(entry)]

    def review(self) -> list[Outgoing]:
        """Release (800) the lists in manual review that the rules no longer hold."""
        out: list[Outgoing] = []
        for cop_no, entry in list(self._review.items()):
            if not self.rules.on_review(entry.record.head):
                del self._review[cop_no]
                self.tally.manual_review -= 1
                out.append(self._release(entry))
        return out

    def waiting(self) -> list[Record]:
        """The inventory lists waiting for a document of their parcel."""
        return [e.record for e in self._waiting.values()]

    # ------------------------------------------------------------------ import parcels

    def _parcel_document(self, entry: _OnFile) -> list[Outgoing]:
        rec = entry.record
        pkey = self._parcel_key(rec)
        parcel = self._parcels.get(pkey, reconcile.Parcel()).with_document(rec.document())
        self._parcels[pkey] = parcel
        if rec.code != reconcile.INVENTORY:
            out = [self._out(rec, "2", self._declared_text(rec)), self._accept(entry)]
            listed = self._waiting.get(pkey)
            if listed is None or reconcile.missing(parcel):
                return out
            del self._waiting[pkey]
            self.tally.waiting -= 1
            return [*out, *self._decide(listed, parcel)]
        absent = reconcile.missing(parcel)
        if absent:
            if pkey not in self._waiting:
                self.tally.waiting += 1
            self._waiting[pkey] = entry
            return [self._out(rec, "2", self._waiting_text(rec, absent))]
        self._waiting.pop(pkey, None)
        return [self._out(rec, "2", self._declared_text(rec)), *self._decide(entry, parcel)]

    def _parcel_key(self, rec: Record) -> reconcile.ParcelKey:
        """Parcels are named by (ebpCode, orderNo); a waybill, which carries no ebpCode, joins the
        parcel of its orderNo (or of its logisticsNo, once the list has named it)."""
        if rec.code == reconcile.WAYBILL:
            key = (self._by_waybill.get(rec.get("logisticsNo")) or self._by_order.get(rec.get("orderNo"))
                   or reconcile.ParcelKey("", rec.get("orderNo")))
            self._by_waybill[rec.get("logisticsNo")] = key
            return key
        key = reconcile.ParcelKey(rec.get("ebpCode"), rec.get("orderNo"))
        self._by_order.setdefault(key.order_no, key)
        orphan = self._parcels.pop(reconcile.ParcelKey("", key.order_no), None)
        if orphan is not None and orphan.waybill is not None:  # the waybill came first
            self._parcels[key] = self._parcels.get(key, reconcile.Parcel()).with_document(orphan.waybill)
            self._by_waybill[orphan.waybill.get("logisticsNo")] = key
        return key

    def _decide(self, entry: _OnFile, parcel: reconcile.Parcel) -> list[Outgoing]:
        """A complete parcel's list: compared, then accepted and channelled, or refused."""
        rec = entry.record
        errors = [f for f in reconcile.compare(parcel, self.limits, self.history) if f.severity == "error"]
        if errors:
            first = errors[0]
            if first.eport_code:
                entry.status = first.eport_code
                self.tally.reject(first.eport_code)
                return [self._out(rec, first.eport_code, first.customs_text())]
            entry.status = "100"
            self.tally.reject(f"{first.customs_code} {first.document} {first.field}")
            return [self._out(rec, "100", first.customs_text())]
        spent = reconcile.spending(parcel)
        if spent is not None:
            self.history.record(spent.buyer_id, spent.year, parcel.key, spent.amount)
        return self._channel(entry)

    # ------------------------------------------------------------------ lists: channels

    def _channel(self, entry: _OnFile) -> list[Outgoing]:
        rec = entry.record
        invt_no = self._invt_no(rec)
        out = [self._accept(entry, assigned={"invtNo": invt_no})]
        chan = self.rules.choose(rec.head, rec.lines, self.seed)
        if chan.colour == "red":
            self.tally.inspected += 1
            out.append(self._out(rec, "500", f"[Code:2300;Desc:查验({chan.why})]",
                                 assigned={"invtNo": invt_no}))
            if chan.returned:
                entry.status = "700"
                self.tally.returned += 1
                return [*out, self._out(rec, "700", "[Code:2700;Desc:退运]", assigned={"invtNo": invt_no})]
            return [*out, self._release(entry)]
        if self.rules.on_review(rec.head):
            entry.status = "300"
            self._review[rec.get("copNo")] = entry
            self.tally.manual_review += 1
            return [*out, self._out(rec, "300", "[Code:1200;Desc:待人工审核]", assigned={"invtNo": invt_no})]
        return [*out, self._release(entry)]

    def _release(self, entry: _OnFile) -> Outgoing:
        rec = entry.record
        entry.status = "800"
        self.tally.released += 1
        invt_no = self._invt_no(rec)
        if rec.code == EXPORT_LIST:
            self._exports[invt_no].released = True
        return self._out(rec, "800", "[Code:2600;Desc:放行]", assigned={"invtNo": invt_no})

    # ------------------------------------------------------------------ export

    def _export_list(self, entry: _OnFile) -> list[Outgoing]:
        invt_no = self._invt_no(entry.record)
        self._exports.setdefault(invt_no, _ExportList(entry.record, invt_no))
        return self._channel(entry)

    def _departure(self, entry: _OnFile) -> list[Outgoing]:
        rec = entry.record
        released = {e.record.get("logisticsNo"): e for e in self._exports.values() if e.released}
        unknown = [ln.get("logisticsNo", "") for ln in rec.lines if ln.get("logisticsNo", "") not in released]
        if unknown:
            entry.status = "100"
            self.tally.reject("5101 departure of unreleased waybill")
            return [self._out(rec, "100", f"[Code:5101;Desc:运单{','.join(unknown)}无已放行的出口清单]")]
        for ln in rec.lines:
            released[ln.get("logisticsNo", "")].departed = True
            self.tally.departed += 1
        entry.status = "399"
        return [self._out(rec, "399", "[Code:2900;Desc:离境确认，出口清单已结关]")]

    def _summary(self, entry: _OnFile) -> list[Outgoing]:
        """A summary application names its lists, or gives a period (``startTime``..``endTime``,
        then the list is ignored: every released, departed list of its ebcCode declared then)."""
        rec = entry.record

        def eligible(e: _ExportList | None) -> bool:
            return (e is not None and e.released and e.departed and not e.summarised
                    and e.record.get("ebcCode") == rec.get("ebcCode"))
        start, end = rec.get("startTime"), rec.get("endTime")
        if start and end:
            chosen = [e for e in self._exports.values()
                      if eligible(e) and start <= e.record.get("appTime") <= end]
            if not chosen:
                entry.status = "100"
                self.tally.reject("7102 summary of a period without lists")
                return [self._out(rec, "100", f"[Code:7102;Desc:{start}至{end}无可汇总的已放行、已离境清单]")]
        else:
            named = [ln.get("invtNo", "") for ln in rec.lines if ln.get("invtNo")]
            bad = [n for n in named if not eligible(self._exports.get(n))]
            if bad or not named:
                entry.status = "100"
                self.tally.reject("7101 summary of lists not released, departed or already summarised")
                what = ",".join(bad) or "（无清单）"
                return [self._out(rec, "100", f"[Code:7101;Desc:清单{what}未放行、未离境或已汇总]")]
            chosen = [self._exports[n] for n in named]
        for e in chosen:
            e.summarised = True
        self.tally.summarised += len(chosen)
        sum_no = self._number("sum")
        entry.status = "399"
        answer = self._out(rec, "399", "[Code:2800;Desc:汇总申请审结]", assigned={"sumNo": sum_no})
        return [answer, self._summary_result(rec, sum_no, chosen)]

    def _summary_result(self, rec: Record, sum_no: str, lists: Sequence[_ExportList]) -> Outgoing:
        """The CEB792 for a summary application: one line per list line, lines of one HS code
        under one ``gseqno`` (the item of the summary declaration that goes on to H2000)."""
        seq: dict[str, int] = {}
        lines: list[dict[str, str]] = []
        gross = net = Decimal(0)
        for e in lists:
            gross += _dec(e.record.get("grossWeight"))
            net += _dec(e.record.get("netWeight"))
            for ln in e.record.lines:
                gcode = ln.get("gcode", "")
                seq.setdefault(gcode, len(seq) + 1)
                lines.append({"invtNo": e.invt_no, "logisticsNo": e.record.get("logisticsNo"),
                              "gseqno": str(seq[gcode]), "gnum": ln.get("gnum", ""), "gcode": gcode})
        now = self._now()
        head = {"customsCode": rec.get("customsCode"), "sumNo": sum_no,
                "opDate": now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}",
                "declSeqNo": self._number("decl"), "decTmpNo": self._number("tmp"),
                "decPreNo": self._number("pre"), "entryId": self._number("entry"), "decState": "1",
                **{f: rec.get(f) for f in ("agentCode", "agentName", "ebcCode", "ebcName", "declAgentCode",
                                           "declAgentName")},
                "grossWeight": str(gross), "netWeight": str(net), "msgCount": "1", "msgSeqNo": "1"}
        data = build_record("CEB792", head, lines, seed=self.seed)
        return Outgoing(rec.code, "CEB792", "", "", {"sumNo": sum_no}, rec.sender_dxp, rec.customs_dxp, data)

    # ------------------------------------------------------------------ answers

    def _accept(self, entry: _OnFile, assigned: Mapping[str, str] | None = None) -> Outgoing:
        rec = entry.record
        receipt = _receipt_of(rec.code)
        if receipt in _CONCLUDED_ONLY:
            entry.status = "399"
            return self._out(rec, "399", "[Code:2800;Desc:海关审结]", assigned=assigned)
        entry.status = "120"
        return self._out(rec, "120", "[Code:1800;Desc:逻辑校验通过]", assigned=assigned)

    def _negative(self, rec: Record, fault: str) -> Outgoing:
        code, text = eport(fault, rec.code)
        self.tally.reject(f"{code} {fault}")
        return self._out(rec, code, text)

    def _out(self, rec: Record, status: str, info: str, *,
             assigned: Mapping[str, str] | None = None) -> Outgoing:
        self.tally.answered += 1
        receipt = _receipt_of(rec.code)
        wanted = set(receipt_fields(receipt))
        fields = {k: v for k, v in rec.head.items() if k in wanted and v}
        fields.update(assigned or {})
        if "preNo" in wanted and "preNo" not in fields:
            fields["preNo"] = self._pre_no(rec)
        fields["guid"] = rec.get("guid") if status == "2" else str(uuid.UUID(int=self._rng.getrandbits(128),
                                                                                  version=4)).upper()
        return Outgoing(rec.code, receipt, status, info, fields, rec.sender_dxp, rec.customs_dxp)

    def _declared_text(self, rec: Record) -> str:
        if rec.code in (IMPORT_LIST, EXPORT_LIST):
            return f"清单新增申报成功[电商企业编码：{rec.get('ebcCode')}订单编号：{rec.get('orderNo')}]"
        return f"新增申报成功[{rec.get('guid')}]"

    def _waiting_text(self, rec: Record, absent: Sequence[str]) -> str:
        zh = "，".join(_MISSING_TEXT.get(c, f"{c}不存在") for c in absent)
        en = "; ".join(_MISSING_EN.get(c, f"{c} not yet received") for c in absent)
        return (f"{self._declared_text(rec)}；对应电商平台为[{rec.get('ebpCode')}]"
                f"订单号为[{rec.get('orderNo')}]{zh} ({en})")

    # ------------------------------------------------------------------ numbers

    def _keys(self, rec: Record) -> tuple[str, ...]:
        return tuple(rec.get(k) for k in load_catalog().types[rec.code].keys)

    def _pre_no(self, rec: Record) -> str:
        digits = int(uuid.uuid5(uuid.NAMESPACE_OID, f"pre/{rec.code}/{self._keys(rec)}").int % 10**9)
        return f"B{self._now():%Y%m%d}{digits:09d}"

    def _invt_no(self, rec: Record) -> str:
        """The list's customs number: the one it was declared with, else assigned from its copNo."""
        given = rec.get("invtNo")
        if given:
            return given
        letter = "I" if rec.code == IMPORT_LIST else "E"
        digits = int(uuid.uuid5(uuid.NAMESPACE_OID, f"invt/{rec.get('copNo')}").int % 10**9)
        return f"{rec.get('customsCode') or '2918'}{self._now():%Y}{letter}{digits:09d}"

    def _number(self, kind: str) -> str:
        """An 18-character number customs assigns: sumNo ``2918YYYYE`` + 9 digits, a temporary
        declaration number ``TYYYY`` + 13 digits, the others ``2918YYYY`` + 10 digits."""
        self._serial += 1
        year = f"{self._now():%Y}"
        kind_no = {"sum": 1, "decl": 2, "tmp": 3, "pre": 4, "entry": 5}[kind]
        if kind == "sum":
            return f"2918{year}E{self._serial:09d}"
        if kind == "tmp":
            return f"T{year}{kind_no}{self._serial:012d}"
        return f"2918{year}{kind_no}{self._serial:09d}"

    def _now(self) -> datetime:
        return self._fixed_now or datetime.now(BEIJING)


def _receipt_of(code: str) -> str:
    receipt = load_catalog().types[code].receipt
    if receipt is None:
        raise ValueError(f"{code} has no receipt type")
    return receipt


def _dec(text: str) -> Decimal:
    try:
        return Decimal(text or "0")
    except InvalidOperation:
        return Decimal(0)
