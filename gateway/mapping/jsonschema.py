"""A JSON Schema (2020-12) per message type and edition, from the XSD model and the mapping, and
the same as a Markdown table for people: what the JSON of :func:`gateway.mapping.xml_from_json`
takes.  Field meanings come from ``mappings/descriptions.toml`` (the spec's field dictionary)."""

from __future__ import annotations

import tomllib
from functools import cache
from typing import Any

from ..catalog import MessageType
from ..errors import ConfigError
from . import spec
from .model import Leaf, Model, Record, model

_PLACEHOLDER_TEXT = {"{uuid}": "a new UUID", "{now}": "the time of translation (Beijing)",
                     "{account.code}": "the sending account's enterprise code (if it has one)",
                     "{account.dxp_id}": "the sending account's DXP id"}
_CONVERSION_TEXT = {"datetime14": "yyyyMMddHHmmss, or ISO 8601 (converted to Beijing time; no zone: Beijing)",
                    "datetime17": "yyyyMMddHHmmssSSS, or ISO 8601 (converted to Beijing time)",
                    "date8": "yyyyMMdd, or an ISO 8601 date",
                    "currency": "customs code, or a currency name such as CNY (mappings/codes.toml)"}
DECIMAL_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"


@cache
def descriptions() -> dict[str, dict[str, str]]:
    """Field name → {"en": …, "zh": …} from ``mappings/descriptions.toml``."""
    path = spec.mappings_dir() / "descriptions.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return {k: {kk: str(vv) for kk, vv in v.items()} for k, v in data.items() if isinstance(v, dict)}


def _about(leaf: Leaf, key: str, mapping: spec.Mapping) -> dict[str, Any]:
    """The parts of a field's description: meaning, format, default."""
    words = descriptions().get(leaf.name, {})
    text = words.get("en", leaf.name)
    conv = mapping.convert.get(key)
    if conv:
        text += f". Format: {_CONVERSION_TEXT[conv]}"
    default = mapping.defaults.get(key)
    if default is not None:
        text += f". Default: {_PLACEHOLDER_TEXT.get(default, repr(default))}"
    out: dict[str, Any] = {"description": text}
    if "zh" in words:
        out["x-description-zh"] = words["zh"]
    if default is not None and default not in _PLACEHOLDER_TEXT:
        out["default"] = default
    return out


def _leaf_schema(leaf: Leaf, key: str, mapping: spec.Mapping) -> dict[str, Any]:
    s: dict[str, Any]
    if leaf.kind == "string":
        s = {"type": "string"}
        if not mapping.convert.get(key):  # converted values are checked after conversion
            if leaf.max_length is not None:
                s["maxLength"] = leaf.max_length
            if leaf.min_length:
                s["minLength"] = leaf.min_length
    elif leaf.kind == "int":
        s = {"type": "integer"}
    else:
        s = {"type": ["string", "number"], "pattern": DECIMAL_PATTERN,
             "x-ceb-digits": f"N{leaf.total_digits},{leaf.fraction_digits}"}
    return {**s, **_about(leaf, key, mapping)}


_RETURN_INFO = {"type": "object", "properties": {"code": {"type": "string"}, "text": {"type": "string"}},
                "required": ["code", "text"], "additionalProperties": False,
                "description": "[Code:…;Desc:…] as its code and text"}


