"""The customs district's decisions, without I/O: what it answers to each record it receives."""

from __future__ import annotations

import itertools
import random

import pytest

from gateway import reconcile
from gateway.catalog import load as load_catalog
from gateway.envelope import RECEIVER_EXPORT, RECEIVER_IMPORT
from gateway.sandbox import samplegen
from gateway.sandbox.channels import ChannelRules, parse_rules
from gateway.sandbox.district import District
from gateway.sandbox.records import Outgoing, Record, records_of
from gateway.xmlio import parse

GREEN = ChannelRules()
SENDER = "DXPENT0000458762"


def record(data: bytes) -> Record:
    ident = load_catalog().identify(parse(data))
    customs = RECEIVER_EXPORT if ident.type.flow == "export" else RECEIVER_IMPORT
    [rec] = records_of(ident, SENDER, customs)
    return rec


def feed(d: District, docs: dict[str, bytes], order: tuple[str, ...] | None = None) -> list[Outgoing]:
    out: list[Outgoing] = []
    for code in order or tuple(docs):
        out += d.take(record(docs[code]))
    return out


def answers_to(out: list[Outgoing], code: str) -> list[str]:
    return [o.status for o in out if o.declaration_type == code]


def test_a_consistent_parcel_is_accepted_then_released() -> None:
    out = feed(District(GREEN), samplegen.build_parcel("SO1", seed=1))
    assert answers_to(out, "CEB621") == ["2", "120", "800"]
    for code in ("CEB311", "CEB411", "CEB511"):
        assert answers_to(out, code) == ["2", "120"]
    first = next(o for o in out if o.declaration_type == "CEB311")
    assert first.info.startswith("新增申报成功[") and first.fields["guid"] in first.info
    released = [o for o in out if o.status == "800"][0]
    assert released.fields["invtNo"].startswith("2918") and released.to_dxp == SENDER
    assert released.customs_dxp == RECEIVER_IMPORT and released.receipt_type == "CEB622"


@pytest.mark.parametrize("order", list(itertools.permutations(reconcile.PARCEL_TYPES)))
def test_every_arrival_order_ends_the_same(order: tuple[str, ...]) -> None:
    docs = samplegen.build_parcel("SO2", seed=2)
    out = feed(District(GREEN), docs, order)
    assert answers_to(out, "CEB621")[-2:] == ["120", "800"]
    assert answers_to(out, "CEB621").count("800") == 1


def test_a_list_waits_for_its_payment_and_is_decided_when_it_comes() -> None:
    docs = samplegen.build_parcel("SO3", seed=3)
    d = District(GREEN)
    out = feed(d, docs, ("CEB311", "CEB511", "CEB621"))
    [waiting] = [o for o in out if o.declaration_type == "CEB621"]
    assert waiting.status == "2"
    assert "支付信息不存在" in waiting.info and "payment not yet received" in waiting.info
    assert [r.code for r in d.waiting()] == ["CEB621"]
    later = feed(d, docs, ("CEB411",))
    assert answers_to(later, "CEB411") == ["2", "120"]
    assert answers_to(later, "CEB621") == ["120", "800"]
    assert d.waiting() == []


@pytest.mark.parametrize(("changes", "named"), [
    ({"CEB411": {"amountPaid": "1.00"}}, "(CEB411 amountPaid)"),
    ({"CEB511": {"consignee": "另一位收件人"}}, "(CEB511 consignee)"),
    ({"CEB311": {"payCode": "31222699X9"}}, "(CEB311 payCode)"),
])
def test_an_inconsistent_parcel_gets_100_naming_the_field(changes: dict[str, dict[str, str]],
                                                          named: str) -> None:
    out = feed(District(GREEN), samplegen.build_parcel("SO4", seed=4, changes=changes))
    [refusal] = [o for o in out if o.declaration_type == "CEB621" and o.status != "2"]
    assert refusal.status == "100"
    assert refusal.info.startswith("[Code:") and named in refusal.info


def test_a_parcel_over_the_single_limit_gets_the_negative_code() -> None:
    out = feed(District(GREEN), samplegen.build_parcel("SO5", seed=5, qty_scale=25))
    assert answers_to(out, "CEB621") == ["2", "-621005"]


def test_the_annual_limit_counts_the_buyers_released_parcels() -> None:
    d = District(GREEN, limits=reconcile.Limits(annual=reconcile.Limits().single))
    buyer = {"buyerIdNumber": "110101199001011234", "buyerName": "王伟",
             "payerIdNumber": "110101199001011234", "payerName": "王伟"}
    verdicts = []
    for i in range(12):
        changes = {c: buyer for c in ("CEB311", "CEB411", "CEB621")}
        out = feed(d, samplegen.build_parcel(f"SOA{i}", seed=100 + i, qty_scale=3, changes=changes))
        verdicts.append(answers_to(out, "CEB621")[-1])
    assert verdicts[0] == "800"
    assert "-621018" in verdicts and verdicts.index("-621018") > 0


