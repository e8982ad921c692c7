"""Two matrix run directories compared cell by cell (matched by size, concurrency and mode), each
cell with its per-task file where it has one: ``capacity compare`` and ``report --baseline``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from capacity.errors import InputError
from capacity.matrix.results import read_results
from capacity.measure.compare import (
    FIGURES,
    Comparison,
    Run,
    Tasks,
    compare_runs,
    figures_from_tasks,
    method,
    pooled,
    read_tasks,
)


def read_cells(run_dir: Path) -> dict[tuple[Any, ...], Run]:
    """A run directory's finished cells, by (size, concurrency, mode)."""
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory")
    cells: dict[tuple[Any, ...], Run] = {}
    for result in read_results(run_dir):
        info = result.cell
        tasks_csv = run_dir / "cells" / info.cell / "tasks.csv"
        tasks = read_tasks(tasks_csv) if tasks_csv.is_file() else None
        figures = (
            figures_from_tasks(tasks) if tasks is not None else {f.key: result.metrics.get(f.key) for f in FIGURES}
        )
        cells[(info.size_bytes, info.concurrency, info.mode)] = Run(info.cell, figures, tasks)
    if not cells:
        raise InputError(f"{run_dir}: no finished cells (cells/*/result.json)")
    return cells


def compare_run_dirs(
    base: Path, new: Path, tolerances: dict[str, float]
) -> tuple[Comparison, Tasks | None, Tasks | None]:
    """The comparison, and each run's tasks pooled over its cells (for the distribution plots),
    every run directory read once."""
    base_cells, new_cells = read_cells(base), read_cells(new)
    matched = [key for key in base_cells if key in new_cells]
    if not matched:
        raise InputError(f"{base} and {new} have no cell in common (matched by size, concurrency and mode)")
    family = len(matched)
    cells = tuple(compare_runs(new_cells[k].label, base_cells[k], new_cells[k], tolerances, family) for k in matched)
    only_one = {r.label for k, r in base_cells.items() if k not in new_cells}
    only_one |= {r.label for k, r in new_cells.items() if k not in base_cells}
    any_tasks = any(c.base_tasks and c.new_tasks for c in cells)
    comparison = Comparison(str(base), str(new), method(any_tasks, family), cells, tuple(sorted(only_one)))
    return comparison, _pooled(base_cells), _pooled(new_cells)


def _pooled(cells: dict[tuple[Any, ...], Run]) -> Tasks | None:
    return pooled([r.tasks for r in cells.values() if r.tasks is not None])
