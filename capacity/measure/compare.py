"""``compare``: a run against a baseline, figure by figure, as a regression gate.

A change is a regression only when it is beyond the tolerance in the bad direction (slower S, W,
R; lower X or completion) **and**, where per-task data exist, not explainable by sampling noise:
a one-sided test in the direction of the change must reject "no difference" at a family-wise 0.1%
(Bonferroni over every figure of every cell judged at once: ten figures of one run at 0.01% each).
The test depends on the figure:

- means (S, W, R): Welch's t-test;
- percentiles (p50, p95, p99): the quantile test (Mood's median test generalised): both samples
  split at the pooled percentile, then Fisher's exact test on the 2x2 table. Distribution-free;
  a bootstrap of a high percentile is not (its standard error follows the spacing of a few order
  statistics: on 300 tasks it flagged one pair in 100 of same-worker runs);
- X: the bootstrap's standard error of the difference (1,000 resamples of the tasks);
- completion rate: Fisher's exact test on completed / not completed.

Each side is subsampled to at most 5,000 tasks. Without per-task data (two metrics JSON files)
the tolerance alone decides, and the result says so.

Inputs here: metrics results (JSON) and per-task files (``capacity metrics --csv``); matrix run
directories are read by ``capacity.matrix.compare`` and compared cell by cell with the same rules.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capacity.errors import InputError
from capacity.files import input_lines, read_input

RESAMPLES = 1000
MAX_TASKS = 5000
FAMILY_ALPHA = 0.001
SEED = 20261129


@dataclass(frozen=True)
class Figure:
    """One figure compared: its name, the metrics JSON key, and which way is better."""

    name: str
    key: str
    higher_is_better: bool = False


FIGURES = (
    Figure("X", "throughput_per_min", higher_is_better=True),
    Figure("S.mean", "service_time_mean_s"),
    Figure("S.p50", "service_time_p50_s"),
    Figure("S.p95", "service_time_p95_s"),
    Figure("S.p99", "service_time_p99_s"),
    Figure("W.mean", "wait_mean_s"),
    Figure("W.p95", "wait_p95_s"),
    Figure("R.mean", "response_time_mean_s"),
    Figure("R.p95", "response_time_p95_s"),
    Figure("completion", "completion_rate", higher_is_better=True),
)
_ALIASES = {"s": "S.mean", "w": "W.mean", "r": "R.mean", "x": "X", "completion_rate": "completion"}


@dataclass(frozen=True)
class Tasks:
    """Per-task data of one run (a metrics --csv file): one row per sent task."""

    sent: np.ndarray
    finished: np.ndarray  # NaN where the task did not finish
    ok: np.ndarray  # bool: completed successfully
    service: np.ndarray  # NaN where not measured
    wait: np.ndarray
    response: np.ndarray

    def __len__(self) -> int:
        return len(self.sent)

    def take(self, index: np.ndarray) -> Tasks:
        return Tasks(*(getattr(self, f)[index] for f in ("sent", "finished", "ok", "service", "wait", "response")))


@dataclass(frozen=True)
class Run:
    """One side of a comparison: its figures, and its tasks where the input has them."""

    label: str
    figures: dict[str, float | None]
    tasks: Tasks | None = None


@dataclass(frozen=True)
class Change:
    figure: str
    base: float | None
    new: float | None
    change: float | None  # (new - base) / base
    tolerance: float
    test: str | None  # the noise test, where per-task data exist and the change is beyond the tolerance
    p_value: float | None  # one-sided, in the direction of the change
    verdict: str  # "regression", "improved", "within noise", "ok", "not measured"


@dataclass(frozen=True)
class CellComparison:
    """The figures of one pair of runs (a cell of a matrix, or the whole run)."""

    cell: str
    base_tasks: int | None
    new_tasks: int | None
    changes: tuple[Change, ...]

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.verdict == "regression")


@dataclass(frozen=True)
class Comparison:
    base: str
    new: str
    method: str
    cells: tuple[CellComparison, ...]
    unmatched: tuple[str, ...] = ()

    @property
    def regressions(self) -> int:
        return sum(len(c.regressions) for c in self.cells)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["regressions"] = self.regressions
        return data


# --- reading ----------------------------------------------------------------------------------------------


def _floats(rows: list[dict[str, str]], column: str) -> np.ndarray:
    return np.array([float(r[column]) if r.get(column) not in (None, "") else math.nan for r in rows], dtype=float)


def read_tasks(path: Path) -> Tasks:
    """A per-task CSV as ``capacity metrics --csv`` writes it."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(input_lines(handle, path)))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read per-task CSV: {exc}") from None
    needed = {"sent", "finished", "state", "service_s", "wait_s", "response_s"}
    if rows and not needed <= set(rows[0]):
        raise InputError(f"{path}: not a per-task CSV from capacity metrics --csv (needs {', '.join(sorted(needed))})")
    try:
        finished = _floats(rows, "finished")
        ok = np.array([r["finished"] != "" and r["state"] in ("", "SUCCESS") for r in rows], dtype=bool)
        return Tasks(
            _floats(rows, "sent"),
            finished,
            ok,
            _floats(rows, "service_s"),
            _floats(rows, "wait_s"),
            _floats(rows, "response_s"),
        )
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None


