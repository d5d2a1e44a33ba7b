"""The customs sandbox against the real gateway over HTTP: the export flow from the order
(CEB303) to the summary result (CEB792), a forged signature, and the demo with a fixed seed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.demo import run_demo
from gateway.dsig import Registry, load_key, load_registry
from gateway.errors import EXIT_USAGE
from gateway.sandbox import datadir, samplegen
from gateway.sandbox.channels import ChannelRules, RulesFile
from gateway.sandbox.demo import Run, Sent
from gateway.sandbox.demo_report import check
from gateway.sandbox.district import District
from gateway.sandbox.player import Player
from gateway.xmlio import parse
from tests.service.kit import Api, Sandbox, aio, running

CEB = "{http://www.chinaport.gov.cn/ceb}"


def player(sb: Sandbox, api: Api, rules: ChannelRules | None = None) -> Player:
    acc = sb.account("customs")
    return Player(api.url, sb.token("customs"), load_key(acc["key"], acc["cert"]),
                  load_registry(datadir.sandbox_certs() / "registry.toml"),
                  District(rules or ChannelRules(), seed=1))


async def submit(sb: Sandbox, api: Api, owner: str, data: bytes) -> int:
    status, body = await api.post_xml(sb.token(owner), sb.sign_as(owner, data))
    assert status == 202, body
    return int(body["id"])


async def mail(sb: Sandbox, api: Api, owner: str) -> list[dict[str, Any]]:
    status, body = await api.get(sb.token(owner), "/v1/receipts?format=json&limit=500")
    assert status == 200
    items: list[dict[str, Any]] = body["items"]
    return items


def statuses(items: list[dict[str, Any]], message_id: int) -> list[str]:
    return [i["status"] for i in items if i["message_id"] == message_id]


@aio
async def test_the_export_flow_from_the_order_to_the_summary_result(sb: Sandbox) -> None:
    async with running(sb.settings) as api:
        customs = player(sb, api)
        docs = samplegen.build_parcel("EXP1", flow="export", seed=41)
        owners = {"CEB303": "platform", "CEB403": "payment", "CEB505": "logistics", "CEB603": "ecommerce"}
        ids = {code: await submit(sb, api, owners[code], docs[code]) for code in owners}
        await customs.run(api.session)
        assert customs.posted.refused == []
        assert statuses(await mail(sb, api, "platform"), ids["CEB303"]) == ["2", "120"]
        assert statuses(await mail(sb, api, "payment"), ids["CEB403"]) == ["2", "120"]
        assert statuses(await mail(sb, api, "logistics"), ids["CEB505"]) == ["2", "399"]
        ecommerce = await mail(sb, api, "ecommerce")
        assert statuses(ecommerce, ids["CEB603"]) == ["2", "120", "800"]
        released = next(i for i in ecommerce if i["status"] == "800")
        invt_no = released["record"]["invtNo"]
        assert invt_no.startswith("2918")
        waybill = parse(docs["CEB603"]).root.findtext(f"{CEB}Inventory/{CEB}InventoryHead/{CEB}logisticsNo")
        departure = samplegen.build_record("CEB509", {"copNo": "DEP-EXP1"},
                                           [{"gnum": "1", "logisticsNo": waybill or ""}])
        dep_id = await submit(sb, api, "logistics", departure)
        await customs.run(api.session)
        assert statuses(await mail(sb, api, "logistics"), dep_id) == ["2", "399"]
        apply = samplegen.build_record("CEB701", {"copNo": "SUM-EXP1"}, [{"invtNo": invt_no}])
        sum_id = await submit(sb, api, "agent", apply)
        await customs.run(api.session)
        agent = await mail(sb, api, "agent")
        assert [(i["message_type"], i["status"]) for i in agent if i["message_id"] == sum_id][:2] == [
            ("CEB702", "2"), ("CEB702", "399")]
        [result] = [i for i in agent if i["message_type"] == "CEB792"]
        assert result["message_id"] == sum_id
        assert f"<ceb:invtNo>{invt_no}</ceb:invtNo>" in result["xml"]
        assert "<ceb:gseqno>1</ceb:gseqno>" in result["xml"]
        _, message = await api.get(sb.token("agent"), f"/v1/messages/{sum_id}")
        assert message["status"] == "concluded"


@aio
async def test_a_signature_customs_cannot_verify_gets_the_negative_code(sb: Sandbox) -> None:
    async with running(sb.settings) as api:
        docs = samplegen.build_parcel("SIG1", seed=42)
        order = await submit(sb, api, "ecommerce", docs["CEB311"])
        customs = player(sb, api)
        # customs has not registered the e-commerce enterprise's certificates (the gateway has)
        full = customs.registry
        customs.registry = Registry([e for e in full.entries if not e.name.startswith("ecommerce-")])
        await customs.run(api.session)
        [answer] = [i for i in await mail(sb, api, "ecommerce") if i["message_id"] == order]
        assert (answer["status"], answer["info"]) == ("-301020", "验签失败")


def test_the_demo_with_a_fixed_seed_gives_every_sender_what_it_is_owed() -> None:
    run, planned, problems, district = asyncio.run(run_demo(10, 0.6, 0.3, 5, preflight="hold", quiet=True))
    assert problems == []
    # the gateway's pre-flight comparison warned the senders of the inconsistent parcels
    assert {s.parcel.kind for s in run.sent if s.findings() and s.parcel is not None} <= {
        "amount", "consignee", "payment_company", "quota"}
    assert any(s.findings() for s in run.sent)
    assert len(planned) == 10 and sum(p.flow == "export" for p in planned) == 3
    kinds = {p.kind for p in planned}
    assert {"amount", "consignee", "payment_company", "missing_payment"} <= kinds
    assert district.tally.summarised == district.tally.departed == sum(
        "800" in s.statuses() for s in run.sent if s.code == "CEB603")
    # the check is not blind: a receipt taken away, or one given to the wrong sender, is a problem
    lost = Run([Sent(s.parcel, s.code, s.account, s.http_status, s.message_id, s.error, s.receipts[:-1],
                     s.change) for s in run.sent], run.mail, [])
    assert check(lost)
    consistent = next(s for s in run.sent if s.parcel is not None and s.parcel.kind == "consistent")
    consistent.receipts.append({**consistent.receipts[0], "status": "PREFLIGHT", "receipt_id": -1})
    assert any("owed none" in p for p in check(run, "hold"))
    assert check(Run(run.sent, run.mail, ["platform got CEB622 800 for message 1, not one of its own"]))


def test_cebgw_sandbox_refuses_a_negative_rate(cli: Any) -> None:
    code, _, err = cli("sandbox", "--url", "http://127.0.0.1:9", "--token", "t", "--key", "k", "--rate", "-1")
    assert code == EXIT_USAGE and "--rate" in err


@pytest.mark.parametrize("share", ["2", "x"])
def test_cebgw_demo_refuses_a_share_outside_0_to_1(cli: Any, share: str) -> None:
    code, _, err = cli("demo", "--inconsistent", share)
    assert code == EXIT_USAGE and "--inconsistent" in err


@aio
async def test_an_operator_releases_a_list_held_in_manual_review(sb: Sandbox, tmp_path: Path) -> None:
    rules_path = tmp_path / "rules.toml"
    rules_path.write_text('manual_review = ["HOLD1"]\n', encoding="utf-8")
    async with running(sb.settings) as api:
        docs = samplegen.build_parcel("HOLD1", seed=43)
        owners = {"CEB311": "ecommerce", "CEB411": "payment", "CEB511": "logistics", "CEB621": "ecommerce"}
        ids = {code: await submit(sb, api, owners[code], docs[code]) for code in owners}
        customs = player(sb, api)
        customs.rules = RulesFile(rules_path)
        await customs.run(api.session)
        assert statuses(await mail(sb, api, "ecommerce"), ids["CEB621"]) == ["2", "120", "300"]
        rules_path.write_text("manual_review = []\n", encoding="utf-8")
        os.utime(rules_path, ns=(5, 5))
        await customs.run(api.session)
        assert statuses(await mail(sb, api, "ecommerce"), ids["CEB621"]) == ["2", "120", "300", "800"]
        _, message = await api.get(sb.token("ecommerce"), f"/v1/messages/{ids['CEB621']}")
        assert message["status"] == "released"
