"""``compare``: a run against a baseline, figure by figure, as a regression gate.

A change is a regression only when it is beyond the tolerance in the bad direction (slower S, W,
R; lower X or completion) **and** larger than the run-to-run noise: the test is on run-level
figures, because on a shared machine the host's mood changes a whole run at once and the tasks of
one run are not independent samples of the worker (#21: two identical runs differed by 18-30% in
X, which a per-task test called a regression at p < 1e-6).

- Several runs a side (``--base A --base B --new C --new D``, or run directories whose cells ran
  with repeats): a one-sided t-test on the log of each run's figure, its variance pooled over the
  runs of both sides and shrunk toward a documented prior of 5% run-to-run noise weighted as 4
  runs' worth of degrees of freedom (a few runs that happen to agree would otherwise make any change
  significant): Student's t with m + k - 2 + 4 degrees of freedom.
- One run a side: run-to-run noise is unknown, so a documented noise floor stands in for it: a
  run-level figure is taken to vary by 10% (standard deviation of its log) from run to run, and the
  test is a z-test on the log ratio. Only changes well beyond the floor (about +40%) are told from
  a noisy host; give three runs a side for a sharper gate.
- Each figure at a one-sided 1%, Bonferroni over the cells judged at once. The figures of one cell
  are not corrected for one another: a slow host moves them together, so they are one piece of
  evidence, not ten. Measured on generated runs (``benchmarks/bench_compare.py``): at 7% run-to-run
  noise and 3 runs a side, 5% of same-worker comparisons raise a false alarm and 97% of 30%-slower
  workers are caught.

A cell where either side was **disturbed** (other processes took >= 25% of the CPU while it ran:
``matrix run`` records it) gets the verdict "inconclusive" for any change beyond the tolerance: a
disturbed run cannot convict or clear the worker. A side that measured nothing (no task sent, or no
figure at all) is never "no regression": the cell is inconclusive too.

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

#: one-sided alpha of each figure's test (Bonferroni over cells, not over a cell's figures)
ALPHA = 0.01
#: one run a side: the run-to-run standard deviation of a figure's log assumed (10%)
NOISE_FLOOR = 0.10
#: several runs a side: the prior the pooled run-to-run standard deviation is shrunk toward, and
#: its weight in degrees of freedom
PRIOR_RUN_NOISE = 0.05
PRIOR_DOF = 4


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
    """One run of one side of a comparison: its figures, its tasks where the input has them, and
    whether other processes disturbed it."""

    label: str
    figures: dict[str, float | None]
    tasks: Tasks | None = None
    disturbed: bool = False

    @property
    def measured(self) -> bool:
        """Anything was measured: a task sent and at least one figure."""
        if self.tasks is not None and len(self.tasks) == 0:
            return False
        return any(v is not None and not math.isnan(v) for v in self.figures.values())


@dataclass(frozen=True)
class Change:
    figure: str
    base: float | None
    new: float | None
    change: float | None  # (new - base) / base
    tolerance: float
    test: str | None  # the run-level noise test, where the change is beyond the tolerance
    p_value: float | None  # one-sided, in the direction of the change
    verdict: str  # "regression", "improved", "within noise", "ok", "not measured", "inconclusive"


@dataclass(frozen=True)
class CellComparison:
    """The figures of one cell (of a matrix, or the whole run), each side one or more runs."""

    cell: str
    base_tasks: int | None
    new_tasks: int | None
    changes: tuple[Change, ...]
    base_runs: int = 1
    new_runs: int = 1
    #: why no verdict can be given on this cell ("" when one can): disturbed, nothing measured
    inconclusive: str = ""

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

    @property
    def inconclusive(self) -> tuple[str, ...]:
        """One line per cell that cannot be judged, with why."""
        return tuple(f"{c.cell}: {c.inconclusive}" for c in self.cells if c.inconclusive)

    @property
    def verdict(self) -> str:
        """ "regression" (any, in a cell that could be judged), else "inconclusive", else "no regression"."""
        if self.regressions:
            return "regression"
        return "inconclusive" if self.inconclusive else "no regression"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["regressions"] = self.regressions
        data["verdict"] = self.verdict
        data["inconclusive_cells"] = list(self.inconclusive)
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
    figures: dict[str, float | None] = {}
    for figure in FIGURES:
        value = data.get(figure.key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InputError(f"{path}: {figure.key} is {type(value).__name__} {str(value)[:40]!r}, not a number")
        figures[figure.key] = None if value is None else float(value)
    sent = data.get("sent")
    if sent == 0:
        return Run(str(path), dict.fromkeys(figures))  # nothing sent: measured nothing
    return Run(str(path), figures)


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


def _logs(values: list[float]) -> np.ndarray:
    logs: np.ndarray = np.log(np.maximum(np.asarray(values, dtype=float), 1e-12))
    return logs


def run_level_test(base: list[float], new: list[float], larger: bool) -> tuple[str, float]:
    """(test name, one-sided p) for "the new runs' figure is no different from the base runs'",
    against ``larger`` (new above base) or smaller; on the log of each run's figure."""
    from scipy import stats

    b, n = _logs(base), _logs(new)
    diff = float(n.mean() - b.mean())
    dof = len(b) + len(n) - 2
    if dof >= 1:
        squares = float(((b - b.mean()) ** 2).sum() + ((n - n.mean()) ** 2).sum())
        sd = math.sqrt((squares + PRIOR_DOF * PRIOR_RUN_NOISE**2) / (dof + PRIOR_DOF))
        statistic = diff / (sd * math.sqrt(1 / len(b) + 1 / len(n)))
        p = stats.t.sf(statistic if larger else -statistic, dof + PRIOR_DOF)
        return f"run-level t ({len(b)} vs {len(n)} runs)", float(p)
    statistic = diff / (NOISE_FLOOR * math.sqrt(2))
    p = stats.norm.sf(statistic if larger else -statistic)
    return f"noise floor {NOISE_FLOOR:.0%} (one run a side)", float(p)


