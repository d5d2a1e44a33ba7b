"""The generated JSON Schemas accept the JSON the mapping writes and refuse what it refuses."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from gateway.catalog import load
from gateway.mapping import json_from_xml
from gateway.mapping.jsonschema import json_schema, markdown
from gateway.validate import detect
from gateway.xmlio import parse

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load()
SAMPLES = sorted(p for p in (ROOT / "samples" / "valid").glob("CEB*.xml"))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_sample_as_json_satisfies_its_schema(path: Path) -> None:
    parsed = parse(path.read_bytes())
    ident = CATALOG.identify(parsed)
    edition = detect(ident)[0]
    assert edition is not None
    doc = json_from_xml(parsed.root, ident.type, edition)
    schema = json_schema(ident.type, edition)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(doc)


def test_the_schema_refuses_an_unknown_field_and_a_wrong_type() -> None:
    parsed = parse((ROOT / "samples" / "valid" / "CEB311.xml").read_bytes())
    doc = json_from_xml(parsed.root, CATALOG.types["CEB311"], "202205")
    head = doc["order"][0]["orderHead"]
    head["buyer_phone"], head["orderNo"] = "1", 12
    errors = list(jsonschema.Draft202012Validator(json_schema(CATALOG.types["CEB311"], "202205"))
                  .iter_errors(doc))
    assert errors


@pytest.mark.parametrize("code", sorted(c for c, t in CATALOG.types.items() if not t.is_envelope))
def test_every_type_and_edition_has_a_schema_and_a_table(code: str) -> None:
    t = CATALOG.types[code]
    for edition in t.editions:
        schema = json_schema(t, edition)
        assert schema["properties"]["messageType"]["const"] == code
        table = markdown(t, edition)
        assert table.startswith(f"# {code} ") and "| `/guid` |" in table
