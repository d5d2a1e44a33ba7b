"""``cebgw sign FILE --key K --cert C [--replace]``: add the customs enveloped signature to a message."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..dsig import load_key, sign
from ..dsig.algorithms import SUITES
from ..errors import EXIT_OK, IOFailure, SignatureError


def read_input(name: str) -> bytes:
    """The bytes of FILE, or of stdin for ``-``; raises :class:`IOFailure`."""
    try:
        return sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise IOFailure(f"cannot read {name}: {exc.strerror or exc}") from None


def write_output(name: str | None, data: bytes) -> None:
    """Write to ``name`` or stdout; raises :class:`IOFailure`."""
    try:
        if name is None or name == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            Path(name).write_bytes(data)
    except OSError as exc:
        raise IOFailure(f"cannot write {name}: {exc.strerror or exc}") from None


def _run(args: argparse.Namespace) -> int:
    key = load_key(args.key, args.cert, args.password)
    data = read_input(args.file)
    try:
        signed = sign(data, key, alg=args.alg, source=args.file, replace=args.replace)
    except SignatureError as exc:
        if exc.code != "CEBGW-SIG-MULTIPLE":
            raise
        raise SignatureError(f"{exc.message}; give --replace to remove its signature and sign it again",
                             code=exc.code) from None
    write_output(args.output, signed)
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``sign``."""
    p = subparsers.add_parser("sign", help="sign a CEB message or DXP envelope (enveloped XML-DSig)")
    p.add_argument("file", help="message file, or - for stdin")
    p.add_argument("--key", required=True, help="private key: PEM (PKCS#8) or PKCS#12 (.p12/.pfx)")
    p.add_argument("--cert", help="certificate (PEM/DER); not needed with PKCS#12")
    p.add_argument("--alg", choices=sorted(SUITES), help="default: rsa-sha1 for RSA keys, sm2-sm3 for SM2")
    p.add_argument("--password", help="password of the key or PKCS#12 file")
    p.add_argument("--replace", action="store_true",
                   help="the message may be signed already: remove that signature and sign it again")
    p.add_argument("-o", "--output", help="output file (default stdout)")
    p.set_defaults(func=_run)
