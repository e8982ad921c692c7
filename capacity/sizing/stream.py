"""The fleet simulation's tasks in bounded memory (#26): a week of production traffic at 1,000
tasks/s is 604.8 million tasks, ~80 GB as the exact mode's per-task arrays.

Arrivals are drawn (or read) a block at a time as the simulation reaches them, and the tasks
before the first one not started yet, every queue counted, are folded into running figures and
dropped: counts, sums and maxima (exact), waits and response times into a DDSketch
(``capacity.sizing.sketch``: p95 and p99 within 1%), and seed 002's threshold times as unions of
intervals carried from block to block (exact). The window holds what waits, what runs ahead of the
oldest waiting task, and the block being drawn. The compiled loop and the controllers are the
exact mode's own (``capacity.sizing.autoscale``); only where the tasks live differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from capacity.errors import InputError
from capacity.sizing._figures import QUEUE_CRITICAL
from capacity.sizing.simulate import Workload
from capacity.sizing.sketch import Sketch

if TYPE_CHECKING:  # the results are autoscale's, which imports this module when it streams
    from capacity.sizing.fleetresult import AutoscaleResult, ClassResult, Pool, TaskClass

#: tasks drawn per block, and the window's size past which its folded tasks are dropped
BLOCK = 1 << 20
#: the sketches' relative accuracy: every percentile within 1% of the exact one
ACCURACY = 0.01
#: --percentiles auto streams above this many tasks (the exact mode's arrays: ~130 bytes a task)
EXACT_UP_TO = 20_000_000
#: streamed runs are bounded by time, not memory: ~0.4 us a task here, so 5e9 tasks are ~35 min
MAX_STREAMED = 5_000_000_000
PERCENTILES = ("auto", "exact", "sketch")


def streams(percentiles: str, tasks: int) -> bool:
    """Whether a run of ``tasks`` streams (``--percentiles``: exact, sketch, or auto)."""
    if percentiles not in PERCENTILES:
        raise InputError(f"--percentiles {percentiles!r}: one of {', '.join(PERCENTILES)}")
    if percentiles == "sketch" or (percentiles == "auto" and tasks > EXACT_UP_TO):
        if tasks > MAX_STREAMED:
            raise InputError(f"{tasks:,} tasks: a streamed simulation takes up to {MAX_STREAMED:,}")
        return True
    return False


class Source(Protocol):
    """One task class's tasks in arrival order, a block at a time."""

    count: int

    def take(self, until: float) -> tuple[np.ndarray, np.ndarray]:
        """(arrivals, services) of the tasks arriving at or before ``until`` not taken yet."""
        ...

    def restarted(self) -> Source:
        """The same tasks from the first (each simulation of a search takes them anew)."""
        ...

    @property
    def exhausted(self) -> bool: ...


class ArraySource:
    """Tasks already in arrays (a trace, a test's exact run): handed out by time."""

    def __init__(self, arrivals: np.ndarray, services: np.ndarray) -> None:
        order = np.argsort(arrivals, kind="stable")
        self.arrivals, self.services = np.asarray(arrivals, float)[order], np.asarray(services, float)[order]
        self.count = len(self.arrivals)
        self._at = 0

    def restarted(self) -> ArraySource:
        again = ArraySource.__new__(ArraySource)
        again.arrivals, again.services, again.count, again._at = self.arrivals, self.services, self.count, 0
        return again

    def take(self, until: float) -> tuple[np.ndarray, np.ndarray]:
        end = int(np.searchsorted(self.arrivals, until, side="right"))
        taken = self.arrivals[self._at : end], self.services[self._at : end]
        self._at = max(self._at, end)
        return taken

    @property
    def exhausted(self) -> bool:
        return self._at >= self.count


