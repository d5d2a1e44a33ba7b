#!/usr/bin/env python3
"""The issue-14 table every benchmark prints last, in one shape:

    | measure | ours | ceiling | peer | ours/ceiling | ours/peer | target |

``ceiling``: the C libraries doing the same job directly, measured in the same run; ``peer``:
another tool doing the job (several, named, separated by ``;``).  Ratios are ours divided by
the other column, so for a latency (``lower_is_better``) a ratio below 1 is ours being faster.

Each bench prints its own rows and, given ``--rows FILE``, appends them to FILE (JSON lines);
``python bench/_table.py FILE`` prints them all as one table (the end of ``make bench``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

HEAD = ("measure", "ours", "ceiling", "peer", "ours/ceiling", "ours/peer", "target")


@dataclass
class Row:
    measure: str
    ours: float | None
    ceiling: float | None = None
    peers: Sequence[tuple[str, float | None]] = field(default_factory=tuple)
    target: str = ""
    lower_is_better: bool = False


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    r = a / b
    return f"{r:.2f}×" if r < 10 else f"{r:.0f}×"


def _cells(row: Row) -> list[str]:
    named = [(n, v) for n, v in row.peers]
    peer = "; ".join(f"{n} {_num(v)}" for n, v in named) or "-"
    ratios = "; ".join(f"{_ratio(row.ours, v)} {n}" for n, v in named) or "-"
    return [row.measure, _num(row.ours), _num(row.ceiling), peer, _ratio(row.ours, row.ceiling), ratios,
            row.target or "-"]


def render(rows: Sequence[Row]) -> str:
    lines = [_cells(r) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(HEAD)]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [fmt(HEAD), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(fmt(c) for c in lines)
    if any(r.lower_is_better for r in rows):
        out.append("(latency rows: lower is better, so a ratio below 1× means ours is faster)")
    return "\n".join(out)


def emit(title: str, rows: Sequence[Row], rows_file: str | None = None) -> None:
    """Print ROWS as the issue's table under TITLE and append them to ROWS_FILE if given."""
    print(f"\n{title}\n{render(rows)}")
    if rows_file:
        path = Path(rows_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")


def load(path: Path) -> list[Row]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            d["peers"] = [tuple(p) for p in d["peers"]]
            rows.append(Row(**d))
    return rows


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: bench/_table.py ROWS_FILE")
    print("\nissue 14: ours, the C-library ceiling and the peers, measured in the same `make bench`")
    print(render(load(Path(sys.argv[1]))))
