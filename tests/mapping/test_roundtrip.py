"""Every sample message → JSON → the same canonical XML; every type and edition: JSON → XML valid
against xsd/ → the same JSON."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.catalog import CEB_NS, DS_NS, Catalog, MessageType, load
from gateway.dsig import sign
from gateway.dsig.keys import SoftwareKey, load_key
from gateway.mapping import json_from_xml, loads, to_tree, xml_from_json
from gateway.validate import detect, xsd
from gateway.xmlio import parse

ROOT = Path(__file__).resolve().parents[2]
VALID = sorted(p for p in (ROOT / "samples" / "valid").glob("CEB*.xml"))
CATALOG = load()
SANDBOX = ROOT / "certs" / "sandbox"


@cache
def _key() -> SoftwareKey:
    return load_key(SANDBOX / "ecommerce-rsa.key.pem", SANDBOX / "ecommerce-rsa.cert.pem")


def canonical(root: etree._Element) -> bytes:
    """C14N of the message as content: the ceb prefix everywhere, no whitespace-only text
    (indentation), no ds:Signature.  The JSON carries content, not the prefix or the layout."""
    def rebuild(el: etree._Element) -> etree._Element:
        out = etree.Element(el.tag, dict(el.attrib), nsmap={"ceb": CEB_NS})
        if el.text and el.text.strip():
            out.text = el.text
        for child in el:
            if isinstance(child.tag, str) and child.tag != f"{{{DS_NS}}}Signature":
                out.append(rebuild(child))
        return out
    return etree.tostring(rebuild(root), method="c14n")


def _ident(path: Path) -> tuple[etree._Element, MessageType, str]:
    parsed = parse(path.read_bytes(), source=path.name)
    ident = CATALOG.identify(parsed)
    edition, found, _ = detect(ident)
    assert edition is not None and not found, found
    return parsed.root, ident.type, edition


def _roundtrip_json(doc: dict[str, Any]) -> dict[str, Any]:
    return loads(json.dumps(doc, ensure_ascii=False).encode())


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_sample_to_json_and_back_is_the_same_canonical_xml(path: Path) -> None:
    root, mtype, edition = _ident(path)
    doc = json_from_xml(root, mtype, edition)
    assert (doc["messageType"], doc["edition"]) == (mtype.code, edition)
    _, written_edition, xml = xml_from_json(_roundtrip_json(doc), CATALOG)
    assert written_edition == edition
    assert canonical(parse(xml).root) == canonical(root)
    # the direct builder writes what xmlschema's encoder writes from the same JSON
    assert canonical(to_tree(doc, mtype, edition, with_xmlschema=True)) == canonical(parse(xml).root)


def _valid(xml: bytes, mtype: MessageType, edition: str) -> list[object]:
    data = sign(xml, _key(), message_type=mtype) if mtype.signature == "required" else xml
    return list(xsd.validate(parse(data).root, mtype, edition=edition))


def _by_type_and_edition(catalog: Catalog) -> list[tuple[str, str, Path]]:
    """One sample per type and edition: the -2018 sample where there is one, else the 202205
    one (its content is valid in both editions for the types whose fields did not change)."""
    out = []
    for code, t in sorted(catalog.types.items()):
        if t.is_envelope:
            continue
        for edition in t.editions:
            p = ROOT / "samples" / "valid" / (f"{code}-2018.xml" if edition == "2018" else f"{code}.xml")
            if not p.exists():
                p = ROOT / "samples" / "valid" / f"{code}.xml"
            out.append((code, edition, p))
    return out


@pytest.mark.parametrize(("code", "edition", "path"), _by_type_and_edition(CATALOG),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_json_to_valid_xml_to_the_same_json(code: str, edition: str, path: Path) -> None:
    root, mtype, sample_edition = _ident(path)
    doc = json_from_xml(root, mtype, sample_edition, to_edition=edition)
    assert doc["edition"] == edition
    t, written, xml = xml_from_json(_roundtrip_json(doc), CATALOG)
    assert (t.code, written) == (code, edition)
    assert _valid(xml, mtype, edition) == []
    assert json_from_xml(parse(xml).root, mtype, edition) == doc
