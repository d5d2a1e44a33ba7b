"""``cebgw validate``: inputs (files, directories, stdin), options, output formats and exit codes."""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
VALID = ROOT / "samples" / "valid"
INVALID = ROOT / "samples" / "invalid"
HOSTILE = ROOT / "samples" / "hostile"
ACTURALPAID = INVALID / "CEB311-acturalpaid.xml"
BAD_DECIMAL = INVALID / "CEB311-bad-decimal.xml"

Run = Callable[..., tuple[int, str, str]]

# file:line: field: message [CODE] (error|warning)
TEXT_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<field>[@\w]+): (?P<message>.+) "
                       r"\[(?P<code>CEBGW-[A-Z0-9-]+)\] \((?P<severity>error|warning)\)$")


def _json(cli: Run, *argv: str) -> tuple[int, dict[str, object]]:
    code, out, _ = cli("validate", "--format", "json", *argv)
    return code, json.loads(out)


def _codes(doc: dict[str, object]) -> list[str]:
    files = doc["files"]
    assert isinstance(files, list)
    return [e["code"] for f in files for e in f["errors"]]


def test_directory_is_walked_recursively_for_xml(cli: Run, tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(VALID / "CEB311.xml", tmp_path / "a" / "b" / "deep.xml")
    shutil.copy(ACTURALPAID, tmp_path / "a" / "top.xml")
    (tmp_path / "a" / "notes.txt").write_text("not a message")
    code, doc = _json(cli, str(tmp_path))
    files = doc["files"]
    assert isinstance(files, list)
    found = sorted(Path(f["path"]).relative_to(tmp_path).as_posix() for f in files)
    assert found == ["a/b/deep.xml", "a/top.xml"]
    assert code == 1


def test_dash_reads_stdin(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO(ACTURALPAID.read_bytes())))
    code, doc = _json(cli, "-")
    files = doc["files"]
    assert isinstance(files, list)
    assert (code, files[0]["path"], _codes(doc)) == (1, "-", ["CEBGW-RULE-ACTURALPAID"])


def test_missing_path_exits_2_naming_it(cli: Run, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-message.xml"
    code, _, err = cli("validate", str(VALID / "CEB311.xml"), str(missing))
    assert code == 2
    assert str(missing) in err


def test_schema_only_skips_rule_findings(cli: Run) -> None:
    code, doc = _json(cli, "--schema-only", str(ACTURALPAID))
    assert (code, _codes(doc)) == (0, [])


def test_schema_only_keeps_xsd_findings(cli: Run) -> None:
    code, doc = _json(cli, "--schema-only", str(BAD_DECIMAL))
    assert (code, _codes(doc)) == (1, ["CEBGW-XSD-TYPE"])


def test_rules_run_without_schema_only(cli: Run) -> None:
    code, doc = _json(cli, str(ACTURALPAID))
    assert (code, _codes(doc)) == (1, ["CEBGW-RULE-ACTURALPAID"])


def test_jobs_2_gives_the_same_json_as_jobs_1(cli: Run) -> None:
    one = _json(cli, "--jobs", "1", str(INVALID))
    two = _json(cli, "--jobs", "2", str(INVALID))
    assert two == one


def test_text_output_lines(cli: Run) -> None:
    code, out, _ = cli("validate", str(ACTURALPAID))
    first = out.splitlines()[0]
    m = TEXT_LINE.match(first)
    assert m is not None, first
    line_no = next(i for i, text in enumerate(ACTURALPAID.read_text("utf-8").splitlines(), 1)
                   if "acturalPaid>" in text)
    assert (m["file"], int(m["line"]), m["field"], m["code"], m["severity"]) == (
        str(ACTURALPAID), line_no, "acturalPaid", "CEBGW-RULE-ACTURALPAID", "error")
    assert code == 1


def test_text_output_marks_warnings(cli: Run) -> None:
    code, out, _ = cli("validate", str(INVALID / "CEB311-guid-lowercase.xml"))
    m = TEXT_LINE.match(out.splitlines()[0])
    assert m is not None and (m["code"], m["severity"]) == ("CEBGW-RULE-GUID-FORM", "warning")
    assert code == 0


def test_hostile_files_never_produce_a_traceback(cli: Run) -> None:
    code, out, err = cli("validate", "--format", "json", str(HOSTILE))
    assert "Traceback" not in out + err and "internal error" not in err
    doc = json.loads(out)
    assert code == 1
    assert all(not f["valid"] and f["errors"] for f in doc["files"])


def test_hostile_files_in_text_mode(cli: Run) -> None:
    code, out, err = cli("validate", str(HOSTILE))
    assert "Traceback" not in out + err and "internal error" not in err
    assert code == 1


def test_exit_0_when_all_valid(cli: Run) -> None:
    files = [str(VALID / n) for n in ("CEB311.xml", "CEB303.xml", "CEB622.xml", "DxpMsg.xml")]
    code, out, _ = cli("validate", *files)
    assert code == 0
    assert out.strip().endswith("4 file(s): 4 valid, 0 invalid")
