"""The shape of each CEB message as the XSDs in ``xsd/`` declare it, read through xmlschema.

xmlschema builds a schema in about half a second, so each flow and edition is compiled once
per process (:func:`schema`) and the model of each message type (:func:`model`) is read from
it once.  xmlschema never sees a document the gateway did not parse itself (``xmlio``), and
its loader is kept to the ``xsd/`` folder (``allow="sandbox"``, no network).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import xmlschema

from ..catalog import CEB_NS, CURRENT_EDITION, MessageType
from ..errors import ConfigError, MappingError
from ..validate.xsd import schema_path

Kind = Literal["string", "decimal", "int"]


@dataclass(frozen=True)
class Leaf:
    """A field (or a root attribute): its XSD facets."""

    name: str
    required: bool
    kind: Kind
    min_length: int | None = None
    max_length: int | None = None
    total_digits: int | None = None
    fraction_digits: int | None = None
    json: str = field(init=False, compare=False)  # the JSON key: the standard's name

    def __post_init__(self) -> None:
        object.__setattr__(self, "json", self.name)


@dataclass(frozen=True)
class Record:
    """A complex element: its children in sequence order, how often it occurs, and whether its
    content is a wildcard (``ExtendMessage/Message``: carried as XML text, not mapped)."""

    name: str
    min: int
    max: int | None  # None: unbounded
    children: tuple[Leaf | Record, ...]
    wildcard: bool = False
    json: str = field(init=False, compare=False)  # the JSON key: lowerCamel (OrderHead → orderHead)
    repeats: bool = field(init=False, compare=False)  # an array in JSON

    def __post_init__(self) -> None:
        object.__setattr__(self, "json", self.name[:1].lower() + self.name[1:])
        object.__setattr__(self, "repeats", self.max is None or self.max > 1)

    def child(self, json_name: str) -> Leaf | Record | None:
        return next((c for c in self.children if c.json == json_name), None)


@dataclass(frozen=True)
class Model:
    """One message type in one edition: the root's attributes and its content."""

    code: str
    edition: str
    root: str
    attributes: tuple[Leaf, ...]
    body: Record  # the root element as a record (min = max = 1)
    signature: bool  # whether the schema has a place for ds:Signature


def _schema_key(mtype: MessageType, edition: str) -> str:
    return str(schema_path(mtype, edition=edition))


@cache
def _compile(path: str) -> xmlschema.XMLSchema10:
    import xmlschema  # ~0.25 s to import: paid by the commands that translate, not by every command

    try:
        return xmlschema.XMLSchema10(path, base_url=str(Path(path).parent), allow="sandbox", defuse="always")
    except (OSError, xmlschema.XMLSchemaException) as exc:
        raise ConfigError(f"{path}: xmlschema cannot build the schema: {exc}") from None


def schema(mtype: MessageType, edition: str = CURRENT_EDITION) -> xmlschema.XMLSchema10:
    """The xmlschema schema of ``mtype``'s flow in ``edition`` (built once per process)."""
    if edition not in mtype.editions:
        raise MappingError(f"{mtype.code} does not exist in the {edition} edition", field=mtype.code)
    return _compile(_schema_key(mtype, edition))


def _leaf(name: str, xtype: Any, required: bool) -> Leaf:
    prim = xtype.primitive_type.local_name
    kind: Kind = "string"
    if prim == "decimal":
        base = xtype
        kind = "decimal"
        while base is not None:
            if getattr(base, "local_name", None) in ("int", "integer", "long", "short"):
                kind = "int"
                break
            base = getattr(base, "base_type", None)
    facets = {str(k).rpartition("}")[2]: getattr(v, "value", None) for k, v in xtype.facets.items() if k}
    return Leaf(name, required, kind,
                xtype.min_length if kind == "string" else None,
                xtype.max_length if kind == "string" else None,
                facets.get("totalDigits"), facets.get("fractionDigits"))


def _record(el: Any) -> Record:  # el: an xmlschema XsdElement
    import xmlschema

    children: list[Leaf | Record] = []
    wildcard = False
    for item in el.type.content.iter_model():
        if not isinstance(item, xmlschema.XsdElement):
            wildcard = True
            continue
        xtype: Any = item.type
        if xtype is None or not xtype.is_simple():
            if xtype is not None and xtype.has_simple_content():
                children.append(_leaf(item.local_name, xtype.content, item.min_occurs > 0))
            else:
                children.append(_record(item))
        else:
            children.append(_leaf(item.local_name, item.type, item.min_occurs > 0))
    return Record(el.local_name, el.min_occurs, el.max_occurs, tuple(children), wildcard)


@cache
def model(mtype: MessageType, edition: str = CURRENT_EDITION) -> Model:
    """The model of ``mtype`` in ``edition``. Raises MappingError for a type the edition lacks."""
    xs = schema(mtype, edition)
    el: Any = xs.elements.get(mtype.root)
    if el is None:
        raise MappingError(f"{mtype.code} is not in the {edition} schema", field=mtype.code)
    attrs = tuple(_leaf(str(a.local_name), a.type, a.use == "required") for a in el.attributes.values())
    body = _record(el)
    signature = any(isinstance(c, Record) and c.name == "Signature" for c in body.children)
    kept = tuple(c for c in body.children if c.name != "Signature")
    return Model(mtype.code, edition, mtype.root, attrs, Record(body.name, 1, 1, kept), signature)


def records(m: Model) -> dict[str, Record]:
    """Every record of the model by element name (root included)."""
    out: dict[str, Record] = {}

    def walk(r: Record) -> None:
        out.setdefault(r.name, r)
        for c in r.children:
            if isinstance(c, Record):
                walk(c)
    walk(m.body)
    return out


NAMESPACES = {"ceb": CEB_NS}
