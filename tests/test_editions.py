"""The two editions of the standard and empty content, table-driven from the fact files.

``xsd/src/empty.toml`` and ``xsd/src/editions.toml`` are the repository's copies of
``shared/spec/empty-content.md`` and ``shared/spec/editions.md`` (derived from the official
schemas); the generated XSDs must say exactly what they say.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.catalog import CEB_NS, EDITIONS
from gateway.catalog import load as load_catalog
from gateway.pipeline import validate_bytes
from gateway.validate import findings_of, xsd
from gateway.xmlio import parse

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT.parent / "shared" / "spec"
VALID = ROOT / "samples" / "valid"
C = f"{{{CEB_NS}}}"
CATALOG = load_catalog()
EMPTY: dict[str, dict[str, list[str]]] = tomllib.loads((ROOT / "xsd/src/empty.toml").read_text("utf-8"))
OLDER: dict[str, dict[str, dict[str, str]]] = tomllib.loads(
    (ROOT / "xsd/src/editions.toml").read_text("utf-8"))
TYPES = [t.code for t in CATALOG if not t.is_envelope]


def _fact_tables(name: str) -> dict[str, list[list[str]]]:
    """Rows of the markdown tables in a fact file, by flow."""
    text = (SPEC / name).read_text("utf-8")
    out: dict[str, list[list[str]]] = {}
    flow = None
    for line in text.splitlines():
        if line.startswith("## "):
            flow = "import" if "Import" in line else "export" if "Export" in line else None
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if flow and cells and cells[0] not in ("record",) and not set(cells[0]) <= {"-", " "}:
            out.setdefault(flow, []).append(cells)
    return out


needs_spec = pytest.mark.skipif(not SPEC.is_dir(), reason=f"the fact files are not at {SPEC}")


@needs_spec
def test_empty_table_is_the_fact_file() -> None:
    facts = {flow: {row[0]: sorted(i.split()[1] for i in row[1].split(", ")) for row in rows}
             for flow, rows in _fact_tables("empty-content.md").items()}
    ours = {flow: {rec: sorted(fields) for rec, fields in recs.items()} for flow, recs in EMPTY.items()}
    assert ours == facts


@needs_spec
def test_editions_table_is_the_fact_file() -> None:
    for flow, rows in _fact_tables("editions.md").items():
        diffs = OLDER.get(flow, {})
        for record, only18, only22, changed in rows:
            assert not only18
            if only22 == "whole record":
                assert record in diffs["absent_records"]["names"]  # type: ignore[index]
                continue
            if only22:
                assert diffs[record][only22.split()[0]] == "absent"
            for part in filter(None, changed.split("; ")):
                field, desc = part.split(": ", 1)
                old = desc.split(" → ")[0]
                words = [w.strip() for w in old.split(",")]
                spec = diffs[record][field].split()
                length = next((w for w in words if w.startswith(("max ", "len "))), "")
                assert spec[0] == (f"C{length[4:]}" if length.startswith("len") else f"C..{length[4:]}"), part
                assert ("?" in spec) == ("optional" in words), part
                assert ("empty" in spec) == (not length.startswith("len") and "min 1" not in words), part


# --------------------------------------------------------------------------- the schemas say it


@cache
def _base(code: str) -> bytes:
    return (VALID / f"{code}.xml").read_bytes()


def _records_of(flow: str, root: etree._Element) -> list[tuple[etree._Element, str, str]]:
    """(leaf, record name, field name) of every CEB string-or-other leaf below the root's children."""
    out = []
    for el in root.iter(C + "*"):
        parent = el.getparent()
        if len(el) or parent is None or parent is root or parent.tag == C + "Message":
            continue
        out.append((el, str(parent.tag)[len(C):], str(el.tag)[len(C):]))
    return out


def _schema_errors(root: etree._Element, code: str, edition: str) -> list[tuple[str | None, str]]:
    return [(f.field, f.code) for f in xsd.validate(root, CATALOG[code], edition=edition)]


def _string_field(code: str, record: str, name: str) -> bool:
    """A field whose schema type is a string (numbers and decimals are never empty-valid)."""
    path = xsd.schema_path(CATALOG[code])
    return (record, name) in _string_fields(str(path))


@cache
def _string_fields(path: str) -> frozenset[tuple[str, str]]:
    tree = etree.parse(path)
    xs = "{http://www.w3.org/2001/XMLSchema}"
    strings = {st.get("name") for st in tree.iter(xs + "simpleType")
               if (r := st.find(xs + "restriction")) is not None and r.get("base") == "xs:string"}
    named = {ct.get("name"): ct for ct in tree.getroot().iterchildren(xs + "complexType")}
    out = set()
    for el in tree.iter(xs + "element"):
        if str(el.get("type", "")).rpartition(":")[2] not in strings:
            continue
        holder = el.getparent()
        while holder is not None and holder.tag != xs + "element" and not (
                holder.tag == xs + "complexType" and holder.get("name")):
            holder = holder.getparent()
        if holder is None:
            continue
        name = holder.get("name")
        if holder.tag == xs + "complexType" and name in named:
            name = {"BaseTransferType": "BaseTransfer", "BaseSubscribeType": "BaseSubscribe",
                    "ExtendMessageType": "ExtendMessage"}.get(str(name), name)
        out.add((str(name), str(el.get("name"))))
    return frozenset(out)


