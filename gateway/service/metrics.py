"""Prometheus text exposition for ``/metrics``: counters and latency histograms kept per app
(never in module globals), plus figures read from the store at scrape time."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import accumulate

from ..store import StoreMetrics

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in pairs) + "}" if pairs else ""


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))  # per bucket, +Inf last
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(BUCKETS, value)] += 1  # the first edge >= value
        self.total += value
        self.n += 1

    def cumulative(self) -> list[int]:
        """Observations <= each edge of BUCKETS, as Prometheus buckets count."""
        return list(accumulate(self.counts[:-1]))


@dataclass
class Metrics:
    """The service's own counters; one instance per app."""

    messages: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    receipts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    latency: dict[tuple[str, str], _Histogram] = field(default_factory=dict)

    def message(self, message_type: str, outcome: str) -> None:
        """Count a submission: ``accepted``, ``duplicate``, ``rejected``, ``forbidden``, ``conflict``."""
        self.messages[(message_type, outcome)] += 1

    def receipt(self, message_type: str, outcome: str) -> None:
        """Count a receipt record: ``delivered``, ``dead_letter``, ``duplicate``."""
        self.receipts[(message_type, outcome)] += 1

    def observe(self, route: str, method: str, seconds: float) -> None:
        """Record one request's latency under its route template."""
        h = self.latency.get((route, method))
        if h is None:
            h = self.latency[(route, method)] = _Histogram()
        h.observe(seconds)

    def render(self, store: StoreMetrics | None) -> str:
        """The exposition text (format 0.0.4)."""
        out: list[str] = []

        def counter(name: str, help_: str, rows: dict[tuple[str, str], int], labels: tuple[str, str]) -> None:
            out.append(f"# HELP {name} {help_}\n# TYPE {name} counter")
            for (a, b), n in sorted(rows.items()):
                out.append(f"{name}{_labels(((labels[0], a), (labels[1], b)))} {n}")

        counter("cebgw_messages_total", "Declarations submitted, by type and outcome.", self.messages,
                ("type", "outcome"))
        counter("cebgw_receipt_records_total", "Receipt records received, by type and outcome.",
                self.receipts, ("type", "outcome"))
        out.append("# HELP cebgw_request_seconds Request latency by route.\n"
                   "# TYPE cebgw_request_seconds histogram")
        for (route, method), h in sorted(self.latency.items()):
            base = (("route", route), ("method", method))
            for edge, c in zip(BUCKETS, h.cumulative(), strict=True):
                out.append(f"cebgw_request_seconds_bucket{_labels((*base, ('le', repr(edge))))} {c}")
            out.append(f"cebgw_request_seconds_bucket{_labels((*base, ('le', '+Inf')))} {h.n}")
            out.append(f"cebgw_request_seconds_sum{_labels(base)} {h.total:.6f}")
            out.append(f"cebgw_request_seconds_count{_labels(base)} {h.n}")
        if store is not None:
            gauges = (
                ("cebgw_outbox_depth", "Envelopes not yet acknowledged by customs.", store.outbox_depth),
                ("cebgw_mailbox_unacked", "Receipts delivered but not acknowledged.", store.mailbox_unacked),
                ("cebgw_dead_letters", "Receipts that matched no declaration.", store.dead_letters),
            )
            for name, help_, value in gauges:
                out.append(f"# HELP {name} {help_}\n# TYPE {name} gauge\n{name} {value}")
            # Group commit at work: jobs / batches is the average number of writes per sync.
            for name, help_, value in (
                    ("cebgw_store_commits_total", "Durable write transactions (one sync each), this process.",
                     store.write_batches),
                    ("cebgw_store_writes_total", "Writes (submissions, receipts, leases) in those commits.",
                     store.write_jobs)):
                out.append(f"# HELP {name} {help_}\n# TYPE {name} counter\n{name} {value}")
            out.append("# HELP cebgw_declarations Declarations by type and state.\n"
                       "# TYPE cebgw_declarations gauge")
            for (t, s), n in sorted(store.declarations.items()):
                out.append(f"cebgw_declarations{_labels((('type', t), ('state', s)))} {n}")
            out.append("# HELP cebgw_receipt_records Receipt records stored, by type and returnStatus"
                       " (all processes, since the store began).\n# TYPE cebgw_receipt_records gauge")
            for (t, s), n in sorted(store.receipts.items()):
                out.append(f"cebgw_receipt_records{_labels((('type', t), ('status', s)))} {n}")
        return "\n".join(out) + "\n"