class DrawnSource:
    """Poisson or evenly spaced arrivals and their service times, drawn a block at a time from
    one generator (the exact mode draws the same distributions, all at once)."""

    def __init__(self, workload: Workload, seed: int, offset_s: float = 0.0) -> None:
        if workload.arrival not in ("poisson", "fixed"):
            raise ValueError("only poisson and fixed arrivals are drawn a block at a time")
        self.workload = workload
        self.seed = seed
        self.offset_s = offset_s
        self.rng = np.random.default_rng(seed)
        self.count = workload.count
        self._drawn = 0
        self._last = 0.0
        self._buffer: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))

    def _draw(self) -> None:
        w = self.workload
        n = min(BLOCK, self.count - self._drawn)
        rate = float(w.arrival_rate_per_s or 1.0)
        if w.arrival == "fixed":
            arrivals = self.offset_s + (self._drawn + np.arange(n)) / rate
        else:
            gaps = self.rng.exponential(1 / rate, n)
            if self._drawn == 0:
                gaps[0] = 0.0  # the first task at the start, as the exact mode's draw
            arrivals = (self._last if self._drawn else self.offset_s) + np.cumsum(gaps)
        services = w.services(self.rng, n)
        self._drawn += n
        self._last = float(arrivals[-1]) if n else self._last
        self._buffer = (np.concatenate([self._buffer[0], arrivals]), np.concatenate([self._buffer[1], services]))

    def take(self, until: float) -> tuple[np.ndarray, np.ndarray]:
        while self._drawn < self.count and (not len(self._buffer[0]) or self._buffer[0][-1] <= until):
            self._draw()
        end = int(np.searchsorted(self._buffer[0], until, side="right"))
        taken = self._buffer[0][:end], self._buffer[1][:end]
        self._buffer = (self._buffer[0][end:], self._buffer[1][end:])
        return taken

    @property
    def exhausted(self) -> bool:
        return self._drawn >= self.count and not len(self._buffer[0])

    def restarted(self) -> DrawnSource:
        return DrawnSource(self.workload, self.seed, self.offset_s)


def union_from(lo: np.ndarray, hi: np.ndarray, reach: float) -> tuple[float, float]:
    """The length of the union of [lo_i, hi_i) (``lo`` sorted) beyond what ``reach`` already
    covered, and the new reach: ``_figures.union_length`` carried from one block to the next."""
    if not len(lo):
        return 0.0, reach
    covered = np.maximum.accumulate(np.concatenate(([reach], hi)))
    length = float(np.clip(hi - np.maximum(lo, covered[:-1]), 0, None).sum())
    return length, float(covered[-1])


@dataclass
class Figures:
    """One class's (or the whole fleet's) running figures."""

    tasks: int = 0
    first_arrival: float = math.inf
    last_finish: float = -math.inf
    wait_sum: float = 0.0
    wait_max: float = 0.0
    response_sum: float = 0.0
    waits: Sketch = field(default_factory=lambda: Sketch(ACCURACY))
    responses: Sketch = field(default_factory=lambda: Sketch(ACCURACY))
    #: [time above the wait target, above the critical wait, queue deeper than critical], and the
    #: reach of each union so far
    seconds: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    reach: list[float] = field(default_factory=lambda: [-math.inf, -math.inf, -math.inf])

    def fold(self, a: np.ndarray, s: np.ndarray, svc: np.ndarray, ahead: np.ndarray, limits: Sequence[float]) -> None:
        """Tasks in arrival order: arrival, start, service; ``ahead[j]`` is the arrival of the
        task QUEUE_CRITICAL places behind task j in the same class, as the exact mode counts it
        (inf when none is loaded yet: it arrives after task j started, so it was not that deep)."""
        if not len(a):
            return
        w, r = s - a, s - a + svc
        self.tasks += len(a)
        self.first_arrival = min(self.first_arrival, float(a[0]))
        self.last_finish = max(self.last_finish, float((s + svc).max()))
        self.wait_sum += float(w.sum())
        self.wait_max = max(self.wait_max, float(w.max()))
        self.response_sum += float(r.sum())
        self.waits.add(w)
        self.responses.add(r)
        for i, (lo, hi) in enumerate(((a + limits[0], s), (a + limits[1], s), (ahead, s))):
            length, self.reach[i] = union_from(lo, hi, self.reach[i])
            self.seconds[i] += length


