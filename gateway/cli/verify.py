"""``cebgw verify FILE``: check a message's signature; exit 0 valid, 1 invalid, 2 usage or I/O error.

The certificate must be valid at the message's ``appTime`` and at the time of checking (now,
or ``--at``), as the gateway checks it when it receives a message.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from ..catalog import BEIJING
from ..catalog import load as load_catalog
from ..dsig import registry as registry_mod
from ..dsig import verify
from ..errors import EXIT_OK, GatewayError, InputError, SignatureError, UsageError
from ..xmlio import parse
from .certs import DEFAULT_REGISTRY, registry_path
from .sign import read_input


def _when(text: str | None) -> datetime:
    """``--at``: ISO 8601; without a zone it is Beijing time, the zone of appTime."""
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at {text!r}: expected ISO 8601, e.g. 2026-12-06T10:00:00+08:00") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=BEIJING)


def _run(args: argparse.Namespace) -> int:
    reg = registry_mod.load(registry_path(args.registry))  # config errors: exit 2 via main
    at = _when(args.at)
    if args.grace < 0:
        raise UsageError("--grace must be >= 0")
    data = read_input(args.file)
    try:
        v = verify(load_catalog().identify(parse(data, source=args.file)), reg, received_at=at,
                   grace=timedelta(seconds=args.grace))
    except (SignatureError, InputError) as exc:
        return _report_invalid(args, exc)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "file": args.file,
                    "valid": True,
                    "message_type": v.message_type.code,
                    "signer": v.signer,
                    "algorithm": v.suite.name,
                    "certificate": {
                        "name": v.entry.name,
                        "serial": v.entry.key_name,
                        "fingerprint": v.entry.fingerprint,
                    },
                    "signed_at": v.signed_at.isoformat(),
                },
                ensure_ascii=False,
            )
        )
    else:
        print(
            f"{args.file}: valid {v.message_type.code} signed for {v.signer} by {v.entry.name} "
            f"(serial {v.entry.key_name}, {v.suite.name}) at {v.signed_at.isoformat()}"
        )
    return EXIT_OK


def _report_invalid(args: argparse.Namespace, exc: GatewayError) -> int:
    if args.format == "json":
        print(json.dumps({"file": args.file, "valid": False, **exc.as_dict()}, ensure_ascii=False))
    else:
        print(f"{args.file}: invalid: {exc.message} [{exc.code}]", file=sys.stderr)
    return exc.exit_code


def register(subparsers: Any) -> None:
    """Add ``verify``."""
    p = subparsers.add_parser("verify", help="verify a message's signature against the certificate registry")
    p.add_argument("file", help="message file, or - for stdin")
    p.add_argument("--registry", help=f"registry file (default $CEBGW_REGISTRY or {DEFAULT_REGISTRY})")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--at", metavar="TIME",
                   help="check the certificate at this time too (ISO 8601, no zone: Beijing); default now")
    p.add_argument("--grace", type=float, default=0.0, metavar="SECONDS",
                   help="how far past its window the certificate may be at --at (default 0)")
    p.set_defaults(func=_run)