@pytest.mark.parametrize("code", TYPES)
def test_empty_content_is_valid_exactly_where_the_table_says(code: str) -> None:
    """Each string field of the sample, emptied alone: schema-valid (202205) iff the table lists it."""
    t = CATALOG[code]
    root = parse(_base(code)).root
    for sig in root.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        root.remove(sig)  # signature-required types: the signature is not what is tested here
    checked = 0
    for el, record, name in _records_of(t.flow, root):
        if not _string_field(code, record, name):
            continue
        listed = name in EMPTY[t.flow].get(record, [])
        old, el.text = el.text, ""
        errors = [e for e in _schema_errors(root, code, "202205") if e[1] != "CEBGW-XSD-MISSING"]
        el.text = old
        if t.signature == "required" and errors == [("Signature", "CEBGW-XSD-MISSING")]:
            errors = []
        if listed:
            assert not [e for e in errors if e[0] == name], f"{record}/{name} may be empty: {errors}"
        else:
            assert (name, "CEBGW-XSD-LENGTH") in errors, f"{record}/{name} must not be empty: {errors}"
        checked += 1
    assert checked >= 3


def _value(spec: str, fill: str = "0") -> str:
    """A value of the spec's greatest length (``C18`` → 18 characters, ``C..80`` → 80)."""
    m = re.search(r"(\d+)$", spec)
    assert m, spec
    return fill * int(m.group(1))


def _edition_rows() -> list[tuple[str, str, str, str]]:
    rows = []
    for flow, records in OLDER.items():
        for record, fields in records.items():
            if record == "absent_records":
                continue
            rows += [(flow, record, field, spec) for field, spec in fields.items()]
    return rows


def _sample_with(flow: str, record: str, field: str) -> tuple[str, etree._Element, etree._Element] | None:
    """A sample of ``flow`` whose ``record`` carries ``field`` (an optional one the samples leave
    out is put in, at its place in the schema's order, with the value "0")."""
    for insert in (False, True):
        for t in CATALOG:
            if t.is_envelope or t.flow != flow or "2018" not in t.editions:
                continue
            root = parse(_base(t.code)).root
            for sig in root.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
                root.remove(sig)
            el = root.find(f".//{C}{record}/{C}{field}")
            if el is not None:
                return t.code, root, el
            rec = root.find(f".//{C}{record}")
            if insert and rec is not None:
                path = tuple(str(a.tag)[len(C):] for a in reversed([rec, *rec.iterancestors()]))
                order = [name for name, _ in xsd.child_elements(t, path)]
                if field in order:
                    el = etree.Element(C + field)
                    el.text = "0"
                    before = order[:order.index(field)]
                    anchor = [c for c in rec if str(c.tag)[len(C):] in before]
                    if anchor:
                        anchor[-1].addnext(el)
                    else:
                        rec.insert(0, el)
                    return t.code, root, el
    return None


def _field_errors(root: etree._Element, code: str, edition: str, field: str) -> list[str]:
    errs = [c for f, c in _schema_errors(root, code, edition) if f == field]
    return errs


@pytest.mark.parametrize("row", _edition_rows(), ids=lambda r: f"{r[0]}-{r[1]}-{r[2]}")
def test_each_edition_row(row: tuple[str, str, str, str]) -> None:
    """The 2018 form of the field is valid as 2018; the 202205 form as 202205; where the forms
    differ, each is refused by the other edition's schema."""
    flow, record, field, spec18 = row
    found = _sample_with(flow, record, field)
    assert found is not None, f"no sample has a {record} to carry {field}"
    code, root, el = found
    current = next(e for e in _schema_types(code, record, field))
    if spec18 == "absent":
        assert not _field_errors(root, code, "202205", field)
        for each in root.findall(f".//{C}{record}/{C}{field}"):
            each.getparent().remove(each)  # type: ignore[union-attr]
        assert not _schema_errors(root, code, "2018")
        assert "CEBGW-XSD-MISSING" in _field_errors(root, code, "202205", field)
        return
    words = spec18.split()
    long18, long22 = _value(words[0]), _value(current[0])
    el.text = long18
    assert not _field_errors(root, code, "2018", field)
    if len(long18) > len(long22):
        assert _field_errors(root, code, "202205", field) == ["CEBGW-XSD-LENGTH"]
    el.text = long22
    assert not _field_errors(root, code, "202205", field)
    if len(long22) > len(long18) or (words[0].startswith("C") and ".." not in words[0]
                                     and len(long22) != len(long18)):
        assert _field_errors(root, code, "2018", field) == ["CEBGW-XSD-LENGTH"]
    el.text = ""
    assert bool(_field_errors(root, code, "2018", field)) is ("empty" not in words)
    assert bool(_field_errors(root, code, "202205", field)) is (not current[1])