def ahead_of(arrivals: np.ndarray, count: int) -> np.ndarray:
    """For the first ``count`` of a class's tasks (arrival order), the arrival of the task
    QUEUE_CRITICAL places behind each, or inf."""
    behind = arrivals[QUEUE_CRITICAL : QUEUE_CRITICAL + count]
    return np.concatenate([behind, np.full(count - len(behind), math.inf)])


class Window:
    """The tasks the compiled loop sees, as its arrays (sorted by arrival), and for a streamed run
    the figures of the tasks already dropped. ``klass`` is each task's queue (FCFS within it),
    ``tclass`` its task class; ``class_tasks[class_off[q]:class_off[q + 1]]`` are queue q's tasks,
    ``head[q]`` of them started, ``tail[q]`` arrived."""

    def __init__(self, n_queues: int, queue_of_class: np.ndarray, sources: list[Source] | None = None) -> None:
        self.n_queues = n_queues
        self.queue_of_class = queue_of_class
        self.sources = sources
        self.arrivals = np.empty(0)
        self.services = np.empty(0)
        self.tclass = np.empty(0, np.int64)
        self.klass = np.empty(0, np.int64)
        self.starts = np.empty(0)
        self.head = np.zeros(n_queues, np.int64)
        self.tail = np.zeros(n_queues, np.int64)
        self.class_tasks = np.empty(0, np.int64)
        self.class_off = np.zeros(n_queues + 1, np.int64)
        #: tasks taken from the sources so far (the dropped ones included), and up to when
        self.loaded = 0
        self.loaded_until = -math.inf
        self._span = 60.0
        n_classes = len(queue_of_class)
        self.figures = [Figures() for _ in range(n_classes)]
        self.whole = Figures()
        self.limits: tuple[float, float] = (0.0, 0.0)

    @property
    def streaming(self) -> bool:
        return self.sources is not None

    @property
    def exhausted(self) -> bool:
        return self.sources is None or all(s.exhausted for s in self.sources)

    def set_tasks(self, arrivals: np.ndarray, services: np.ndarray, tclass: np.ndarray, started: int = 0) -> None:
        """The window's tasks (sorted by arrival); the first tasks of each queue already started
        keep their start times in ``self.starts`` (given by the caller afterwards)."""
        self.arrivals, self.services, self.tclass = arrivals, services, tclass
        self.klass = self.queue_of_class[tclass] if len(tclass) else np.empty(0, np.int64)
        counts = np.bincount(self.klass, minlength=self.n_queues)
        self.class_off = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        if self.n_queues > 1:
            self.class_tasks = np.argsort(self.klass, kind="stable").astype(np.int64)
        else:
            self.class_tasks = np.arange(len(arrivals), dtype=np.int64)

    def ensure(self, until: float) -> int:
        """Streamed: take every task arriving at or before ``until`` (and a block beyond, so a
        call is rare); how many tasks the window dropped to make room is not its business. The
        number of tasks before the first not arrived (the loop's next arrival) is unchanged."""
        if self.sources is None or until <= self.loaded_until or self.exhausted:
            return 0
        horizon = max(until, self.loaded_until + self._span)
        taken = [s.take(horizon) for s in self.sources]
        self.loaded_until = horizon
        got = sum(len(a) for a, _ in taken)
        # aim at about a block a call
        self._span = self._span * 2 if got < BLOCK // 4 else self._span / 2 if got > 2 * BLOCK else self._span
        if not got:
            return 0
        a = np.concatenate([x for x, _ in taken])
        s = np.concatenate([y for _, y in taken])
        k = np.repeat(np.arange(len(taken)), [len(x) for x, _ in taken])
        order = np.argsort(a, kind="stable")
        self.loaded += got
        starts = self.starts
        self.set_tasks(
            np.concatenate([self.arrivals, a[order]]),
            np.concatenate([self.services, s[order]]),
            np.concatenate([self.tclass, k[order]]),
        )
        self.starts = np.concatenate([starts, np.full(got, np.nan)])
        return got

    def fold(self, next_arrival: int, everything: bool = False) -> int:
        """Streamed: fold the tasks before the first one not started (every queue counted) into
        the figures and drop them; the loop's next-arrival index after the drop."""
        firsts = [
            int(self.class_tasks[self.class_off[q] + self.head[q]])
            for q in range(self.n_queues)
            if self.head[q] < self.class_off[q + 1] - self.class_off[q]
        ]
        m = len(self.arrivals) if everything or not firsts else min(firsts)
        if m == 0 or (not everything and m < BLOCK):
            return next_arrival
        a, s, svc, k = self.arrivals[:m], self.starts[:m], self.services[:m], self.tclass[:m]
        if len(self.figures) == 1:
            self.figures[0].fold(a, s, svc, ahead_of(self.arrivals, m), self.limits)
        for c, figures in enumerate(self.figures if len(self.figures) > 1 else ()):
            mine = k == c
            own = self.arrivals[self.tclass == c]
            figures.fold(a[mine], s[mine], svc[mine], ahead_of(own, int(np.count_nonzero(mine))), self.limits)
        if len(self.figures) > 1:
            self.whole.fold(a, s, svc, np.full(m, math.inf), self.limits)
        dropped = np.bincount(self.klass[:m], minlength=self.n_queues)
        head, tail = self.head - dropped, self.tail - dropped
        starts = self.starts[m:]
        self.set_tasks(self.arrivals[m:], self.services[m:], self.tclass[m:])
        self.starts = starts
        self.head[:], self.tail[:] = head, tail
        return next_arrival - m

    def oldest_wait(self, now: float) -> float:
        """The oldest waiting task's wait now (FCFS: each queue's first not started)."""
        oldest = 0.0
        for q in range(self.n_queues):
            if self.head[q] < self.tail[q]:
                oldest = max(oldest, now - float(self.arrivals[self.class_tasks[self.class_off[q] + self.head[q]]]))
        return oldest

    def last_finish(self) -> float:
        done = self.starts + self.services
        window = float(np.nanmax(done)) if len(done) and not np.all(np.isnan(done)) else -math.inf
        folded = max((f.last_finish for f in self.figures), default=-math.inf)
        return max(window, folded, 0.0)


