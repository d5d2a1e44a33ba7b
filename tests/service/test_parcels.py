"""The pre-flight comparison over HTTP (issue 11 part 2): the four documents of a parcel from
four enterprises in every order, finding receipts, held and released inventory lists, and the
parcels endpoint's tenant isolation.

Policies (parcelkit.POLICIES): the e-commerce company holds, the payment and logistics
companies are warned, the platform is off.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from lxml import etree

from gateway import preflight
from gateway.catalog import load as load_catalog
from gateway.preflight import PREFLIGHT_STATUS
from gateway.sandbox import datadir
from gateway.store import open_store
from gateway.xmlio import parse

from .kit import Api, Sandbox, aio, running
from .parcelkit import CEB, changed, customs_text_codes, head_field, order_set, submit

CODES = ("CEB311", "CEB411", "CEB511", "CEB621")
EBP = "3301964J31"


async def _mail(api: Api, sb: Sandbox, name: str) -> list[dict[str, Any]]:
    status, mail = await api.get(sb.token(name), "/v1/receipts?format=json")
    assert status == 200, mail
    return list(mail["items"])


async def _parcel(api: Api, sb: Sandbox, name: str, order_no: str) -> tuple[int, dict[str, Any]]:
    return await api.get(sb.token(name), f"/v1/parcels/{EBP}/{order_no}")


@aio
async def test_every_arrival_order_finds_the_wrong_amount_and_holds_until_the_change(psb: Sandbox) -> None:
    async with running(psb.settings) as api:
        for n, order in enumerate(itertools.permutations(CODES)):
            order_no = f"PF-ORDER-{n:02d}"
            docs = order_set(order_no, seed=n)
            right = head_field(docs["CEB411"], "amountPaid")
            docs["CEB411"] = changed(docs["CEB411"], amountPaid="1.00")
            for i, code in enumerate(order):
                status, body = await submit(api, psb, docs[code])
                assert status == 202, (order, code, body)
                (evaluation,) = body["preflight"]  # type: ignore[misc]
                assert len(evaluation["missing"]) == 3 - i, (order, code, evaluation)
            found = {f["code"] for f in evaluation["findings"]}
            assert found == {"CEBGW-RECON-AMOUNTPAID"}, (order, evaluation)
            status, view = await _parcel(api, psb, "ecommerce", order_no)
            assert status == 200 and view["missing"] == [], view
            inventory = view["documents"]["CEB621"][0]
            assert inventory["held"] is True and view["held"] == [inventory["message_id"]], (order, view)
            # the payment company fixes its voucher with a change (appType 2): the list goes
            status, body = await submit(api, psb, changed(docs["CEB411"], app_type="2", amountPaid=right))
            assert status == 202, body
            (evaluation,) = body["preflight"]  # type: ignore[misc]
            assert evaluation["findings"] == [] and evaluation["released"] == [inventory["message_id"]], body
            status, view = await _parcel(api, psb, "payment", order_no)
            assert view["findings"] == [] and view["held"] == [], view
            payments = view["documents"]["CEB411"]
            assert [p["current"] for p in payments] == [False, True], payments
        _, held = await api.get(psb.token("customs"), "/v1/held")
        assert held["items"] == [], held


@aio
async def test_finding_receipts_reach_each_involved_sender_in_the_customs_shape(psb: Sandbox) -> None:
    async with running(psb.settings) as api:
        docs = order_set("PF-MAIL-1", seed=77)
        docs["CEB511"] = changed(docs["CEB511"], consignee="王先生")
        for code in CODES:
            assert (await submit(api, psb, docs[code]))[0] == 202
        logistics = [m for m in await _mail(api, psb, "logistics") if m["status"] == PREFLIGHT_STATUS]
        assert len(logistics) == 1, logistics
        (item,) = logistics
        assert item["message_type"] == "CEB512" and customs_text_codes(item["info"]) == ["13040"], item
        assert "运单收货人信息与订单不一致" in item["info"] and "<returnStatus>PREFLIGHT<" in item["xml"]
        assert item["record"]["logisticsNo"] == head_field(docs["CEB511"], "logisticsNo"), item
        # the order's sender (policy hold) hears of it too; the payment company is not involved
        ecommerce = [m for m in await _mail(api, psb, "ecommerce") if m["status"] == PREFLIGHT_STATUS]
        assert [m["message_type"] for m in ecommerce] == ["CEB312"], ecommerce
        assert [m for m in await _mail(api, psb, "payment") if m["status"] == PREFLIGHT_STATUS] == []
        # a finding receipt moves no state: the waybill is still only declared
        _, msg = await api.get(psb.token("logistics"), f"/v1/messages/{item['message_id']}")
        assert msg["status"] == "declared" and msg["timeline"][0]["status"] == PREFLIGHT_STATUS, msg
        # the same findings again (a later document arrives): no second receipt
        assert (await submit(api, psb, changed(docs["CEB411"], app_type="2")))[0] == 202
        again = [m for m in await _mail(api, psb, "logistics") if m["status"] == PREFLIGHT_STATUS]
        assert len(again) == 1, again


@aio
async def test_parcels_are_visible_to_the_enterprises_involved_only(psb: Sandbox) -> None:
    async with running(psb.settings) as api:
        docs = order_set("PF-SEE-1", seed=78)
        for code in ("CEB311", "CEB411"):
            assert (await submit(api, psb, docs[code]))[0] == 202
        for name in ("ecommerce", "payment"):
            status, view = await _parcel(api, psb, name, "PF-SEE-1")
            assert status == 200 and view["missing"] == ["CEB511", "CEB621"], (name, view)
        for name in ("logistics", "agent", "platform", "customs"):
            status, body = await _parcel(api, psb, name, "PF-SEE-1")
            assert status == 404 and body["error"]["code"] == "CEBGW-NOT-FOUND", (name, body)
        assert (await _parcel(api, psb, "ecommerce", "NO-SUCH-ORDER"))[0] == 404
        status, _ = await api.get(psb.token("ecommerce"), "/v1/parcels/OTHER-EBP/PF-SEE-1")
        assert status == 404
        # once its waybill is in, the logistics company sees the parcel too
        assert (await submit(api, psb, docs["CEB511"]))[0] == 202
        status, view = await _parcel(api, psb, "logistics", "PF-SEE-1")
        assert status == 200 and view["missing"] == ["CEB621"], view


@aio
async def test_an_operator_releases_a_held_list_and_customs_then_gets_it(psb: Sandbox) -> None:
    async with running(psb.settings) as api:
        docs = order_set("PF-OP-1", seed=79)
        docs["CEB621"] = changed(docs["CEB621"], buyerTelephone="13900000000")
        for code in CODES:
            assert (await submit(api, psb, docs[code]))[0] == 202
        _, held = await api.get(psb.token("ecommerce"), "/v1/held")
        (item,) = held["items"]
        assert item["orderNo"] == "PF-OP-1", held
        _, outbox = await api.get(psb.token("customs"), "/v1/customs/outbox?limit=50")
        assert item["message_id"] not in [i["message_id"] for i in outbox["items"]], outbox
        ids = [i["id"] for i in outbox["items"]]  # delivered: the senders' queues move on
        assert (await api.post_json(psb.token("customs"), "/v1/customs/outbox/ack", {"ids": ids}))[0] == 200
        release = f"/v1/held/{item['message_id']}/release"
        status, body = await api.post_json(psb.token("ecommerce"), release, {})
        assert status == 403, body
        status, body = await api.post_json(psb.token("customs"), release, {})
        assert status == 200 and body["released_by"] == "customs", body
        status, body = await api.post_json(psb.token("customs"), release, {})
        assert status == 404, body
        _, outbox = await api.get(psb.token("customs"), "/v1/customs/outbox?limit=50")
        assert item["message_id"] in [i["message_id"] for i in outbox["items"]], outbox


@aio
async def test_the_annual_limit_counts_the_buyers_other_parcels_kept_in_the_store(psb: Sandbox) -> None:
    first = order_set("PF-YEAR-1", seed=80)
    buyer = head_field(first["CEB621"], "buyerIdNumber")
    second = order_set("PF-YEAR-2", seed=81)
    second["CEB311"] = changed(second["CEB311"], buyerIdNumber=buyer,
                               buyerName=head_field(first["CEB311"], "buyerName"),
                               buyerTelephone=head_field(first["CEB311"], "buyerTelephone"))
    second["CEB621"] = changed(second["CEB621"], buyerIdNumber=buyer,
                               buyerName=head_field(first["CEB311"], "buyerName"),
                               buyerTelephone=head_field(first["CEB311"], "buyerTelephone"))
    second["CEB411"] = changed(second["CEB411"], payerIdNumber=buyer,
                               payerName=head_field(first["CEB311"], "buyerName"))
    value = Decimal(head_field(first["CEB311"], "goodsValue")) \
        + Decimal(head_field(first["CEB621"], "freight"))
    limit = value + Decimal("1.00")  # the first parcel fits, both together do not
    async with running(psb.settings.with_(annual_limit=limit)) as api:
        for code in CODES:
            status, body = await submit(api, psb, first[code])
            assert status == 202, body
        assert body["preflight"][0]["findings"] == [], body  # type: ignore[index]
        for code in CODES:
            status, body = await submit(api, psb, second[code])
            assert status == 202, body
        found = body["preflight"][0]["findings"]  # type: ignore[index]
        assert [f["code"] for f in found] == ["CEBGW-RECON-ANNUAL-LIMIT"], found
        assert found[0]["values"][0] == buyer and found[0]["eport_code"] == "-621018", found


@aio
async def test_a_held_list_is_corrected_by_declaring_it_anew_not_by_a_change(psb: Sandbox) -> None:
    async with running(psb.settings) as api:
        docs = order_set("PF-FIX-1", seed=82)
        right = head_field(docs["CEB621"], "buyerTelephone")
        docs["CEB621"] = changed(docs["CEB621"], buyerTelephone="13900000000")
        for code in CODES:
            assert (await submit(api, psb, docs[code]))[0] == 202
        _, view = await _parcel(api, psb, "ecommerce", "PF-FIX-1")
        (held,) = view["held"]
        # customs never got the held list: a change of it would change nothing customs knows
        status, body = await submit(api, psb, changed(docs["CEB621"], app_type="2", buyerTelephone=right))
        assert status == 409 and body["error"]["code"] == "CEBGW-LIFECYCLE-NO-ORIGINAL", body
        assert "held back by the pre-flight comparison" in body["error"]["message"], body
        status, body = await submit(api, psb, changed(docs["CEB621"], app_type="1", buyerTelephone=right))
        assert status == 202, body
        (evaluation,) = body["preflight"]  # type: ignore[misc]
        assert evaluation["findings"] == [] and evaluation["released"] == [body["id"]], evaluation
        _, view = await _parcel(api, psb, "ecommerce", "PF-FIX-1")
        lists = view["documents"]["CEB621"]
        assert [(v["message_id"], v["current"], v["held"]) for v in lists] == [
            (held, False, True), (body["id"], True, False)], lists
        _, outbox = await api.get(psb.token("customs"), "/v1/customs/outbox?limit=50")
        leased = [i["message_id"] for i in outbox["items"]]
        assert held not in leased, outbox


@aio
async def test_an_inventory_message_of_two_parcels_goes_only_when_both_agree(psb: Sandbox) -> None:
    a, b = order_set("PF-TWO-A", seed=83), order_set("PF-TWO-B", seed=84)
    right = head_field(b["CEB411"], "amountPaid")
    b["CEB411"] = changed(b["CEB411"], amountPaid="1.00")
    both = parse(a["CEB621"]).root
    transfer = both.find(f"{CEB}BaseTransfer")
    assert transfer is not None
    transfer.addprevious(next(parse(b["CEB621"]).root.iter(f"{CEB}Inventory")))
    inventories = etree.tostring(both, xml_declaration=True, encoding="UTF-8")
    async with running(psb.settings) as api:
        for docs in (a, b):
            for code in ("CEB311", "CEB411", "CEB511"):
                assert (await submit(api, psb, docs[code]))[0] == 202
        status, body = await submit(api, psb, inventories)
        assert status == 202, body
        evaluations = {e["orderNo"]: e for e in body["preflight"]}  # type: ignore[union-attr]
        assert evaluations["PF-TWO-A"]["findings"] == [] and evaluations["PF-TWO-A"]["released"] == []
        _, held = await api.get(psb.token("ecommerce"), "/v1/held")
        assert [i["message_id"] for i in held["items"]] == [body["id"]], held
        status, body = await submit(api, psb, changed(b["CEB411"], app_type="2", amountPaid=right))
        assert status == 202, body
        _, held = await api.get(psb.token("ecommerce"), "/v1/held")
        assert held["items"] == [], held


@aio
async def test_documents_arriving_at_once_end_in_the_same_outcome(psb: Sandbox) -> None:
    """Twenty submissions in flight together (five parcels, each with a wrong amount): every
    parcel ends compared with all four documents, its list held."""
    parcels = {f"PF-RACE-{n}": order_set(f"PF-RACE-{n}", seed=90 + n) for n in range(5)}
    for docs in parcels.values():
        docs["CEB411"] = changed(docs["CEB411"], amountPaid="2.00")
    async with running(psb.settings) as api:
        results = await asyncio.gather(*(submit(api, psb, docs[code]) for docs in parcels.values()
                                         for code in CODES))
        assert all(status == 202 for status, _ in results), results
        for order_no in parcels:
            _, view = await _parcel(api, psb, "ecommerce", order_no)
            assert view["missing"] == [], view
            assert [f["code"] for f in view["findings"]] == ["CEBGW-RECON-AMOUNTPAID"], view
            assert view["held"] == [view["documents"]["CEB621"][0]["message_id"]], view


@aio
async def test_documents_stored_before_the_comparison_was_asked_for_are_read_from_their_bytes(
        psb: Sandbox, sandbox_dir: Path) -> None:
    """While no enterprise asks for the comparison, a document's fields are not kept; once one
    does, the comparison reads them from the stored declaration and finds the same."""
    info = datadir.ensure(sandbox_dir, url="http://127.0.0.1:0")
    settings = datadir.settings_for(sandbox_dir).with_(store_url=psb.settings.store_url)
    off = Sandbox(sandbox_dir, info, settings)
    order_no = "PF-LAZY-01"
    docs = order_set(order_no, seed=7)
    docs["CEB411"] = changed(docs["CEB411"], amountPaid="1.00")
    async with running(off.settings) as api:
        for code in ("CEB311", "CEB411", "CEB621"):
            status, body = await submit(api, off, docs[code])
            assert status == 202 and "preflight" not in body, (code, body)
    store = open_store(psb.settings.store_url)
    try:
        versions = await store.parcel_versions(EBP, order_no)
    finally:
        await store.close()
    assert [v.message_type for v in versions] == ["CEB311", "CEB411", "CEB621"]
    for v in versions:
        assert v.fields == "" and v.data is not None
        kept = preflight.parcel_records(load_catalog().identify(parse(v.data)))[1][v.record_no]
        assert preflight.document_of(v) == preflight.document_of(replace(v, fields=kept.fields, data=None))
    async with running(psb.settings) as api:
        status, body = await submit(api, psb, docs["CEB511"])
        assert status == 202, body
        (evaluation,) = body["preflight"]  # type: ignore[misc]
        assert evaluation["missing"] == [], evaluation
        assert {f["code"] for f in evaluation["findings"]} == {"CEBGW-RECON-AMOUNTPAID"}, evaluation
