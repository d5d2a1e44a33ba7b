"""The pieces every transport shares."""

from __future__ import annotations

from gateway.envelope import TransInfo
from gateway.store import OutboxItem
from gateway.transport.common import Outgoing, TransportMetrics, in_order_prefix


def _o(oid: int, sender: str) -> Outgoing:
    return Outgoing(OutboxItem(oid, oid, b"", 1), TransInfo(f"C{oid}", sender, ("R",), "", "T"))


def test_only_each_senders_sent_prefix_is_acknowledged() -> None:
    batch = [_o(1, "A"), _o(2, "B"), _o(3, "A"), _o(4, "B"), _o(5, "A"), _o(6, "C")]
    assert in_order_prefix(batch, {1, 2, 3, 4, 5, 6}) == [1, 2, 3, 4, 5, 6]
    assert in_order_prefix(batch, {1, 2, 4, 5, 6}) == [1, 2, 4, 6]   # A's 3 failed: A's 5 waits
    assert in_order_prefix(batch, {2, 3, 5}) == [2]                  # A's 1 failed: nothing of A
    assert in_order_prefix(batch, set()) == []


def test_metrics_render_counters_and_connection_state() -> None:
    m = TransportMetrics()
    m.count("amqp", "published", 3)
    m.count("amqp", "confirmed", 2)
    m.count("folder", "written")
    m.connected["amqp"] = False
    text = "\n".join(m.render())
    assert 'cebgw_transport_published_total{transport="amqp"} 3' in text
    assert 'cebgw_transport_confirmed_total{transport="amqp"} 2' in text
    assert 'cebgw_transport_written_total{transport="folder"} 1' in text
    assert 'cebgw_transport_connected{transport="amqp"} 0' in text
    assert "# TYPE cebgw_transport_published_total counter" in text
