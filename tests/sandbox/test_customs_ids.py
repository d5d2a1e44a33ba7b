"""Customs answers for both its DXP ids: DXPEDCCEB0000002 (import) and DXPEDCCEB0000003 (export).

An export declaration's envelope goes to DXPEDCCEB0000003, so customs' answer comes from that
id; the sandbox registers the customs certificates, and the customs account, for both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway import pipeline
from gateway.accounts import read_accounts, render_accounts
from gateway.catalog import load as load_catalog
from gateway.dsig import load_key, load_registry
from gateway.envelope import RECEIVER_EXPORT, RECEIVER_IMPORT
from gateway.sandbox import datadir
from gateway.sandbox.customs import answers
from tests.service.kit import Sandbox, aio, declaration, running


def test_the_customs_certificates_are_registered_for_both_ids() -> None:
    registry = load_registry(datadir.sandbox_certs() / "registry.toml")
    for name in ("customs-rsa", "customs-sm2"):
        entry = next(e for e in registry.entries if e.name == name)
        assert {RECEIVER_IMPORT, RECEIVER_EXPORT} <= set(entry.dxp_ids), name


@pytest.mark.parametrize(("code", "receiver"), [("CEB311", RECEIVER_IMPORT), ("CEB303", RECEIVER_EXPORT)])
@aio
async def test_customs_answers_from_the_id_it_was_sent_to(sb: Sandbox, code: str, receiver: str) -> None:
    async with running(sb.settings) as api:
        owner, data = declaration(sb, code, sign_it=True)
        status, body = await api.post_xml(sb.token(owner), data)
        assert status == 202, body
        _, batch = await api.get(sb.token("customs"), "/v1/customs/outbox")
        [item] = batch["items"]
        catalog, limits = load_catalog(), pipeline.Limits()
        opened = pipeline.open_envelope(pipeline.identify(
            pipeline.parse_body(item["envelope"].encode(), limits), catalog), catalog, limits)
        assert opened.envelope is not None and opened.envelope.trans.receiver_ids == (receiver,)
        acc = sb.account("customs")
        found = answers(opened.ident, opened.envelope.trans, ["2", "120"], load_key(acc["key"], acc["cert"]))
        assert found
        for a in found:
            status, out = await api.post_xml(sb.token("customs"), a.data, path="/v1/customs/receipts")
            assert status == 200, out
            assert [r["outcome"] for r in out["records"]] == ["delivered"]
        _, mail = await api.get(sb.token(owner), "/v1/receipts")
        assert [i["status"] for i in mail["items"]] == ["2", "120"]


def test_a_data_directory_made_before_gets_the_export_id(tmp_path: Path) -> None:
    root = tmp_path / "old"
    info = datadir.ensure(root, url="http://127.0.0.1:0")
    path = root / "accounts.toml"
    old = [a if not a.is_customs else type(a)(a.name, a.roles, a.codes, a.dxp_id, a.certificates,
                                               a.token_hashes, a.client_cert_hashes)
           for a in read_accounts(path).accounts]
    path.write_text(render_accounts(old), encoding="utf-8")
    assert read_accounts(path).by_dxp_id(RECEIVER_EXPORT) is None
    again = datadir.ensure(root, url="http://127.0.0.1:0")
    customs = read_accounts(path).by_dxp_id(RECEIVER_EXPORT)
    assert customs is not None and customs.is_customs
    assert again["customs"]["token"] == info["customs"]["token"]
    assert again["customs"]["dxp_ids"] == [RECEIVER_IMPORT, RECEIVER_EXPORT]
    saved = json.loads((root / datadir.INFO_FILE).read_text(encoding="utf-8"))
    assert saved["customs"]["dxp_ids"] == [RECEIVER_IMPORT, RECEIVER_EXPORT]
