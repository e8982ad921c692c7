"""The fleet file (YAML): task classes on queues, and pools of replicas consuming those queues.

One home for the format: ``capacity simulate --fleet`` (fixed replicas), ``capacity autoscale
--fleet`` (each pool under its policy) and ``capacity recommend topology --format fleet`` (which
writes one) all go through here. Seed 004's question, "does separating emails from
bulk_predictions keep email delays under 30 s?", is two files compared::

    classes:
      - {name: emails, queue: emails, arrivals: {kind: poisson, rate: 2/s, count: 20000},
         service: {kind: lognormal, mean: 1s, cv: 0.5}}
      - {name: bulk, queue: bulk_predictions, arrivals: {kind: burst, count: 500, at: 60s},
         service: {kind: constant, mean: 30s}}
    pools:
      - {name: emails, queues: [emails], concurrency: 4, replicas: 1}
      - {name: bulk, queues: [bulk_predictions], concurrency: 2, policy: keda-redis, target: 20,
         min_replicas: 1, max_replicas: 10, startup: 30s}

A pool takes from its queues in the order listed (the first non-empty one first). Relative paths
(stages files, task logs, metrics CSVs) are read from the fleet file's folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from capacity.errors import InputError
from capacity.profiles import Seconds, _Frozen, describe_invalid, load_file
from capacity.sizing.autoscale import Pool, TaskClass
from capacity.sizing.memory import check_tasks_fit
from capacity.sizing.policies import POLICIES, Fleet, Policy
from capacity.sizing.simulate import Workload, read_service_times
from capacity.units import parse_rate

#: more tasks than this in one fleet file is refused (the arrays take ~40 bytes a task)
MAX_TASKS = 200_000_000


def _rate(value: Any) -> float:
    try:
        return parse_rate(value, "rate")
    except InputError as exc:
        raise ValueError(str(exc)) from None


class Arrivals(_Frozen):
    kind: Literal["burst", "fixed", "poisson", "stages", "replay"]
    count: int | None = Field(default=None, ge=1)
    rate: str | float | None = None
    at: Seconds = 0.0  # offset of the first arrival
    stages: str | None = None  # a stages file (inject --stages)
    tasks_log: list[str] | None = None
    speedup: float = Field(default=1.0, gt=0)
    volume: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> Arrivals:
        if self.kind in ("fixed", "poisson") and (self.rate is None or self.count is None):
            raise ValueError(f"{self.kind} arrivals need rate and count")
        if self.kind == "burst" and self.count is None:
            raise ValueError("burst arrivals need count")
        if self.kind == "stages" and not self.stages:
            raise ValueError("stages arrivals need stages (a stages file, as inject --stages)")
        if self.kind == "replay" and not self.tasks_log:
            raise ValueError("replay arrivals need tasks_log (a list of task logs)")
        if self.rate is not None:
            _rate(self.rate)
        return self


class Service(_Frozen):
    kind: Literal["constant", "exponential", "lognormal", "empirical"]
    mean: Seconds | None = None
    cv: float = Field(default=1.0, ge=0)
    from_metrics: str | None = None  # per-task CSV of capacity metrics --csv

    @model_validator(mode="after")
    def _complete(self) -> Service:
        if self.kind == "empirical" and not self.from_metrics:
            raise ValueError("empirical service needs from_metrics (capacity metrics --csv)")
        if self.kind != "empirical" and not (self.mean and self.mean > 0):
            raise ValueError(f"{self.kind} service needs mean above zero")
        return self


class ClassSpec(_Frozen):
    name: str = Field(min_length=1)
    queue: str = Field(min_length=1)
    arrivals: Arrivals
    service: Service


class PoolSpec(_Frozen):
    name: str = Field(min_length=1)
    queues: list[str] = Field(min_length=1)
    concurrency: int = Field(ge=1)
    replicas: int | None = Field(default=None, ge=1)  # fixed
    policy: str | None = None
    target: float = Field(default=100.0, gt=0)
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=10, ge=1)
    startup: Seconds = 30.0
    sync: Seconds = 15.0
    scale_up_pods: int = Field(default=4, ge=1)
    scale_up_percent: float = Field(default=100.0, gt=0)
    scale_down_percent: float = Field(default=100.0, gt=0, le=100)
    scale_down_window: Seconds = 300.0
    polling: Seconds = 30.0
    cooldown: Seconds = 300.0
    activation: float = Field(default=0.0, ge=0)
    mode: str = "QueueLength"  # keda-rabbitmq
    protocol: str = "amqp"  # keda-rabbitmq
    broker: str | None = None  # the broker URL this pool's workers use (the KEDA trigger's address)

    @model_validator(mode="after")
    def _complete(self) -> PoolSpec:
        if self.policy is None and self.replicas is None:
            raise ValueError("a pool needs replicas (fixed) or a policy")
        if self.policy is not None and self.policy not in POLICIES:
            raise ValueError(f"policy {self.policy!r}: use one of {', '.join(POLICIES)}")
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas is above max_replicas")
        return self

    def pool(self) -> Pool:
        name = self.policy or "fixed"
        fleet = Fleet(self.concurrency, self.min_replicas, max(self.max_replicas, self.replicas or 1), self.startup)
        policy = Policy(
            name,
            target=self.target,
            replicas=self.replicas or 1,
            sync_s=self.sync,
            up_pods=self.scale_up_pods,
            up_percent=self.scale_up_percent,
            down_percent=self.scale_down_percent,
            down_window_s=self.scale_down_window,
            polling_s=self.polling,
            cooldown_s=self.cooldown,
            activation=self.activation,
            mode=self.mode,
            protocol=self.protocol,
        )
        return Pool(self.name, tuple(self.queues), fleet, policy)


class FleetFile(_Frozen):
    classes: list[ClassSpec] = Field(min_length=1)
    pools: list[PoolSpec] = Field(min_length=1)
    wait_target: Seconds = 10.0  # seed 002
    wait_critical: Seconds = 60.0
    seed: int = Field(1, ge=0)
    note: str | None = None
    broker: str | None = None  # every pool's broker URL unless the pool names its own

    @model_validator(mode="after")
    def _consistent(self) -> FleetFile:
        for kind, names in (("class", [c.name for c in self.classes]), ("pool", [p.name for p in self.pools])):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{kind} names must differ: {', '.join(twice)} given twice")
        consumed = {q for p in self.pools for q in p.queues}
        for task_class in self.classes:
            if task_class.queue not in consumed:
                raise ValueError(f"class {task_class.name!r}: no pool consumes its queue {task_class.queue!r}")
        return self


def load_fleet(path: Path) -> tuple[FleetFile, Path]:
    """The fleet file and the folder its relative paths are read from."""
    return load_file(path, FleetFile), path.resolve().parent


#: reads a stages file or task logs into send offsets (the CLI passes one: those readers live in
#: capacity.load and capacity.measure, rooms above this one)
TraceReader = Callable[[Arrivals, Path], np.ndarray]


def draw_classes(
    fleet: FleetFile,
    base: Path,
    seed: int | None = None,
    read_trace: TraceReader | None = None,
    percentiles: str = "exact",
) -> list[TaskClass]:
    """Every class's arrival and service times (seeded: class k uses seed + k). The classes
    whose count the file states (burst, fixed, poisson) are counted first, and refused before any
    array exists when they alone exceed what can be simulated (a file of 150,000,020 tasks took
    3.6 GB before the check after drawing refused it); traces are counted as they are read.
    Streamed (``percentiles``: sketch, or auto above EXACT_UP_TO tasks), Poisson and evenly
    spaced classes are drawn a block at a time as the simulation reaches them."""
    from capacity.sizing.stream import ArraySource, DrawnSource, streams

    declared = sum(
        int(c.arrivals.count or 0) for c in fleet.classes if c.arrivals.kind in ("burst", "fixed", "poisson")
    )
    streamed = streams(percentiles, declared)
    drawn_later = ("fixed", "poisson") if streamed else ()
    # streamed, only bursts are held whole (every task at one instant)
    bursts = sum(int(c.arrivals.count or 0) for c in fleet.classes if c.arrivals.kind == "burst")
    held = bursts if streamed else declared
    if held > MAX_TASKS:
        raise InputError(f"the fleet file describes {held:,} tasks; at most {MAX_TASKS:,} are simulated")
    check_tasks_fit(held, f"the fleet file's {held:,} tasks")
    classes = []
    for k, spec in enumerate(fleet.classes):
        class_seed = (fleet.seed if seed is None else seed) + k
        if spec.arrivals.kind in drawn_later:
            drawn = DrawnSource(_workload(spec, base, None), class_seed, spec.arrivals.at)
            classes.append(TaskClass(spec.name, spec.queue, np.empty(0), np.empty(0), source=drawn))
            continue
        arrivals, services = _draw(spec, base, np.random.default_rng(class_seed), read_trace)
        held_whole = ArraySource(arrivals, services) if streamed else None
        classes.append(TaskClass(spec.name, spec.queue, arrivals, services, source=held_whole))
    total = sum(len(c.arrivals) for c in classes)
    if total > MAX_TASKS:
        raise InputError(f"the fleet file describes {total:,} tasks; at most {MAX_TASKS:,} are simulated")
    check_tasks_fit(total, f"the fleet file's {total:,} tasks")
    return classes


def pools(fleet: FleetFile, fixed_only: bool = False) -> list[Pool]:
    built = [p.pool() for p in fleet.pools]
    if fixed_only:
        scaled = [p.name for p in fleet.pools if p.policy not in (None, "fixed")]
        if scaled:
            raise InputError(
                f"pools {', '.join(scaled)} have a scaling policy: capacity simulate --fleet runs fixed replicas "
                "(use capacity autoscale --fleet)"
            )
    return built


def _workload(spec: ClassSpec, base: Path, offsets: np.ndarray | None) -> Workload:
    a, s = spec.arrivals, spec.service
    workload = Workload(
        slots=1,
        arrival="replay" if offsets is not None else a.kind,
        arrival_rate_per_s=_rate(a.rate) if a.rate is not None else None,
        count=a.count or 1,
        service=s.kind,
        service_time_s=s.mean,
        service_cv=s.cv,
        replay_offsets_s=offsets,
        empirical_s=read_service_times(base / s.from_metrics) if s.from_metrics else None,
    )
    try:
        workload.check()
    except InputError as exc:
        raise InputError(f"class {spec.name!r}: {exc}") from None
    return workload


def _draw(
    spec: ClassSpec, base: Path, rng: np.random.Generator, read_trace: TraceReader | None
) -> tuple[np.ndarray, np.ndarray]:
    a = spec.arrivals
    offsets = None
    if a.kind in ("stages", "replay"):
        if read_trace is None:
            raise InputError(f"class {spec.name!r}: {a.kind} arrivals need a trace reader")
        offsets = read_trace(a, base)
    if offsets is not None:
        offsets = scale_trace(offsets, a.speedup, a.volume, rng)
    arrivals, services = _workload(spec, base, offsets).draw(rng)
    return arrivals + a.at, services


def scale_trace(offsets: np.ndarray, speedup: float = 1.0, volume: float = 1.0, rng: Any = None) -> np.ndarray:
    """A trace replayed ``speedup`` times faster and with ``volume`` times the tasks: each task
    repeated int(volume) times, plus once more with probability volume - int(volume) (seeded), so
    the trace's shape over time is kept."""
    if speedup <= 0 or volume <= 0:
        raise InputError("speedup and volume must be above zero")
    offsets = np.sort(np.asarray(offsets, float)) / speedup
    whole, part = int(volume), volume - int(volume)
    repeats = np.full(len(offsets), whole)
    if part > 0:
        rng = rng if rng is not None else np.random.default_rng(1)
        repeats += rng.random(len(offsets)) < part
    return np.repeat(offsets, repeats)


