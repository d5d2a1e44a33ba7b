"""Receipts whose keys two tenants declared: the envelope's receiver decides, or nobody gets them.

Issue 15 item 5: a bare receipt went to whichever tenant declared the keys last.  Here the
ecommerce company and the platform both declare the same order (same orderNo and ebpCode).
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from gateway.catalog import load as load_catalog
from gateway.sandbox import samplegen
from gateway.xmlio import parse

from .kit import Api, Sandbox, aio, customs_receipt, running

RECEIPTS = "/v1/customs/receipts"
CEB = "{http://www.chinaport.gov.cn/ceb}"
DXP = "{http://www.chinaport.gov.cn/dxp}"


def _as_sender(data: bytes, cop_code: str) -> bytes:
    """``data`` with BaseTransfer/copCode set to ``cop_code`` (same order, another declarant)."""
    root = parse(data).root
    el = root.find(f"{CEB}BaseTransfer/{CEB}copCode")
    assert el is not None
    el.text = cop_code
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _order(sb: Sandbox, seed: int) -> tuple[bytes, bytes, dict[str, str]]:
    """The same CEB311 as the ecommerce company and as the platform sends it, and its keys."""
    data = samplegen.build("CEB311", seed=seed)
    keys = load_catalog()["CEB311"].business_keys(parse(data).root)[0]
    ecommerce = _as_sender(data, sb.account("ecommerce")["codes"][0])
    platform = _as_sender(data, sb.account("platform")["codes"][0])
    return ecommerce, platform, keys


async def _declare_both(api: Api, sb: Sandbox, seed: int, first: str = "ecommerce") -> dict[str, int]:
    ecommerce, platform, _ = _order(sb, seed)
    ids: dict[str, int] = {}
    for name in (first, "platform" if first == "ecommerce" else "ecommerce"):
        status, body = await api.post_xml(sb.token(name), ecommerce if name == "ecommerce" else platform)
        assert status == 202, body
        ids[name] = body["id"]
    return ids


async def _mail(api: Api, sb: Sandbox, name: str) -> list[dict[str, Any]]:
    status, mail = await api.get(sb.token(name), "/v1/receipts")
    assert status == 200, mail
    return list(mail["items"])


async def _still_serving(api: Api) -> None:
    status, health = await api.get(None, "/healthz")
    assert status == 200, health


@aio
async def test_bare_receipt_for_keys_of_two_tenants_is_a_dead_letter_for_nobody(sb: Sandbox) -> None:
    async with running(sb.settings) as api:
        for seed, first in ((151, "ecommerce"), (152, "platform")):  # whichever declared last
            await _declare_both(api, sb, seed, first)
            _, _, keys = _order(sb, seed)
            for status_code in ("2", "120"):
                bare = sb.sign_as("customs", samplegen.build_receipt("CEB312", dict(keys), status=status_code,
                                                                     seed=seed))
                status, out = await api.post_xml(sb.token("customs"), bare, path=RECEIPTS)
                assert status == 200, out
                assert out["records"][0]["outcome"] == "dead_letter", out
        assert await _mail(api, sb, "ecommerce") == [] and await _mail(api, sb, "platform") == []
        status, dead = await api.get(sb.token("customs"), "/v1/dead-letters")
        assert status == 200 and len(dead["items"]) == 4, dead
        for item in dead["items"]:
            assert item["reason"].startswith("ambiguous:"), item
            assert "ecommerce" in item["reason"] and "platform" in item["reason"], item
        await _still_serving(api)


@aio
async def test_envelope_receiver_decides_between_tenants(sb: Sandbox) -> None:
    """Fails if routing stops preferring the envelope's receiver: the receipts addressed to the
    tenant that declared first (and so is not the newest match) must reach it, and only it."""
    async with running(sb.settings) as api:
        for seed, first in ((153, "ecommerce"), (154, "platform")):
            ids = await _declare_both(api, sb, seed, first)
            _, _, keys = _order(sb, seed)
            for name, code in ((first, "2"), ("platform" if first == "ecommerce" else "ecommerce", "120")):
                receipt = samplegen.build_receipt("CEB312", dict(keys), status=code, seed=seed)
                posted = customs_receipt(sb, receipt, sb.account(name)["dxp_id"])
                status, out = await api.post_xml(sb.token("customs"), posted, path=RECEIPTS)
                assert status == 200, out
                (record,) = out["records"]
                assert record["outcome"] == "delivered" and record["message_id"] == ids[name], (name, out)
        for name in ("ecommerce", "platform"):
            mail = await _mail(api, sb, name)
            assert len(mail) == 2 and all(m["declaration_type"] == "CEB311" for m in mail), mail
        await _still_serving(api)


@aio
async def test_envelope_to_a_tenant_without_those_keys_is_a_dead_letter(sb: Sandbox) -> None:
    async with running(sb.settings) as api:
        ecommerce, _, keys = _order(sb, 155)
        assert (await api.post_xml(sb.token("ecommerce"), ecommerce))[0] == 202
        receipt = samplegen.build_receipt("CEB312", dict(keys), status="120", seed=155)
        posted = customs_receipt(sb, receipt, sb.account("platform")["dxp_id"])
        status, out = await api.post_xml(sb.token("customs"), posted, path=RECEIPTS)
        assert status == 200 and out["records"][0]["outcome"] == "dead_letter", out
        _, dead = await api.get(sb.token("customs"), "/v1/dead-letters")
        assert "envelope addressed to platform" in dead["items"][0]["reason"], dead
        assert await _mail(api, sb, "ecommerce") == [] and await _mail(api, sb, "platform") == []
        await _still_serving(api)


@aio
async def test_bare_receipt_for_one_tenants_keys_is_delivered(sb: Sandbox) -> None:
    """One tenant declaring the same keys twice (a change, appType 2) is no ambiguity: the version
    customs holds, the newest sent, gets it."""
    async with running(sb.settings) as api:
        ecommerce, _, keys = _order(sb, 156)
        status, first = await api.post_xml(sb.token("ecommerce"), ecommerce)
        assert status == 202, first
        other_guid = re.sub(rb'guid="(.)', lambda m: b'guid="' + (b"A" if m[1] != b"A" else b"B"), ecommerce,
                            count=1).replace(b"<ceb:appType>1<", b"<ceb:appType>2<", 1)
        status, second = await api.post_xml(sb.token("ecommerce"), other_guid)
        assert status == 202 and second["id"] != first["id"], second
        bare = sb.sign_as("customs", samplegen.build_receipt("CEB312", dict(keys), status="120", seed=156))
        status, out = await api.post_xml(sb.token("customs"), bare, path=RECEIPTS)
        assert status == 200, out
        assert out["records"][0]["outcome"] == "delivered" and out["records"][0]["message_id"] == second["id"]
        assert len(await _mail(api, sb, "ecommerce")) == 1
        await _still_serving(api)


@aio
async def test_multi_record_bare_receipt_delivers_the_clear_record_only(sb: Sandbox) -> None:
    async with running(sb.settings) as api:
        await _declare_both(api, sb, 157)
        _, _, shared = _order(sb, 157)
        mine, _, own = _order(sb, 158)
        assert (await api.post_xml(sb.token("ecommerce"), mine))[0] == 202
        first = parse(samplegen.build_receipt("CEB312", dict(shared), status="120", seed=157)).root
        second = parse(samplegen.build_receipt("CEB312", dict(own), status="120", seed=158)).root
        first.append(second[0])
        bare = sb.sign_as("customs", etree.tostring(first, xml_declaration=True, encoding="UTF-8"))
        status, out = await api.post_xml(sb.token("customs"), bare, path=RECEIPTS)
        assert status == 200, out
        assert [r["outcome"] for r in out["records"]] == ["dead_letter", "delivered"], out
        assert len(await _mail(api, sb, "ecommerce")) == 1 and await _mail(api, sb, "platform") == []
        await _still_serving(api)


@aio
async def test_ceb900_for_a_copmsgid_two_tenants_used_goes_by_the_envelope_or_to_nobody(sb: Sandbox) -> None:
    """A sender chooses its CopMsgId: when two tenants sent envelopes with the same one, a CEB900
    naming it goes to the envelope's receiver, and a bare one to nobody."""
    sent: dict[str, int] = {}
    cops: set[str] = set()
    async with running(sb.settings) as api:
        for name, seed in (("ecommerce", 161), ("platform", 162)):
            data = _as_sender(samplegen.build("CEB311", seed=seed), sb.account(name)["codes"][0])
            dxp_id = sb.account(name)["dxp_id"]
            wrapped = samplegen.build_dxp_msg(data, msg_type="CEB311Message", sender_id=dxp_id,
                                              seed=160)  # same seed, same CopMsgId
            cops.add(parse(wrapped).root.findtext(f"{DXP}TransInfo/{DXP}CopMsgId") or "")
            status, body = await api.post_xml(sb.token(name), wrapped)
            assert status == 202, body
            sent[name] = body["id"]
        (cop,) = cops
        for name, code in (("ecommerce", "-2"), ("platform", "-1")):
            r900 = samplegen.build_receipt("CEB900", {"oriCopMsgId": cop}, status=code)
            posted = customs_receipt(sb, r900, sb.account(name)["dxp_id"])
            status, out = await api.post_xml(sb.token("customs"), posted, path=RECEIPTS)
            assert status == 200, out
            (record,) = out["records"]
            assert record["outcome"] == "delivered" and record["message_id"] == sent[name], out
        bare = sb.sign_as("customs", samplegen.build_receipt("CEB900", {"oriCopMsgId": cop}, status="-1001"))
        status, out = await api.post_xml(sb.token("customs"), bare, path=RECEIPTS)
        assert status == 200 and out["records"][0]["outcome"] == "dead_letter", out
        for name in ("ecommerce", "platform"):
            assert len(await _mail(api, sb, name)) == 1
        await _still_serving(api)
