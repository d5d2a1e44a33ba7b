"""``cebgw verify FILE``: check a message's signature; exit 0 valid, 1 invalid, 2 usage or I/O error."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..catalog import load as load_catalog
from ..dsig import registry as registry_mod
from ..dsig import verify
from ..errors import EXIT_OK, GatewayError, InputError, SignatureError
from ..xmlio import parse
from .certs import DEFAULT_REGISTRY, registry_path
from .sign import read_input


def _run(args: argparse.Namespace) -> int:
    reg = registry_mod.load(registry_path(args.registry))  # config errors: exit 2 via main
    data = read_input(args.file)
    try:
        v = verify(load_catalog().identify(parse(data, source=args.file)), reg)
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
    p.set_defaults(func=_run)
