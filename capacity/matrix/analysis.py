"""The report of one or more matrix runs: seed 003's results table, the USL fit and recommended
concurrency per (size, mode), the queueing model's predictions against what was measured, and
plots (PNG files, and embedded in one self-contained HTML page).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capacity import files
from capacity.matrix.cells import Cell, Group, group_label, load_cells
from capacity.matrix.intervals import CellFigures, by_cell, cell_summaries
from capacity.matrix.spec import slots_label
from capacity.measure.metrics import PUBLIC_KEYS
from capacity.render.model import Report, Table
from capacity.sizing.simulate import Workload, replicate
from capacity.sizing.usl import (
    MIN_POINTS,
    PEAK_SHARE,
    TRUSTED_POINTS,
    Recommendation,
    USLFit,
    assess,
    fit,
    point_recommendation,
    publish,
)
from capacity.units import format_size

#: the model's error target (issue: within 10%)
TARGET_ERROR = 0.10
VALIDATION_REPLICATIONS = 20


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


# --- USL per (size, mode) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupFit:
    group: Group
    points: list[tuple[int, float]]
    fit: USLFit | None
    recommendation: Recommendation
    note: str
    #: cells whose points were not fitted, and why (disturbed, over-utilised)
    left_out: tuple[str, ...] = ()

    @property
    def recommended(self) -> int | None:
        return self.recommendation.recommended_concurrency

    def to_json(self) -> dict[str, Any]:
        tested = sorted({n for n, _ in self.points})
        return {
            "group": group_label(self.group),
            "points": self.points,
            **publish(self.fit, [(float(n), x) for n, x in self.points], tested, verdict=self.recommendation),
            "left_out": list(self.left_out),
            "note": self.note,
        }


def recommended_concurrency(model: USLFit, tested_max: int) -> tuple[int | None, str]:
    """The smallest N whose fitted X reaches 95% of the peak (N* or, without coherency cost, the
    asymptote lambda/sigma): past it, more slots buy little throughput and longer queues. The
    point estimate only; :func:`capacity.sizing.usl.assess` says whether the data carry it."""
    if model.sigma == 0 and model.kappa == 0:
        return None, f"linear up to {tested_max}: no saturation seen; test higher concurrencies"
    best = point_recommendation(model)
    if best is None:
        return None, "the fitted curve never reaches 95% of its peak"
    if best > 2 * tested_max:
        return best, f"{best} is beyond twice the tested range (up to {tested_max}): test there before trusting it"
    return best, f"smallest N reaching {PEAK_SHARE:.0%} of the fitted peak"


def replicas_vs_threads(cells: list[Cell]) -> list[str]:
    """Where a matrix reached the same total slots by replicas and by concurrency (seed 001's
    "2 containers x 4 threads" against 1 x 8), how their throughputs compare."""
    by_total: dict[tuple[Group, int], list[Cell]] = defaultdict(list)
    for cell in cells:
        if cell.metrics.get("throughput_per_min") is not None and cell.spec.mode == "burst":
            by_total[(cell.group, cell.spec.total_concurrency)].append(cell)
    notes = []
    for (group, total), same in sorted(by_total.items()):
        splits = {int(c.spec.replicas or 1): c for c in same}
        if len(splits) < 2:
            continue
        ordered = sorted(splits.items())
        base_x = float(ordered[0][1].metrics["throughput_per_min"])
        parts = [
            f"{slots_label(int(c.spec.concurrency or 0), r)}: X {float(c.metrics['throughput_per_min']):,.0f}/min"
            + (
                ""
                if c is ordered[0][1]
                else f" ({signed_percent(float(c.metrics['throughput_per_min']) / base_x - 1)})"
            )
            for r, c in ordered
        ]
        notes.append(f"{group_label(group)}, {total} slots: " + "; ".join(parts) + " (replicas vs threads)")
    return notes


def usl_fits(cells: list[Cell]) -> list[GroupFit]:
    """One USL fit per (size, mode, rate, pool) over its burst cells, every repeat a point; cells
    disturbed by other processes or over-utilised (the worker ignored the concurrency asked) are
    left out and named. Each fit carries its verdict (recommended, or inconclusive and why)."""
    by_group: dict[Group, list[tuple[int, float]]] = defaultdict(list)
    left_out: dict[Group, list[str]] = defaultdict(list)
    for cell in cells:
        x = cell.metrics.get("throughput_per_min")
        if x is None:
            continue
        if cell.disturbed:
            left_out[cell.group].append(f"{cell.label} (disturbed)")
        elif cell.over_utilized:
            left_out[cell.group].append(f"{cell.label} (U = {float(cell.metrics['utilization']):.0%})")
        else:
            # the USL's N is every slot of the cell: replicas x concurrency
            by_group[cell.group].append((cell.spec.total_concurrency, float(x)))
    fits = []
    for group in sorted(set(by_group) | set(left_out)):
        points = sorted(by_group.get(group, []))
        dropped = tuple(left_out.get(group, []))
        tested = sorted({n for n, _ in points})
        levels = len(tested)
        if group[1] != "burst":
            # a sustained cell's X is the offered rate while the workers keep up: not a capacity
            why = "not fitted: a sustained run measures the arrival rate"
            fits.append(GroupFit(group, points, None, Recommendation("inconclusive", None, None, why), why, dropped))
            continue
        if levels < MIN_POINTS:
            why = f"not fitted: {levels} concurrency levels (need {MIN_POINTS})"
            if dropped:
                why += f"; {len(dropped)} disturbed or over-utilised cells left out: rerun them on a quieter machine"
            fits.append(GroupFit(group, points, None, assess(None, tested or [1], why), why, dropped))
            continue
        model = fit(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
        verdict = assess(model, tested)
        note = verdict.reason
        if levels < TRUSTED_POINTS:
            note += f"; only {levels} levels: a rough fit"
        if dropped:
            note += f"; left out: {', '.join(dropped)}"
        fits.append(GroupFit(group, points, model, verdict, note, dropped))
    return fits


# --- the model against the measurement (issue 6) ---------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One figure, measured and predicted; error = (predicted - measured) / measured."""

    measured: float | None
    predicted: float | None
    error: float | None

    def pair(self, scale: float = 1.0) -> str:
        if self.measured is None or self.predicted is None:
            return "-"
        error = "" if self.error is None else f" ({signed_percent(self.error)})"
        return f"{readable(self.measured * scale)} / {readable(self.predicted * scale)}{error}"


