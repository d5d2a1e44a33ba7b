"""``[transport.amqp]`` and ``[transport.folder]`` in the settings TOML: read, and refused when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from service.kit import Sandbox

from gateway.config import load
from gateway.errors import ConfigError


def _toml(sb: Sandbox, tmp_path: Path, extra: str) -> Path:
    s = sb.settings
    path = tmp_path / "gateway.toml"
    path.write_text(f'store_url = "{s.store_url}"\nregistry_path = "{s.registry_path}"\n'
                    f'accounts_path = "{s.accounts_path}"\n{extra}', encoding="utf-8")
    return path


FULL = """
[transport.amqp]
url = "amqp://gw:secret@mq.example:5672/ceb"
exchange = "ceb.out"
routing_keys = { DXPEDCCEB0000003 = "export" }
receipts_queue = "ceb.in"
dead_letter_queue = "ceb.in.dead"
prefetch = 10
confirm_timeout_s = 5
declare = false
publish = false

[transport.folder]
poll_interval_s = 0.5
[[transport.folder.pairs]]
dxp_id = "DXPENT0000458762"
send = "dxp/462/send"
receive = "dxp/462/receive"
[[transport.folder.pairs]]
dxp_id = "*"
send = "/srv/dxp/send"
receive = "/srv/dxp/receive"
"""


def test_transport_tables_are_read(sb: Sandbox, tmp_path: Path) -> None:
    s = load(_toml(sb, tmp_path, FULL)).transport
    assert s.amqp is not None and s.folder is not None
    assert (s.amqp.exchange, s.amqp.receipts_queue, s.amqp.prefetch, s.amqp.declare) == (
        "ceb.out", "ceb.in", 10, False)
    assert s.amqp.routing_key("DXPEDCCEB0000003") == "export"
    assert s.amqp.routing_key("DXPEDCCEB0000002") == "DXPEDCCEB0000002"
    assert s.amqp.redacted_url() == "amqp://gw@mq.example:5672/ceb"
    pair = s.folder.pair_for("DXPENT0000458762")
    assert pair is not None and pair.send == tmp_path / "dxp" / "462" / "send"
    other = s.folder.pair_for("DXPENT0000000001")
    assert other is not None and other.dxp_id == "*"


def test_no_transport_table_means_no_transport(sb: Sandbox) -> None:
    assert sb.settings.transport.amqp is None and sb.settings.transport.folder is None


@pytest.mark.parametrize(("extra", "field"), [
    ("[transport]\nsmtp = 1\n", "smtp"),
    ('[transport.amqp]\nurl = "amqp://h/"\nqueue = "x"\n', "queue"),
    ('[transport.amqp]\nexchange = "x"\n', "url"),
    ('[transport.amqp]\nurl = "http://h/"\n', "url"),
    ('[transport.amqp]\nurl = "amqp://h/"\nprefetch = "ten"\n', "prefetch"),
    ('[transport.amqp]\nurl = "amqp://h/"\nreceipts_queue = "q"\ndead_letter_queue = "q"\n',
     "dead_letter_queue"),
    ("[transport.folder]\npoll_interval_s = 1\n", "pairs"),
    ('[[transport.folder.pairs]]\ndxp_id = "*"\nsend = "a"\nreceive = "b"\nmode = "x"\n', "mode"),
    ('[[transport.folder.pairs]]\ndxp_id = "*"\nsend = "a"\n', "pairs"),
    ('[[transport.folder.pairs]]\ndxp_id = "*"\nsend = "a"\nreceive = "a"\n', "pairs"),
    ('[[transport.folder.pairs]]\ndxp_id = "*"\nsend = "a"\nreceive = "b"\n'
     '[[transport.folder.pairs]]\ndxp_id = "*"\nsend = "c"\nreceive = "d"\n', "dxp_id"),
    ('[transport.amqp]\nurl = "amqp://h/"\n'
     '[[transport.folder.pairs]]\ndxp_id = "*"\nsend = "a"\nreceive = "b"\n', "publish"),
])
def test_wrong_transport_settings_are_refused(sb: Sandbox, tmp_path: Path, extra: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(_toml(sb, tmp_path, extra))
    assert caught.value.field == field, caught.value.message