def class_result(name: str, queue: str, f: Figures) -> ClassResult:
    """A class's figures as the exact mode's ClassResult (percentiles from the sketches)."""
    from capacity.sizing.fleetresult import ClassResult

    if not f.tasks:
        return ClassResult(name, queue, 0, *([0.0] * 10))
    return ClassResult(
        name=name,
        queue=queue,
        tasks=f.tasks,
        wait_mean_s=f.wait_sum / f.tasks,
        wait_p95_s=f.waits.quantile(0.95) or 0.0,
        wait_p99_s=f.waits.quantile(0.99) or 0.0,
        wait_max_s=f.wait_max,
        response_mean_s=f.response_sum / f.tasks,
        response_p95_s=f.responses.quantile(0.95) or 0.0,
        drain_time_s=f.last_finish - f.first_arrival,
        seconds_above_wait_target=f.seconds[0],
        seconds_critical=f.seconds[1],
        seconds_queue_critical=f.seconds[2],
    )


def streamed_result(
    classes: list[TaskClass],
    pools: list[Pool],
    states: list[Any],
    replicas: Any,
    work: np.ndarray,
    window: Window,
    timeline: list[dict[str, float]],
    end: float,
) -> AutoscaleResult:
    from capacity.sizing.autoscale import assemble

    results = [class_result(c.name, c.queue, f) for c, f in zip(classes, window.figures, strict=True)]
    whole = results[0] if len(classes) == 1 else class_result("all", "*", window.whole)
    return assemble(classes, pools, states, replicas, work, results, whole, timeline, end, "sketch")