def readable(value: float) -> str:
    """Three significant figures without scientific notation: 1,170 (not 1.17e+03), 12.3, 0.0123."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{round(value, digits):,.{digits}f}"


def signed_percent(fraction: float) -> str:
    """+12%, -3%, or 0% (never "-0%" or "+0%" for an error that rounds to nothing)."""
    rounded = round(fraction * 100)
    return "0%" if rounded == 0 else f"{rounded:+d}%"


#: the figures a validation compares, in the order its JSON and table show them
VALIDATED = ("throughput_per_min", "service_time_mean_s", "wait_mean_s", "response_time_mean_s")


@dataclass(frozen=True)
class ValidationCheck:
    """The model against one measured cell (#6): X, S, W, R, whether X and R are within 10%, why not."""

    cell: str
    throughput_per_min: Comparison
    service_time_mean_s: Comparison
    wait_mean_s: Comparison
    response_time_mean_s: Comparison
    within_target: bool
    why: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ValidationCheck:
        compared = {key: Comparison(**data[key]) for key in VALIDATED}
        return cls(cell=data["cell"], within_target=data["within_target"], why=data["why"], **compared)


def validate(cell: Cell) -> ValidationCheck | None:
    """Simulate the cell (its own send times replayed, its measured service times resampled, c slots)
    and compare X, S, W and R with the measured ones. None when the cell has no per-task timings."""
    offsets, services = cell.per_task
    if len(services) == 0 or len(offsets) == 0:
        return None
    predicted = replicate(
        Workload(
            slots=cell.spec.total_concurrency,
            arrival="replay",
            replay_offsets_s=offsets,
            service="empirical",
            empirical_s=services,
        ),
        seed=1,
        replications=VALIDATION_REPLICATIONS,
        depth_points=2,
    )
    m = cell.metrics
    rows = {}
    for key in VALIDATED:
        measured, model = m.get(key), getattr(predicted, key)
        error = None if not measured or model is None else (model - measured) / measured
        rows[key] = Comparison(measured, model, error)
    x_err, r_err = rows["throughput_per_min"].error, rows["response_time_mean_s"].error
    within = x_err is not None and r_err is not None and abs(x_err) <= TARGET_ERROR and abs(r_err) <= TARGET_ERROR
    return ValidationCheck(cell=cell.label, **rows, within_target=within, why=_why(cell, rows))


def _why(cell: Cell, rows: dict[str, Comparison]) -> str:
    """Where the model misses, the measured reason rather than a tuned parameter."""
    m = cell.metrics
    w = rows["wait_mean_s"]
    s_mean = m.get("service_time_mean_s") or 0.0
    reasons = []
    if w.measured is not None and w.predicted is not None:
        gap = w.measured - w.predicted
        if gap > 0.1 * max(s_mean, 1e-9):
            bullmq = any(str(source).startswith("BullMQ") for source in m.get("sources") or ())
            # in the worker's own words (#22): BullMQ has no prefetch nor pool
            what = "the Worker's fetch of the next job and its lock" if bullmq else "delivery, prefetch, pool dispatch"
            reasons.append(f"waits {gap * 1000:+.0f} ms over the model: {what} (see notes)")
        elif w.measured < 0.1 * max(s_mean, 1e-9):
            reasons.append(f"waits under 10% of S ({w.measured * 1000:.0f} ms): their relative error means little")
    x = rows["throughput_per_min"]
    if x.error is not None and abs(x.error) > TARGET_ERROR and (m.get("sent") or 0) < 50:
        reasons.append(f"only {m.get('sent')} tasks: start and end effects weigh on X")
    return "; ".join(reasons)


# --- tables and the report ------------------------------------------------------------------------------


def _with_interval(value: float | None, interval: tuple[float, float] | None, digits: int) -> str:
    if value is None:
        return "-"
    if interval is None:
        return _num(value, digits)
    return f"{_num(value, digits)} [{_num(interval[0], digits)}-{_num(interval[1], digits)}]"


def results_table(cells: list[Cell], summaries: dict[tuple[Any, ...], CellFigures] | None = None) -> Table:
    """Seed 003's results table, filled: Size | Concurrency | Mode | X | S mean | Notes; one row
    per matrix cell, X and S with their 95% intervals in brackets (across repeats where there are
    several); the notes are the first undisturbed repeat's."""
    rows = []
    summaries = summaries if summaries is not None else cell_summaries(cells)
    for key, repeats in by_cell(cells).items():
        cell = repeats[0]
        spec = cell.spec
        figures = summaries[key]
        shown = next((c for c in repeats if not c.disturbed), cell)
        notes = [shown.result.bottleneck]
        if spec.rate:
            notes.insert(0, f"rate={spec.rate}")
        if len(repeats) > 1:
            notes.insert(0, f"{len(repeats)} repeats")
        failed = sum(int(c.metrics.get("failed") or 0) for c in repeats)
        missing = sum(int(c.metrics.get("missing") or 0) for c in repeats)
        if missing or failed:
            notes.append(f"{failed} failed, {missing} missing")
        if figures.disturbed:
            notes.append(f"{figures.disturbed} of {len(repeats)} disturbed")
        rows.append(
            (
                format_size(int(spec.size_bytes)) if spec.size_bytes else "-",
                slots_label(int(spec.concurrency or 0), spec.replicas, spec.pool),
                str(spec.mode).capitalize(),
                _with_interval(figures.throughput_per_min, figures.throughput_per_min_ci95, 1),
                _with_interval(figures.service_time_mean_s, figures.service_time_mean_s_ci95, 3),
                "; ".join(n for n in notes if n),
            )
        )
    # seed 003's columns; the brackets are the 95% intervals (the report's notes say so)
    columns = ("Size", "Concurrency", "Mode", "X (tasks/min)", "S mean (s)", "Notes")
    return Table("Results", columns, tuple(rows))


def usl_table(fits: list[GroupFit]) -> Table:
    rows = []
    for g in fits:
        f = g.fit
        r = g.recommendation
        peak = "-"
        if f is not None:
            interval = f.peak_concurrency_ci95
            peak = "inf" if math.isinf(f.peak_concurrency) else _num(f.peak_concurrency, 1)
            if interval is not None:
                peak += f" [{_num(interval[0], 1)}-{'inf' if interval[1] is None else _num(interval[1], 1)}]"
        answer = (
            f"{r.recommended_concurrency} [{r.recommended_range[0]}-{r.recommended_range[1]}]"
            if r.recommended_concurrency is not None and r.recommended_range
            else "inconclusive" + (f"; test {', '.join(map(str, r.next_levels))}" if r.next_levels else "")
        )
        rows.append(
            (
                group_label(g.group),
                ", ".join(f"{n}:{x:,.1f}" for n, x in g.points),
                _num(f.sigma, 4) if f else "-",
                _num(f.kappa, 5) if f else "-",
                peak,
                _num(f.r_squared, 3) if f else "-",
                answer,
                g.note,
            )
        )
    columns = ("Cells", "N:X (tasks/min)", "sigma", "kappa", "N* [95%]", "R^2", "Recommended [95%]", "Note")
    return Table("Scalability (USL)", columns, tuple(rows))


def validation_table(checks: list[ValidationCheck]) -> Table:
    rows = tuple(
        (
            c.cell,
            c.throughput_per_min.pair(),
            c.service_time_mean_s.pair(),
            c.wait_mean_s.pair(),
            c.response_time_mean_s.pair(),
            "yes" if c.within_target else "no",
            c.why,
        )
        for c in checks
    )
    columns = ("Cell", "X/min meas/model", "S s", "W s", "R s", "X, R within 10%", "Why it misses")
    return Table("Model vs measured (simulate: replayed sends, resampled S)", columns, rows)


def by_task_table(cells: list[Cell]) -> Table:
    """A mix's classes in each cell: what each sent and completed, its X, S and W (#25)."""
    rows = []
    for cell in cells:
        for name, c in (cell.metrics.get("by_task") or {}).items():
            rows.append(
                (
                    cell.label,
                    name,
                    f"{c.get('sent', 0)}",
                    f"{c.get('completed', 0)}",
                    f"{c.get('failed', 0)}",
                    _num(c.get("throughput_per_min"), 1),
                    _num(c.get("service_time_mean_s"), 3),
                    _num(c.get("wait_p95_s"), 3),
                )
            )
    columns = ("Cell", "Task", "Sent", "Completed", "Failed", "X/min", "S mean s", "W p95 s")
    return Table("By task (each cell's mix)", columns, tuple(rows))


def for_terminal(report: Report) -> Report:
    """The report for a terminal: every column kept, the explanatory ones ("Note", "Why it
    misses") wrapped by the terminal table rather than dropped."""
    return report


def build(run_dirs: list[Path]) -> tuple[Report, list[Cell], list[GroupFit], list[ValidationCheck]]:
    cells = load_cells(run_dirs)
    fits = usl_fits(cells)
    checks = [c for c in (validate(cell) for cell in cells) if c is not None]
    within = sum(1 for c in checks if c.within_target)
    figures = {}
    summaries = cell_summaries(cells)
    for key, figure in summaries.items():
        shown = figure.to_json()
        figures[key] = {k: shown[k] for k in shown if k not in ("label", "throughput_per_min", "service_time_mean_s")}
    data = {
        "runs": [str(p) for p in run_dirs],
        "cells": [
            {**dataclasses.asdict(cell.spec), **_public(cell), **figures[(cell.run, *cell.spec.key)]} for cell in cells
        ],
        "usl": [g.to_json() for g in fits],
        "validation": [c.to_json() for c in checks],
    }
    summary = [("Cells", str(len(cells))), ("Runs", ", ".join(str(p) for p in run_dirs))]
    for g in fits:
        if g.group[1] != "burst":
            continue
        r = g.recommendation
        if r.recommended_concurrency is not None and r.recommended_range is not None:
            answer = f"{r.recommended_concurrency} (95% range {r.recommended_range[0]}-{r.recommended_range[1]})"
        else:
            answer = f"inconclusive: {r.reason}" + (
                f"; run next: concurrency {', '.join(map(str, r.next_levels))}" if r.next_levels else ""
            )
        summary.append((f"Recommended concurrency ({group_label(g.group)})", answer))
    disturbed = [c.label for c in cells if c.disturbed]
    if disturbed:
        summary.append(("Disturbed cells (left out of the fits)", f"{len(disturbed)} of {len(cells)}"))
    if checks:
        summary.append(("Model within 10% (X and R)", f"{within} of {len(checks)} cells"))
    sources = sorted({s for cell in cells for s in cell.metrics.get("sources") or ()}) or ["none"]
    notes = (
        "X is completed tasks per minute over first send to last completion; S is started to finished "
        f"(timings: {', '.join(sources)}), W sent to started, R sent to finished, all three over the tasks "
        "that completed successfully.",
        "USL fits use burst cells only: a sustained cell's X is its arrival rate while the workers keep up.",
        f"Recommended concurrency: the smallest N whose fitted throughput reaches {PEAK_SHARE:.0%} of the peak, "
        "given only when the data carry it (R^2 >= 0.8, N*'s and the recommendation's 95% intervals within the "
        "tested range); otherwise inconclusive, with the levels that would narrow it most.",
        "Figures in brackets are 95% intervals: across repeats where a cell ran several times (Student's t "
        "with the run-to-run noise pooled over the run's cells, on a log scale); from one run's tasks otherwise, "
        "which leaves out run-to-run noise. A cell is disturbed when other processes took >= 25% "
        "of the host's CPU while it ran; disturbed and over-utilised cells are left out of the USL fits.",
        "Model: capacity simulate with the cell's own send times and its measured service times resampled "
        f"({VALIDATION_REPLICATIONS} replications), c = concurrency slots, FCFS. Not in the model: the time a "
        "message takes from the broker to the worker, prefetch (a task reserved by a busy process waits while "
        "another slot is free) and the pool's dispatch; measured waits above the model's are these.",
        *(
            ["USL N is every slot of a cell: replicas x concurrency.", *replicas_vs_threads(cells)]
            if any(int(c.spec.replicas or 1) > 1 for c in cells)
            else []
        ),
    )
    tables: tuple[Table, ...] = (results_table(cells, summaries), usl_table(fits), validation_table(checks))
    if any(cell.metrics.get("by_task") for cell in cells):
        tables = (*tables, by_task_table(cells))
    return Report("Test matrix report", data, tuple(summary), tables, notes), cells, fits, checks


def _public(cell: Cell) -> dict[str, Any]:
    out: dict[str, Any] = {k: cell.metrics.get(k) for k in PUBLIC_KEYS}
    out["bottleneck"] = cell.result.bottleneck
    for key in ("by_task", "timeline", "timeline_bucket_s", "failures"):  # a mix's classes, percentiles over time
        if cell.metrics.get(key):
            out[key] = cell.metrics[key]
    data = cell.result.to_json()
    out["resources"] = data["resources"]
    out["interference"] = data["interference"]
    return out


def with_baseline(report: Report, baseline: Path, run_dir: Path) -> tuple[Report, int, tuple[str, ...]]:
    """The report with the comparison of ``run_dir`` against ``baseline`` (capacity compare's
    rules, default tolerances): its table after the others, its data under "comparison", its
    distribution plot; the number of regressions, and the cells that cannot be judged."""
    from capacity.matrix.compare import compare_run_dirs
    from capacity.measure.compare import parse_tolerances
    from capacity.render.comparison import comparison_report

    comparison, base_tasks, new_tasks = compare_run_dirs(baseline, run_dir, parse_tolerances([]))
    shown = comparison_report(comparison, base_tasks, new_tasks)
    notes = (*report.notes, f"Compared with the baseline {baseline}: {comparison.method}.", *shown.notes)
    report = dataclasses.replace(
        report,
        data={**report.data, "comparison": comparison.to_json()},
        tables=(*report.tables, *shown.tables),
        notes=notes,
        images=(*report.images, *shown.images),
    )
    return report, comparison.regressions, comparison.inconclusive


def write(
    run_dirs: list[Path], out_dir: Path, baseline: Path | None = None
) -> tuple[Report, dict[str, Path], int, tuple[str, ...]]:
    """Write report.md, report.csv, report.json, report.html and the PNG files to ``out_dir``;
    with a ``baseline`` run directory, the first run compared with it (its regressions, and the
    cells that cannot be judged)."""
    from capacity.matrix.plots import plots
    from capacity.render.formats import write_to

    report, cells, fits, checks = build(run_dirs)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = plots(cells, fits, checks)
    report = dataclasses.replace(report, images=tuple(images.items()))
    regressions = 0
    inconclusive: tuple[str, ...] = ()
    if baseline is not None:
        report, regressions, inconclusive = with_baseline(report, baseline, run_dirs[0])
    written: dict[str, Path] = {}
    for name, png in report.images:
        files.write_bytes(out_dir / name, png)
        written[name] = out_dir / name
    for fmt in ("markdown", "json", "csv", "html"):
        name = "report." + {"markdown": "md"}.get(fmt, fmt)
        write_to(report, fmt, out_dir / name)
        written[name] = out_dir / name
    return report, written, regressions, inconclusive


def failing_cells(run_dirs: list[Path]) -> list[str]:
    """Cells whose completion rate is critical by the thresholds profile (seed 002: below 90%),
    each with its first errors: one line per cell, for the one-line failure ``matrix run``,
    ``bench`` and ``report`` end with (exit 1)."""
    from capacity.profiles import load_profiles
    from capacity.sizing.assess import Condition

    limits = load_profiles().thresholds.metrics.get("completion_rate")
    critical = Condition(limits.critical if limits else "< 90")
    found = []
    for cell in load_cells(run_dirs):
        sent = int(cell.metrics.get("sent") or 0)
        completed = int(cell.metrics.get("completed") or 0)
        rate = 100.0 * completed / sent if sent else 0.0
        if critical.holds(rate):
            errors = [w for w in cell.metrics.get("warnings") or [] if "failed" in w and "error" in w.lower()]
            why = errors[0] if errors else f"{int(cell.metrics.get('missing') or 0)} never finished"
            found.append(
                f"{cell.label}: {completed} of {sent} completed ({rate:.0f}%, critical {critical.text}%): {why}"
            )
    return found