def _schema_types(code: str, record: str, field: str) -> list[tuple[str, bool]]:
    """(spec-like max, may be empty) of the field in the 202205 schema."""
    tree = etree.parse(str(xsd.schema_path(CATALOG[code])))
    xs = "{http://www.w3.org/2001/XMLSchema}"
    out = []
    for rec in tree.iter(xs + "element"):
        if rec.get("name") != record:
            continue
        for el in rec.iter(xs + "element"):
            if el.get("name") != field:
                continue
            tname = str(el.get("type")).rpartition(":")[2]
            st_ = next(s for s in tree.getroot().iterchildren(xs + "simpleType") if s.get("name") == tname)
            facets = {f.tag[len(xs):]: f.get("value") for f in st_.iter() if f.get("value")}
            n = facets.get("length") or facets.get("maxLength")
            out.append((f"C..{n}", "minLength" not in facets and "length" not in facets))
    return out


@pytest.mark.parametrize("path", sorted(VALID.glob("*-2018.xml")), ids=lambda p: p.name)
def test_2018_samples_are_2018(path: Path) -> None:
    report = validate_bytes(path.read_bytes(), source=path.name)
    assert report.valid and report.edition == "2018", report.errors
    only_new = validate_bytes(path.read_bytes(), source=path.name, editions=("202205",))
    assert [f.code for f in only_new.errors][:1] == ["CEBGW-EDITION-REFUSED"]


@pytest.mark.parametrize("path", sorted(VALID.glob("*-empty.xml")), ids=lambda p: p.name)
def test_empty_samples_are_valid_as_202205(path: Path) -> None:
    report = validate_bytes(path.read_bytes(), source=path.name, schema_only=True)
    assert report.valid and report.edition == "202205", report.errors


def test_every_type_has_an_empty_sample_and_the_2018_forms_have_theirs() -> None:
    """An empty-content sample per type; a 2018 sample for every type with a form only 2018 takes
    (a longer field, empty content, a field 202205 added)."""
    assert {p.name.removesuffix("-empty.xml") for p in VALID.glob("*-empty.xml")} == set(TYPES)
    looser = set()
    for flow, record, field, spec in _edition_rows():
        found = _sample_with(flow, record, field)
        if found is None:
            continue
        words, now = spec.split(), _schema_types(found[0], record, field)[0]
        longer = spec != "absent" and len(_value(words[0])) > len(_value(now[0]))
        if spec == "absent" or longer or ("empty" in words and not now[1]):
            looser.add((flow, record))
    for t in CATALOG:
        if t.is_envelope or "2018" not in t.editions:
            continue
        root = parse(_base(t.code)).root
        if any(root.find(f".//{C}{rec}") is not None for flow, rec in looser if flow == t.flow):
            assert (VALID / f"{t.code}-2018.xml").exists(), t.code
    made = {p.name for p in VALID.glob("*-2018.xml")}
    assert {"CEB303-2018.xml", "CEB621-2018.xml", "CEB792-2018.xml"} <= made


# --------------------------------------------------------------------------- property


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_emptying_fields_keeps_or_breaks_the_schema_as_the_table_says(data: st.DataObject) -> None:
    """Any subset of the listed fields emptied: still schema-valid.  One unlisted string field
    emptied as well: invalid, naming that field."""
    code = data.draw(st.sampled_from(TYPES), label="code")
    t = CATALOG[code]
    root = parse(_base(code)).root
    leaves = [(el, rec, name) for el, rec, name in _records_of(t.flow, root)
              if _string_field(code, rec, name)]
    listed = [x for x in leaves if x[2] in EMPTY[t.flow].get(x[1], [])]
    others = [x for x in leaves if x not in listed]
    chosen = data.draw(st.lists(st.sampled_from(listed), unique_by=lambda x: id(x[0])) if listed
                       else st.just([]), label="emptied")
    for el, _, _ in chosen:
        el.text = ""
    data_bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    checked = findings_of(CATALOG.identify(parse(data_bytes)), schema_only=True)
    assert not checked.errors, [(f.field, f.code) for f in checked.errors]
    if others:
        el, _, name = data.draw(st.sampled_from(others), label="broken")
        el.text = ""
        errors = _schema_errors(root, code, "202205")
        assert (name, "CEBGW-XSD-LENGTH") in errors, errors


def test_editions_are_newest_first() -> None:
    assert EDITIONS == ("202205", "2018")


@pytest.mark.parametrize("code", [t.code for t in CATALOG if not t.is_envelope and "2018" in t.editions
                                  and not (VALID / f"{t.code}-2018.xml").exists()])
def test_where_the_editions_agree_one_sample_is_valid_under_both(code: str) -> None:
    root = parse(_base(code)).root
    if CATALOG[code].kind == "receipt":
        for sig in root.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
            root.remove(sig)
    assert _schema_errors(root, code, "202205") == []
    assert _schema_errors(root, code, "2018") == []
    assert validate_bytes(_base(code)).edition == "202205"  # valid under both: the newest
