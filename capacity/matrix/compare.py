"""Matrix run directories compared cell by cell (matched on every dimension: size, concurrency,
replicas, pool, mode, rate, count, duration, task), each cell's repeats and each run directory of a
side counting as runs of that cell: ``capacity compare`` and ``report --baseline``."""

from __future__ import annotations

from pathlib import Path

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

CellKey = tuple[object, ...]


def read_cells(run_dirs: Path | list[Path]) -> dict[CellKey, list[Run]]:
    """The finished cells of one side's run directories, by cell identity: every repeat and every
    directory a run of that cell."""
    cells: dict[CellKey, list[Run]] = {}
    for run_dir in run_dirs if isinstance(run_dirs, list) else [run_dirs]:
        if not run_dir.is_dir():
            raise InputError(f"{run_dir}: no such run directory")
        found = read_results(run_dir)
        if not found:
            raise InputError(f"{run_dir}: no finished cells (cells/*/result.json)")
        for result in found:
            info = result.cell
            tasks_csv = run_dir / "cells" / info.cell / "tasks.csv"
            tasks = read_tasks(tasks_csv) if tasks_csv.is_file() else None
            figures = (
                figures_from_tasks(tasks) if tasks is not None else {f.key: result.metrics.get(f.key) for f in FIGURES}
            )
            label = info.cell.rsplit("-rep", 1)[0] if (info.repeat or 1) > 1 else info.cell
            disturbed = bool(result.interference and result.interference.disturbed)
            cells.setdefault(info.key, []).append(Run(label, figures, tasks, disturbed))
    return cells


def compare_run_dirs(
    base: Path | list[Path], new: Path | list[Path], tolerances: dict[str, float]
) -> tuple[Comparison, Tasks | None, Tasks | None]:
    """The comparison, and each side's tasks pooled over its cells (for the distribution plots),
    every run directory read once."""
    base_dirs = base if isinstance(base, list) else [base]
    new_dirs = new if isinstance(new, list) else [new]
    base_cells, new_cells = read_cells(base_dirs), read_cells(new_dirs)
    matched = [key for key in base_cells if key in new_cells]
    names = (", ".join(map(str, base_dirs)), ", ".join(map(str, new_dirs)))
    if not matched:
        raise InputError(
            f"{names[0]} and {names[1]} have no cell in common (matched on size, concurrency, replicas, pool, "
            "mode, rate and task)"
        )
    family = len(matched)
    cells = tuple(compare_runs(new_cells[k][0].label, base_cells[k], new_cells[k], tolerances, family) for k in matched)
    only_one = {runs[0].label + " (base only)" for k, runs in base_cells.items() if k not in new_cells}
    only_one |= {runs[0].label + " (new only)" for k, runs in new_cells.items() if k not in base_cells}
    any_tasks = any(c.base_tasks and c.new_tasks for c in cells)
    runs = (min(len(base_cells[k]) for k in matched), min(len(new_cells[k]) for k in matched))
    comparison = Comparison(names[0], names[1], method(any_tasks, family, runs), cells, tuple(sorted(only_one)))
    return comparison, _pooled(base_cells), _pooled(new_cells)


def _pooled(cells: dict[CellKey, list[Run]]) -> Tasks | None:
    return pooled([r.tasks for runs in cells.values() for r in runs if r.tasks is not None])
