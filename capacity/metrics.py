"""``metrics``: throughput X, service time S, wait W, response time R and stability, from task
logs joined by task id with completion timings. Every figure comes from measured timestamps; a
timing that is missing stays missing (None), never guessed."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from capacity.errors import CheckFailed, InputError
from capacity.monitor import Sample, trend
from capacity.store import as_bool, as_float
from capacity.timings import Problems, TaskLog
from capacity.units import parse_duration, parse_rate

SUCCESS = "SUCCESS"
PERCENTILES = (50, 90, 95, 99)


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
    per_task: pa.Table | None = field(default=None, repr=False)

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


def _stats(values: np.ndarray) -> dict[str, float | None]:
    """Mean, p50/p90/p95/p99, max of the finite values; None where there are none."""
    finite = values[np.isfinite(values)]
    keys = ["mean", *(f"p{p}" for p in PERCENTILES), "max"]
    if finite.size == 0:
        return dict.fromkeys(keys, None)
    quantiles = np.percentile(finite, PERCENTILES)
    return {
        "mean": float(finite.mean()),
        **{f"p{p}": float(q) for p, q in zip(PERCENTILES, quantiles, strict=True)},
        "max": float(finite.max()),
    }


def read_monitor_samples(log_paths: list[Path]) -> list[Sample]:
    """Monitor samples saved by ``inject --monitor`` beside each log, if any."""
    from datetime import datetime

    samples = []
    for path in log_paths:
        monitor = path.with_name(path.stem + "_monitor.csv")
        if not monitor.is_file():
            continue
        with monitor.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                samples.append(
                    Sample(
                        datetime.fromisoformat(row["timestamp"]).timestamp(),
                        int(row["visible"]),
                        int(row["in_flight"]) if row["in_flight"] else None,
                        int(row["sent_so_far"]),
                    )
                )
    return sorted(samples, key=lambda s: s.t)


def compute(
    log: TaskLog,
    sources: list[str],
    problems: Problems,
    concurrency: int | None = None,
    samples: list[Sample] | None = None,
    keep_per_task: bool = False,
) -> Metrics:
    """Join the logs with the timings (in the log's store) and compute every figure."""
    if concurrency is not None and concurrency < 1:
        raise InputError(f"--concurrency must be at least 1, got {concurrency}")
    columns, unknown, duplicates = log.store.join(with_ids=keep_per_task)
    if duplicates:
        problems.warn(f"{duplicates} duplicate task ids in the task logs: each is counted once, at its first send")
    if unknown:
        problems.warn(f"{unknown} task ids have timings but are in no task log (another run, or a log not given)")

    sent = as_float(columns["sent"])
    received = as_float(columns["received"])
    started = as_float(columns["started"])
    finished = as_float(columns["finished"])
    record_start = as_float(columns["record_start"])
    has_state = as_bool(columns["has_state"])
    is_success = as_bool(columns["is_success"])
    done = np.isfinite(finished)
    completed_mask = done & (is_success | ~has_state)
    failed_mask = done & has_state & ~is_success
    n = len(sent)
    completed, failed = int(completed_mask.sum()), int(failed_mask.sum())

    window_start = float(np.nanmin(sent))
    window_s = throughput = steady = None
    timeline: list[tuple[int, int]] = []
    if completed:
        finish_times = np.sort(finished[completed_mask])
        window_s = float(finish_times[-1] - window_start)
        throughput = completed / window_s * 60 if window_s > 0 else None
        modes = {run.get("mode") for run in log.runs}
        if completed >= 20 and modes and modes <= {"sustained", "ramp", "stages"}:
            t10, t90 = np.percentile(finish_times, [10, 90])
            inside = int(((finish_times >= t10) & (finish_times <= t90)).sum())
            steady = inside / (t90 - t10) * 60 if t90 > t10 else None
        minutes = np.floor((finish_times - window_start) / 60).astype(np.int64)
        counts = np.bincount(np.clip(minutes, 0, None))
        timeline = [(int(m), int(c)) for m, c in enumerate(counts)]

    ok = completed_mask
    service = _stats(np.where(ok, finished - started, np.nan))
    wait_values = np.where(np.isfinite(started), started - sent, np.nan)
    wait = _stats(wait_values)
    wait_received = _stats(np.where(np.isfinite(started), started - received, np.nan))
    response_values = np.where(ok, finished - sent, np.nan)
    response = _stats(response_values)
    seed_s = _stats(np.where(ok, finished - record_start, np.nan))

    skew_values = np.concatenate(
        [
            wait_values[np.isfinite(wait_values) & (wait_values < 0)],
            response_values[np.isfinite(response_values) & (response_values < 0)],
        ]
    )
    skewed_tasks = int(((wait_values < 0) | (response_values < 0)).sum())
    clock_skew = {"tasks": skewed_tasks, "largest_s": float(-skew_values.min()) if skew_values.size else 0.0}
    if skewed_tasks:
        problems.warn(
            f"clock skew: {skewed_tasks} tasks started or finished before they were sent, by up to "
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
            last_send = float(np.nanmax(sent))
            found = trend(samples, window_start, last_send, rate_per_min)
            phase_trend = {
                "slope_per_min": found.slope_per_min,
                "verdict": found.verdict,
                "samples": found.samples,
                "tolerance_per_min": found.tolerance_per_min,
            }
    kinds = list(sources)
    if not sources:
        problems.warn("no --timings source: completions are unknown, every task counts as missing")
    per_task = None
    if keep_per_task:
        per_task = pa.table(
            {
                "task_id": pa.array([str(t) for t in columns["task_id"]], pa.string()),
                "sent": sent,
                "received": received,
                "started": started,
                "finished": finished,
                "state": pa.array([None if v is np.ma.masked else v for v in columns["state"]], pa.string()),
                "service_s": finished - started,
                "wait_s": started - sent,
                "response_s": finished - sent,
            }
        )
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
        wait_received=wait_received,
        response=response,
        seed_s=seed_s,
        timeline=timeline,
        utilization=utilization,
        littles_law=littles,
        duplicates=duplicates,
        unknown_timings=unknown,
        clock_skew=clock_skew,
        trend=phase_trend,
        sources=kinds,
        problems=problems,
        concurrency=concurrency,
        per_task=per_task,
    )


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
