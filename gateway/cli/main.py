"""``cebgw`` entry point: builds the argument parser from the command modules and maps errors to exit codes
(0 ok, 1 invalid input, 2 usage, configuration or I/O error, 3 internal error; ``serve`` adds 4, a
crash loop of its workers).

Each command module exposes ``register(subparsers)``, which adds its sub-command and sets
``func`` (taking the parsed arguments and returning an exit code) as the parser default.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import EXIT_INTERNAL, EXIT_USAGE, GatewayError

# Command modules, in the order `cebgw --help` lists them (each must exist: what the help
# offers is what there is).
COMMAND_MODULES = (
    "validate",
    "translate",
    "schema",
    "sign",
    "verify",
    "certs",
    "accounts",
    "serve",
    "send",
    "receipts",
    "dead_letters",
    "customs",
    "sandbox",
    "demo",
    "audit",
    "store",
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``only`` (a command module's name), that command's alone, so a
    command does not pay for importing every other (the translation layer, the server...)."""
    parser = argparse.ArgumentParser(
        prog="cebgw",
        description="Validate, sign, verify and exchange CEB customs messages; run the gateway.")
    parser.add_argument("--version", action="version", version=f"cebgw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if only is None or name == only:
            importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def _command_module(argv: Sequence[str]) -> str | None:
    """The module of the command ``argv`` names (its first word), if it is one."""
    first = next((a for a in argv if not a.startswith("-")), None)
    name = first.replace("-", "_") if first else None
    return name if name in COMMAND_MODULES else None


def _offers(parser: argparse.ArgumentParser, command: str) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) and command in a.choices for a in parser._actions)


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    only = _command_module(words)
    parser = build_parser(only)
    if only is not None and not _offers(parser, next(a for a in words if not a.startswith("-"))):
        parser = build_parser()  # the module registers its command under another name
    args = parser.parse_args(words)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code = func(args)
        return int(code)
    except GatewayError as exc:
        print(f"cebgw: {exc.message} [{exc.code}]", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the outermost shell: report, never a traceback
        print(f"cebgw: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
