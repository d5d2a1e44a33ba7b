"""JSON declarations over HTTP: mapped, signed with the custody key, then the XML path; the
receipts come back to the sender as JSON; an account without custody rights gets 403."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway import accounts as acc
from gateway.catalog import load as load_catalog
from gateway.dsig import verify
from gateway.mapping import json_from_xml
from gateway.pipeline import validate_bytes
from gateway.sandbox import samplegen
from gateway.xmlio import parse

from .kit import Api, Sandbox, aio, customs_receipt, envelope_data, running

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog()


def _custody(sb: Sandbox, tmp_path: Path, name: str) -> Sandbox:
    """``sb`` with its accounts file copied and ``name`` allowed custody signing with its sandbox key."""
    path = tmp_path / "accounts.toml"
    a = sb.account(name)
    acc.write_accounts(path, acc.with_custody(acc.read_accounts(sb.settings.accounts_path), name,
                                              a["key"], a["cert"]))
    return Sandbox(sb.root, sb.info, sb.settings.with_(accounts_path=path))


def _order(**head: Any) -> dict[str, Any]:
    """The sample order as JSON, without guids (the gateway makes them), ``head`` fields replaced."""
    parsed = parse((ROOT / "samples" / "valid" / "CEB311.xml").read_bytes())
    doc = json_from_xml(parsed.root, CATALOG["CEB311"], "202205")
    del doc["guid"], doc["order"][0]["orderHead"]["guid"]
    doc["order"][0]["orderHead"].update(head)
    return doc


async def _post(api: Api, token: str, body: dict[str, Any] | bytes,
                **headers: str) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **headers}
    async with api.session.post(api.url + "/v1/messages", data=data, headers=headers) as r:
        return r.status, await r.json()


@aio
async def test_a_json_order_reaches_customs_signed_and_its_receipt_comes_back_as_json(
        sb: Sandbox, tmp_path: Path) -> None:
    sb = _custody(sb, tmp_path, "ecommerce")
    async with running(sb.settings) as api:
        status, body = await _post(api, sb.token("ecommerce"), _order(orderNo="SOJSON0001"))
        assert status == 202, body
        assert (body["message_type"], body["edition"]) == ("CEB311", "202205")
        _, batch = await api.get(sb.token("customs"), "/v1/customs/outbox?limit=10")
        (item,) = batch["items"]
        _, data = envelope_data(item["envelope"])
        signed = verify(CATALOG.identify(parse(data)), _registry(sb))
        assert signed.entry.name == "ecommerce-rsa"
        assert validate_bytes(data).valid
        status, rec = await api.get(sb.token("ecommerce"), f"/v1/messages/{body['id']}")
        assert rec["business_keys"] == [{"ebpCode": "3301964J31", "orderNo": "SOJSON0001"}]

        receipt = samplegen.build_receipt("CEB312", {"ebpCode": "3301964J31", "orderNo": "SOJSON0001"},
                                          status="120", info="[Code:1800;Desc:逻辑校验通过]")
        posted = customs_receipt(sb, receipt, sb.account("ecommerce")["dxp_id"])
        status, out = await api.post_xml(sb.token("customs"), posted, path="/v1/customs/receipts")
        assert status == 200 and out["records"][0]["outcome"] == "delivered", out
        _, mail = await api.get(sb.token("ecommerce"), "/v1/receipts?format=json")
        (got,) = mail["items"]
        assert got["message_id"] == body["id"]
        assert got["json"]["messageType"] == "CEB312"
        (ret,) = got["json"]["orderReturn"]
        assert ret["returnInfo"] == {"code": "1800", "text": "逻辑校验通过"}
        assert ret["orderNo"] == "SOJSON0001" and ret["returnStatus"] == "120"


def _registry(sb: Sandbox) -> Any:
    from gateway.dsig import load_registry
    return load_registry(sb.settings.registry_path)


@aio
async def test_an_account_without_custody_rights_gets_403(sb: Sandbox, tmp_path: Path) -> None:
    sb = _custody(sb, tmp_path, "payment")
    async with running(sb.settings) as api:
        status, body = await _post(api, sb.token("ecommerce"), _order())
        assert status == 403, body
        assert body["error"]["code"] == "CEBGW-AUTH-CUSTODY"
        _, batch = await api.get(sb.token("customs"), "/v1/customs/outbox")
        assert batch["items"] == []


@aio
async def test_json_refusals_name_the_json_path(sb: Sandbox, tmp_path: Path) -> None:
    sb = _custody(sb, tmp_path, "ecommerce")
    async with running(sb.settings) as api:
        token = sb.token("ecommerce")
        # the mapping's own checks: a wrong type, an unknown field
        status, body = await _post(api, token, _order(acturalPaid=True, buyer_phone="1"))
        assert status == 422, body
        assert {(e["code"], e["path"]) for e in body["error"]["errors"]} == {
            ("CEBGW-JSON-TYPE", "/order/0/orderHead/acturalPaid"),
            ("CEBGW-JSON-UNKNOWN", "/order/0/orderHead/buyer_phone")}
        assert "CEB900Message" in body["ceb900"]
        # the rules, on the XML it maps to, reported at the JSON path
        status, body = await _post(api, token, _order(acturalPaid="1222.53"))
        assert status == 422, body
        assert ("CEBGW-RULE-ACTURALPAID", "/order/0/orderHead/acturalPaid") in {
            (e["code"], e["path"]) for e in body["error"]["errors"]}
        # the type from the header; a JSON that is no object
        doc = _order(orderNo="SOJSON0002")
        del doc["messageType"]
        status, body = await _post(api, token, doc, **{"X-Message-Type": "CEB311"})
        assert status == 202, body
        status, body = await _post(api, token, b"[1, 2]")
        assert status == 400 and body["error"]["code"] == "CEBGW-JSON-SYNTAX", body


@aio
async def test_schemas_are_served_per_type_and_edition(sb: Sandbox) -> None:
    async with running(sb.settings) as api:
        token = sb.token("ecommerce")
        status, schema = await api.get(token, "/v1/schemas/CEB311?edition=2018")
        assert status == 200 and schema["$id"] == "urn:cebgw:json:CEB311:2018"
        head = schema["properties"]["order"]["anyOf"][0]["items"]["properties"]["orderHead"]
        assert "actual paid" in head["properties"]["acturalPaid"]["description"]
        status, body = await api.get(token, "/v1/schemas/CEB999")
        assert status == 404, body
        status, text = await _text(api, token, "/v1/schemas/CEB621?format=markdown")
        assert status == 200 and "`/inventory/N/inventoryHead/logisticsNo`" in text


async def _text(api: Api, token: str, path: str) -> tuple[int, str]:
    async with api.session.get(api.url + path, headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.text()


@aio
async def test_a_retried_json_post_is_the_same_declaration(sb: Sandbox, tmp_path: Path) -> None:
    sb = _custody(sb, tmp_path, "ecommerce")
    body = json.dumps(_order(orderNo="SOJSONRETRY"), ensure_ascii=False).encode()  # no guids, appTime given
    async with running(sb.settings) as api:
        first_status, first = await _post(api, sb.token("ecommerce"), body)
        again_status, again = await _post(api, sb.token("ecommerce"), body)
        assert (first_status, again_status) == (202, 200), (first, again)
        assert again["id"] == first["id"] and again["guid"] == first["guid"]
        other_status, other = await _post(api, sb.token("ecommerce"), _order(orderNo="SOJSONOTHER"))
        assert other_status == 202 and other["guid"] != first["guid"]