def test_duplicates_and_changes_get_negative_codes() -> None:
    docs = samplegen.build_parcel("SO6", seed=6)
    d = District(GREEN)
    feed(d, docs)
    again = d.take(record(docs["CEB311"]))
    assert [(o.status, o.info) for o in again] == [("-301010", "订单重复申报：同一订单编号的订单已存在")]
    assert [o.status for o in d.take(record(docs["CEB621"]))] == ["-621004"]
    change = samplegen.build_parcel("SO6", seed=6, changes={"CEB621": {"appType": "2"}})["CEB621"]
    assert [o.status for o in d.take(record(change))] == ["-621012"]
    unknown = samplegen.build_parcel("SO7", seed=7, changes={"CEB621": {"appType": "2"}})["CEB621"]
    assert [o.status for o in d.take(record(unknown))] == ["-621011"]


def test_a_change_before_acceptance_replaces_the_waiting_list() -> None:
    docs = samplegen.build_parcel("SO8", seed=8)
    d = District(GREEN)
    feed(d, docs, ("CEB311", "CEB511", "CEB621"))
    change = samplegen.build_parcel("SO8", seed=8, changes={"CEB621": {"appType": "2"}})["CEB621"]
    assert [o.status for o in d.take(record(change))] == ["2"]
    assert answers_to(feed(d, docs, ("CEB411",)), "CEB621") == ["120", "800"]


def test_a_signature_that_does_not_verify_gets_the_negative_code() -> None:
    docs = samplegen.build_parcel("SO9", seed=9)
    assert [o.status for o in District(GREEN).take(record(docs["CEB621"]), signature_ok=False)] == ["-621029"]


# ---------------------------------------------------------------- channels

def test_a_risky_hs_code_is_inspected_then_released_or_returned() -> None:
    docs = samplegen.build_parcel("SO10", seed=10)
    gcode = record(docs["CEB621"]).lines[0]["gcode"]
    released = feed(District(ChannelRules(hs_codes=(gcode[:4],))), docs)
    assert answers_to(released, "CEB621") == ["2", "120", "500", "800"]
    assert "HS code" in next(o.info for o in released if o.status == "500")
    returned = feed(District(ChannelRules(hs_codes=(gcode[:4],), return_rate=1.0)), docs)
    assert answers_to(returned, "CEB621") == ["2", "120", "500", "700"]


@pytest.mark.parametrize("rules", [
    'manual_review = []\n[red]\nbuyers = ["{buyer}"]\n',
    'manual_review = []\n[red]\nenterprises = ["3301964J31"]\n',
    'inspection_rate = 1.0\n',
])
def test_risk_lists_and_random_inspection_send_lists_to_red(rules: str) -> None:
    docs = samplegen.build_parcel("SO11", seed=11)
    buyer = record(docs["CEB621"]).get("buyerIdNumber")
    out = feed(District(parse_rules(rules.replace("{buyer}", buyer))), docs)
    assert answers_to(out, "CEB621")[2] == "500"


def test_random_inspection_follows_the_rate_and_the_seed() -> None:
    rules = ChannelRules(inspection_rate=0.3)
    heads = [{"copNo": f"COP{i}"} for i in range(400)]
    red = [rules.choose(h, [], seed=7).colour == "red" for h in heads]
    assert 80 <= sum(red) <= 160
    assert red == [rules.choose(h, [], seed=7).colour == "red" for h in heads]
    assert red != [rules.choose(h, [], seed=8).colour == "red" for h in heads]


def test_an_operator_holds_a_green_list_in_manual_review_then_releases_it() -> None:
    docs = samplegen.build_parcel("SO12", seed=12)
    d = District(ChannelRules(manual_review=frozenset({"SO12"})))
    assert answers_to(feed(d, docs), "CEB621") == ["2", "120", "300"]
    assert d.review() == []
    d.rules = ChannelRules()
    assert [o.status for o in d.review()] == ["800"]


# ---------------------------------------------------------------- export

def export_parcel(order_no: str, seed: int) -> dict[str, bytes]:
    return samplegen.build_parcel(order_no, flow="export", seed=seed)


