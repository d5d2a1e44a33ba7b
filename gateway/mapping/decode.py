"""CEB XML → enterprise JSON: xmlschema decodes the tree, the model names the JSON.

The JSON names its message type and edition (``messageType``, ``edition``), so it translates
back with no other information; amounts are strings exactly as the XML wrote them; a
receipt's ``returnInfo`` of the form ``[Code:…;Desc:…]`` becomes ``{"code", "text"}``.  The
signature is not carried (JSON carries content; whoever turns it back into XML signs it).
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from ..catalog import MessageType
from ..errors import MappingError
from ..xmlio import element_path
from .encode import RETURN_INFO
from .model import Leaf, Record, model, schema


def parse_return_info(text: str) -> str | dict[str, str]:
    """``[Code:1800;Desc:逻辑校验通过]`` → ``{"code": "1800", "text": "逻辑校验通过"}``; other text as is."""
    m = RETURN_INFO.fullmatch(text)
    return {"code": m.group(1), "text": m.group(2)} if m else text


def _value(leaf: Leaf, value: Any) -> Any:
    if value is None:
        return ""
    if leaf.kind == "int":
        return int(value)
    return str(value)


def _record(rec: Record, data: dict[str, Any], receipt: bool, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in rec.children:
        if c.name not in data:
            continue
        value = data[c.name]
        if isinstance(c, Record):
            if c.wildcard:
                raise MappingError(f"{path}/{c.name}: free XML content cannot be carried into JSON",
                                   field=c.name)
            items = value if isinstance(value, list) else [value]
            mapped = [_record(c, item or {}, receipt, f"{path}/{c.name}") for item in items]
            out[c.json] = mapped if c.repeats else mapped[0]
        else:
            v = _value(c, value)
            out[c.json] = parse_return_info(v) if receipt and c.name == "returnInfo" else v
    return out


def to_json(root: etree._Element, mtype: MessageType, edition: str) -> dict[str, Any]:
    """The JSON document for the message ``root`` (a tree from :mod:`gateway.xmlio`) that follows
    ``edition``.  Raises MappingError when xmlschema finds it invalid under that edition, naming
    the element."""
    m = model(mtype, edition)
    # "lax", so that an unsigned message of a type that must be signed still decodes (JSON does
    # not carry the signature); any other schema error refuses it.
    decoded: Any = schema(mtype, edition).decode(root, validation="lax", decimal_type=str,
                                                 strip_namespaces=True)
    data, errors = decoded
    real = [e for e in errors if "ds:Signature" not in str(e.reason)]
    if real:
        exc = real[0]
        where = element_path(exc.elem) if isinstance(exc.elem, etree._Element) else ""
        raise MappingError(f"{where or mtype.root}: not valid {mtype.code} ({edition}): {exc.reason}",
                           code="CEBGW-XSD-INVALID", field=mtype.root)
    assert isinstance(data, dict)
    doc: dict[str, Any] = {"messageType": mtype.code, "edition": edition}
    for a in m.attributes:
        if f"@{a.name}" in data:
            doc[a.name] = _value(a, data[f"@{a.name}"])
    doc.update(_record(m.body, data, mtype.kind == "receipt", "/" + mtype.root))
    return doc
