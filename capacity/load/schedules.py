"""Load shapes as pure schedules: each answers "when is task i due", in seconds from the start.

No clocks and no sleeping here (locust's shape.py idea): one runner drives any schedule, so every
shape is testable by looking at numbers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

from capacity.errors import InputError
from capacity.files import read_input
from capacity.units import parse_duration, parse_rate


class Schedule(Protocol):
    """A finite, non-decreasing sequence of send offsets."""

    @property
    def mode(self) -> str: ...

    @property
    def count(self) -> int: ...

    def offsets(self) -> Iterator[float]: ...


@dataclass(frozen=True)
class Burst:
    """All N at once: every task is due at t = 0."""

    n: int
    mode: str = "burst"

    @property
    def count(self) -> int:
        return self.n

    def offsets(self) -> Iterator[float]:
        return itertools.repeat(0.0, self.n)


@dataclass(frozen=True)
class Ramp:
    """A rate going linearly from ``start_per_s`` to ``end_per_s`` over ``duration_s``.

    Task i is due when the cumulative count N(t) = r0 t + (r1 - r0) t^2 / (2 D) reaches i; a
    fixed rate is the ramp with r0 = r1. ``limit`` caps the count (``--count`` with a rate).
    """

    start_per_s: float
    end_per_s: float
    duration_s: float
    limit: int | None = None
    mode: str = "ramp"

    @property
    def count(self) -> int:
        total = math.floor((self.start_per_s + self.end_per_s) / 2 * self.duration_s + 1e-9)
        return total if self.limit is None else min(total, self.limit)

    def offset(self, i: int) -> float:
        r0, r1, d = self.start_per_s, self.end_per_s, self.duration_s
        a = (r1 - r0) / (2 * d)
        if abs(a) < 1e-15:
            return i / r0
        return (-r0 + math.sqrt(r0 * r0 + 4 * a * i)) / (2 * a)

    def offsets(self) -> Iterator[float]:
        for i in range(self.count):
            yield self.offset(i)


#: the most tasks one schedule may hold: far beyond any run (a month at 100,000/s is 2.6e11), and
#: an exact integer in a float, so a rate x duration past it is a typo, refused before counting
MAX_SCHEDULED = 10**13


def checked_ramp(
    start: float, end: float, duration_s: float, where: str, limit: int | None = None, mode: str = "ramp"
) -> Ramp:
    """A Ramp whose task count (rate x duration) is a finite number a run can hold."""
    tasks = (start + end) / 2 * duration_s
    if not math.isfinite(tasks) or tasks > MAX_SCHEDULED:
        raise InputError(f"{where}: {tasks:.3g} tasks (rate x duration); at most {MAX_SCHEDULED:.0e} in one run")
    return Ramp(start, end, duration_s, limit, mode)


def fixed_rate(rate_per_s: float, count: int | None = None, duration_s: float | None = None) -> Ramp:
    """Seed 003's sustained mode: a fixed rate for a count (first at 0) or a duration."""
    if rate_per_s <= 0:
        raise InputError("sustained mode needs a rate above zero")
    if count is None and duration_s is None:
        raise InputError("sustained mode needs --count or --duration")
    if duration_s is None:
        assert count is not None
        duration_s = count / rate_per_s
    return checked_ramp(rate_per_s, rate_per_s, duration_s, "sustained mode", limit=count, mode="sustained")


@dataclass(frozen=True)
class Stages:
    """Stages one after another (k6's stages): each a fixed rate or a ramp for a duration."""

    stages: tuple[Ramp, ...]
    mode: str = "stages"

    @property
    def count(self) -> int:
        return sum(s.count for s in self.stages)

    def offsets(self) -> Iterator[float]:
        start = 0.0
        for stage in self.stages:
            for offset in stage.offsets():
                yield start + offset
            start += stage.duration_s


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``total`` (0-based, as Kubernetes' JOB_COMPLETION_INDEX): every
    ``total``-th task of the whole schedule, starting at task ``index``.

    Interleaving keeps each shard's share of the count and of the rate (1/total, for every shape,
    ramps and stages included) and makes the shards' sends together exactly the whole schedule,
    so several machines started at one instant send what one machine would have sent."""

    whole: Schedule
    index: int
    total: int

    @property
    def mode(self) -> str:
        return self.whole.mode

    @property
    def count(self) -> int:
        return len(range(self.index, self.whole.count, self.total))

    def offsets(self) -> Iterator[float]:
        for i, offset in enumerate(self.whole.offsets()):
            if i % self.total == self.index:
                yield offset


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (0 <= I < N) into (I, N)."""
    index, sep, total = text.partition("/")
    try:
        pair = (int(index), int(total))
    except ValueError:
        raise InputError(f"--shard: {text!r} is not I/N, e.g. 0/4 (I counts from 0, as JOB_COMPLETION_INDEX)") from None
    if not sep or pair[1] < 1 or not 0 <= pair[0] < pair[1]:
        raise InputError(f"--shard: {text!r} needs 0 <= I < N (I counts from 0, as JOB_COMPLETION_INDEX)")
    return pair


