"""A finished cell of a run directory as the report sees it (its result, directory and per-task
timings), and the groups the USL is fitted over."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from capacity.errors import InputError
from capacity.matrix.results import OVER_UTILIZATION, CellInfo, CellResult, read_results
from capacity.sizing.simulate import read_per_task
from capacity.units import format_size


@dataclass(frozen=True)
class Cell:
    result: CellResult
    directory: Path
    run: str = ""  # the run directory's name, when a report combines several

    @property
    def label(self) -> str:
        name = self.spec.cell
        return f"{self.run}/{name}" if self.run else name

    @property
    def spec(self) -> CellInfo:
        return self.result.cell

    @property
    def metrics(self) -> dict[str, Any]:
        return self.result.metrics

    @property
    def group(self) -> Group:
        return (int(self.spec.size_bytes or 0), str(self.spec.mode), str(self.spec.rate or ""), self.spec.pool or "")

    @cached_property
    def per_task(self) -> tuple[np.ndarray, np.ndarray]:
        """Send offsets from the first send, and measured service times (tasks.csv, read once)."""
        tasks = self.directory / "tasks.csv"
        if not tasks.is_file():
            return np.array([]), np.array([])
        sent, services = read_per_task(tasks)
        return np.sort(sent - sent.min()) if len(sent) else sent, services

    @property
    def disturbed(self) -> bool:
        """Other processes took enough of the CPU while the cell ran that it is not representative."""
        return bool(self.result.interference and self.result.interference.disturbed)

    @property
    def over_utilized(self) -> bool:
        """X*S/c above 105%: the worker ran more tasks at once than the cell's slots."""
        utilization = self.metrics.get("utilization")
        return utilization is not None and float(utilization) > OVER_UTILIZATION

    @property
    def monitor_csv(self) -> Path | None:
        name = self.result.monitor_csv
        return self.directory / name if name else None


def load_cells(run_dirs: list[Path]) -> list[Cell]:
    cells: list[Cell] = []
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise InputError(f"{run_dir}: no such run directory (capacity matrix run writes one)")
        found = read_results(run_dir)
        if not found:
            raise InputError(f"{run_dir}: no finished cells (cells/*/result.json)")
        run = run_dir.resolve().name if len(run_dirs) > 1 else ""
        cells.extend(Cell(r, run_dir / "cells" / r.cell.cell, run) for r in found)
    return cells


def group_label(group: Group) -> str:
    size, mode, rate, pool = group
    # no size given (a matrix of concurrency x mode): no "0 B" (#22)
    head = f"{format_size(size)} {mode}" if size else mode
    return head + (f" {rate}" if rate else "") + (f" {pool}" if pool else "")


#: a USL group: size, mode, rate, pool
Group = tuple[int, str, str, str]
