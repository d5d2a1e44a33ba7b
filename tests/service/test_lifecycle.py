"""Document lifecycle over HTTP (issue 11 part 1): appType 1/2/3 against the enterprise's earlier
versions, cancellation and return against the numbered inventory list, and receipts filed under
the version they answer, each version with its own timeline."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lxml import etree

from gateway.sandbox import samplegen
from gateway.xmlio import parse

from .kit import Api, Sandbox, aio, customs_receipt, running
from .parcelkit import CEB, as_sender, changed, head_field, order_set, submit

RECEIPTS = "/v1/customs/receipts"
RECEIPT_OF = {"CEB311": "CEB312", "CEB411": "CEB412", "CEB511": "CEB512", "CEB621": "CEB622"}
KEYS_OF = {"CEB312": ("ebpCode", "ebcCode", "orderNo"), "CEB412": ("payCode", "payTransactionId"),
           "CEB512": ("logisticsCode", "logisticsNo"), "CEB622": ("copNo",)}


async def _customs_says(api: Api, sb: Sandbox, data: bytes, status: str, *, guid: str | None = None,
                        info: str | None = None, **extra: str) -> dict[str, Any]:
    """Customs answers the declaration ``data`` with ``status`` (record guid ``guid``: else new)."""
    code = parse(data).root.tag.rpartition("}")[2][:6]
    rtype = RECEIPT_OF[code]
    keys = {k: head_field(data, k) for k in KEYS_OF[rtype]}
    if rtype == "CEB622":
        keys["preNo"] = extra.pop("preNo", "B20261123000000001")
    keys.update(extra)
    if guid is not None:
        keys["guid"] = guid
    receipt = samplegen.build_receipt(rtype, keys, status=status, info=info)
    receiver = sb.account(sb.owner_of(head_field(data, "copCode")))["dxp_id"]
    posted = customs_receipt(sb, receipt, receiver)
    code_, out = await api.post_xml(sb.token("customs"), posted, path=RECEIPTS)
    assert code_ == 200, out
    return dict(out["records"][0])


async def _timeline(api: Api, sb: Sandbox, data: bytes, mid: int) -> list[str]:
    _, msg = await api.get(sb.token(sb.owner_of(head_field(data, "copCode"))), f"/v1/messages/{mid}")
    return [t["status"] for t in msg["timeline"]]


@pytest.mark.parametrize("code", ["CEB311", "CEB411", "CEB511", "CEB621"])
@aio
async def test_receipts_are_filed_under_the_version_they_answer(sb: Sandbox, code: str) -> None:
    """A change in flight: v1 declared, v2 changes it before customs accepted; each status-2
    receipt names its version's guid, the 120 (a new guid) goes to the version customs holds."""
    async with running(sb.settings) as api:
        v1 = order_set(f"LC-VER-{code}", seed=11)[code]
        v2 = changed(v1, app_type="2")
        s1, first = await submit(api, sb, v1)
        s2, second = await submit(api, sb, v2)
        assert (s1, s2) == (202, 202), (first, second)
        g1, g2 = head_field(v1, "guid"), head_field(v2, "guid")
        r1 = await _customs_says(api, sb, v1, "2", guid=g1, info=f"新增申报成功[{g1}]")
        r2 = await _customs_says(api, sb, v2, "2", info=f"新增申报成功[{g2}]")  # guid only in returnInfo
        assert (r1["message_id"], r2["message_id"]) == (first["id"], second["id"]), (r1, r2)
        r3 = await _customs_says(api, sb, v2, "120", **({"invtNo": "29182026I0000LC001"} if code == "CEB621"
                                                         else {}))
        assert r3["message_id"] == second["id"] and r3["state"] == "accepted", r3
        assert await _timeline(api, sb, v1, int(first["id"])) == ["2"]
        assert await _timeline(api, sb, v2, int(second["id"])) == ["2", "120"]


