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

from gateway.cli.validate import read_file, xml_files

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


def _bogus_attributes(tmp_path: Path, count: int) -> Path:
    """The valid CEB311 with a disallowed attribute on ``count`` of its elements: one XSD finding each."""
    data = (VALID / "CEB311.xml").read_bytes()
    names = re.findall(rb"<ceb:(\w+)>", data)[:count]
    for name in names:
        data = data.replace(b"<ceb:%s>" % name, b'<ceb:%s bogus="1">' % name, 1)
    path = tmp_path / "bogus.xml"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("limit", [1, 3, 10])
def test_findings_per_file_are_capped_with_a_count_of_the_rest(cli: Run, tmp_path: Path, limit: int) -> None:
    path = _bogus_attributes(tmp_path, 15)
    code, out, _ = cli("validate", "--max-findings", "1000", "--format", "json", str(path))
    total = len(json.loads(out)["files"][0]["errors"])
    assert code == 1 and total >= 15
    code, out, _ = cli("validate", "--max-findings", str(limit), str(path))
    lines = [line for line in out.splitlines() if TEXT_LINE.match(line)]
    assert code == 1 and len(lines) == limit
    assert f"{path}: {total - limit} more finding(s) not shown (--max-findings)" in out
    code, out, _ = cli("validate", "--max-findings", str(limit), "--format", "json", str(path))
    entry = json.loads(out)["files"][0]
    assert (len(entry["errors"]), entry["errors_omitted"], entry["valid"]) == (limit, total - limit, False)


@pytest.mark.parametrize("bad_id", ["1_2", "\uff11", "+1", " 1", "0x1"])
def test_cli_ids_are_ascii_digits_only(cli: Run, bad_id: str) -> None:
    base = ("dead-letters", "reroute", "--url", "http://127.0.0.1:9", "--token", "t")
    with pytest.raises(SystemExit) as info:
        cli(*base, bad_id, "--message-id", "1")
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        cli(*base, "1", "--message-id", bad_id)


def test_directory_walk_lists_what_pathlib_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``xml_files`` spells and orders the files as ``sorted(Path(d).rglob("*.xml"))`` would."""
    for rel in ("a.xml", "a-b/x.xml", "a/x.xml", "a/b/c.xml", "A/z.xml", "a/.hidden.xml", "a/n.XML",
                "a/n.xml.bak", "a b/y.xml", "a.b/q.xml", "deep/er/est/one.xml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("<x/>")
    (tmp_path / "dir.xml").mkdir()  # a directory named like a file: left out
    (tmp_path / "linked").symlink_to(tmp_path / "a", target_is_directory=True)  # not entered
    (tmp_path / "link.xml").symlink_to(tmp_path / "a.xml")  # a link to a file: listed
    (tmp_path / "broken.xml").symlink_to(tmp_path / "nowhere.xml")  # a broken one: not
    monkeypatch.chdir(tmp_path)
    for top in (str(tmp_path), str(tmp_path) + "/", ".", "./a", "a//b", "a"):
        expected = [str(f) for f in sorted(Path(top).rglob("*.xml")) if f.is_file()]
        assert xml_files(top) == expected, top
    listed = xml_files(".")
    assert listed.index("a/x.xml") < listed.index("a-b/x.xml")  # by parts: "a" < "a-b"; by characters, not


def test_read_file_reads_up_to_the_limit(tmp_path: Path) -> None:
    """``read_file`` returns the whole file when it is shorter than the limit, the first ``limit``
    bytes otherwise, and reads files whose size the file system does not report."""
    path = tmp_path / "m.xml"
    for size in (0, 1, 4096, 70_000):
        body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        path.write_bytes(body)
        for limit in (1, 4097, 70_001, 1 << 20):
            assert read_file(str(path), limit) == body[:limit], (size, limit)
    if Path("/proc/self/status").exists():  # Linux: st_size 0, yet it has lines
        assert b"Pid:" in read_file("/proc/self/status", 1 << 20)
    with pytest.raises(OSError):
        read_file(str(tmp_path / "missing.xml"), 10)