def topology_fleet(
    workers: list[tuple[tuple[str, ...], int]],
    rates: dict[str, float],
    services: dict[str, dict[str, Any]],
    note: str,
    hours: float = 1.0,
) -> dict[str, Any]:
    """A fleet file (as a dict ready for YAML) for a topology: one pool per distinct worker shape
    (its queues and concurrency; identical workers become replicas), one class per queue with a
    rate, Poisson arrivals for ``hours``."""
    shapes: dict[tuple[tuple[str, ...], int], int] = {}
    for queues, concurrency in workers:
        shapes[(queues, concurrency)] = shapes.get((queues, concurrency), 0) + 1
    names: list[str] = []
    pools_ = []
    for (queues, concurrency), replicas in shapes.items():
        name = "-".join(queues) if len(queues) < 3 else "all"
        while name in names:
            name += "-2"
        names.append(name)
        pools_.append({"name": name, "queues": list(queues), "concurrency": concurrency, "replicas": replicas})
    classes = [
        {
            "name": queue,
            "queue": queue,
            "arrivals": {"kind": "poisson", "rate": f"{rate:g}/s", "count": max(1, round(rate * hours * 3600))},
            "service": services[queue],
        }
        for queue, rate in rates.items()
        if rate > 0
    ]
    if not classes:
        raise InputError("--arrival-rate: no queue has a rate above zero")
    fleet = {"note": note, "classes": classes, "pools": pools_}
    try:
        FleetFile.model_validate(fleet)  # what is written must load
    except ValidationError as exc:
        raise InputError(f"the fleet file would not load: {describe_invalid(exc)}") from None
    return fleet


def per_queue(text: str, queues: list[str], what: str, parse: Any) -> dict[str, Any]:
    """``2/s`` for every queue, or ``emails=2/s,bulk_predictions=0.1/s`` queue by queue."""
    if "=" not in text:
        value = parse(text, what)
        return dict.fromkeys(queues, value)
    values = {}
    for part in text.split(","):
        queue, sep, value = part.partition("=")
        if not sep or not queue.strip():
            raise InputError(f"{what}: {part!r} is not QUEUE=VALUE")
        if queue.strip() not in queues:
            raise InputError(f"{what}: no worker consumes queue {queue.strip()!r} (queues: {', '.join(queues)})")
        values[queue.strip()] = parse(value.strip(), what)
    return values
