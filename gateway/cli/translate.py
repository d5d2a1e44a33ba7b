"""``cebgw translate FILE... --to xml|json|dxp``: the JSON ↔ CEB XML mapping from the command line
(``gateway/mapping/``, ``mappings/``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..catalog import EDITIONS
from ..catalog import load as load_catalog
from ..dsig import KeyProvider, load_key
from ..errors import EXIT_INVALID, EXIT_OK, GatewayError, UsageError
from ..mapping.document import translate
from .sign import read_input, write_output

_SUFFIX = {"xml": ".xml", "json": ".json", "dxp": ".dxp.xml"}


def _progress(done: int, total: int, failed: int) -> None:
    width = 30
    filled = width * done // total
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
                     + (f", {failed} failed" if failed else ""))
    sys.stderr.flush()


def _report(name: str, exc: GatewayError) -> None:
    """Every finding on its own line: ``FILE: /json/path: message [CODE]``."""
    for f in exc.findings:
        print(f"{name}: {f.message} [{f.code}]", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    if (args.sign_with is None) != (args.cert is None) and not (args.sign_with or "").lower().endswith(
            (".p12", ".pfx")):
        raise UsageError("--sign-with KEY needs --cert CERT (or a .p12/.pfx key)")
    key: KeyProvider | None = load_key(args.sign_with, args.cert) if args.sign_with else None
    catalog = load_catalog()
    if len(args.files) == 1:
        try:
            out = translate(read_input(args.files[0]), args.to, catalog, message_type=args.type,
                            edition=args.edition, key=key, source=args.files[0])
        except GatewayError as exc:
            _report(args.files[0], exc)
            return exc.exit_code
        write_output(args.output, out.data)
        return EXIT_OK
    if not args.output or not Path(args.output).is_dir():
        raise UsageError("several files: give -o DIR, an existing folder for the translations")
    failed = 0
    tty = sys.stderr.isatty()
    for i, name in enumerate(args.files, 1):
        try:
            out = translate(read_input(name), args.to, catalog, message_type=args.type, edition=args.edition,
                            key=key, source=name)
            stem = Path(name).name.removesuffix(".json").removesuffix(".xml")
            write_output(str(Path(args.output) / (stem + _SUFFIX[args.to])), out.data)
        except GatewayError as exc:
            failed += 1
            if tty:
                sys.stderr.write("\n")
            _report(name, exc)
        if tty:
            _progress(i, len(args.files), failed)
    if tty:
        sys.stderr.write("\n")
    print(f"{len(args.files)} file(s): {len(args.files) - failed} translated, {failed} failed",
          file=sys.stderr)
    return EXIT_INVALID if failed else EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``translate``."""
    p = subparsers.add_parser("translate",
                              help="translate between enterprise JSON and CEB XML (and editions)")
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON or CEB XML files, or - for stdin")
    p.add_argument("--to", required=True, choices=("xml", "json", "dxp"),
                   help="CEB XML, JSON (names its type and edition), or CEB XML in a DxpMsg")
    p.add_argument("--type", help="message type of a JSON input without messageType (e.g. CEB311)")
    p.add_argument("--edition", choices=EDITIONS, help="the edition to write (default: the input's own)")
    p.add_argument("--sign-with", metavar="KEY", help="sign the XML with this key (PEM or .p12/.pfx)")
    p.add_argument("--cert", help="the key's certificate (PEM)")
    p.add_argument("-o", "--output", help="output file (default stdout); a folder for several files")
    p.set_defaults(func=_run)