@aio
async def test_a_second_new_declaration_of_the_same_keys_is_refused_with_a_ceb900(sb: Sandbox) -> None:
    async with running(sb.settings) as api:
        order = order_set("LC-DUP-1", seed=12)["CEB311"]
        assert (await submit(api, sb, order))[0] == 202
        status, body = await submit(api, sb, changed(order))
        assert status == 409 and body["error"]["code"] == "CEBGW-LIFECYCLE-DUPLICATE", body
        assert "appType 2" in body["error"]["message"] and "<returnStatus>" in body["ceb900"], body
        # the same bytes again are a duplicate, not a refusal
        status, body = await submit(api, sb, order)
        assert status == 200, body
        # after customs rejected it, the enterprise may declare it anew
        await _customs_says(api, sb, order, "100", info="[Code:1301;Desc:海关退单]")
        assert (await submit(api, sb, changed(order)))[0] == 202
        # another enterprise declaring the same keys is its own business (routing keeps tenants apart)
        platform = as_sender(changed(order), "3301964J31", "沙箱跨境商城平台")
        assert (await submit(api, sb, platform))[0] == 202


@pytest.mark.parametrize("code", ["CEB311", "CEB621"])
@aio
async def test_new_declarations_of_the_same_keys_in_flight_at_once_pass_once(sb: Sandbox, code: str) -> None:
    """Five versions of one document, each appType 1, posted at once: the lifecycle judges each
    in the transaction that stores it, so one is declared and four are refused, not five."""
    async with running(sb.settings) as api:
        first = order_set(f"LC-RACE-{code}", seed=13)[code]
        versions = [first, *(changed(first) for _ in range(4))]
        answers = await asyncio.gather(*(submit(api, sb, v) for v in versions))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [202, 409, 409, 409, 409], answers
        refused = [body for status, body in answers if status == 409]
        assert all(body["error"]["code"] == "CEBGW-LIFECYCLE-DUPLICATE" and "<returnStatus>" in body["ceb900"]
                   for body in refused), refused
        # the one declared is the one the refusals name
        (declared,) = [body for status, body in answers if status == 202]
        assert all(f"message {declared['id']}," in body["error"]["message"] for body in refused), refused


@aio
async def test_changes_and_deletions_need_a_version_customs_has_not_accepted(sb: Sandbox) -> None:
    async with running(sb.settings) as api:
        docs = order_set("LC-CHG-1", seed=13)
        status, body = await submit(api, sb, changed(docs["CEB411"], app_type="2"))
        assert status == 409 and body["error"]["code"] == "CEBGW-LIFECYCLE-NO-ORIGINAL", body
        assert (await submit(api, sb, docs["CEB621"]))[0] == 202
        assert (await submit(api, sb, changed(docs["CEB621"], app_type="2")))[0] == 202  # not yet accepted
        await _customs_says(api, sb, docs["CEB621"], "120", invtNo="29182026I0000LC002")
        for app_type in ("2", "3"):
            status, body = await submit(api, sb, changed(docs["CEB621"], app_type=app_type))
            assert status == 409 and body["error"]["code"] == "CEBGW-LIFECYCLE-ACCEPTED", body
            assert "CEB623" in body["error"]["message"] and "CEB625" in body["error"]["message"], body
        assert (await submit(api, sb, docs["CEB311"]))[0] == 202
        assert (await submit(api, sb, changed(docs["CEB311"], app_type="3")))[0] == 202  # delete before 120


def _invt_application(code: str, inventory: bytes, invt_no: str, lines: list[tuple[str, str]] | None = None,
                      seed: int = 14) -> bytes:
    """A CEB623 or CEB625 of the inventory list's sender naming ``invt_no`` (CEB625: ``lines``
    as (gnum, qty))."""
    data = as_sender(samplegen.build(code, seed=seed), head_field(inventory, "copCode"),
                     head_field(inventory, "ebcName"))
    data = changed(data, invtNo=invt_no, copNo=head_field(inventory, "copNo") + "R",
                   orderNo=head_field(inventory, "orderNo"))
    if lines is None:
        return data
    root = parse(data).root
    record = next(root.iter(f"{CEB}InvtRefund"))
    template = record.find(f"{CEB}InvtRefundList")
    assert template is not None
    for old in record.findall(f"{CEB}InvtRefundList"):
        record.remove(old)
    for gnum, qty in lines:
        line = etree.fromstring(etree.tostring(template))
        line.find(f"{CEB}gnum").text = gnum  # type: ignore[union-attr]
        line.find(f"{CEB}qty").text = qty  # type: ignore[union-attr]
        record.append(line)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@aio
