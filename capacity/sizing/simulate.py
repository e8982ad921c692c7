"""A discrete-event simulation of a pool of c worker slots, FCFS: what a burst or a rate does.

Each task takes the slot that frees first (a heap of slot free-times, one heap operation per
task), starts at max(its arrival, that time) and holds the slot for its service time. Arrivals
and service times are drawn with numpy, seeded, so every run is reproducible.
"""

from __future__ import annotations

import csv
import heapq
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from capacity.errors import InputError
from capacity.files import input_lines
from capacity.sizing.memory import check_tasks_fit

ARRIVALS = ("burst", "fixed", "poisson", "replay")
#: bounds on one simulate run: replications, and tasks x replications (~0.3 s per million here)
MAX_REPLICATIONS = 10_000
MAX_SIMULATED = 200_000_000
SERVICES = ("constant", "exponential", "lognormal", "empirical")


@dataclass(frozen=True)
class RateLimit:
    """BullMQ's limiter: at most ``max_jobs`` started per ``duration_s`` window, whatever the
    concurrency. A window opens at the first start after the last one closed (BullMQ's limiter
    key expires ``duration`` after its first job)."""

    max_jobs: int
    duration_s: float

    @property
    def per_s(self) -> float:
        return self.max_jobs / self.duration_s


@dataclass(frozen=True)
class Workload:
    """How tasks arrive and how long each takes."""

    slots: int
    arrival: str = "poisson"
    arrival_rate_per_s: float | None = None
    count: int = 10_000
    service: str = "exponential"
    service_time_s: float | None = None
    service_cv: float = 1.0
    replay_offsets_s: np.ndarray | None = field(default=None, compare=False)
    empirical_s: np.ndarray | None = field(default=None, compare=False)
    rate_limit: RateLimit | None = None

    def check(self) -> None:
        if self.slots < 1:
            raise InputError(f"--workers must be at least 1, got {self.slots}")
        if self.arrival not in ARRIVALS:
            raise InputError(f"--arrival: {self.arrival!r} is not one of {', '.join(ARRIVALS)}")
        if self.service not in SERVICES:
            raise InputError(f"--service: {self.service!r} is not one of {', '.join(SERVICES)}")
        if self.arrival in ("fixed", "poisson") and not (self.arrival_rate_per_s and self.arrival_rate_per_s > 0):
            raise InputError(f"--arrival {self.arrival} needs --arrival-rate above zero")
        if self.arrival == "replay" and (self.replay_offsets_s is None or not len(self.replay_offsets_s)):
            raise InputError("--arrival replay needs --tasks-log with sent tasks")
        if self.arrival != "replay" and self.count < 1:
            raise InputError(f"--count must be at least 1, got {self.count}")
        if self.service == "empirical":
            if self.empirical_s is None or not len(self.empirical_s):
                raise InputError("--service empirical needs --from-metrics with measured service times")
        elif not (self.service_time_s and self.service_time_s > 0):
            raise InputError(f"--service {self.service} needs --service-time above zero")
        if not (math.isfinite(self.service_cv) and self.service_cv >= 0):
            raise InputError(f"--service-cv must be zero or more, got {self.service_cv:g}")

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(arrival times, service times) for one replication."""
        if self.arrival == "replay":
            assert self.replay_offsets_s is not None
            arrivals = np.sort(np.asarray(self.replay_offsets_s, dtype=float))
        elif self.arrival == "burst":
            arrivals = np.zeros(self.count)
        elif self.arrival == "fixed":
            assert self.arrival_rate_per_s is not None
            arrivals = np.arange(self.count) / self.arrival_rate_per_s
        else:
            assert self.arrival_rate_per_s is not None
            arrivals = np.cumsum(rng.exponential(1 / self.arrival_rate_per_s, self.count))
            arrivals -= arrivals[0]
        return arrivals, self.services(rng, len(arrivals))

    def services(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` service times (after the arrivals, from the same generator)."""
        mean = self.service_time_s or 0.0
        if self.service == "constant":
            return np.full(n, mean)
        if self.service == "exponential":
            return rng.exponential(mean, n)
        if self.service == "lognormal":
            sigma2 = math.log(1 + self.service_cv**2)
            return rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2), n)
        assert self.empirical_s is not None
        return rng.choice(np.asarray(self.empirical_s, dtype=float), n, replace=True)


