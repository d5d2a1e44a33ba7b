"""``cebgw validate PATH...``: check messages against the XSDs and the rules.

Exit 0 when every file is valid, 1 when any is invalid, 2 for usage or I/O errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..catalog import EDITIONS
from ..errors import DEFAULT_MAX_FINDINGS, EXIT_INVALID, EXIT_OK, EXIT_USAGE, Finding
from ..intake import Limits, validate_bytes
from ..validate import Report
from ..xmlio import DEFAULT_MAX_BYTES

PROGRESS_THRESHOLD = 200


@dataclass(frozen=True)
class _Job:
    path: str
    schema_only: bool
    max_bytes: int
    editions: tuple[str, ...] = EDITIONS
    max_findings: int = DEFAULT_MAX_FINDINGS


@dataclass(frozen=True)
class _Outcome:
    report: Report | None
    io_error: str | None = None


def _run(job: _Job) -> _Outcome:
    try:
        data = sys.stdin.buffer.read() if job.path == "-" else read_file(job.path, job.max_bytes + 1)
    except OSError as exc:
        return _Outcome(None, f"{job.path}: cannot read: {exc.strerror or exc}")
    report = validate_bytes(data, source=job.path, schema_only=job.schema_only,
                            limits=Limits(max_bytes=job.max_bytes, max_findings=job.max_findings),
                            with_keys=False, editions=job.editions)
    return _Outcome(report)


def read_file(path: str, limit: int) -> bytes:
    """The first ``limit`` bytes of the file at ``path`` (all of it when shorter), read through
    the file descriptor: a buffered file object costs more to make than a message to read."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # read(n) would allocate n bytes up front: size the first read by the file instead
        want = min(os.fstat(fd).st_size, limit)
        data = os.read(fd, want)
        if want and len(data) == want:  # the whole file as its size says, or all that was asked for
            return data
        rest = [data]  # a short read, or a file that reports no size (/proc, a pipe): read on
        got = len(data)
        while got < limit:
            more = os.read(fd, min(limit - got, 1 << 20))
            if not more:
                break
            rest.append(more)
            got += len(more)
        return b"".join(rest)
    finally:
        os.close(fd)


def _run_chunk(jobs: list[_Job]) -> list[_Outcome]:
    return [_run(j) for j in jobs]


def xml_files(top: str) -> list[str]:
    """The ``*.xml`` files under directory ``top``, as ``sorted(Path(top).rglob("*.xml"))`` lists
    them (symlinked directories not entered, paths spelt and ordered as pathlib does), without a
    Path object per file: sorting thousands of those costs more than reading the files."""
    top = str(Path(top))
    skip = 2 if top == "." else 0  # Path(".") / "a.xml" is "a.xml"
    found: list[str] = []
    folders = [top]
    while folders:
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    # DirEntry answers from the directory listing, without a stat per file,
                    # except for symbolic links, which it follows as Path.is_file does
                    if entry.is_dir():
                        if not entry.is_symlink():  # rglob does not enter linked directories
                            folders.append(entry.path)
                    elif entry.name.endswith(".xml") and entry.is_file():
                        found.append(entry.path[skip:])
        except OSError:
            continue  # a folder that cannot be listed is skipped, as os.walk and rglob skip it
    found.sort(key=lambda path: path.split(os.sep))  # pathlib orders by parts, not by characters
    return found


def expand(paths: Sequence[str]) -> Iterator[tuple[str, str | None]]:
    """Files named, directories walked for ``*.xml`` (sorted), ``-`` for stdin; (path, error)."""
    for p in paths:
        if p == "-":
            yield p, None
        elif os.path.isdir(p):
            for f in xml_files(p):
                yield f, None
        elif os.path.exists(p):
            yield p, None
        else:
            yield p, f"{p}: no such file or directory"


class _Painter:
    def __init__(self, stream: TextIO) -> None:
        self.on = stream.isatty() and os.environ.get("NO_COLOR") is None

    def __call__(self, text: str, colour: str) -> str:
        codes = {"red": "31", "yellow": "33", "green": "32", "dim": "2"}
        return f"\x1b[{codes[colour]}m{text}\x1b[0m" if self.on else text


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


# Files per process below which --jobs (by default) stays in one process: starting a process
# and handing it work costs about what validating this many files does.
FILES_PER_PROCESS = 64