def test_export_lists_released_departed_and_summarised() -> None:
    d = District(GREEN, seed=3)
    parcels = [export_parcel(f"EX{i}", 30 + i) for i in range(3)]
    released = []
    for docs in parcels:
        out = feed(d, docs)
        assert answers_to(out, "CEB303") == ["2", "120"] and answers_to(out, "CEB505") == ["2", "399"]
        assert answers_to(out, "CEB603") == ["2", "120", "800"]
        released.append(next(o for o in out if o.status == "800"))
    assert all(o.customs_dxp == RECEIVER_EXPORT and o.receipt_type == "CEB604" for o in released)
    invts = [o.fields["invtNo"] for o in released]
    waybills = [record(p["CEB603"]).get("logisticsNo") for p in parcels]
    # a summary of lists that have not left the country is refused, naming them
    early = d.take(record(samplegen.build_record("CEB701", {"copNo": "SUM0"}, [{"invtNo": invts[0]}])))
    assert [o.status for o in early] == ["2", "100"] and invts[0] in early[-1].info
    dep = d.take(record(samplegen.build_record("CEB509", {"copNo": "DEP1"},
                                               [{"gnum": str(i + 1), "logisticsNo": w}
                                                for i, w in enumerate(waybills[:2])])))
    assert [(o.receipt_type, o.status) for o in dep] == [("CEB510", "2"), ("CEB510", "399")]
    out = d.take(record(samplegen.build_record("CEB701", {"copNo": "SUM1"},
                                               [{"invtNo": n} for n in invts[:2]])))
    assert [(o.receipt_type, o.status) for o in out] == [("CEB702", "2"), ("CEB702", "399"), ("CEB792", "")]
    sum_no = out[1].fields["sumNo"]
    result = out[2]
    assert result.message is not None and result.fields == {"sumNo": sum_no}
    ident = load_catalog().identify(parse(result.message))
    assert ident.type.code == "CEB792"
    [summary] = records_of(ident, "", "")
    assert summary.get("sumNo") == sum_no and len(sum_no) == 18
    assert {ln["invtNo"] for ln in summary.lines} == set(invts[:2])
    by_code: dict[str, set[str]] = {}
    for ln in summary.lines:
        by_code.setdefault(ln["gcode"], set()).add(ln["gseqno"])
    assert all(len(s) == 1 for s in by_code.values())  # one HS code, one summary item
    assert sorted({int(ln["gseqno"]) for ln in summary.lines}) == list(range(1, len(by_code) + 1))
    # summarised lists are not summarised twice; a waybill never released does not depart
    again = d.take(record(samplegen.build_record("CEB701", {"copNo": "SUM2"}, [{"invtNo": invts[0]}])))
    assert again[-1].status == "100"
    bad = d.take(record(samplegen.build_record("CEB509", {"copNo": "DEP2"},
                                               [{"gnum": "1", "logisticsNo": "SF000NOSUCH"}])))
    assert bad[-1].status == "100" and "SF000NOSUCH" in bad[-1].info


def test_decisions_depend_on_the_seed_not_on_the_arrival_order() -> None:
    rules = ChannelRules(inspection_rate=0.5, return_rate=0.5)
    parcels = [samplegen.build_parcel(f"SOD{i}", seed=200 + i) for i in range(16)]
    docs = [(p, code) for p in parcels for code in reconcile.PARCEL_TYPES]

    def finals(seed: int, order: list[tuple[dict[str, bytes], str]]) -> dict[str, str]:
        d = District(rules, seed=seed)
        out: dict[str, str] = {}
        for p, code in order:
            for o in d.take(record(p[code])):
                if o.declaration_type == "CEB621":
                    out[o.fields["copNo"]] = o.status
        return out

    shuffled = list(docs)
    random.Random(1).shuffle(shuffled)
    first = finals(7, docs)
    assert set(first.values()) == {"800", "700"} and finals(7, shuffled) == first
    assert finals(8, docs) != first


def test_a_summary_of_a_period_takes_the_released_departed_lists_declared_then() -> None:
    d = District(GREEN, seed=4)
    parcels = [export_parcel(f"EXP{i}", 60 + i) for i in range(3)]
    released = [next(o for o in feed(d, docs) if o.status == "800") for docs in parcels]
    waybills = [record(p["CEB603"]).get("logisticsNo") for p in parcels]
    times = sorted(record(p["CEB603"]).get("appTime") for p in parcels)
    lines = [{"gnum": str(i + 1), "logisticsNo": w} for i, w in enumerate(waybills)]
    d.take(record(samplegen.build_record("CEB509", {"copNo": "DEP3"}, lines)))

    def apply(start: str, end: str) -> list[Outgoing]:
        # a period instead of lists (the list, if any, is then ignored); the district reads fields by name
        data = samplegen.build_record("CEB701", {"copNo": f"SUM{end}"}, [{"invtNo": "IGNORED"}])
        period = f"<ceb:startTime>{start}</ceb:startTime><ceb:endTime>{end}</ceb:endTime><ceb:summaryFlag>"
        return d.take(record(data.replace(b"<ceb:summaryFlag>", period.encode(), 1)))
    assert apply("19990101000000", "19991231235959")[-1].status == "100"
    out = apply(times[0], times[1])
    assert [o.status for o in out] == ["2", "399", ""]
    assert out[-1].message is not None
    [summary] = records_of(load_catalog().identify(parse(out[-1].message)), "", "")
    invts = {o.fields["invtNo"] for o in released}
    first = {ln["invtNo"] for ln in summary.lines}
    assert first < invts and len(first) == 2
    rest = apply(times[0], times[2])  # the two summarised already are not taken again
    assert [o.status for o in rest] == ["2", "399", ""]
    assert rest[-1].message is not None
    [second] = records_of(load_catalog().identify(parse(rest[-1].message)), "", "")
    assert {ln["invtNo"] for ln in second.lines} == invts - first
