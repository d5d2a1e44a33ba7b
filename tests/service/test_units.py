"""Accounts file, settings and the CEB900 builder on their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import ceb900
from gateway.accounts import Account, AccountFile, hash_token, new_token, render_accounts
from gateway.config import from_mapping
from gateway.errors import ConfigError, ParseError, ValidationFailed
from gateway.pipeline import validate_bytes
from gateway.service.keys import RequestIds
from gateway.service.metrics import BUCKETS, Metrics
from gateway.service.middleware import _SAFE_ID


class Tick:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _write(path: Path, name: str, digest: str) -> None:
    acc = Account(name, frozenset({"ecommerce"}), frozenset({"3301960A7Z"}), "DXPENT0000458762",
                  token_hashes=(digest,))
    path.write_text(render_accounts([acc]), encoding="utf-8")


def test_tokens_are_stored_hashed_and_the_file_reloads_at_most_once_a_second(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    t1, h1 = new_token()
    t2, h2 = new_token()
    assert h1 == hash_token(t1) and t1 not in h1 and len(h1) == 64
    _write(path, "first", h1)
    clock = Tick()
    accounts = AccountFile(path, clock=clock)
    assert accounts.current().by_token(t1).name == "first"  # type: ignore[union-attr]
    assert accounts.current().by_token(t2) is None
    _write(path, "second", h2)
    import os
    os.utime(path, ns=(1, 10**18))  # a distinct mtime even on coarse clocks
    clock.now = 0.5
    assert accounts.current().by_token(t2) is None          # not looked at yet
    clock.now = 1.5
    assert accounts.current().by_token(t2).name == "second"  # type: ignore[union-attr]
    path.write_text("[[account]]\nname = 3\n", encoding="utf-8")
    os.utime(path, ns=(1, 2 * 10**18))
    clock.now = 3.0
    assert accounts.current().by_token(t2) is not None       # a broken edit keeps the last good file
    assert accounts.last_error


def test_settings_are_checked(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text("")
    (tmp_path / "a.toml").write_text("")
    base = {"store_url": "sqlite:///x.db", "registry_path": "r.toml", "accounts_path": "a.toml"}
    assert from_mapping(base, tmp_path).max_body_bytes == 10 * 1024 * 1024
    assert from_mapping(base, tmp_path).cache_mb == 2
    assert from_mapping({**base, "cache_mb": 64}, tmp_path).cache_mb == 64
    pg = "postgresql://gw@db.example/ceb?options=-csearch_path%3Dgw"  # checked, not connected to
    assert from_mapping({**base, "store_url": pg}, tmp_path).store_url == pg
    for bad in ({"sign_envelopes": True}, {"max_depth": 2}, {"allowed_algorithms": ["md5"]}, {"nope": 1},
                {"tls_client_ca": "ca.pem"}, {"cache_mb": 0}, {"cache_mb": "big"},
                {"store_url": "mysql://db/test"}, {"store_url": "sqlite:///"}):
        with pytest.raises(ConfigError):
            from_mapping({**base, **bad}, tmp_path)


def test_ceb900_carries_every_finding_and_validates() -> None:
    from gateway.errors import Finding
    err = ValidationFailed("2 errors", code="CEBGW-XSD-LENGTH", findings=(
        Finding("CEBGW-XSD-LENGTH", "too long", field="buyerName"),
        Finding("CEBGW-XSD-TYPE", "x" * 6000, field="acturalPaid")))
    xml = ceb900.build(err, original=b"<x>]]></x>\x01", ori_cop_msg_id="ABC",
                       ori_message_type="CEB311Message")
    report = validate_bytes(xml)
    assert report.valid and report.message_type == "CEB900"
    assert b"<returnStatus>-2</returnStatus>" in xml and b"CEBGW-XSD-LENGTH: buyerName: too long" in xml
    long = ceb900.build(ParseError("p"), original=b"", ori_cop_msg_id="", ori_message_type="X" * 40)
    assert validate_bytes(long).valid and b"<oriMessageType>Unknown</oriMessageType>" in long


def test_request_ids_are_unique_and_safe_to_echo() -> None:
    a, b = RequestIds(), RequestIds()
    ids = [a.next() for _ in range(1000)] + [b.next() for _ in range(1000)]
    assert len(set(ids)) == 2000  # another process (another instance) has another prefix
    assert all(_SAFE_ID.match(i) for i in ids)


def test_latency_histogram_buckets_count_values_up_to_each_edge() -> None:
    m = Metrics()
    values = (0.001, 0.005, 0.0051, 0.3, 99.0)  # one on an edge: it counts in that edge's bucket
    for v in values:
        m.observe("/x", "GET", v)
    text = m.render(None)
    got = {float(line.split('le="')[1].split('"')[0]): int(line.rsplit(" ", 1)[1])
           for line in text.splitlines()
           if line.startswith("cebgw_request_seconds_bucket") and "+Inf" not in line}
    assert got == {edge: sum(v <= edge for v in values) for edge in BUCKETS}
    assert 'cebgw_request_seconds_bucket{route="/x",method="GET",le="+Inf"} 5' in text
    assert 'cebgw_request_seconds_count{route="/x",method="GET"} 5' in text