def _record_schema(rec: Record, mapping: spec.Mapping, top: bool = False,
                   receipt: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    for c in rec.children:
        if isinstance(c, Record):
            item = _record_schema(c, mapping, receipt=receipt)
            if c.repeats:
                arr: dict[str, Any] = {"type": "array", "items": item, "minItems": c.min}
                if c.max is not None:
                    arr["maxItems"] = c.max
                props[c.json] = {"anyOf": [arr, item]} if top else arr
            else:
                props[c.json] = item
            if c.min > 0 and not _all_defaulted(c, mapping):
                required.append(c.json)
            continue
        key = f"{rec.name}.{c.name}"
        props[c.json] = _leaf_schema(c, key, mapping)
        if receipt and c.name == "returnInfo":
            text = props[c.json]
            props[c.json] = {"anyOf": [text, _RETURN_INFO], "description": text["description"]}
        for alias in mapping.aliases_of(rec.name, c.name):
            props[alias] = {**props[c.json], "description": f"alias of {c.json}"}
        if c.required and key not in mapping.defaults:
            required.append(c.json)
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def _all_defaulted(rec: Record, mapping: spec.Mapping) -> bool:
    return all(isinstance(c, Leaf) and (not c.required or f"{rec.name}.{c.name}" in mapping.defaults)
               for c in rec.children)


def json_schema(mtype: MessageType, edition: str) -> dict[str, Any]:
    """The JSON Schema of ``mtype``'s JSON in ``edition``."""
    m: Model = model(mtype, edition)
    mapping = spec.load(mtype.code, edition)
    body = _record_schema(m.body, mapping, top=True, receipt=mtype.kind == "receipt")
    props: dict[str, Any] = {
        "messageType": {"const": mtype.code,
                        "description": "the message type (or the X-Message-Type header)"},
        "edition": {"const": edition, "description": "the edition of the standard this JSON follows"},
    }
    for a in m.attributes:
        props[a.name] = _leaf_schema(a, f"@{a.name}", mapping)
    props.update(body["properties"])
    out: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:cebgw:json:{mtype.code}:{edition}",
        "title": f"{mtype.code} {mtype.title} ({edition} edition)",
        "description": f"Signed by {mapping.signed_by}." if mapping.signed_by else mtype.title,
        "type": "object", "properties": props, "additionalProperties": False,
    }
    if body.get("required"):
        out["required"] = body["required"]
    return out


def markdown(mtype: MessageType, edition: str) -> str:
    """The JSON of ``mtype`` in ``edition`` as a table: path, type, required, meaning."""
    m = model(mtype, edition)
    mapping = spec.load(mtype.code, edition)
    lines = [f"# {mtype.code} {mtype.title} ({edition} edition) as JSON", "",
             f"Signed by {mapping.signed_by}." if mapping.signed_by else "", "",
             "| JSON path | type | required | meaning |", "|---|---|---|---|",
             f"| `/messageType` | `\"{mtype.code}\"` | if not given otherwise | the message type |",
             f"| `/edition` | `\"{edition}\"` | no | the edition (default: the newest) |"]

    def kind(leaf: Leaf) -> str:
        if leaf.kind == "string":
            lo = leaf.min_length or 0
            return f"string {lo}..{leaf.max_length}" if leaf.max_length is not None else "string"
        return "integer" if leaf.kind == "int" else f"amount N{leaf.total_digits},{leaf.fraction_digits}"

    def row(path: str, leaf: Leaf, key: str) -> str:
        required = "yes" if leaf.required and key not in mapping.defaults else "no"
        about = _about(leaf, key, mapping)
        zh = f" ({about['x-description-zh']})" if "x-description-zh" in about else ""
        text = (about["description"] + zh).replace("|", "\\|")
        return f"| `{path}` | {kind(leaf)} | {required} | {text} |"

    for a in m.attributes:
        lines.append(row(f"/{a.name}", a, f"@{a.name}"))

    def walk(rec: Record, path: str) -> None:
        for c in rec.children:
            if isinstance(c, Record):
                p = f"{path}/{c.json}" + ("/N" if c.repeats else "")
                most = "n" if c.max is None else c.max
                lines.append(f"| `{p}` | {'array' if c.repeats else 'object'} {c.min}..{most} | "
                             f"{'yes' if c.min else 'no'} | {c.name} record |")
                walk(c, p)
            else:
                lines.append(row(f"{path}/{c.json}", c, f"{rec.name}.{c.name}"))
    walk(m.body, "")
    return "\n".join(lines) + "\n"