def run_pool(arrivals: np.ndarray, services: np.ndarray, slots: int, limit: RateLimit | None = None) -> np.ndarray:
    """Start times of FCFS tasks on ``slots`` slots (arrivals sorted), under ``limit`` if given."""
    free = [0.0] * slots  # a valid heap: all slots free at 0
    starts: list[float] = []
    append, replace = starts.append, heapq.heapreplace
    if limit is None:
        for arrival, service in zip(arrivals.tolist(), services.tolist(), strict=True):
            earliest = free[0]
            start = earliest if earliest > arrival else arrival
            append(start)
            replace(free, start + service)
        return np.array(starts)
    window_start, in_window, previous = -math.inf, 0, -math.inf
    for arrival, service in zip(arrivals.tolist(), services.tolist(), strict=True):
        start = max(free[0], arrival, previous)  # FCFS: no task starts before the one ahead of it
        if start >= window_start + limit.duration_s:
            window_start, in_window = start, 0
        elif in_window >= limit.max_jobs:  # the window is full: wait for it to close
            start = window_start + limit.duration_s
            window_start, in_window = start, 0
        in_window += 1
        previous = start
        append(start)
        replace(free, start + service)
    return np.array(starts)


def _summaries(**columns: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean, p50, p95, p99 and max of each column, in one numpy pass."""
    names = list(columns)
    stacked = np.vstack([columns[name] for name in names])
    quantiles = np.percentile(stacked, [50, 95, 99], axis=1)
    means, maxima = stacked.mean(axis=1), stacked.max(axis=1)
    return {
        name: {
            "mean": float(means[i]),
            "p50": float(quantiles[0, i]),
            "p95": float(quantiles[1, i]),
            "p99": float(quantiles[2, i]),
            "max": float(maxima[i]),
        }
        for i, name in enumerate(names)
    }


@dataclass(frozen=True)
class Replications:
    """A simulation's result: what was modelled, the figures pooled over replications (means,
    with 95% confidence half-widths when there are several) and the first run's queue depth."""

    model: str
    replications: int
    seed: int
    tasks: int | None
    throughput_per_min: float
    service_time_mean_s: float
    wait_mean_s: float
    wait_p50_s: float
    wait_p95_s: float
    wait_p99_s: float
    wait_max_s: float
    response_time_mean_s: float
    response_time_p95_s: float
    response_time_p99_s: float
    drain_time_s: float
    utilization: float
    ci95_half_width: dict[str, float] | None = None
    queue_depth: tuple[dict[str, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["queue_depth"] = list(self.queue_depth)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Replications:
        return cls(**{**data, "queue_depth": tuple(data.get("queue_depth") or ())})


#: the pooled figures, in the order the JSON has them
FIGURES = tuple(f.name for f in fields(Replications) if f.type == "float")


def replicate(workload: Workload, seed: int = 1, replications: int = 1, depth_points: int = 200) -> Replications:
    """Run ``replications`` seeded replications; means, with 95% confidence intervals when > 1."""
    workload.check()
    if not 1 <= replications <= MAX_REPLICATIONS:
        raise InputError(f"--replications must be 1 to {MAX_REPLICATIONS:,}, got {replications}")
    offsets = workload.replay_offsets_s
    tasks = len(offsets) if workload.arrival == "replay" and offsets is not None else workload.count
    if tasks * replications > MAX_SIMULATED:
        raise InputError(
            f"{tasks:,} tasks x {replications:,} replications: at most {MAX_SIMULATED:,} simulated tasks "
            "(about a minute here)"
        )
    check_tasks_fit(tasks)
    runs = []
    depth: list[dict[str, float]] = []
    for k in range(replications):
        rng = np.random.default_rng(seed + k)
        arrivals, services = workload.draw(rng)
        starts = run_pool(arrivals, services, workload.slots, workload.rate_limit)
        finishes = starts + services
        wait, response = starts - arrivals, finishes - arrivals
        horizon = float(finishes.max() - arrivals.min())
        runs.append(
            {
                "throughput_per_min": len(arrivals) / horizon * 60 if horizon > 0 else math.inf,
                **_summaries(service=services, wait=wait, response=response),
                "drain_time_s": horizon,
                "utilization": float(services.sum() / (workload.slots * horizon)) if horizon > 0 else 1.0,
            }
        )
        if k == 0:
            grid = np.linspace(arrivals.min(), finishes.max(), depth_points)
            # FCFS start times never decrease, so both arrays are already sorted
            waiting = np.searchsorted(arrivals, grid, side="right") - np.searchsorted(starts, grid, side="right")
            depth = [{"t_s": float(t), "waiting": int(w)} for t, w in zip(grid, waiting, strict=True)]

    def pooled(get: Any) -> tuple[float, float | None]:
        values = np.array([get(r) for r in runs], dtype=float)
        if len(values) < 2:
            return float(values[0]), None
        from scipy import stats

        half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
        return float(values.mean()), half

    keys = {
        "throughput_per_min": lambda r: r["throughput_per_min"],
        "service_time_mean_s": lambda r: r["service"]["mean"],
        "wait_mean_s": lambda r: r["wait"]["mean"],
        "wait_p50_s": lambda r: r["wait"]["p50"],
        "wait_p95_s": lambda r: r["wait"]["p95"],
        "wait_p99_s": lambda r: r["wait"]["p99"],
        "wait_max_s": lambda r: r["wait"]["max"],
        "response_time_mean_s": lambda r: r["response"]["mean"],
        "response_time_p95_s": lambda r: r["response"]["p95"],
        "response_time_p99_s": lambda r: r["response"]["p99"],
        "drain_time_s": lambda r: r["drain_time_s"],
        "utilization": lambda r: r["utilization"],
    }
    figures: dict[str, float] = {}
    intervals = {}
    for key, get in keys.items():
        figures[key], half = pooled(get)
        if half is not None:
            intervals[key] = half
    return Replications(  # figures holds exactly the float fields
        model=f"c={workload.slots} slots, FCFS, {workload.arrival} arrivals, {workload.service} service"
        + (
            f", limiter {workload.rate_limit.max_jobs} per {workload.rate_limit.duration_s:g} s"
            if workload.rate_limit
            else ""
        ),
        replications=replications,
        seed=seed,
        tasks=len(workload.draw(np.random.default_rng(seed))[0]) if workload.arrival == "replay" else workload.count,
        **figures,
        ci95_half_width=intervals or None,
        queue_depth=tuple(depth),
    )


def read_per_task(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A per-task CSV from ``capacity metrics --csv``: the send times (epoch s) of every task, and
    the measured service times (``service_s``) of those that completed."""
    try:
        with path.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(input_lines(handle, path)))
        sent = [float(r["sent"]) for r in rows if r.get("sent") not in (None, "")]
        services = [float(r["service_s"]) for r in rows if r.get("service_s") not in (None, "", "nan")]
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, TypeError) as exc:
        detail = getattr(exc, "strerror", None) or exc
        raise InputError(f"--from-metrics {path}: not a per-task CSV from capacity metrics --csv ({detail})") from None
    return np.array(sent), np.array(services)


def read_service_times(path: Path) -> np.ndarray:
    """The measured service times (``service_s``) of a per-task CSV from ``capacity metrics --csv``."""
    services = read_per_task(path)[1]
    if not len(services):
        raise InputError(f"--from-metrics {path}: no service_s column with values (capacity metrics --csv)")
    return services
