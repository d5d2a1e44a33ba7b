"""What the README and docs say about the CLI is what the CLI has: every ``cebgw`` command line
they print names a command, action and options the parser knows, and every command the parser
has is shown in the README."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from gateway.cli.main import COMMAND_MODULES, build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# ``cebgw`` and what follows it on the same line, up to the end of a code span or a comment
_COMMAND = re.compile(r"\bcebgw((?: +[^`#\n]*)?)")
_WORD = re.compile(r"[a-z][a-z0-9-]*")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps the sub-commands here, with no public accessor
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


def _command_lines() -> list[tuple[str, int, list[str]]]:
    found = []
    for doc in DOCS:
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for m in _COMMAND.finditer(line):
                words = m.group(1).split()
                if words and not words[0].startswith("-") and _WORD.fullmatch(words[0]):
                    found.append((doc.name, n, words))
    return found


COMMAND_LINES = _command_lines()


def test_the_docs_show_command_lines() -> None:
    assert len(COMMAND_LINES) > 20, "the pattern no longer finds the docs' cebgw lines"


@pytest.mark.parametrize("doc,line,words", COMMAND_LINES, ids=[f"{d}:{n}" for d, n, _ in COMMAND_LINES])
def test_every_documented_command_line_is_the_parsers(doc: str, line: int, words: list[str]) -> None:
    commands = _subparsers(build_parser())
    assert words[0] in commands, f"{doc}:{line}: no command cebgw {words[0]}"
    parser = commands[words[0]]
    actions = _subparsers(parser)
    rest = words[1:]
    known = _options(parser)
    if actions and rest and _WORD.fullmatch(rest[0].split("|")[0]):
        named = rest[0].split("|")  # one action, or a synopsis of several (list|check …)
        for action in named:
            assert action in actions, f"{doc}:{line}: cebgw {words[0]} has no action {action!r}"
        shown = actions.values() if len(named) > 1 else [actions[named[0]]]
        known = set().union(*(_options(a) for a in shown))
    for word in rest:
        option = word.strip("[]").split("=")[0]
        if option.startswith("--") and len(option) > 2:
            assert option in known, f"{doc}:{line}: cebgw {' '.join(words[:2])} has no option {option}"


def test_every_command_is_in_the_readme_and_the_help() -> None:
    readme = {words[0] for doc, _, words in COMMAND_LINES if doc == "README.md"}
    commands = _subparsers(build_parser())
    assert set(commands) == {m.replace("_", "-") for m in COMMAND_MODULES}
    assert set(commands) <= readme, f"not in the README: {sorted(set(commands) - readme)}"
    help_text = build_parser().format_help()
    assert all(name in help_text for name in commands)
