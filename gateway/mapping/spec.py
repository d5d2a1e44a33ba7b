"""The declarative mappings: ``mappings/<type>.<edition>.toml`` and ``mappings/codes.toml``.

A mapping file says, for one message type in one edition, what the XSD cannot: the JSON
aliases a deployment accepts beside the standard names, the defaults filled in when the JSON
leaves a field out, the conversions of dates, times and code names, and whose key signs it.
Fields are named ``Record.field`` (the record's element name, then the field), the root's
attributes ``@guid`` and ``@version``.  The files are data for an integration analyst to read
and change; ``mappings/README.md`` describes them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError

CONVERSIONS = ("datetime14", "datetime17", "date8", "currency")
PLACEHOLDERS = ("{uuid}", "{now}", "{account.code}", "{account.dxp_id}")


@dataclass(frozen=True)
class Mapping:
    """One mapping file."""

    message_type: str
    edition: str
    title: str = ""
    signed_by: str = ""
    defaults: dict[str, str] = field(default_factory=dict)
    convert: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = ""

    def aliases_of(self, record: str, name: str) -> tuple[str, ...]:
        return self.aliases.get(f"{record}.{name}", ())


def mappings_dir() -> Path:
    """``$CEBGW_MAPPINGS_DIR`` or the ``mappings/`` folder beside the package."""
    env = os.environ.get("CEBGW_MAPPINGS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "mappings"


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table", field=key)
    return value


def parse_mapping(text: str, source: str) -> Mapping:
    """A mapping from TOML text. Raises ConfigError naming the bad entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    unknown = set(data) - {"message_type", "edition", "title", "signed_by", "defaults", "convert", "aliases"}
    if unknown:
        raise ConfigError(f"{source}: unknown keys {sorted(unknown)}", field=sorted(unknown)[0])
    mtype, edition = data.get("message_type"), data.get("edition")
    if not isinstance(mtype, str) or not isinstance(edition, str):
        raise ConfigError(f"{source}: message_type and edition must be strings", field="message_type")
    defaults = _table(data, "defaults", source)
    for k, v in defaults.items():
        if not isinstance(v, str):
            raise ConfigError(f"{source}: default of {k} must be a string", field=k)
        if v.startswith("{") and v not in PLACEHOLDERS:
            raise ConfigError(f"{source}: default of {k}: {v} is none of {', '.join(PLACEHOLDERS)}", field=k)
    convert = _table(data, "convert", source)
    for k, v in convert.items():
        if v not in CONVERSIONS:
            raise ConfigError(f"{source}: conversion of {k}: {v!r} is none of {', '.join(CONVERSIONS)}",
                              field=k)
    aliases: dict[str, tuple[str, ...]] = {}
    for k, v in _table(data, "aliases", source).items():
        if not isinstance(v, list) or not all(isinstance(a, str) and a for a in v):
            raise ConfigError(f"{source}: aliases of {k} must be a list of names", field=k)
        aliases[k] = tuple(v)
    return Mapping(mtype, edition, str(data.get("title", "")), str(data.get("signed_by", "")),
                   dict(defaults), dict(convert), aliases, source)


@cache
def load(message_type: str, edition: str, directory: str | None = None) -> Mapping:
    """The mapping of ``message_type`` in ``edition`` (read once). Raises ConfigError when the
    file is missing or malformed."""
    d = Path(directory) if directory else mappings_dir()
    path = d / f"{message_type}.{edition}.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: no mapping for {message_type} in the {edition} edition ({exc.strerror})",
                          field=message_type) from None
    m = parse_mapping(text, str(path))
    if (m.message_type, m.edition) != (message_type, edition):
        raise ConfigError(f"{path}: says {m.message_type} {m.edition}", field="message_type")
    return m


@cache
def codes(directory: str | None = None) -> dict[str, dict[str, str]]:
    """The code lists by name (``currency``: ``{"CNY": "142", …}``), keys upper-cased."""
    path = (Path(directory) if directory else mappings_dir()) / "codes.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    out: dict[str, dict[str, str]] = {}
    for name, table in data.items():
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ConfigError(f"{path}: [{name}] must map names to code strings", field=name)
        out[name] = {k.upper(): v for k, v in table.items()}
    return out