def default_jobs(files: int) -> int:
    """Processes for ``files`` files when --jobs is not given: one per CPU this process may use,
    as long as each gets at least :data:`FILES_PER_PROCESS` files."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, files // FILES_PER_PROCESS))


def _outcomes(jobs: list[_Job], workers: int) -> Iterator[_Outcome]:
    if workers <= 1 or len(jobs) < 2 or any(j.path == "-" for j in jobs):
        for job in jobs:
            yield _run(job)
        return
    # The first file here: the schemas it compiles are in memory before the pool forks, so the
    # workers start with them instead of each compiling its own.
    yield _run(jobs[0])
    rest = jobs[1:]
    size = max(1, min(256, len(rest) // (workers * 4) or 1))
    chunks = [rest[i:i + size] for i in range(0, len(rest), size)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for chunk in pool.map(_run_chunk, chunks):
            yield from chunk


def _text_line(f: Finding, source: str, paint: _Painter) -> str:
    label = paint("error", "red") if f.severity == "error" else paint("warning", "yellow")
    return f"{f.render(source)} {label}" if paint.on else f"{f.render(source)} ({f.severity})"


def run(args: argparse.Namespace) -> int:
    targets = list(expand(args.paths))
    editions = tuple(args.edition) if args.edition else EDITIONS
    jobs = [_Job(p, args.schema_only, args.max_bytes, editions, args.max_findings)
            for p, err in targets if err is None]
    io_errors = [err for _, err in targets if err is not None]
    reports: list[Report] = []
    show_progress = args.format == "text" and sys.stderr.isatty() and len(jobs) >= PROGRESS_THRESHOLD
    paint = _Painter(sys.stdout)
    workers = args.jobs if args.jobs is not None else default_jobs(len(jobs))
    for i, outcome in enumerate(_outcomes(jobs, workers), 1):
        if outcome.report is None:
            io_errors.append(outcome.io_error or "cannot read")
        else:
            reports.append(outcome.report)
            if args.format == "text" and outcome.report.findings:
                for f in outcome.report.findings:
                    print(_text_line(f, outcome.report.source, paint))
                if outcome.report.omitted:
                    print(f"{outcome.report.source}: {outcome.report.omitted} more finding(s) not shown"
                          " (--max-findings)")
        if show_progress and (i % 50 == 0 or i == len(jobs)):
            _progress(i, len(jobs))
    valid = sum(1 for r in reports if r.valid)
    invalid = len(reports) - valid
    if args.format == "json":
        doc = {
            "files": [r.as_dict() for r in reports],
            "summary": {"files": len(reports), "valid": valid, "invalid": invalid,
                        "unreadable": len(io_errors)},
            "io_errors": io_errors,
        }
        # Indented for people at a terminal; compact otherwise (json's C encoder skips indent).
        indent = 2 if sys.stdout.isatty() else None
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=indent))
        sys.stdout.write("\n")
    else:
        for err in io_errors:
            print(f"cebgw: {err} [CEBGW-IO]", file=sys.stderr)
        warnings = sum(len(r.warnings) for r in reports)
        summary = f"{len(reports)} file(s): {valid} valid, {invalid} invalid"
        if warnings:
            summary += f", {warnings} warning(s)"
        by_edition = Counter(r.edition for r in reports if r.valid and r.edition)
        if len(by_edition) > 1 or set(by_edition) - {EDITIONS[0]}:
            shown = ", ".join(f"{n} in the {e} edition" for e, n in sorted(by_edition.items()))
            summary += f" ({shown})"
        if io_errors:
            summary += f", {len(io_errors)} unreadable"
        print(paint(summary, "red" if invalid or io_errors else "green"))
    if io_errors or not (jobs or io_errors):
        return EXIT_USAGE
    return EXIT_INVALID if invalid else EXIT_OK


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="check messages against the XSDs and the rules",
                       description="Validate CEB messages (files, directories of *.xml, or - for stdin).")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--schema-only", action="store_true", help="run the XSD alone, without the rules")
    p.add_argument("--edition", choices=EDITIONS, action="append",
                   help="accept only this edition of the standard (repeatable; default: both, each message "
                        "checked against the one it follows)")
    p.add_argument("--jobs", type=_positive, default=None, metavar="N",
                   help=f"validate in N processes (default: one per CPU, each taking at least "
                        f"{FILES_PER_PROCESS} files)")
    p.add_argument("--max-bytes", type=_positive, default=DEFAULT_MAX_BYTES, metavar="BYTES",
                   help=f"largest message accepted (default {DEFAULT_MAX_BYTES})")
    p.add_argument("--max-findings", type=_positive, default=DEFAULT_MAX_FINDINGS, metavar="N",
                   help=f"findings listed per file; the rest are counted (default {DEFAULT_MAX_FINDINGS})")
    p.set_defaults(func=run)
