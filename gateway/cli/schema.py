"""``cebgw schema TYPE [--edition E] --format json-schema|markdown|xsd``: what a type's JSON takes."""

from __future__ import annotations

import argparse
from typing import Any

from .. import pipeline
from ..catalog import EDITIONS
from ..catalog import load as load_catalog
from ..errors import EXIT_OK
from .sign import write_output


def _schema(args: argparse.Namespace) -> int:
    text, _ = pipeline.describe(args.type, args.edition, args.format, load_catalog())
    write_output(args.output, text.encode("utf-8"))
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``schema``."""
    s = subparsers.add_parser("schema",
                              help="describe the JSON of a message type (JSON Schema, Markdown, XSD)")
    s.add_argument("type", help="message type, e.g. CEB311")
    s.add_argument("--edition", choices=EDITIONS, help="default: the newest the type has")
    s.add_argument("--format", choices=("json-schema", "markdown", "xsd"), default="json-schema")
    s.add_argument("-o", "--output", help="output file (default stdout)")
    s.set_defaults(func=_schema)
