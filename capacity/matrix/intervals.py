"""Each matrix cell's figures across its repeats, with 95% intervals (#21): across runs where a
cell ran several times (the run-to-run noise pooled over the run's cells), from one run's tasks
where it ran once."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from capacity.matrix.cells import Cell


@dataclass(frozen=True)
class CellFigures:
    """A matrix cell over its repeats: X and S mean with their 95% intervals.

    With several repeats the interval is across runs: the mean of the repeats' figures times
    exp(+-t x sd / sqrt(k)), sd the run-to-run standard deviation of the figure's log pooled over
    every cell of the run with several undisturbed repeats (the machine's noise is the same for
    all of them; two repeats alone would give Student's t one degree of freedom, an interval
    12.7 standard errors wide). With one run, the interval comes from its tasks alone (X: the exact
    Poisson interval of the completed count over the window; S: Student's t over the tasks) and
    leaves out run-to-run noise."""

    label: str
    repeats: int
    throughput_per_min: float | None
    throughput_per_min_ci95: tuple[float, float] | None
    service_time_mean_s: float | None
    service_time_mean_s_ci95: tuple[float, float] | None
    ci95_basis: str
    disturbed: int

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("throughput_per_min_ci95", "service_time_mean_s_ci95"):
            data[key] = list(data[key]) if data[key] is not None else None
        return data


#: (sd of the log, degrees of freedom) of a figure's run-to-run noise, pooled over cells
Noise = tuple[float, int]


def _t_interval(values: list[float]) -> tuple[float, float] | None:
    from scipy.stats import t

    if len(values) < 2:
        return None
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    half = float(t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values))
    return mean - half, mean + half


def pooled_noise(groups: list[list[float]]) -> Noise | None:
    """The run-to-run standard deviation of a figure's log, pooled over groups of repeats."""
    squares, dof = 0.0, 0
    for values in groups:
        positive = np.array([v for v in values if v > 0], dtype=float)
        if len(positive) >= 2:
            logs = np.log(positive)
            squares += float(((logs - logs.mean()) ** 2).sum())
            dof += len(positive) - 1
    return (math.sqrt(squares / dof), dof) if dof else None


def _figure(cell: Cell, key: str) -> float | None:
    value = cell.metrics.get(key)
    return None if value is None else float(value)


def _across_runs(values: list[float], noise: Noise | None) -> tuple[float, float] | None:
    from scipy.stats import t

    if len(values) < 2 or noise is None:
        return None
    mean = float(np.mean(values))
    factor = math.exp(float(t.ppf(0.975, noise[1])) * noise[0] / math.sqrt(len(values)))
    return mean / factor, mean * factor


def cell_figures(repeats: list[Cell], noise_x: Noise | None = None, noise_s: Noise | None = None) -> CellFigures:
    from scipy.stats import chi2

    first = repeats[0]
    label = first.label.rsplit("-rep", 1)[0]
    xs = [v for v in (_figure(c, "throughput_per_min") for c in repeats) if v is not None]
    ss = [v for v in (_figure(c, "service_time_mean_s") for c in repeats) if v is not None]
    x_mean = float(np.mean(xs)) if xs else None
    s_mean = float(np.mean(ss)) if ss else None
    disturbed = sum(1 for c in repeats if c.disturbed)
    if len(repeats) > 1:
        noise_x = noise_x or pooled_noise([xs])
        noise_s = noise_s or pooled_noise([ss])
        dof = noise_x[1] if noise_x else 0
        basis = f"{len(repeats)} repeats (run-to-run noise pooled over the run's cells, {dof} degrees of freedom)"
        return CellFigures(
            label, len(repeats), x_mean, _across_runs(xs, noise_x), s_mean, _across_runs(ss, noise_s), basis, disturbed
        )
    x_ci = None
    completed = int(first.metrics.get("completed") or 0)
    if x_mean and completed:
        window_min = completed / x_mean  # X = completed / window
        low = chi2.ppf(0.025, 2 * completed) / 2
        high = chi2.ppf(0.975, 2 * completed + 2) / 2
        x_ci = (float(low / window_min), float(high / window_min))
    services = first.per_task[1]
    services = services[~np.isnan(services)] if len(services) else services
    s_ci = _t_interval([float(v) for v in services]) if len(services) > 1 else None
    basis = "tasks of one run (run-to-run noise not included: use repeats)"
    return CellFigures(label, 1, x_mean, x_ci, s_mean, s_ci, basis, disturbed)


def cell_summaries(cells: list[Cell]) -> dict[tuple[Any, ...], CellFigures]:
    """Every matrix cell's figures over its repeats, the run-to-run noise pooled over the cells
    whose repeats were all undisturbed."""
    grouped = by_cell(cells)
    clean = [repeats for repeats in grouped.values() if not any(c.disturbed for c in repeats)]
    noise_x = pooled_noise([[v for v in (_figure(c, "throughput_per_min") for c in g) if v] for g in clean])
    noise_s = pooled_noise([[v for v in (_figure(c, "service_time_mean_s") for c in g) if v] for g in clean])
    return {key: cell_figures(repeats, noise_x, noise_s) for key, repeats in grouped.items()}


def by_cell(cells: list[Cell]) -> dict[tuple[Any, ...], list[Cell]]:
    """The finished cells grouped by matrix cell (every repeat of one cell together), in order."""
    grouped: dict[tuple[Any, ...], list[Cell]] = {}
    for cell in cells:
        grouped.setdefault((cell.run, *cell.spec.key), []).append(cell)
    return grouped