async def test_cancel_and_return_must_name_the_inventory_list_and_its_lines(sb: Sandbox) -> None:
    async with running(sb.settings) as api:
        inventory = order_set("LC-INV-1", seed=15)["CEB621"]
        assert (await submit(api, sb, inventory))[0] == 202
        status, body = await submit(api, sb, _invt_application("CEB623", inventory, "29182026I0000LC003"))
        assert status == 422 and body["error"]["code"] == "CEBGW-LIFECYCLE-INVTNO", body  # not numbered yet
        await _customs_says(api, sb, inventory, "120", invtNo="29182026I0000LC003")
        await _customs_says(api, sb, inventory, "800", invtNo="29182026I0000LC003")
        root = parse(inventory).root
        qty = {ln.findtext(f"{CEB}gnum"): ln.findtext(f"{CEB}qty") for ln in root.iter(f"{CEB}InventoryList")}
        too_many = str(int(qty["1"] or "0") + 1)
        for lines, field in (([("9", "1")], "gnum"), ([("1", too_many)], "qty")):
            status, body = await submit(api, sb, _invt_application("CEB625", inventory, "29182026I0000LC003",
                                                                   lines))
            assert status == 422 and body["error"]["code"] == "CEBGW-LIFECYCLE-RETURN-LINE", body
            assert body["error"]["errors"][0]["field"] == field, body
        status, body = await submit(api, sb, _invt_application("CEB625", inventory, "29182026I0000LC003",
                                                               [("1", qty["1"] or "1")]))
        assert status == 202, body
        status, body = await submit(api, sb, _invt_application("CEB623", inventory, "29182026I0000LC003",
                                                               seed=16))
        assert status == 202, body
        # another enterprise cannot cancel this list
        other = as_sender(_invt_application("CEB623", inventory, "29182026I0000LC003", seed=17), "3301980B12",
                          "沙箱报关代理有限公司")
        status, body = await submit(api, sb, other)
        assert status == 422 and body["error"]["code"] == "CEBGW-LIFECYCLE-INVTNO", body


async def _export_customs_says(api: Api, sb: Sandbox, inventory: bytes, status: str, **extra: str) -> None:
    keys = {k: head_field(inventory, k) for k in ("agentCode", "ebcCode", "ebpCode", "orderNo", "copNo")}
    keys.update(preNo="E20261123000000001", **extra)
    receipt = samplegen.build_receipt("CEB604", keys, status=status)
    receiver = sb.account(sb.owner_of(head_field(inventory, "copCode")))["dxp_id"]
    code, out = await api.post_xml(sb.token("customs"), customs_receipt(sb, receipt, receiver), path=RECEIPTS)
    assert code == 200 and out["records"][0]["outcome"] == "delivered", out


@aio
async def test_export_documents_follow_the_same_lifecycle(sb: Sandbox) -> None:
    """Export: a second new declaration of an order is refused; an inventory list customs accepted
    can only be cancelled (CEB605) or returned (CEB213), naming the invtNo customs gave it."""
    async with running(sb.settings) as api:
        order = samplegen.build("CEB303", seed=31)
        assert (await submit(api, sb, order))[0] == 202
        status, body = await submit(api, sb, changed(order))
        assert status == 409 and body["error"]["code"] == "CEBGW-LIFECYCLE-DUPLICATE", body
        inventory = samplegen.build("CEB603", seed=32)
        assert (await submit(api, sb, inventory))[0] == 202
        cancel = changed(as_sender(samplegen.build("CEB605", seed=33), head_field(inventory, "copCode"),
                                   head_field(inventory, "agentName")),
                         invtNo="29182026E0000LC001", copNo=head_field(inventory, "copNo") + "C")
        status, body = await submit(api, sb, cancel)
        assert status == 422 and body["error"]["code"] == "CEBGW-LIFECYCLE-INVTNO", body  # not numbered yet
        await _export_customs_says(api, sb, inventory, "120", invtNo="29182026E0000LC001")
        status, body = await submit(api, sb, changed(inventory, app_type="2"))
        assert status == 409 and body["error"]["code"] == "CEBGW-LIFECYCLE-ACCEPTED", body
        assert "CEB605" in body["error"]["message"] and "CEB213" in body["error"]["message"], body
        status, body = await submit(api, sb, cancel)
        assert status == 202, body
