"""The sample corpus: broken messages get exactly their expected findings, valid ones none.

samples/invalid/manifest.toml (written by samples/invalid/make_invalid.py) lists, per file, the
error codes with their fields (and paths where given) and the warnings the validator must report.
Entries with ``known_issue`` disagree with the validator because of a validator bug: their
exact-findings test is a strict xfail, so it starts failing once the bug is fixed.
"""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.pipeline import validate_bytes
from gateway.validate.rules import load_rules

ROOT = Path(__file__).resolve().parents[1]
INVALID = ROOT / "samples" / "invalid"
VALID = ROOT / "samples" / "valid"
MANIFEST: dict[str, dict[str, Any]] = tomllib.loads((INVALID / "manifest.toml").read_text("utf-8"))["files"]
NAMES = sorted(MANIFEST)
INVALID_NAMES = [n for n in NAMES if not MANIFEST[n]["valid"]]

# Warnings a file in samples/valid/ may carry (file name -> codes).
ALLOWED_VALID_WARNINGS: dict[str, set[str]] = {
    # every field the schema lets be empty, left empty: the required ones among them are warned about
    **{p.name: {"CEBGW-RULE-EMPTY-REQUIRED"} for p in VALID.glob("*-empty.xml")},
    "CEB510-2018.xml": {"CEBGW-RULE-EMPTY-REQUIRED"},  # returnStatus empty: only 2018 takes that
}

Run = Callable[..., tuple[int, str, str]]


def _with_known_issue(names: list[str]) -> list[Any]:
    out: list[Any] = []
    for name in names:
        issue = MANIFEST[name].get("known_issue")
        marks = [pytest.mark.xfail(reason=f"validator bug: {issue}", strict=True)] if issue else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def _report(name: str) -> Any:
    return validate_bytes((INVALID / name).read_bytes(), source=name)


# --------------------------------------------------------------------------- the manifest itself


def test_manifest_covers_every_file() -> None:
    assert NAMES == sorted(p.name for p in INVALID.glob("*.xml"))


def test_corpus_is_large_enough() -> None:
    assert len(INVALID_NAMES) >= 45


def test_manifest_valid_flag_matches_errors() -> None:
    wrong = [n for n in NAMES if MANIFEST[n]["valid"] != (not MANIFEST[n]["errors"])]
    assert not wrong


def test_every_rule_code_is_exercised() -> None:
    listed = {e["code"] for entry in MANIFEST.values() for e in entry["errors"] + entry["warnings"]}
    assert {r.code for r in load_rules()} - listed == set()


def test_every_xsd_code_is_exercised() -> None:
    listed = {e["code"] for entry in MANIFEST.values() for e in entry["errors"]}
    kinds = ("MISSING", "UNEXPECTED", "LENGTH", "TYPE", "DIGITS", "ATTRIBUTE", "COUNT")
    assert {f"CEBGW-XSD-{k}" for k in kinds} - listed == set()


# --------------------------------------------------------------------------- validate_bytes


@pytest.mark.parametrize("name", _with_known_issue(NAMES))
def test_exact_errors(name: str) -> None:
    """Exactly the expected error codes, each on its named field (and path where given)."""
    expected = MANIFEST[name]["errors"]
    errors = _report(name).errors
    got = [(f.code, f.field, f.path) for f in errors]
    assert Counter((c, f) for c, f, _ in got) == Counter((e["code"], e["field"]) for e in expected), got
    with_path = Counter((e["code"], e["field"], e["path"]) for e in expected if "path" in e)
    assert with_path - Counter(got) == Counter(), got


@pytest.mark.parametrize("name", [n for n in NAMES if MANIFEST[n]["warnings"]])
def test_expected_warnings(name: str) -> None:
    warnings = [(f.code, f.field, f.path) for f in _report(name).warnings]
    for w in MANIFEST[name]["warnings"]:
        wanted = (w["code"], w["field"])
        assert any((c, f) == wanted and p == w.get("path", p) for c, f, p in warnings), warnings


@pytest.mark.parametrize("name", NAMES)
def test_validity(name: str) -> None:
    """Errors make a message invalid; warnings alone do not."""
    assert _report(name).valid is MANIFEST[name]["valid"]


@pytest.mark.parametrize("path", sorted(VALID.glob("*.xml")), ids=lambda p: p.name)
def test_valid_sample_has_no_errors(path: Path) -> None:
    report = validate_bytes(path.read_bytes(), source=path.name)
    assert report.errors == []
    assert {w.code for w in report.warnings} <= ALLOWED_VALID_WARNINGS.get(path.name, set())


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("name", NAMES)
def test_cli_json_agrees_with_validate_bytes(cli: Run, name: str) -> None:
    code, out, _ = cli("validate", "--format", "json", str(INVALID / name))
    entry = json.loads(out)["files"][0]
    assert (code, entry["valid"]) == ((0, True) if MANIFEST[name]["valid"] else (1, False))
    assert sorted(e["code"] for e in entry["errors"]) == sorted(f.code for f in _report(name).findings)


def test_cli_json_shape(cli: Run) -> None:
    code, out, _ = cli("validate", "--format", "json", *(str(INVALID / n) for n in INVALID_NAMES))
    doc = json.loads(out)
    assert code == 1
    assert {"files", "summary"} <= set(doc)
    assert {"files", "valid", "invalid"} <= set(doc["summary"])
    assert (doc["summary"]["files"], doc["summary"]["valid"], doc["summary"]["invalid"]) == (
        len(INVALID_NAMES), 0, len(INVALID_NAMES))
    for entry in doc["files"]:
        assert {"path", "message_type", "valid", "errors"} <= set(entry)
        assert entry["valid"] is False and entry["errors"]
        for err in entry["errors"]:
            assert {"code", "message", "severity", "line", "path", "field"} <= set(err)
            assert err["severity"] in ("error", "warning")
