"""Translation between enterprise JSON and CEB XML, driven by the XSDs and ``mappings/``.

:func:`xml_from_json` and :func:`json_from_xml` are the two directions; :func:`translate_edition`
carries a message from one edition to the other; :mod:`.jsonschema` describes the JSON.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from ..catalog import EDITIONS, Catalog, MessageType
from ..errors import MappingError
from .decode import parse_return_info, to_json
from .encode import Context, loads, to_tree, to_xml
from .model import Model, model

__all__ = ["Context", "EDITIONS", "Model", "json_from_xml", "json_path", "loads", "message_type_of", "model",
           "parse_return_info", "to_json", "to_tree", "to_xml", "xml_from_json"]


def message_type_of(doc: dict[str, Any], catalog: Catalog, given: str | None = None) -> MessageType:
    """The message type a JSON document is: ``given`` (a header or a flag), else its ``messageType``.
    Raises MappingError when neither names a CEB message of the catalogue, or when they differ."""
    named = doc.get("messageType")
    if named is not None and not isinstance(named, str):
        raise MappingError("/messageType must be a string such as \"CEB311\"", code="CEBGW-JSON-TYPE",
                           field="messageType")
    if given and named and given != named:
        raise MappingError(f"the message type is given as {given} and as {named} (/messageType)",
                           field="messageType")
    code = given or named
    if not code:
        raise MappingError("the message type is not given: add \"messageType\" (e.g. \"CEB311\") to the "
                           "JSON or name it (X-Message-Type, --type)", code="CEBGW-JSON-REQUIRED",
                           field="messageType")
    mtype = catalog.types.get(code)
    if mtype is None or mtype.is_envelope:
        raise MappingError(f"{code!r} is not a CEB message type", field="messageType")
    return mtype


def edition_of(doc: dict[str, Any], mtype: MessageType, given: str | None = None) -> str:
    """The edition to write: ``given``, else the JSON's ``edition``, else the newest of the type's."""
    named = doc.get("edition")
    if named is not None and not isinstance(named, str):
        raise MappingError("/edition must be a string such as \"202205\"", code="CEBGW-JSON-TYPE",
                           field="edition")
    edition = given or named or next(e for e in EDITIONS if e in mtype.editions)
    if edition not in EDITIONS:
        raise MappingError(f"edition {edition!r} is none of {', '.join(EDITIONS)}", field="edition")
    if edition not in mtype.editions:
        raise MappingError(f"{mtype.code} does not exist in the {edition} edition", field="edition")
    return edition


def xml_from_json(doc: dict[str, Any], catalog: Catalog, *, message_type: str | None = None,
                  edition: str | None = None, ctx: Context | None = None) -> tuple[MessageType, str, bytes]:
    """The CEB XML for a JSON document: its type, the edition written, and the UTF-8 bytes.
    ``edition`` other than the document's own translates it (refusing what cannot be carried)."""
    mtype = message_type_of(doc, catalog, message_type)
    target = edition_of(doc, mtype, edition)
    source = doc.get("edition") if isinstance(doc.get("edition"), str) else None
    return mtype, target, to_xml(doc, mtype, target, ctx or Context(), source_edition=source)


def json_from_xml(root: etree._Element, mtype: MessageType, edition: str, *,
                  to_edition: str | None = None) -> dict[str, Any]:
    """The JSON for a message of ``edition``; with ``to_edition``, carried into that edition first
    (the JSON then names it). Raises MappingError."""
    doc = to_json(root, mtype, edition)
    if to_edition is None or to_edition == edition:
        return doc
    translated = to_tree(doc, mtype, to_edition, source_edition=edition)
    return to_json(translated, mtype, to_edition)


def json_path(xml_path: str, m: Model) -> str:
    """The JSON path of an element path: ``/CEB311Message/Order[2]/OrderHead/acturalPaid`` →
    ``/order/1/orderHead/acturalPaid`` (as far as the model names it)."""
    from .model import Record
    rec: Record = m.body
    out = ""
    for part in xml_path.strip("/").split("/")[1:]:
        name, _, index = part.partition("[")
        child = next((c for c in rec.children if c.name == name), None)
        if child is None:
            out += "/" + (name[1:] if name.startswith("@") else name)
            break
        out += "/" + child.json
        if not isinstance(child, Record):
            break
        if child.repeats:
            out += f"/{int(index.rstrip(']')) - 1 if index else 0}"
        rec = child
    return out or "/"
