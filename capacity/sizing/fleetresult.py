"""The fleet simulation's inputs and results (capacity.sizing.autoscale): task classes and pools in,
each class's and pool's figures and the timeline out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from capacity.sizing.policies import Fleet, Policy


@dataclass(frozen=True)
class TaskClass:
    """Tasks of one kind on one queue: their arrival and service times (arrivals from 0)."""

    name: str
    queue: str
    arrivals: np.ndarray = field(compare=False)
    services: np.ndarray = field(compare=False)
    #: instead of the arrays: a source drawing them a block at a time (capacity.sizing.stream),
    #: for a run whose tasks do not fit in memory; its figures are then streamed (percentiles
    #: from a sketch, within 1%)
    source: Any = field(default=None, compare=False)

    @property
    def tasks(self) -> int:
        return int(self.source.count) if self.source is not None else len(self.arrivals)


@dataclass(frozen=True)
class Pool:
    """Replicas consuming ``queues`` in priority order, sized by ``fleet`` under ``policy``."""

    name: str
    queues: tuple[str, ...]
    fleet: Fleet
    policy: Policy


@dataclass(frozen=True)
class ClassResult:
    name: str
    queue: str
    tasks: int
    wait_mean_s: float
    wait_p95_s: float
    wait_p99_s: float
    wait_max_s: float
    response_mean_s: float
    response_p95_s: float
    drain_time_s: float
    seconds_above_wait_target: float
    seconds_critical: float
    #: how long more than QUEUE_CRITICAL tasks waited in this queue (seed 002: depth > 100 is critical)
    seconds_queue_critical: float = 0.0


@dataclass(frozen=True)
class PoolResult:
    name: str
    policy: str
    max_replicas: int
    replica_hours: float
    utilization: float
    timeline: tuple[dict[str, float], ...] = field(default=())


@dataclass(frozen=True)
class AutoscaleResult:
    """One run: the whole fleet's figures, then per class and per pool."""

    policy: str
    tasks: int
    drain_time_s: float
    max_replicas: int
    wait_mean_s: float
    wait_p95_s: float
    wait_p99_s: float
    response_p95_s: float
    replica_hours: float
    seconds_above_wait_target: float
    seconds_critical: float
    timeline: tuple[dict[str, float], ...] = field(default=())
    #: the longest any queue spent above seed 002's critical depth
    seconds_queue_critical: float = 0.0
    classes: tuple[ClassResult, ...] = ()
    pools: tuple[PoolResult, ...] = ()
    #: the replicas that keep running once the fleet is back at its minimum (its fixed size)
    floor_replicas: int = 0
    #: from 0 to the end of the run: the last task, or the fleet back at its minimum (the window
    #: its replica-hours cover)
    span_s: float = 0.0
    #: how the wait and response percentiles were found: "exact", or "sketch" (streamed, within 1%)
    percentiles: str = "exact"

    def replica_hours_over(self, span_s: float) -> float:
        """The replica-hours of a longer window than this run's: the floor runs on to ``span_s``.
        Runs of one trace under different settings end at different times; over one window their
        costs compare."""
        return self.replica_hours + self.floor_replicas * max(0.0, span_s - self.span_s) / 3600

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k not in ("classes", "pools")}
        data["timeline"] = list(self.timeline)
        data["classes"] = {c.name: asdict(c) for c in self.classes}
        data["pools"] = {p.name: {**asdict(p), "timeline": list(p.timeline)} for p in self.pools}
        return data
