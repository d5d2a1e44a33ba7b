"""Certificates checked at the receiving time too, and appTime against it (issue 15 item 4).

An expired certificate used to pass with an ``appTime`` set back into its window; the
gateway now also checks the certificate at the time it receives the message (give or take
``cert_grace_s``) and warns (``CEBGW-APPTIME-SKEW``) when appTime is far from that time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from gateway.catalog import BEIJING
from gateway.config import Settings
from gateway.config import load as load_settings
from gateway.dsig import SoftwareKey, sign
from gateway.dsig.certgen import issue_rsa, write_pair
from gateway.dsig.registry import add_entry
from gateway.errors import ConfigError
from gateway.sandbox import datadir, samplegen
from gateway.xmlio import parse

from .kit import Api, Sandbox, aio, running

CEB = "{http://www.chinaport.gov.cn/ceb}"
ECOMMERCE_CODE = "3301960A7Z"


@dataclass(frozen=True)
class Keys:
    """Sandbox settings whose registry also holds the ecommerce company's odd certificates."""

    settings: Settings
    registry: Path
    expired: SoftwareKey       # expired 30 days ago
    just_expired: SoftwareKey  # expired 10 minutes ago (inside the default grace of an hour)
    not_yet: SoftwareKey       # valid from 2 days from now


def _key(certs: Path, stem: str, nb: datetime, na: datetime, registry: Path) -> SoftwareKey:
    issued = issue_rsa(stem, not_before=nb, not_after=na)
    key_path, cert_path = write_pair(certs, stem, issued)
    add_entry(registry, cert_path, name=stem, codes=[ECOMMERCE_CODE], dxp_ids=[])
    return SoftwareKey(issued.key, issued.cert)


@pytest.fixture
def keys(sb: Sandbox, tmp_path: Path) -> Keys:
    certs = tmp_path / "certs"
    shutil.copytree(datadir.sandbox_certs(), certs)
    registry = certs / "registry.toml"
    now = datetime.now(UTC).replace(microsecond=0)
    expired = _key(certs, "ecommerce-expired", now - timedelta(days=400), now - timedelta(days=30), registry)
    just = _key(certs, "ecommerce-just-expired", now - timedelta(days=400), now - timedelta(minutes=10),
                registry)
    not_yet = _key(certs, "ecommerce-not-yet", now + timedelta(days=2), now + timedelta(days=400), registry)
    return Keys(sb.settings.with_(registry_path=registry), registry, expired, just, not_yet)


def _app_time(when: datetime) -> str:
    return when.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")


def _order(seed: int, app_time: datetime) -> bytes:
    """A CEB311 of the ecommerce company with every appTime set to ``app_time``."""
    root = parse(samplegen.build("CEB311", seed=seed)).root
    found = list(root.iter(f"{CEB}appTime"))
    assert found
    for el in found:
        el.text = _app_time(app_time)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


async def _post(api: Api, sb: Sandbox, data: bytes) -> tuple[int, dict]:  # type: ignore[type-arg]
    return await api.post_xml(sb.token("ecommerce"), data)


async def _still_serving(api: Api, sb: Sandbox, seed: int) -> None:
    status, body = await _post(api, sb, _order(seed, datetime.now(UTC)))
    assert status == 202 and body["warnings"] == [], body
    assert (await api.get(None, "/healthz"))[0] == 200


@aio
async def test_expired_certificate_with_backdated_app_time_is_refused(sb: Sandbox, keys: Keys) -> None:
    now = datetime.now(UTC)
    async with running(keys.settings) as api:
        for seed, back in ((201, timedelta(days=31)), (202, timedelta(days=60)), (203, timedelta(days=399))):
            signed = sign(_order(seed, now - back), keys.expired)  # appTime inside the window
            status, err = await _post(api, sb, signed)
            assert (status, err["error"]["code"]) == (422, "CEBGW-SIG-CERT-EXPIRED"), err
            assert "received at" in err["error"]["message"], err
            assert ">-1002<" in err["ceb900"], err["ceb900"]  # the CEB900 says: certificate expired
        # appTime after expiry, as before: refused at the signing time already
        status, err = await _post(api, sb, sign(_order(204, now), keys.expired))
        assert (status, err["error"]["code"]) == (422, "CEBGW-SIG-CERT-EXPIRED"), err
        await _still_serving(api, sb, 205)


@aio
async def test_grace_after_expiry_is_configurable(sb: Sandbox, keys: Keys) -> None:
    now = datetime.now(UTC)
    signed = sign(_order(211, now - timedelta(minutes=20)), keys.just_expired)
    async with running(keys.settings) as api:  # default grace: an hour
        status, body = await _post(api, sb, signed)
        assert status == 202, body
        await _still_serving(api, sb, 212)
    signed = sign(_order(213, now - timedelta(minutes=20)), keys.just_expired)
    async with running(keys.settings.with_(cert_grace_s=60)) as api:
        status, err = await _post(api, sb, signed)
        assert (status, err["error"]["code"]) == (422, "CEBGW-SIG-CERT-EXPIRED"), err
        await _still_serving(api, sb, 214)


