"""Red and green channels: which inventory lists customs inspects (the sandbox's risk rules).

A list goes to the red channel (inspection, 500) when one of its lines has an HS code on the
risk list (by prefix), its buyer (``buyerIdNumber`` or ``buyerName``) or one of its enterprises
(``ebpCode``, ``ebcCode``, ``agentCode``, ``logisticsCode``) is on a risk list, or else at random
with ``inspection_rate``; an inspected list is returned (700) with ``return_rate``, else released
(800).  Green lists are released, unless an operator has put them on ``manual_review`` (by
``copNo``, ``orderNo`` or ``invtNo``): they wait in manual review (300) until taken off it.

The rules are a TOML file (``--rules FILE``; default: ``channels.toml`` beside this module)::

    inspection_rate = 0.05
    return_rate = 0.2
    manual_review = []
    [red]
    hs_codes = ["8509"]
    buyers = []
    enterprises = []

Chance is drawn per list from ``random.Random`` seeded with the sandbox's seed and the list's
``copNo``, so a run is the same under the same seed whatever order documents arrive in.
"""

from __future__ import annotations

import os
import random
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError

_ENTERPRISE_FIELDS = ("ebpCode", "ebcCode", "agentCode", "logisticsCode")


@dataclass(frozen=True)
class Channel:
    """Where a list goes: ``red`` (inspect, with ``why``) or ``green``; ``returned`` says an
    inspected list is shipped back (700) rather than released."""

    colour: str
    why: str = ""
    returned: bool = False


@dataclass(frozen=True)
class ChannelRules:
    """The risk lists, the random inspection and return rates, and the manual-review list."""

    hs_codes: tuple[str, ...] = ()
    buyers: frozenset[str] = frozenset()
    enterprises: frozenset[str] = frozenset()
    inspection_rate: float = 0.0
    return_rate: float = 0.0
    manual_review: frozenset[str] = frozenset()

    def choose(self, head: Mapping[str, str], lines: Sequence[Mapping[str, str]], seed: int) -> Channel:
        """The channel of the list with ``head`` and ``lines``; the same for the same seed and copNo."""
        rng = random.Random(f"channel/{seed}/{head.get('copNo', '')}")
        inspect_draw, return_draw = rng.random(), rng.random()
        why = self._risk(head, lines)
        if not why and inspect_draw < self.inspection_rate:
            why = "random inspection"
        if not why:
            return Channel("green")
        return Channel("red", why, returned=return_draw < self.return_rate)

    def _risk(self, head: Mapping[str, str], lines: Sequence[Mapping[str, str]]) -> str:
        for ln in lines:
            gcode = ln.get("gcode", "")
            hit = next((p for p in self.hs_codes if gcode.startswith(p)), None)
            if hit is not None:
                return f"HS code {gcode} on the risk list ({hit})"
        for f in ("buyerIdNumber", "buyerName"):
            if head.get(f) and head[f] in self.buyers:
                return f"buyer {f} on the risk list"
        for f in _ENTERPRISE_FIELDS:
            if head.get(f) and head[f] in self.enterprises:
                return f"enterprise {head[f]} ({f}) on the risk list"
        return ""

    def on_review(self, head: Mapping[str, str]) -> bool:
        """Whether an operator holds this list for manual review."""
        return any(head.get(f) and head[f] in self.manual_review for f in ("copNo", "orderNo", "invtNo"))


def _strs(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of strings", field=key)
    return tuple(value)


def _rate(data: Mapping[str, Any], key: str, where: str) -> float:
    value = data.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{where}: {key} must be a number from 0 to 1", field=key)
    return float(value)


def parse_rules(text: str, source: str = "channel rules") -> ChannelRules:
    """Channel rules from TOML text. Raises ConfigError naming the bad field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    unknown = set(data) - {"inspection_rate", "return_rate", "manual_review", "red"}
    if unknown:
        raise ConfigError(f"{source}: unknown settings {sorted(unknown)}", field=sorted(unknown)[0])
    red = data.get("red", {})
    if not isinstance(red, dict) or set(red) - {"hs_codes", "buyers", "enterprises"}:
        raise ConfigError(f"{source}: [red] takes hs_codes, buyers and enterprises", field="red")
    return ChannelRules(_strs(red, "hs_codes", source), frozenset(_strs(red, "buyers", source)),
                        frozenset(_strs(red, "enterprises", source)), _rate(data, "inspection_rate", source),
                        _rate(data, "return_rate", source), frozenset(_strs(data, "manual_review", source)))


def default_rules() -> ChannelRules:
    """The shipped rules (``channels.toml`` beside this module)."""
    text = resources.files(__package__).joinpath("channels.toml").read_text(encoding="utf-8")
    return parse_rules(text, "gateway/sandbox/channels.toml")


class RulesFile:
    """Channel rules an operator edits while the sandbox runs: reread when the file changes
    (e.g. to put a green list on manual review, or take it off); ``inspection_rate``, when
    given, overrides the file's."""

    def __init__(self, path: str | os.PathLike[str] | None, *, inspection_rate: float | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.inspection_rate = inspection_rate
        self._mtime: int | None = None
        self._rules = default_rules() if self.path is None else ChannelRules()
        self.current()

    def current(self) -> ChannelRules:
        """The rules as the file now says. Raises ConfigError for an unreadable or malformed file."""
        if self.path is None:
            return self._override(self._rules)
        try:
            mtime = self.path.stat().st_mtime_ns
            if mtime != self._mtime:
                self._rules = parse_rules(self.path.read_text(encoding="utf-8"), str(self.path))
                self._mtime = mtime
        except OSError as exc:
            raise ConfigError(f"channel rules {self.path}: {exc.strerror or exc}") from None
        return self._override(self._rules)

    def _override(self, rules: ChannelRules) -> ChannelRules:
        if self.inspection_rate is None:
            return rules
        return replace(rules, inspection_rate=self.inspection_rate)
