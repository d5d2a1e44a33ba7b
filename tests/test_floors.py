"""The package keeps its floors: no module imports from a floor above its own (DEVELOPERS.md).

cli/ → service/ → pipeline.py → routing.py, sandbox/, audit.py, lifecycle.py, preflight.py → config.py,
accounts.py, intake.py, validate/, mapping/, reconcile/
→ dsig/, envelope.py → catalog/ → store/, xmlio.py → state.py, errors.py
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gateway"
FLOORS = (
    ("cli",),
    ("service", "transport"),
    ("pipeline",),
    ("routing", "sandbox", "audit", "lifecycle", "preflight"),
    ("config", "transportconfig", "accounts", "intake", "validate", "mapping", "reconcile"),
    ("dsig", "envelope", "ceb900"),
    ("catalog",),
    ("store", "xmlio"),
    ("state", "errors"),
)
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.name != "__init__.py")


def _floor(room: str) -> int:
    for level, rooms in enumerate(FLOORS):
        if room in rooms:
            return level
    raise AssertionError(f"gateway.{room} is on no floor: give it one in tests/test_floors.py")


def _room(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_rooms(path: Path) -> set[str]:
    """The rooms (the first name below ``gateway``) that ``path`` imports from."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts  # ("gateway", "cli", "main")
    package = parts[:-1]  # a package's __init__ is in the package itself
    rooms: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            full = [*base, *(node.module.split(".") if node.module else [])]
            # ``from gateway import x`` / ``from .. import x``: x is the room
            names = [[*full, alias.name] for alias in node.names] if len(full) == 1 else [full]
        else:
            continue
        rooms |= {n[1] for n in names if n[0] == "gateway" and len(n) > 1}
    return rooms - {"__version__"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_back_up(path: Path) -> None:
    mine = _floor(_room(path))
    for room in _imported_rooms(path):
        assert _floor(room) >= mine, f"{path.relative_to(PACKAGE)} imports gateway.{room}, a floor above"