def _throughput(tasks: Tasks) -> float:
    """Completed tasks per minute, first send to last completion (metrics' X)."""
    done = tasks.finished[tasks.ok]
    if not len(done) or not len(tasks.sent):
        return math.nan
    window = float(np.nanmax(done) - np.nanmin(tasks.sent))
    return len(done) / window * 60 if window > 0 else math.nan


def _stat(values: np.ndarray, kind: str) -> float:
    values = values[~np.isnan(values)]
    if not len(values):
        return math.nan
    return float(values.mean()) if kind == "mean" else float(np.percentile(values, float(kind[1:])))


def _statistic(figure: Figure) -> Callable[[Tasks], float]:
    if figure.name == "X":
        return _throughput
    if figure.name == "completion":
        return lambda t: float(t.ok.mean()) if len(t) else math.nan
    column = {"S": "service", "W": "wait", "R": "response"}[figure.name[0]]
    kind = figure.name.split(".")[1]
    return lambda t: _stat(getattr(t, column), kind)


def figures_from_tasks(tasks: Tasks) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for figure in FIGURES:
        value = _statistic(figure)(tasks)
        out[figure.key] = None if math.isnan(value) else value
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_input(path))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"{path}: cannot read JSON: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def read_run(path: Path) -> Run:
    """A metrics JSON or a per-task CSV."""
    if path.suffix == ".csv":
        tasks = read_tasks(path)
        return Run(str(path), figures_from_tasks(tasks), tasks)
    data = _read_json(path)
    if "sent" not in data or "throughput_per_min" not in data:
        raise InputError(f"{path}: not a metrics result (capacity metrics -f json)")
    return Run(str(path), {f.key: data.get(f.key) for f in FIGURES})


# --- tolerances -------------------------------------------------------------------------------------------


def parse_tolerances(values: list[str]) -> dict[str, float]:
    """``10%`` (every figure) and ``S.p95=5%`` (one figure) into {figure: fraction}."""
    found = {f.name: 0.10 for f in FIGURES}
    names = {f.name.lower(): f.name for f in FIGURES} | _ALIASES
    for text in values:
        name, sep, amount = text.rpartition("=")
        fraction = _fraction(amount.strip(), text)
        if not sep:
            found = dict.fromkeys(found, fraction)
            continue
        canonical = names.get(name.strip().lower())
        if canonical is None:
            raise InputError(f"--tolerance {text!r}: unknown figure {name!r}; use {', '.join(f.name for f in FIGURES)}")
        found[canonical] = fraction
    return found


