"""``metrics``: throughput X, service time S, wait W, response time R and stability, from task
logs joined by task id with completion timings. Every figure comes from measured timestamps; a
timing that is missing stays missing (None), never guessed."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capacity.errors import CheckFailed, InputError
from capacity.load.monitor import Sample, read_samples, samples_path, trend
from capacity.measure.inputs import Problems, TaskLog, read_task_logs
from capacity.measure.sources import RecordColumns, SourceSettings, load_source
from capacity.units import parse_duration, parse_rate
from capacity.workerside.probe import ENV_VAR as PROBE_ENV_VAR

SUCCESS = "SUCCESS"
PERCENTILES = (50, 90, 95, 99)


#: the JSON keys issue #4 makes public (as_dict has them all), in the order reports show them
PUBLIC_KEYS = (
    "sent",
    "completed",
    "failed",
    "missing",
    "completion_rate",
    "window_s",
    "throughput_per_min",
    "service_time_mean_s",
    "service_time_p50_s",
    "service_time_p95_s",
    "service_time_p99_s",
    "wait_mean_s",
    "response_time_mean_s",
    "utilization",
)


@dataclass
class Metrics:
    """The result; ``as_dict`` gives the public JSON keys."""

    sent: int
    completed: int
    failed: int
    missing: int
    window_s: float | None
    throughput_per_min: float | None
    throughput_steady_per_min: float | None
    service: dict[str, float | None]
    wait: dict[str, float | None]
    wait_received: dict[str, float | None]
    response: dict[str, float | None]
    seed_s: dict[str, float | None]
    timeline: list[tuple[int, int]]
    utilization: float | None
    littles_law: dict[str, Any]
    duplicates: int
    unknown_timings: int
    clock_skew: dict[str, Any]
    trend: dict[str, Any] | None
    sources: list[str]
    problems: Problems
    concurrency: int | None = None

    @property
    def completion_rate(self) -> float | None:
        return self.completed / self.sent if self.sent else None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sent": self.sent,
            "completed": self.completed,
            "failed": self.failed,
            "missing": self.missing,
            "completion_rate": self.completion_rate,
            "window_s": self.window_s,
            "throughput_per_min": self.throughput_per_min,
            "throughput_steady_per_min": self.throughput_steady_per_min,
        }
        for prefix, stats in (
            ("service_time", self.service),
            ("wait", self.wait),
            ("wait_from_received", self.wait_received),
            ("response_time", self.response),
            ("seed_s", self.seed_s),
        ):
            for key, value in stats.items():
                data[f"{prefix}_{key}_s"] = value
        data.update(
            utilization=self.utilization,
            concurrency=self.concurrency,
            littles_law=self.littles_law,
            timeline_per_min=[{"minute": m, "completed": c} for m, c in self.timeline],
            duplicates=self.duplicates,
            unknown_timings=self.unknown_timings,
            clock_skew=self.clock_skew,
            trend=self.trend,
            sources=self.sources,
            skipped_lines=self.problems.skipped_lines,
            warnings=self.problems.warnings,
        )
        return data


def _stats(figures: dict[str, Any], column: str) -> dict[str, float | None]:
    """Mean, p50/p90/p95/p99 (linear interpolation, as numpy's default) and max; None if unmeasured."""
    quantiles = figures[f"{column}_q"] or [None] * len(PERCENTILES)
    return {
        "mean": figures[f"{column}_mean"],
        **{f"p{p}": q for p, q in zip(PERCENTILES, quantiles, strict=True)},
        "max": figures[f"{column}_max"],
    }


def read_monitor_samples(log_paths: list[Path]) -> list[Sample]:
    """Monitor samples saved by ``inject --monitor`` beside each log, if any."""
    samples = [s for path in log_paths for s in read_samples(samples_path(path))]
    return sorted(samples, key=lambda s: s.t)


def compute(
    log: TaskLog,
    sources: list[str],
    problems: Problems,
    concurrency: int | None = None,
    samples: list[Sample] | None = None,
) -> Metrics:
    """Join the logs with the timings (one DuckDB pass over the inputs) and compute every figure."""
    if concurrency is not None and concurrency < 1:
        raise InputError(f"--concurrency must be at least 1, got {concurrency}")
    # a bad line DuckDB could not parse names itself on the slow path (or is skipped with --skip-bad)
    figures = log.query(lambda store: store.figures(), lambda f: bool(f["bad_log_lines"] or f["timing_without_id"]))
    n = int(figures["sent"])
    if n == 0:
        raise InputError(f"no task lines in {', '.join(str(p) for p in log.paths)}: nothing was sent")
    duplicates, unknown = int(figures["duplicates"]), int(figures["unknown"])
    if duplicates:
        problems.warn(f"{duplicates} duplicate task ids in the task logs: each is counted once, at its first send")
    if unknown:
        problems.warn(f"{unknown} task ids have timings but are in no task log (another run, or a log not given)")
    completed, failed = int(figures["completed"]), int(figures["failed"])
    window_start = float(figures["first_sent"])
    window_s = throughput = steady = None
    timeline: list[tuple[int, int]] = []
    if completed:
        window_s = float(figures["last_finished"]) - window_start
        throughput = completed / window_s * 60 if window_s > 0 else None
        modes = {run.get("mode") for run in log.runs}
        t10, t90 = figures["finished_q"]
        if completed >= 20 and modes and modes <= {"sustained", "ramp", "stages"} and t90 > t10:
            steady = 0.8 * completed / (t90 - t10) * 60  # the middle 80% of completions
        # completions per wall-clock minute, counted from the minute of the first send
        first_minute = math.floor(window_start / 60)
        per_minute = {int(k) - first_minute: int(v) for k, v in (figures["per_minute"] or {}).items()}
        timeline = [(m, per_minute.get(m, 0)) for m in range(max(per_minute) + 1)] if per_minute else []

    service = _stats(figures, "s")
    wait = _stats(figures, "w")
    response = _stats(figures, "r")
    skewed = int(figures["skewed"])
    clock_skew = {"tasks": skewed, "largest_s": -float(figures["most_skewed"]) if skewed else 0.0}
    if skewed:
        problems.warn(
            f"clock skew: {skewed} tasks started or finished before they were sent, by up to "
            f"{clock_skew['largest_s']:.3f} s: the injector's and workers' clocks disagree (NTP?)"
        )
    utilization = None
    if concurrency and throughput is not None and service["mean"] is not None:
        utilization = throughput / 60 * service["mean"] / concurrency
    littles: dict[str, Any] = {"L_from_X_R": None, "L_observed": None, "observed_from": None}
    if throughput is not None and response["mean"] is not None:
        littles["L_from_X_R"] = throughput / 60 * response["mean"]
    phase_trend = None
    if samples and window_s is not None:
        in_window = [s for s in samples if window_start <= s.t <= window_start + window_s]
        if in_window:
            littles["L_observed"] = float(np.mean([s.visible + (s.in_flight or 0) for s in in_window]))
            littles["observed_from"] = "monitor samples (visible + in flight)"
        modes = {run.get("mode") for run in log.runs}
        if modes and modes <= {"sustained", "ramp", "stages"}:
            rates = [r.get("rate_per_s") for r in log.runs]
            rate_per_min = sum(max(r) if isinstance(r, list) else (r or 0) for r in rates) * 60
            found = trend(samples, window_start, float(figures["last_sent"]), rate_per_min)
            phase_trend = {
                "slope_per_min": found.slope_per_min,
                "verdict": found.verdict,
                "samples": found.samples,
                "tolerance_per_min": found.tolerance_per_min,
            }
    if not sources:
        problems.warn("no --timings source: completions are unknown, every task counts as missing")
    return Metrics(
        sent=n,
        completed=completed,
        failed=failed,
        missing=n - completed - failed,
        window_s=window_s,
        throughput_per_min=throughput,
        throughput_steady_per_min=steady,
        service=service,
        wait=wait,
        wait_received=_stats(figures, "wr"),
        response=response,
        seed_s=_stats(figures, "ss"),
        timeline=timeline,
        utilization=utilization,
        littles_law=littles,
        duplicates=duplicates,
        unknown_timings=unknown,
        clock_skew=clock_skew,
        trend=phase_trend,
        sources=list(sources),
        problems=problems,
        concurrency=concurrency,
    )


def run_metrics(
    tasks_log: list[Path],
    timings: list[str],
    concurrency: int | None = None,
    query: str | None = None,
    columns: RecordColumns | None = None,
    skip_bad: bool = False,
    per_task_csv: Path | None = None,
) -> Metrics:
    """Read the task logs and every timings source (default $CAPACITY_TIMINGS), and compute."""
    problems = Problems()
    log = read_task_logs(tasks_log, problems, skip_bad)
    sources = timings or ([os.environ[PROBE_ENV_VAR]] if os.environ.get(PROBE_ENV_VAR) else [])
    settings = SourceSettings(columns or RecordColumns(), query, skip_bad)
    try:
        kinds = [load_source(s, log, settings) for s in sources]
        result = compute(log, kinds, problems, concurrency, read_monitor_samples(log.paths))
        if per_task_csv is not None:
            log.store.write_per_task(per_task_csv)
        return result
    finally:
        log.store.close()


# --- --fail-if ---------------------------------------------------------------------------------------

_THRESHOLD = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*(<=|>=|<|>|==)\s*(\S+)\s*$")
_DURATIONS = {
    "p50": ("service_time_p50_s", "service time p50"),
    "p90": ("service_time_p90_s", "service time p90"),
    "p95": ("service_time_p95_s", "service time p95"),
    "p99": ("service_time_p99_s", "service time p99"),
    "s": ("service_time_mean_s", "mean service time"),
    "w": ("wait_mean_s", "mean wait"),
    "wait_p95": ("wait_p95_s", "wait p95"),
    "r": ("response_time_mean_s", "mean response time"),
    "r_p95": ("response_time_p95_s", "response time p95"),
}
_COUNTS = {"failed": "failed", "missing": "missing", "sent": "sent", "completed": "completed"}


def check_thresholds(expressions: list[str], data: dict[str, Any]) -> list[str]:
    """k6-style thresholds ("X<10/min", "p95>30s", "completion<0.95"): the broken ones, as text.

    Each expression says when the run FAILS; a figure that is missing breaks it too."""
    broken = []
    for text in expressions:
        match = _THRESHOLD.match(text)
        if not match:
            raise InputError(f"--fail-if {text!r}: expected NAME OP VALUE, e.g. 'X<10/min', 'p95>30s'")
        name, op, raw = match.group(1).lower(), match.group(2), match.group(3)
        if name in ("x", "throughput"):
            key, label, bound = "throughput_per_min", "X", parse_rate(raw, f"--fail-if {text!r}", bare_unit="min") * 60
        elif name in _DURATIONS:
            key, label = _DURATIONS[name]
            bound = parse_duration(raw, f"--fail-if {text!r}")
        elif name in ("completion", "completion_rate"):
            key, label = "completion_rate", "completion rate"
            bound = float(raw.rstrip("%")) / 100 if raw.endswith("%") else _number(raw, text)
        elif name in _COUNTS:
            key, label, bound = _COUNTS[name], name, _number(raw, text)
        else:
            raise InputError(
                f"--fail-if {text!r}: unknown figure {name!r}; use X, p50, p90, p95, p99, S, W, R, "
                "wait_p95, r_p95, completion, failed, missing"
            )
        value = data.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            broken.append(f"{text} ({label} was not measured)")
            continue
        hit = {
            "<": value < bound,
            "<=": value <= bound,
            ">": value > bound,
            ">=": value >= bound,
            "==": value == bound,
        }[op]
        if hit:
            broken.append(f"{text} ({label} = {value:.4g})")
    return broken


def _number(raw: str, text: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise InputError(f"--fail-if {text!r}: {raw!r} is not a number") from None


def enforce(expressions: list[str], data: dict[str, Any]) -> None:
    broken = check_thresholds(expressions, data)
    if broken:
        raise CheckFailed("thresholds broken: " + "; ".join(broken))
