"""The message catalogue: every CEB and DXP message type, as data (``messages.toml``).

:func:`load` reads it once; :meth:`Catalog.identify` names the type of a parsed message by
its root element's namespace and local name (never by prefix).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta, timezone
from functools import cache
from importlib import resources
from typing import Any, Literal

from lxml import etree

from ..errors import IdentifyError
from ..xmlio import Parsed, local_name, namespace

CEB_NS = "http://www.chinaport.gov.cn/ceb"
DXP_NS = "http://www.chinaport.gov.cn/dxp"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
BEIJING = timezone(timedelta(hours=8))  # the zone of appTime, CreatTime and other customs times

# The editions of the standard in use, newest first: 202205 (current) and 2018 (still sent).
# Both write version="1.0"; which one a message follows is decided by its structure.
EDITIONS: tuple[str, ...] = ("202205", "2018")
CURRENT_EDITION = EDITIONS[0]

Kind = Literal["declaration", "receipt", "envelope"]
Flow = Literal["import", "export", "transport"]
SignaturePolicy = Literal["required", "optional", "when_declared", "none"]


@dataclass(frozen=True)
class MessageType:
    """One message type of the standard."""

    code: str                 # "CEB311", "DxpMsg"
    title: str
    root: str                 # local name of the root element
    namespace: str
    flow: Flow
    kind: Kind
    editions: tuple[str, ...]
    sender: tuple[str, ...]
    receipt: str | None       # declarations: the receipt type that answers them
    answers: str | None       # receipts: the declaration type they answer ("*" = any)
    record: str               # business record element under the root
    head: str                 # element under the record with the header fields; "" = the record
    lines: str | None
    max_records: int
    max_lines: int | None
    keys: tuple[str, ...]
    alt_keys: tuple[str, ...]
    signature: SignaturePolicy

    @property
    def clark(self) -> str:
        return f"{{{self.namespace}}}{self.root}"

    @property
    def is_envelope(self) -> bool:
        return self.kind == "envelope"

    def q(self, name: str) -> str:
        """Clark name of a child element in this message's namespace."""
        return f"{{{self.namespace}}}{name}"

    def business_keys(self, root: etree._Element) -> list[dict[str, str]]:
        """The key fields of each record, in document order (empty values left out)."""
        out: list[dict[str, str]] = []
        if not self.record:
            return out
        find = _key_xpath(self)
        for rec in root.iterchildren(self.q(self.record)):
            keys: dict[str, str] = {}
            for el in find(rec):
                text = el.text.strip() if el.text else ""
                if text:
                    keys[local_name(el.tag)] = text
            out.append(keys)
        return out


@cache
def _key_xpath(t: MessageType) -> Callable[[etree._Element], Any]:
    """One compiled XPath per type selecting a record's key fields (evaluated in C)."""
    head = f"c:{t.head}/" if t.head else ""
    expr = " | ".join(f"{head}c:{name}" for name in t.keys + t.alt_keys) or "/.."
    return etree.XPath(expr, namespaces={"c": t.namespace})


@dataclass(frozen=True)
class Identified:
    """A parsed message with its type."""

    parsed: Parsed
    type: MessageType

    @property
    def root(self) -> etree._Element:
        return self.parsed.root


class Catalog:
    """All message types, looked up by code or by root element."""

    def __init__(self, types: list[MessageType]) -> None:
        self.types = {t.code: t for t in types}
        self._by_clark = {t.clark: t for t in types}

    def __getitem__(self, code: str) -> MessageType:
        return self.types[code]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.types.values())

    def by_root(self, root_name: str) -> MessageType | None:
        """``CEB311Message`` → the CEB311 type (CEB namespace assumed)."""
        t = self._by_clark.get(f"{{{CEB_NS}}}{root_name}") or self._by_clark.get(f"{{{DXP_NS}}}{root_name}")
        return t

    def declarations(self) -> list[MessageType]:
        return [t for t in self.types.values() if t.kind == "declaration"]

    def receipts(self) -> list[MessageType]:
        return [t for t in self.types.values() if t.kind == "receipt"]

    def identify(self, parsed: Parsed) -> Identified:
        """Name the type by root namespace and local name. Raises :class:`IdentifyError`."""
        tag = parsed.root.tag
        if not isinstance(tag, str):
            raise IdentifyError(f"{parsed.source}: root is not an element")
        t = self._by_clark.get(tag)
        if t is None:
            ns, name = namespace(tag), local_name(tag)
            if ns not in (CEB_NS, DXP_NS) and self.by_root(name) is not None:
                raise IdentifyError(
                    f"{parsed.source}: root {name} is in namespace {ns or '(none)'!r}, expected {CEB_NS!r}",
                    code="CEBGW-IDENT-NAMESPACE", field=name)
            raise IdentifyError(f"{parsed.source}: unknown message root {name!r}", field=name)
        return Identified(parsed, t)


def _from_table(code: str, row: dict[str, object]) -> MessageType:
    kind = str(row["kind"])
    ns = DXP_NS if kind == "envelope" else CEB_NS

    def strs(key: str) -> tuple[str, ...]:
        value = row.get(key, [])
        assert isinstance(value, list)
        return tuple(str(v) for v in value)

    def opt(key: str) -> str | None:
        value = row.get(key)
        return str(value) if value else None

    max_lines = row.get("max_lines")
    return MessageType(
        code=code, title=str(row["title"]), root=str(row["root"]), namespace=ns,
        flow=row["flow"], kind=kind, editions=strs("editions"),  # type: ignore[arg-type]
        sender=strs("sender"), receipt=opt("receipt"), answers=opt("answers"),
        record=str(row.get("record", "")), head=str(row.get("head", "")), lines=opt("lines"),
        max_records=int(row.get("max_records", 100)),  # type: ignore[call-overload]
        max_lines=int(max_lines) if max_lines is not None else None,  # type: ignore[call-overload]
        keys=strs("keys"), alt_keys=strs("alt_keys"),
        signature=row["signature"],  # type: ignore[arg-type]
    )


@cache
def load() -> Catalog:
    """The catalogue shipped with the package (read once per process)."""
    text = resources.files(__package__).joinpath("messages.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return Catalog([_from_table(code, row) for code, row in data.items()])
