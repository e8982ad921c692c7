"""The rooms' imports run one way: a room imports only the rooms below it (tests/README.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "capacity"
LOOSE = {"errors", "units", "secrets", "profiles", "files"}  # the base every room may use
# what each room may import besides the base (the CLI imports every room)
ALLOWED = {
    "workerside": set(),
    "sizing": set(),
    "brokers": set(),
    "load": {"brokers"},
    "measure": {"brokers", "load", "workerside"},
    "render": {"sizing", "measure", "load"},
    "matrix": {"brokers", "load", "measure", "sizing", "render", "workerside"},
}


def imported_rooms(path: Path) -> set[str]:
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "capacity" and len(parts) > 1:
                rooms.add(parts[1])
    return rooms


def test_no_import_runs_back_up() -> None:
    wrong = []
    for room, allowed in ALLOWED.items():
        for path in (PACKAGE / room).rglob("*.py"):
            for target in imported_rooms(path) - LOOSE - allowed - {room}:
                wrong.append(f"{path.relative_to(PACKAGE)} imports capacity.{target}")
    assert wrong == []


def test_the_layout_limits() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= 9, loose
    longest = max((len(p.read_text(encoding="utf-8").splitlines()), str(p)) for p in PACKAGE.rglob("*.py"))
    assert longest[0] <= 650, longest
    for room in [*ALLOWED, "cli"]:
        assert ast.get_docstring(ast.parse((PACKAGE / room / "__init__.py").read_text(encoding="utf-8"))), room
