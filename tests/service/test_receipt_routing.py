"""Receipts from customs: signed bare receipts, customs-assigned numbers, dead-letter reroutes."""

from __future__ import annotations

from lxml import etree

from gateway.catalog import load as load_catalog
from gateway.sandbox import samplegen
from gateway.xmlio import parse

from .kit import Sandbox, aio, customs_receipt, declaration, running
from .test_flow import with_subscribers

RECEIPTS = "/v1/customs/receipts"


def _keys(code: str, data: bytes) -> dict[str, str]:
    return load_catalog()[code].business_keys(parse(data).root)[0]


@aio
async def test_customs_may_post_signed_bare_receipts_and_signed_envelopes(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB621", seed=41)
    cop_no = _keys("CEB621", data)["copNo"]
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body
        bare = sb.sign_as("customs", samplegen.build_receipt("CEB622", {"copNo": cop_no}, status="2"))
        status, out = await api.post_xml(sb.token("customs"), bare, path=RECEIPTS)
        assert status == 200, out
        assert out["records"][0]["outcome"] == "delivered" and out["records"][0]["message_id"] == body["id"]
        wrapped = customs_receipt(sb, samplegen.build_receipt("CEB622", {"copNo": cop_no}, status="120"),
                                  sb.account(owner)["dxp_id"])
        status, out = await api.post_xml(sb.token("customs"), wrapped, path=RECEIPTS)
        assert status == 200 and out["records"][0]["outcome"] == "delivered", out
        _, mail = await api.get(sb.token(owner), "/v1/receipts")
        assert [i["status"] for i in mail["items"]] == ["2", "120"]


@aio
async def test_bare_receipt_signed_by_an_enterprise_is_refused(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB621", seed=43)
    cop_no = _keys("CEB621", data)["copNo"]
    async with running(sb.settings) as api:
        assert (await api.post_xml(sb.token(owner), data))[0] == 202
        forged = sb.sign_as(owner, samplegen.build_receipt("CEB622", {"copNo": cop_no}, status="800"))
        status, err = await api.post_xml(sb.token("customs"), forged, path=RECEIPTS)
        assert (status, err["error"]["code"]) == (422, "CEBGW-SIG-CERT-UNREGISTERED"), err
        _, mail = await api.get(sb.token(owner), "/v1/receipts")
        assert mail["items"] == []


def _with_field(data: bytes, name: str, value: str) -> bytes:
    """``data`` with the first ``name`` element's text set to ``value``."""
    root = parse(data).root
    el = next(root.iter(f"{{http://www.chinaport.gov.cn/ceb}}{name}"))
    el.text = value
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@aio
async def test_tax_bill_correlates_by_the_invt_no_an_earlier_receipt_assigned(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB621", seed=45)
    keys = _keys("CEB621", data)
    assert "invtNo" not in keys and "preNo" not in keys  # customs assigns them
    pre_no, invt_no = "I20260000000000045", "29182026I900000045"
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body
        r622 = samplegen.build_receipt("CEB622", {"copNo": keys["copNo"], "preNo": pre_no, "invtNo": invt_no},
                                       status="120")
        status, out = await api.post_xml(sb.token("customs"), customs_receipt(sb, r622, "DXPENT0000458762"),
                                         path=RECEIPTS)
        assert status == 200 and out["records"][0]["outcome"] == "delivered", out
        for code in ("CEB816", "CEB818"):
            tax = _with_field(samplegen.build(code, seed=45), "invtNo", invt_no)
            posted = customs_receipt(sb, tax, "DXPENT0000458762")
            status, out = await api.post_xml(sb.token("customs"), posted, path=RECEIPTS)
            assert status == 200, out
            (record,) = out["records"]
            assert record["outcome"] == "delivered" and record["message_id"] == body["id"], (code, out)
            assert record["delivered_to"] == [owner]
        _, mail = await api.get(sb.token(owner), "/v1/receipts")
        assert [i["message_type"] for i in mail["items"]] == ["CEB622", "CEB816", "CEB818"]
        # another number stays a dead letter
        stray = _with_field(samplegen.build("CEB816", seed=46), "invtNo", "29182026I900000099")
        _, out = await api.post_xml(sb.token("customs"), customs_receipt(sb, stray, "DXPENT0000458762"),
                                    path=RECEIPTS)
        assert out["records"][0]["outcome"] == "dead_letter"


@aio
async def test_summary_result_correlates_by_the_sum_no_the_summary_receipt_assigned(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB701", seed=47)
    keys = _keys("CEB701", data)
    sum_no = "29182026E900000047"
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body
        r702 = samplegen.build_receipt("CEB702", {"copNo": keys["copNo"], "msgSeqNo": keys["msgSeqNo"],
                                                  "sumNo": sum_no}, status="120")
        dxp = sb.account(owner)["dxp_id"]
        _, out = await api.post_xml(sb.token("customs"), customs_receipt(sb, r702, dxp), path=RECEIPTS)
        assert out["records"][0]["outcome"] == "delivered", out
        r792 = _with_field(samplegen.build("CEB792", seed=47), "sumNo", sum_no)
        status, out = await api.post_xml(sb.token("customs"), customs_receipt(sb, r792, dxp), path=RECEIPTS)
        assert status == 200 and out["records"][0]["message_id"] == body["id"], out
        assert out["records"][0]["delivered_to"] == [owner]


@aio
async def test_rerouted_dead_letter_reaches_ret_and_all_subscribers_too(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB311", seed=49)
    payment, logistics, agent = sb.account("payment"), sb.account("logistics"), sb.account("agent")
    data = with_subscribers(data, ("RET", payment["dxp_id"]), ("ALL", agent["dxp_id"]),
                            ("DATA", logistics["dxp_id"]))
    keys = _keys("CEB311", data)
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body
        stray = samplegen.build_receipt("CEB312", {**keys, "orderNo": "MISTYPED49"}, status="120")
        _, out = await api.post_xml(sb.token("customs"), customs_receipt(sb, stray, "DXPENT0000458762"),
                                    path=RECEIPTS)
        rid = out["records"][0]["receipt_id"]
        assert out["records"][0]["outcome"] == "dead_letter"
        status, rerouted = await api.post_json(sb.token("customs"), f"/v1/dead-letters/{rid}/reroute",
                                               {"message_id": body["id"]})
        assert status == 200, rerouted
        assert sorted(rerouted["delivered_to"]) == sorted([owner, "payment", "agent"])
        for name, expected in ((owner, 1), ("payment", 1), ("agent", 1), ("logistics", 0)):
            _, mail = await api.get(sb.token(name), "/v1/receipts")
            assert len(mail["items"]) == expected, name
        status, err = await api.post_json(sb.token("customs"), f"/v1/dead-letters/{rid}/reroute",
                                          {"message_id": 10**9})
        assert status == 404, err


@aio
async def test_a_rerouted_receipt_also_assigns_its_numbers(sb: Sandbox) -> None:
    owner, data = declaration(sb, "CEB621", seed=51)
    invt_no = "29182026I900000051"
    async with running(sb.settings) as api:
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body
        r622 = samplegen.build_receipt("CEB622", {"copNo": "MISTYPED51", "preNo": "I20260000000000051",
                                                  "invtNo": invt_no}, status="120")
        _, out = await api.post_xml(sb.token("customs"), customs_receipt(sb, r622, "DXPENT0000458762"),
                                    path=RECEIPTS)
        assert out["records"][0]["outcome"] == "dead_letter", out
        rid = out["records"][0]["receipt_id"]
        status, rerouted = await api.post_json(sb.token("customs"), f"/v1/dead-letters/{rid}/reroute",
                                               {"message_id": body["id"]})
        assert status == 200, rerouted
        tax = _with_field(samplegen.build("CEB816", seed=51), "invtNo", invt_no)
        _, out = await api.post_xml(sb.token("customs"), customs_receipt(sb, tax, "DXPENT0000458762"),
                                    path=RECEIPTS)
        (record,) = out["records"]
        assert record["outcome"] == "delivered" and record["message_id"] == body["id"], out
