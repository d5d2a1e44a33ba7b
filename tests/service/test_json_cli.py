"""``cebgw receipts --format json`` decodes each receipt record as the mapping does."""

from __future__ import annotations

import json
from collections.abc import Callable

from gateway.catalog import load as load_catalog
from gateway.cli.http import call
from gateway.sandbox import samplegen
from gateway.xmlio import parse

from .kit import Sandbox, customs_receipt, declaration
from .test_cli import server  # noqa: F401  (the fixture: the app in a background thread)


def test_receipts_as_json_lines(sb: Sandbox, server: str,  # noqa: F811
                                cli: Callable[..., tuple[int, str, str]]) -> None:
    owner, data = declaration(sb, "CEB311", seed=77)
    status, body = call("POST", f"{server}/v1/messages", sb.token(owner), body=data,
                        content_type="application/xml")
    assert status == 202, body
    keys = load_catalog()["CEB311"].business_keys(parse(data).root)[0]
    receipt = samplegen.build_receipt("CEB312", dict(keys), status="100",
                                      info="[Code:13035;Desc:支付企业不一致]")
    status, out = call("POST", f"{server}/v1/customs/receipts", sb.token("customs"),
                       body=customs_receipt(sb, receipt, sb.account(owner)["dxp_id"]),
                       content_type="application/xml")
    assert status == 200, out
    code, out, err = cli("receipts", "--url", server, "--token", sb.token(owner), "--format", "json")
    assert code == 0, err
    (line,) = out.splitlines()
    doc = json.loads(line)
    assert (doc["messageType"], doc["message_id"]) == ("CEB312", body["id"])
    (record,) = doc["orderReturn"]
    assert record["returnInfo"] == {"code": "13035", "text": "支付企业不一致"}
    assert record["orderNo"] == keys["orderNo"] and record["returnStatus"] == "100"