def load_stages(path: Path) -> Stages:
    """Stages from YAML: a list of ``{duration: 1m, rate: 10/s}`` or ``{duration, from, to}``."""
    try:
        raw = yaml.safe_load(read_input(path))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read stages: {exc}") from None
    items = raw.get("stages") if isinstance(raw, dict) else raw
    if not isinstance(items, list) or not items:
        raise InputError(f"{path}: expected a list of stages, each with duration and rate (or from/to)")
    stages = []
    for index, item in enumerate(items, 1):
        where = f"{path}: stage {index}"
        if not isinstance(item, dict) or "duration" not in item:
            raise InputError(f"{where}: needs duration and rate (or from and to)")
        duration = parse_duration(item["duration"], f"{where} duration")
        if "rate" in item:
            start = end = parse_rate(item["rate"], f"{where} rate")
        elif "from" in item and "to" in item:
            start = parse_rate(item["from"], f"{where} from")
            end = parse_rate(item["to"], f"{where} to")
        else:
            raise InputError(f"{where}: needs rate, or from and to")
        if duration <= 0 or (start == 0 and end == 0):
            raise InputError(f"{where}: duration and rate must be above zero")
        stages.append(checked_ramp(start, end, duration, where))
    return Stages(tuple(stages))


def describe(schedule: Schedule) -> dict[str, object]:
    """The schedule's parameters for the task log's run line (a shard's: its own share)."""
    if isinstance(schedule, Shard):
        whole = describe(schedule.whole)
        share = 1 / schedule.total
        whole_rate = whole.get("rate_per_s")
        if isinstance(whole_rate, (int, float)):
            whole["rate_per_s"] = whole_rate * share
        elif isinstance(whole_rate, list):
            whole["rate_per_s"] = [r * share for r in whole_rate]
        stages = whole.get("stages")
        if isinstance(stages, list):
            whole["stages"] = [
                {**s, "from_per_s": s["from_per_s"] * share, "to_per_s": s["to_per_s"] * share} for s in stages
            ]
        return {**whole, "count": schedule.count, "shard": [schedule.index, schedule.total]}
    if isinstance(schedule, Burst):
        return {"mode": "burst", "count": schedule.n}
    if isinstance(schedule, Ramp):
        rate: object = (
            schedule.start_per_s if schedule.mode == "sustained" else [schedule.start_per_s, schedule.end_per_s]
        )
        return {"mode": schedule.mode, "rate_per_s": rate, "duration_s": schedule.duration_s, "count": schedule.count}
    if isinstance(schedule, Stages):
        return {
            "mode": "stages",
            "count": schedule.count,
            "stages": [
                {"from_per_s": s.start_per_s, "to_per_s": s.end_per_s, "duration_s": s.duration_s}
                for s in schedule.stages
            ],
        }
    return {"mode": schedule.mode, "count": schedule.count}


def lateness_summary(lateness_s: Sequence[float]) -> dict[str, float | int | None]:
    """p50, p99 and max lateness, and how many tasks were more than 1 s late."""
    if not lateness_s:
        return {"p50_s": None, "p99_s": None, "max_s": None, "late_over_1s": 0}
    import numpy as np

    values = np.asarray(lateness_s, dtype=float)
    return {
        "p50_s": float(np.percentile(values, 50)),
        "p99_s": float(np.percentile(values, 99)),
        "max_s": float(values.max()),
        "late_over_1s": int((values > 1.0).sum()),
    }


def build_schedule(
    mode: str, count: int | None, rate: str | None, duration: str | None, ramp_to: str | None, stages: Path | None
) -> Schedule:
    if count is not None and count < 0:
        raise InputError(f"--count must be zero or more, got {count}")
    duration_s = parse_duration(duration, "--duration") if duration else None
    if mode == "burst":
        if count is None:
            raise InputError("burst mode needs --count")
        return Burst(count)
    if mode == "sustained":
        if rate is None:
            raise InputError("sustained mode needs --rate (e.g. 10/min; a bare number is per minute)")
        return fixed_rate(parse_rate(rate, "--rate", bare_unit="min"), count, duration_s)
    if mode == "ramp":
        if stages is not None:
            return load_stages(stages)
        if rate is None or ramp_to is None or duration_s is None:
            raise InputError("ramp mode needs --rate (start), --ramp-to (end) and --duration, or --stages FILE")
        start, end = parse_rate(rate, "--rate", bare_unit="min"), parse_rate(ramp_to, "--ramp-to", bare_unit="min")
        if duration_s <= 0 or (start == 0 and end == 0):
            raise InputError("ramp mode needs a duration and a rate above zero")
        return checked_ramp(start, end, duration_s, "ramp mode", limit=count)
    raise InputError(f"--mode: {mode!r} is not burst, sustained or ramp")