def _fraction(text: str, where: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(%?)", text)
    if not match:
        raise InputError(f"--tolerance {where!r}: expected a share like 10% or 0.1")
    value = float(match.group(1)) / (100 if match.group(2) else 1)
    if not 0 <= value < 10:
        raise InputError(f"--tolerance {where!r}: out of range")
    return value


# --- the comparison ---------------------------------------------------------------------------------------


def _capped(tasks: Tasks, rng: np.random.Generator) -> Tasks:
    if len(tasks) <= MAX_TASKS:
        return tasks
    return tasks.take(np.sort(rng.choice(len(tasks), MAX_TASKS, replace=False)))


def _column(figure: Figure, tasks: Tasks) -> np.ndarray:
    column = {"S": tasks.service, "W": tasks.wait, "R": tasks.response}[figure.name[0]]
    measured: np.ndarray = column[~np.isnan(column)]  # the figure is over the measured tasks only
    return measured


def _fisher(table: list[list[int]], new_more: bool) -> float:
    """One-sided Fisher exact p: rows (base, new), columns (event, no event); ``new_more``: the
    new run has the larger share of the event."""
    from scipy.stats import fisher_exact

    return float(fisher_exact(table, alternative="less" if new_more else "greater")[1])


def noise_test(figure: Figure, base: Tasks, new: Tasks, larger: bool, rng: np.random.Generator) -> tuple[str, float]:
    """(test name, one-sided p) for "the new figure is no different", against ``larger`` (the new
    figure above the base) or smaller."""
    from scipy import stats

    if figure.name == "completion":
        table = [[int(base.ok.sum()), int((~base.ok).sum())], [int(new.ok.sum()), int((~new.ok).sum())]]
        return "Fisher exact", _fisher(table, larger)
    if figure.name == "X":
        statistic = _statistic(figure)
        draws = np.array(
            [
                statistic(new.take(rng.integers(0, len(new), len(new))))
                - statistic(base.take(rng.integers(0, len(base), len(base))))
                for _ in range(RESAMPLES)
            ]
        )
        draws = draws[~np.isnan(draws)]
        se = float(draws.std(ddof=1)) if len(draws) > 1 else math.nan
        observed = statistic(new) - statistic(base)
        if not se or math.isnan(se):
            return "bootstrap standard error", math.nan
        z = observed / se if larger else -observed / se
        return "bootstrap standard error", float(stats.norm.sf(z))
    b, n = _column(figure, base), _column(figure, new)
    if len(b) < 2 or len(n) < 2:
        return "none: too few tasks", math.nan
    kind = figure.name.split(".")[1]
    if kind == "mean":
        result = stats.ttest_ind(n, b, equal_var=False, alternative="greater" if larger else "less")
        return "Welch t", float(result.pvalue)
    threshold = np.percentile(np.concatenate([b, n]), float(kind[1:]))
    table = [
        [int((b > threshold).sum()), int((b <= threshold).sum())],
        [int((n > threshold).sum()), int((n <= threshold).sum())],
    ]
    return "quantile test (Fisher exact)", _fisher(table, larger)


def compare_runs(cell: str, base: Run, new: Run, tolerances: dict[str, float], family: int = 1) -> CellComparison:
    """Every figure of one pair of runs; ``family`` is how many such pairs are judged together."""
    rng = np.random.default_rng(SEED)
    alpha = FAMILY_ALPHA / (len(FIGURES) * family)
    noise = base.tasks is not None and new.tasks is not None and len(base.tasks) > 1 and len(new.tasks) > 1
    base_tasks = _capped(base.tasks, rng) if noise and base.tasks is not None else None
    new_tasks = _capped(new.tasks, rng) if noise and new.tasks is not None else None
    changes = []
    for figure in FIGURES:
        b, n, tolerance = base.figures.get(figure.key), new.figures.get(figure.key), tolerances[figure.name]
        if b is None or n is None or math.isnan(b) or math.isnan(n):
            changes.append(Change(figure.name, b, n, None, tolerance, None, None, "not measured"))
            continue
        change = (n - b) / b if b else (0.0 if n == b else math.copysign(math.inf, n - b))
        worse = -change if figure.higher_is_better else change
        test = p_value = None
        if base_tasks is not None and new_tasks is not None and abs(change) > tolerance:
            test, p_value = noise_test(figure, base_tasks, new_tasks, change > 0, rng)
        significant = p_value is None or (not math.isnan(p_value) and p_value < alpha)
        if abs(change) <= tolerance:
            verdict = "ok"
        elif not significant:
            verdict = "within noise"
        else:
            verdict = "regression" if worse > 0 else "improved"
        changes.append(Change(figure.name, b, n, change, tolerance, test, p_value, verdict))
    return CellComparison(
        cell, len(base.tasks) if base.tasks else None, len(new.tasks) if new.tasks else None, tuple(changes)
    )


def method(any_tasks: bool, family: int = 1) -> str:
    """How the verdicts were reached, for the report."""
    if not any_tasks:
        return "tolerance only: no per-task data (give per-task CSVs or run directories to judge noise)"
    each = FAMILY_ALPHA / (len(FIGURES) * family)
    return (
        "beyond the tolerance and outside noise: one-sided tests (means: Welch t; percentiles: quantile "
        "test; X: bootstrap standard error; completion: Fisher exact), each side at most "
        f"{MAX_TASKS} tasks, family-wise alpha {FAMILY_ALPHA:g} over {len(FIGURES) * family} figures "
        f"(p < {each:.2g} each)"
    )


def compare_files(base: Path, new: Path, tolerances: dict[str, float]) -> Comparison:
    """Two metrics results (JSON) or two per-task files (``metrics --csv``)."""
    for path in (base, new):
        if not path.is_file():
            raise InputError(f"{path} does not exist or is not a file")
    base_run, new_run = read_run(base), read_run(new)
    cell = compare_runs("run", base_run, new_run, tolerances)
    return Comparison(str(base), str(new), method(bool(cell.base_tasks and cell.new_tasks)), (cell,))


def pooled(runs: list[Tasks]) -> Tasks | None:
    """Several runs' tasks as one sample (the HTML's distributions of a matrix run)."""
    if not runs:
        return None
    fields = ("sent", "finished", "ok", "service", "wait", "response")
    return Tasks(*(np.concatenate([getattr(t, f) for t in runs]) for f in fields))