def compare_runs(
    cell: str, base: Run | list[Run], new: Run | list[Run], tolerances: dict[str, float], family: int = 1
) -> CellComparison:
    """Every figure of one cell, each side one run or several; ``family`` is how many cells are
    judged together (the Bonferroni correction's count, with the figures)."""
    bases = base if isinstance(base, list) else [base]
    news = new if isinstance(new, list) else [new]
    alpha = ALPHA / family
    why = ""
    if not any(r.measured for r in bases) or not any(r.measured for r in news):
        side = "the base" if not any(r.measured for r in bases) else "the new run"
        why = f"{side} measured nothing (no task sent, or no figure): it cannot be judged"
    elif any(r.disturbed for r in bases + news):
        why = "disturbed: other processes took the CPU while a run of this cell ran (rerun on a quieter machine)"
    changes = []
    for figure in FIGURES:
        tolerance = tolerances[figure.name]
        b_values = [v for v in (r.figures.get(figure.key) for r in bases) if v is not None and not math.isnan(v)]
        n_values = [v for v in (r.figures.get(figure.key) for r in news) if v is not None and not math.isnan(v)]
        b = float(np.mean(b_values)) if b_values else None
        n = float(np.mean(n_values)) if n_values else None
        if b is None or n is None:
            changes.append(Change(figure.name, b, n, None, tolerance, None, None, "not measured"))
            continue
        change = (n - b) / b if b else (0.0 if n == b else math.copysign(math.inf, n - b))
        worse = -change if figure.higher_is_better else change
        test = p_value = None
        if abs(change) > tolerance:
            test, p_value = run_level_test(b_values, n_values, change > 0)
        if abs(change) <= tolerance:
            verdict = "ok"
        elif why:
            verdict = "inconclusive"
        elif p_value is None or math.isnan(p_value) or p_value >= alpha:
            verdict = "within noise"
        else:
            verdict = "regression" if worse > 0 else "improved"
        changes.append(Change(figure.name, b, n, change, tolerance, test, p_value, verdict))

    def tasks(runs: list[Run]) -> int | None:
        counted = [len(r.tasks) for r in runs if r.tasks is not None]
        return sum(counted) if counted else None

    return CellComparison(cell, tasks(bases), tasks(news), tuple(changes), len(bases), len(news), why)


def method(any_tasks: bool, family: int = 1, runs: tuple[int, int] = (1, 1)) -> str:
    """How the verdicts were reached, for the report."""
    if sum(runs) > 2:
        noise = (
            f"run-level t-test on the log of each run's figure ({runs[0]} base vs {runs[1]} new runs, "
            f"variance pooled and shrunk toward {PRIOR_RUN_NOISE:.0%} with {PRIOR_DOF} degrees of freedom)"
        )
    else:
        noise = (
            f"one run a side: run-to-run noise unknown, a {NOISE_FLOOR:.0%} noise floor stands in for it "
            "(give several runs a side with --base/--new or repeats for a sharper test)"
        )
    source = "per-task files" if any_tasks else "figures of metrics results"
    return (
        f"beyond the tolerance and beyond run-to-run noise: {noise}; each figure one-sided at "
        f"p < {ALPHA / family:.2g} ({ALPHA:g} over {family} cells); figures from {source}; a disturbed or "
        "empty side makes the cell inconclusive"
    )


def read_side(paths: list[Path]) -> list[Run]:
    """One side of a comparison: each path a metrics result (JSON) or a per-task file."""
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path} does not exist or is not a file")
    return [read_run(path) for path in paths]


def compare_files(base: Path | list[Path], new: Path | list[Path], tolerances: dict[str, float]) -> Comparison:
    """Metrics results (JSON) or per-task files (``metrics --csv``): one or several a side."""
    base_paths = base if isinstance(base, list) else [base]
    new_paths = new if isinstance(new, list) else [new]
    bases, news = read_side(base_paths), read_side(new_paths)
    cell = compare_runs("run", bases, news, tolerances)
    any_tasks = all(r.tasks is not None for r in bases + news)
    return Comparison(
        ", ".join(map(str, base_paths)),
        ", ".join(map(str, new_paths)),
        method(any_tasks, 1, (len(bases), len(news))),
        (cell,),
    )


def pooled(runs: list[Tasks]) -> Tasks | None:
    """Several runs' tasks as one sample (the HTML's distributions of a matrix run)."""
    if not runs:
        return None
    fields = ("sent", "finished", "ok", "service", "wait", "response")
    return Tasks(*(np.concatenate([getattr(t, f) for t in runs]) for f in fields))
