"""One document translated as ``cebgw translate`` does it: JSON or CEB XML (bare or in a DxpMsg)
in; CEB XML, JSON or a DxpMsg out; optionally into another edition and signed.

JSON in names its type and edition (or they are given); XML in is identified by its root and
its edition by the schema it satisfies.  Whatever cannot be carried is refused (MappingError).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Literal

from lxml import etree

from ..catalog import CEB_NS, DS_NS, Catalog, Identified, MessageType
from ..dsig import KeyProvider
from ..dsig import sign as dsig_sign
from ..envelope import receiver_for, unwrap, wrap
from ..errors import MappingError
from ..validate import detect, xsd
from ..xmlio import Parsed, parse
from . import json_from_xml, loads, xml_from_json

Target = Literal["xml", "json", "dxp"]


@dataclass(frozen=True)
class Translated:
    """The output bytes, and the type and edition they carry."""

    data: bytes
    message_type: str
    edition: str


def is_json(data: bytes) -> bool:
    """Whether ``data`` looks like a JSON object rather than XML (its first non-blank byte)."""
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    return body.lstrip()[:1] == b"{"


def _bare(ident: Identified) -> etree._Element:
    """The message without its signature (what its schema and the JSON see)."""
    root = ident.root
    if root.find(f"{{{DS_NS}}}Signature") is None:
        return root
    bare = copy.deepcopy(root)
    for el in list(bare.iterchildren(f"{{{DS_NS}}}Signature")):
        bare.remove(el)
    return bare


def _xml_in(data: bytes, catalog: Catalog, source: str) -> tuple[Identified, str]:
    parsed = parse(data, source=source)
    ident = catalog.identify(parsed)
    if ident.type.code in ("DxpMsg", "DxpMsgSv"):
        ident = catalog.identify(unwrap(parsed).inner)
    if ident.type.is_envelope:
        raise MappingError(f"{source}: a {ident.type.code} carries no CEB message", field=ident.type.root)
    bare = Identified(Parsed(data, _bare(ident), source), ident.type)
    # a declaration's schema has the signature's place (1..1 for some); a receipt's has none
    edition, found, _ = detect(ident if ident.type.signature != "none" else bare)
    errors = [f for f in found if f.severity == "error"]
    if edition is None or errors:
        first = errors[0] if errors else None
        raise MappingError(f"{source}: not a valid {ident.type.code} in any edition"
                           + (f": {first.path}: {first.message}" if first else ""),
                           code="CEBGW-XSD-INVALID", findings=tuple(errors), field=ident.type.root)
    return bare, edition


def _dxp(xml: bytes, msg_type: str, root: etree._Element, flow: str) -> bytes:
    sender = root.findtext(f"{{{CEB_NS}}}BaseTransfer/{{{CEB_NS}}}dxpId") or ""
    if not sender:
        raise MappingError("a DxpMsg needs a sender: BaseTransfer/dxpId is empty", field="dxpId")
    return wrap(xml, msg_type=msg_type, sender_id=sender, receiver_ids=(receiver_for(flow),))


def translate(data: bytes, to: Target, catalog: Catalog, *, message_type: str | None = None,
              edition: str | None = None, key: KeyProvider | None = None, source: str = "-") -> Translated:
    """``data`` (JSON or CEB XML) as ``to``, in ``edition`` (default: the document's own), signed
    with ``key`` when given and the output is XML.  Raises MappingError, ParseError,
    IdentifyError, SignatureError."""
    if is_json(data):
        doc: dict[str, Any] = loads(data, source)
        mtype, written, xml = xml_from_json(doc, catalog, message_type=message_type, edition=edition)
        root = parse(xml, source=source).root
        if to == "json":
            return Translated(_dumps(json_from_xml(root, mtype, written)), mtype.code, written)
    else:
        bare, found_edition = _xml_in(data, catalog, source)
        mtype, written = bare.type, edition or found_edition
        if message_type and message_type != mtype.code:
            raise MappingError(f"{source}: is a {mtype.code}, not a {message_type}", field="messageType")
        if to == "json":
            return Translated(_dumps(json_from_xml(bare.root, mtype, found_edition, to_edition=written)),
                              mtype.code, written)
        if written != found_edition or key is not None:
            doc = json_from_xml(bare.root, mtype, found_edition)
            _, _, xml = xml_from_json(doc, catalog, edition=written)
        else:
            xml = data
        root = parse(xml, source=source).root
    if key is not None:
        xml = dsig_sign(xml, key, message_type=mtype, source=source)
    _check(xml, mtype, written, signed=key is not None, source=source)
    if to == "dxp":
        return Translated(_dxp(xml, mtype.root, root, mtype.flow), mtype.code, written)
    return Translated(xml, mtype.code, written)


def _check(xml: bytes, mtype: MessageType, edition: str, *, signed: bool, source: str) -> None:
    """The XML written must satisfy its edition's schema (an unsigned one may lack only its
    signature). Raises MappingError with the schema's findings."""
    found = [f for f in xsd.validate(parse(xml, source=source).root, mtype, edition=edition)
             if f.severity == "error" and (signed or f.field != "Signature")]
    if found:
        raise MappingError(f"{source}: the {mtype.code} written is not valid: {found[0].message}",
                           code=found[0].code, findings=tuple(found), field=found[0].field)


def _dumps(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