@aio
async def test_certificate_not_yet_valid_at_receipt_is_refused(sb: Sandbox, keys: Keys) -> None:
    now = datetime.now(UTC)
    async with running(keys.settings) as api:
        for seed, ahead in ((221, timedelta(days=3)), (222, timedelta(days=30))):
            signed = sign(_order(seed, now + ahead), keys.not_yet)  # appTime in the future, in the window
            status, err = await _post(api, sb, signed)
            assert (status, err["error"]["code"]) == (422, "CEBGW-SIG-CERT-NOT-YET-VALID"), err
            assert "received at" in err["error"]["message"], err
        await _still_serving(api, sb, 223)


@aio
async def test_app_time_far_from_receipt_is_a_warning_with_its_own_code(sb: Sandbox, keys: Keys) -> None:
    now = datetime.now(UTC)
    async with running(keys.settings) as api:
        for seed, skew, direction in ((231, -timedelta(days=3), "before"), (232, timedelta(days=2), "after"),
                                      (233, -timedelta(hours=25), "before")):
            status, body = await _post(api, sb, _order(seed, now + skew))
            assert status == 202, body
            (warning,) = body["warnings"]
            assert warning["code"] == "CEBGW-APPTIME-SKEW" and warning["severity"] == "warning", warning
            assert warning["field"] == "appTime" and warning["path"].endswith("/OrderHead/appTime"), warning
            assert direction in warning["message"] and "1 day" in warning["message"], warning
        for seed, skew in ((234, -timedelta(hours=23)), (235, timedelta(minutes=5))):
            status, body = await _post(api, sb, _order(seed, now + skew))
            assert status == 202 and body["warnings"] == [], body
    async with running(keys.settings.with_(app_time_window_s=0)) as api:  # 0: the check is off
        status, body = await _post(api, sb, _order(236, now - timedelta(days=300)))
        assert status == 202 and body["warnings"] == [], body
    async with running(keys.settings.with_(app_time_window_s=600)) as api:
        status, body = await _post(api, sb, _order(237, now - timedelta(minutes=30)))
        assert status == 202 and [w["code"] for w in body["warnings"]] == ["CEBGW-APPTIME-SKEW"], body
        assert "10 minutes" in body["warnings"][0]["message"]
        await _still_serving(api, sb, 238)


def _cebgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_cli_verify_checks_the_certificate_now_or_at_a_given_time(keys: Keys, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    signed = tmp_path / "backdated.xml"
    signed.write_bytes(sign(_order(241, now - timedelta(days=60)), keys.expired))
    r = _cebgw("verify", str(signed), "--registry", str(keys.registry))
    assert r.returncode == 1 and "CEBGW-SIG-CERT-EXPIRED" in r.stderr and "received at" in r.stderr, r
    at = (now - timedelta(days=59)).astimezone(BEIJING).strftime("%Y-%m-%dT%H:%M:%S")  # Beijing, no zone
    r = _cebgw("verify", str(signed), "--registry", str(keys.registry), "--at", at)
    assert r.returncode == 0 and "valid CEB311" in r.stdout, r
    r = _cebgw("verify", str(signed), "--registry", str(keys.registry), "--grace", str(31 * 86400))
    assert r.returncode == 0, r
    r = _cebgw("verify", str(signed), "--registry", str(keys.registry), "--at", "yesterday")
    assert r.returncode == 2 and "--at" in r.stderr, r


@pytest.mark.parametrize(("changes", "field"), [
    ({"cert_grace_s": -1}, "cert_grace_s"), ({"cert_grace_s": 8 * 86400}, "cert_grace_s"),
    ({"app_time_window_s": -5}, "app_time_window_s"), ({"audit_checkpoint_s": -1}, "audit_checkpoint_s"),
    ({"gateway_key": None}, "gateway_key"),
])
def test_time_and_audit_settings_are_checked(sb: Sandbox, changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        sb.settings.with_(**changes)
    assert caught.value.field == field


def test_time_and_audit_settings_load_from_toml(sb: Sandbox, tmp_path: Path) -> None:
    s = sb.settings
    conf = tmp_path / "gateway.toml"
    conf.write_text(f'store_url = "{s.store_url}"\nregistry_path = "{s.registry_path}"\n'
                    f'accounts_path = "{s.accounts_path}"\ncert_grace_s = 60\napp_time_window_s = 0\n'
                    "audit_checkpoint_s = 30\n", encoding="utf-8")
    loaded = load_settings(conf)
    assert (loaded.cert_grace_s, loaded.app_time_window_s, loaded.audit_checkpoint_s) == (60.0, 0.0, 30.0)
