"""cebgw translate, cebgw schema and cebgw accounts custody; aliases from a deployment's mappings."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway import accounts as acc
from gateway.catalog import load
from gateway.dsig import load_registry, sign, verify
from gateway.errors import MappingError
from gateway.mapping import loads, spec, xml_from_json
from gateway.pipeline import validate_bytes
from gateway.xmlio import parse

ROOT = Path(__file__).resolve().parents[2]
VALID = ROOT / "samples" / "valid"
SANDBOX = ROOT / "certs" / "sandbox"
Cli = Callable[..., tuple[int, str, str]]


def test_xml_to_json_and_back_with_no_flags(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "order.json"
    assert cli("translate", str(VALID / "CEB311.xml"), "--to", "json", "-o", str(out))[0] == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert (doc["messageType"], doc["edition"]) == ("CEB311", "202205")
    xml = tmp_path / "order.xml"
    assert cli("translate", str(out), "--to", "xml", "-o", str(xml))[0] == 0
    assert validate_bytes(xml.read_bytes()).valid


def test_edition_refusal_is_printed_per_field_with_exit_1(cli: Cli) -> None:
    code, out, err = cli("translate", str(VALID / "CEB303-2018.xml"), "--to", "xml", "--edition", "202205")
    assert code == 1 and out == ""
    assert "/order/0/orderHead/ebpCode: ebpCode is 50 characters, at most 18" in err
    assert "[CEBGW-MAPPING]" in err


def test_signed_dxp_out_of_json(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "inv.json"
    assert cli("translate", str(VALID / "CEB621.xml"), "--to", "json", "-o", str(src))[0] == 0
    out = tmp_path / "inv.dxp.xml"
    key, cert = str(SANDBOX / "ecommerce-rsa.key.pem"), str(SANDBOX / "ecommerce-rsa.cert.pem")
    code, _, err = cli("translate", str(src), "--to", "dxp", "--sign-with", key, "--cert", cert,
                       "-o", str(out))
    assert code == 0, err
    report = validate_bytes(out.read_bytes())
    assert report.valid and report.inner_type == "CEB621"


def test_a_batch_goes_to_a_folder_and_counts_failures(cli: Cli, tmp_path: Path) -> None:
    files = [str(VALID / "CEB311.xml"), str(VALID / "CEB622.xml"), str(VALID / "DxpRep.xml")]
    code, _, err = cli("translate", *files, "--to", "json", "-o", str(tmp_path))
    assert code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CEB311.json", "CEB622.json"]
    assert "3 file(s): 2 translated, 1 failed" in err


def test_schema_formats(cli: Cli) -> None:
    code, out, _ = cli("schema", "CEB311", "--edition", "2018")
    assert code == 0 and json.loads(out)["$id"] == "urn:cebgw:json:CEB311:2018"
    code, out, _ = cli("schema", "CEB621", "--format", "markdown")
    assert code == 0 and "| `/inventory/N/inventoryHead/logisticsNo` | string 1..60 | yes |" in out
    code, out, _ = cli("schema", "CEB511", "--format", "xsd", "--edition", "2018")
    assert code == 0 and "Edition: 2018" in out
    code, _, err = cli("schema", "CEB999")
    assert code == 2 and "CEB999" in err


def test_accounts_custody_lets_the_gateway_sign(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    acc.write_accounts(path, acc.with_account(acc.Accounts(()), acc.new_account(
        "shop", ["ecommerce"], ["3301960A7Z"], "DXPENT0000458762")))
    key, cert = SANDBOX / "ecommerce-rsa.key.pem", SANDBOX / "ecommerce-rsa.cert.pem"
    code, out, err = cli("accounts", "custody", "shop", "--accounts", str(path), "--key", str(key),
                         "--cert", str(cert))
    assert code == 0, err
    shop = acc.read_accounts(path).by_name("shop")
    assert shop is not None and shop.custody and shop.custody_cert == str(cert)
    signer = acc.CustodyKeys().key_for(shop)
    signed = sign(xml_from_json(loads(_json(cli, tmp_path)), load())[2], signer)
    registry = load_registry(ROOT / "certs" / "registry.toml")
    assert verify(load().identify(parse(signed)), registry).entry.name == "ecommerce-rsa"
    assert cli("accounts", "custody", "shop", "--accounts", str(path), "--remove")[0] == 0
    shop = acc.read_accounts(path).by_name("shop")
    assert shop is not None and not shop.custody


def _json(cli: Cli, tmp_path: Path) -> bytes:
    out = tmp_path / "o.json"
    assert cli("translate", str(VALID / "CEB311.xml"), "--to", "json", "-o", str(out))[0] == 0
    return out.read_bytes()


@pytest.fixture
def deployment_mappings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", d)
    monkeypatch.setenv("CEBGW_MAPPINGS_DIR", str(d))
    spec.load.cache_clear()
    yield d
    spec.load.cache_clear()


def test_a_deployment_adds_an_alias(deployment_mappings: Path, cli: Cli, tmp_path: Path) -> None:
    f = deployment_mappings / "CEB311.202205.toml"
    f.write_text(f.read_text(encoding="utf-8") + '"OrderHead.buyerTelephone" = ["buyer_phone"]\n',
                 encoding="utf-8")
    doc = loads(_json(cli, tmp_path))
    head = doc["order"][0]["orderHead"]
    head["buyer_phone"] = head.pop("buyerTelephone")
    _, _, xml = xml_from_json(doc, load())
    assert b"<ceb:buyerTelephone>13981606465</ceb:buyerTelephone>" in xml
    head["buyerTelephone"] = "1"
    with pytest.raises(MappingError, match="given twice"):
        xml_from_json(doc, load())
