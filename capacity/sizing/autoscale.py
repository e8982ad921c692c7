"""A worker fleet under scaling policies: a discrete-event simulation (issue #14).

Task classes arrive on their queues (``simulate``'s Workload: burst, fixed, Poisson, replayed
logs; constant, exponential, lognormal or measured service times); pools of replicas of
``concurrency`` slots take from their queues in priority order, FCFS within a queue. A replica the
policy adds is ready ``startup_s`` later (scheduling, image pull, worker start); one it removes
takes no new task and leaves when its tasks finish (Celery's warm shutdown). The tasks move in a
compiled loop (``_eventloop``) between the controllers' decisions, which run here.

Policies, each as documented by its source:

* ``keda-redis`` / ``keda-sqs``: KEDA's external metric read by the Kubernetes HPA every sync
  period. Redis ``listLength`` counts the tasks waiting in the list; SQS ``queueLength`` counts
  visible + in flight (KEDA's default ``scaleOnInFlight``). The HPA (replica_calculator.go,
  external metric, AverageValue target): usage ratio = metric / (target x current replicas); within
  the 10% tolerance nothing changes, else desired = ceil(metric / target). Its default behaviour:
  scale-up with no stabilisation, at most max(+4 pods, +100%) per 15 s; scale-down to the highest
  recommendation of the last 300 s (recommendations strictly after now - 300 s), up to 100% per
  15 s; then min/max replicas.
* ``aws-backlog``: AWS's target tracking on backlog per instance ("Scaling policy based on Amazon
  SQS": backlog per instance = ApproximateNumberOfMessages / running instances, target =
  acceptable latency / processing time; its example: 1,500 messages on 10 instances, target 100,
  scales out to 15): desired = ceil(messages / target), out at once, in only after the cooldown
  (``down_window_s``, the scale-down window here).
* ``seed002``: seed 002's formula every period, ceil(depth / (concurrency x 0.8) x 1.2).
* ``fixed``: N replicas (the baseline).

Written here because no maintained Python library simulates the HPA's algorithm (ciw and SimPy
model queues, not Kubernetes' controller); a pool with fixed replicas starts every task when
``simulate``'s FCFS pool does (a test).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from capacity.errors import InputError
from capacity.sizing._figures import QUEUE_CRITICAL, time_above, time_deeper
from capacity.sizing.fleetresult import AutoscaleResult, ClassResult, Pool, PoolResult, TaskClass
from capacity.sizing.policies import KEDA_POLICIES, RABBITMQ_RATE_WINDOW_S, Fleet, Policy, keda_metric

__all__ = ["AutoscaleResult", "ClassResult", "Controller", "Pool", "PoolResult", "TaskClass", "simulate_pools"]

#: controller periods (syncs, polls, replicas becoming ready) simulated at most: ~20 s of the
#: Python side; 200,000 syncs of 15 s are 34 days
MAX_STEPS = 200_000


class Controller:
    """One pool's scaling decisions, and the HPA's memory of its recommendations."""

    def __init__(self, fleet: Fleet, policy: Policy) -> None:
        self.fleet, self.policy = fleet, policy
        self.recommendations: deque[tuple[float, int]] = deque()

    def _remember(self, now: float, raw: int) -> int:
        """Keep ``raw`` with the recommendations of the scale-down window (those strictly after
        now - window); the highest of them. A sliding-window maximum: a recommendation that a later,
        higher one outlives can never be the highest again, so it is dropped (O(1) a period,
        whatever the window holds)."""
        kept = self.recommendations
        while kept and kept[-1][1] <= raw:
            kept.pop()
        kept.append((now, raw))
        while len(kept) > 1 and kept[0][0] <= now - self.policy.down_window_s:  # the newest stays
            kept.popleft()
        return kept[0][1]

    def desired(self, now: float, current: int, waiting: int, in_flight: int, published_per_s: float = 0.0) -> int:
        policy = self.policy
        if policy.name == "fixed":
            return policy.replicas
        if policy.name == "seed002":
            return math.ceil(waiting / (self.fleet.concurrency * policy.utilization) * (1 + policy.buffer))
        metric = keda_metric(policy, waiting, in_flight, published_per_s)
        if policy.name == "aws-backlog":
            raw = math.ceil(metric / policy.target)  # (messages / instances) / target x instances
            highest = self._remember(now, raw)
            return raw if raw >= current else min(current, highest)
        if current > 0 and abs(metric / (policy.target * current) - 1) <= policy.tolerance:
            raw = current
        else:
            raw = math.ceil(metric / policy.target)
        # the HPA's behaviour: scale-down stabilisation over the window, rate limits per period
        highest = self._remember(now, raw)
        if raw < current:
            raw = min(current, highest)
            raw = max(raw, math.floor(current * (1 - policy.down_percent / 100)))
        elif raw > current:
            raw = min(raw, max(current + policy.up_pods, math.floor(current * (1 + policy.up_percent / 100))))
        return raw


class _Replicas:
    """Every replica of every pool, as arrays the compiled loop updates (ids are never reused)."""

    def __init__(self) -> None:
        self.n = 0
        self.pool = np.zeros(64, np.int64)
        self.busy = np.zeros(64, np.int64)
        self.accept = np.zeros(64, np.bool_)
        self.last = np.zeros(64, np.float64)
        self.created: list[float] = []
        self.ready_at: list[float] = []
        self.closed: list[bool] = []
        self.retired: list[float] = []  # inf while alive

    def add(self, pool: int, now: float, startup: float) -> int:
        if self.n == len(self.pool):
            for name in ("pool", "busy", "accept", "last"):
                old = getattr(self, name)
                new = np.zeros(2 * len(old), old.dtype)
                new[: len(old)] = old
                setattr(self, name, new)
        r = self.n
        self.n += 1
        self.pool[r] = pool
        self.created.append(now)
        self.ready_at.append(now + startup)
        self.closed.append(False)
        self.retired.append(math.inf)
        return r


@dataclass
class _PoolState:
    index: int
    spec: Pool
    controller: Controller
    queues: list[int]
    live: list[int] = field(default_factory=list)  # replica ids not retired
    next_sync: float = 0.0
    next_poll: float = math.inf
    last_active: float = -math.inf
    keda_zero: bool = False
    timeline: list[dict[str, float]] = field(default_factory=list)


def simulate_fleet(
    arrivals: np.ndarray,
    services: np.ndarray,
    fleet: Fleet,
    policy: Policy,
    wait_target_s: float = 10.0,
    wait_critical_s: float = 60.0,
) -> AutoscaleResult:
    """One queue, one pool: every task's wait, and the replicas and queue over time."""
    task_class = TaskClass("tasks", "celery", np.asarray(arrivals, float), np.asarray(services, float))
    return simulate_pools([task_class], [Pool("workers", ("celery",), fleet, policy)], wait_target_s, wait_critical_s)


def simulate_pools(
    classes: list[TaskClass],
    pools: list[Pool],
    wait_target_s: float = 10.0,
    wait_critical_s: float = 60.0,
) -> AutoscaleResult:
    """Task classes on their queues, served by pools of replicas under their policies.

    The compiled loop moves tasks between one controller decision and the next; here, at every
    boundary (a sync or polling period, a replica becoming ready), the pools' controllers read
    their queues and add or remove replicas. A point of the timeline is kept at every sync."""
    from capacity.sizing import _eventloop  # numba: loaded by the commands that simulate, not by their neighbours
    from capacity.sizing.stream import Window

    if not classes or not pools:
        raise InputError("a fleet needs at least one task class and one pool")
    for pool in pools:
        pool.fleet.check()
        pool.policy.check()
    queue_names = sorted({c.queue for c in classes} | {q for p in pools for q in p.queues})
    queue_of = {name: i for i, name in enumerate(queue_names)}
    for task_class in classes:
        if not any(task_class.queue in p.queues for p in pools):
            raise InputError(f"class {task_class.name!r}: no pool consumes its queue {task_class.queue!r}")
        if len(task_class.arrivals) != len(task_class.services):
            raise InputError(f"class {task_class.name!r}: arrivals and service times differ in length")
    streamed = any(c.source is not None for c in classes)
    if streamed and not all(c.source is not None for c in classes):
        raise InputError("every class streams its tasks, or none")
    if streamed and any(p.policy.name == "keda-rabbitmq" and p.policy.mode == "MessageRate" for p in pools):
        raise InputError("keda-rabbitmq MessageRate reads every arrival of the last 5 s: exact mode only")
    n_queues = len(queue_names)
    queue_of_class = np.asarray([queue_of[c.queue] for c in classes], np.int64)
    w = Window(n_queues, queue_of_class, [c.source.restarted() for c in classes] if streamed else None)
    w.limits = (wait_target_s, wait_critical_s)
    # the tasks of every class, sorted by arrival; "class" here is the queue (FCFS within it)
    n = 0 if streamed else sum(len(c.arrivals) for c in classes)
    if streamed:
        arrivals = services = task_class_of = np.empty(0)
    elif len(classes) == 1:
        arrivals = np.asarray(classes[0].arrivals, np.float64)
        services = np.asarray(classes[0].services, np.float64)
        if n > 1 and not np.all(arrivals[1:] >= arrivals[:-1]):
            order = np.argsort(arrivals, kind="stable")
            arrivals, services = arrivals[order], services[order]
        task_class_of = np.zeros(n, np.int64)
    else:
        arrivals = np.concatenate([np.asarray(c.arrivals, np.float64) for c in classes])
        services = np.concatenate([np.asarray(c.services, np.float64) for c in classes])
        task_class_of = np.repeat(np.arange(len(classes)), [len(c.arrivals) for c in classes])
        order = np.argsort(arrivals, kind="stable")
        arrivals, services, task_class_of = arrivals[order], services[order], task_class_of[order]
    if n and (not np.all(np.isfinite(arrivals)) or not np.all(np.isfinite(services)) or services.min() < 0):
        raise InputError("arrival and service times must be finite, service times zero or more")
    if n and arrivals[0] < 0:
        arrivals = arrivals - arrivals[0]
    if not streamed:
        w.set_tasks(arrivals, services, np.asarray(task_class_of, np.int64))
        w.starts = np.full(n, np.nan)
        w.loaded = n
    pool_queues = np.asarray([queue_of[q] for p in pools for q in p.queues], np.int64)
    pool_qoff = np.concatenate(([0], np.cumsum([len(p.queues) for p in pools]))).astype(np.int64)
    consumers = [[i for i, p in enumerate(pools) if name in p.queues] for name in queue_names]
    class_pools = np.asarray([p for c in consumers for p in c], np.int64)
    class_poff = np.concatenate(([0], np.cumsum([len(c) for c in consumers]))).astype(np.int64)
    class_busy = np.zeros(n_queues, np.int64)
    counters = _eventloop.new_counters()
    heap_t, heap_r, heap_c = np.zeros(64), np.zeros(64, np.int64), np.zeros(64, np.int64)
    replicas = _Replicas()
    pool_work = np.zeros(len(pools))

    states: list[_PoolState] = []
    for i, pool in enumerate(pools):
        fleet, policy = pool.fleet, pool.policy
        first = fleet.initial_replicas if fleet.initial_replicas is not None else fleet.min_replicas
        if policy.name == "fixed":
            first = policy.replicas
        # KEDA owns 0 <-> 1 when the minimum is 0 (the HPA never scales to or from 0): every polling
        # interval it checks the metric against the activation threshold; scaled to 0 after
        # cooldownPeriod without activity
        keda_zero = policy.name in KEDA_POLICIES and fleet.min_replicas == 0
        state = _PoolState(
            i, pool, Controller(fleet, policy), [queue_of[q] for q in pool.queues],
            next_sync=policy.sync_s, next_poll=policy.polling_s if keda_zero else math.inf, keda_zero=keda_zero,
        )  # fmt: skip
        for _ in range(first):
            r = replicas.add(i, 0.0, 0.0)
            replicas.accept[r] = True
            state.live.append(r)
        states.append(state)

    def requested(state: _PoolState) -> int:
        return sum(1 for r in state.live if not replicas.closed[r])

    def ready(state: _PoolState, now: float) -> int:
        return sum(1 for r in state.live if not replicas.closed[r] and replicas.ready_at[r] <= now)

    def scale_to(state: _PoolState, now: float, wanted: int) -> None:
        fleet = state.spec.fleet
        wanted = max(fleet.min_replicas, min(fleet.max_replicas, wanted))
        open_ = [r for r in state.live if not replicas.closed[r]]
        for _ in range(wanted - len(open_)):
            state.live.append(replicas.add(state.index, now, fleet.startup_s))
        if wanted < len(open_):
            # the ones not started yet go first, then the least busy (graceful: they finish)
            order = sorted(open_, key=lambda r: (replicas.ready_at[r] <= now, replicas.busy[r]))
            for r in order[: len(open_) - wanted]:
                replicas.closed[r] = True
                replicas.accept[r] = False
        retire(state, now)

    def retire(state: _PoolState, now: float) -> None:
        kept = []
        for r in state.live:
            if replicas.closed[r] and (replicas.busy[r] == 0 or replicas.ready_at[r] > now):
                replicas.retired[r] = now if replicas.ready_at[r] > now else max(now, replicas.last[r])
            else:
                kept.append(r)
        state.live = kept

    def run(t0: float, t_end: float) -> None:
        nonlocal heap_t, heap_r, heap_c
        # the free slots of every pool's accepting replicas, one stack entry per slot, but never
        # more than the tasks not started yet (a pool of a million idle slots needs no million
        # entries). A stack then holds at most that plus the pool's running tasks (their slots come
        # back): at most every task, and at most every slot of its live replicas.
        n = w.loaded  # a bound on the tasks running and waiting
        remaining = len(w.arrivals) - int(w.head.sum())
        stacks, areas = [], []
        for state in states:
            ids = np.asarray([r for r in state.live if replicas.accept[r]], np.int64)
            free = np.maximum(state.spec.fleet.concurrency - replicas.busy[ids], 0) if len(ids) else ids
            before = np.cumsum(free) - free
            stacks.append(np.repeat(ids, np.clip(remaining - before, 0, free)))
            areas.append(min(len(state.live) * state.spec.fleet.concurrency, n) + 1)
        free_n = np.asarray([len(s) for s in stacks], np.int64)
        free_off = np.concatenate(([0], np.cumsum(areas)[:-1])).astype(np.int64)
        free_stack = np.zeros(sum(areas), np.int64)
        for offset, stack in zip(free_off, stacks, strict=True):
            free_stack[offset : offset + len(stack)] = stack
        # a completion per running task, at most: every slot of the live replicas, and every task
        room = min(sum(len(s.live) * s.spec.fleet.concurrency for s in states), n) + 1
        if room > len(heap_t):
            size = int(counters[_eventloop.HEAP])
            grown = max(room, min(2 * len(heap_t), n + 1))
            heap_t = np.concatenate([heap_t[:size], np.zeros(grown - size)])
            heap_r = np.concatenate([heap_r[:size], np.zeros(grown - size, np.int64)])
            heap_c = np.concatenate([heap_c[:size], np.zeros(grown - size, np.int64)])
        _eventloop.advance(
            t0, t_end, w.arrivals, w.services, w.klass, w.starts, w.class_tasks, w.class_off, w.head, w.tail,
            class_busy, pool_queues, pool_qoff, class_pools, class_poff, free_stack, free_off, free_n,
            replicas.pool, replicas.busy, replicas.accept, replicas.last, pool_work, heap_t, heap_r, heap_c, counters,
        )  # fmt: skip

    def waiting(state: _PoolState) -> int:
        return int(sum(w.tail[q] - w.head[q] for q in state.queues))

    def in_flight(state: _PoolState) -> int:
        return int(sum(class_busy[q] for q in state.queues))

    # each queue's arrival times (sorted), kept only where a policy reads a publish rate
    rated = any(p.policy.name == "keda-rabbitmq" and p.policy.mode == "MessageRate" for p in pools)
    queue_arrivals = [
        w.arrivals[w.class_tasks[w.class_off[q] : w.class_off[q + 1]]] if rated else None for q in range(n_queues)
    ]

    def published(state: _PoolState, now: float) -> float:
        """Messages published to the pool's queues per second over the management plugin's window."""
        total = 0
        for q in state.queues:
            times = queue_arrivals[q]
            if times is not None:
                window = np.searchsorted(times, [now - RABBITMQ_RATE_WINDOW_S, now], side="right")
                total += int(window[1] - window[0])
        return total / RABBITMQ_RATE_WINDOW_S

    sync_every = min(p.policy.sync_s for p in pools)
    next_point = sync_every
    timeline: list[dict[str, float]] = []
    now = 0.0
    horizon = math.inf
    at_min_since = 0.0
    end = 0.0
    steps = 0
    while True:
        steps += 1
        if steps > MAX_STEPS:
            raise InputError(
                f"the simulation reached {MAX_STEPS:,} controller periods (at {now:,.0f} s of simulated time): "
                "a sync period that short, or windows that long, cannot be simulated; lengthen --sync or shorten "
                "the windows"
            )
        pending = [replicas.ready_at[r] for s in states for r in s.live if replicas.ready_at[r] > now]
        t_next = min([next_point, *(s.next_sync for s in states), *(s.next_poll for s in states), *pending])
        w.ensure(t_next)
        run(now, t_next)
        now = t_next
        for state in states:
            for r in state.live:
                if not replicas.closed[r] and replicas.ready_at[r] <= now:
                    replicas.accept[r] = True
        for state in states:
            policy = state.spec.policy
            if state.next_poll == now:
                metric = keda_metric(policy, waiting(state), in_flight(state), published(state, now))
                if metric > policy.activation:
                    state.last_active = now
                    if requested(state) == 0:
                        scale_to(state, now, 1)
                elif requested(state) > 0 and now - state.last_active >= policy.cooldown_s:
                    scale_to(state, now, 0)
                state.next_poll = now + policy.polling_s
            if state.next_sync == now:
                current = requested(state)
                if current > 0 or not state.keda_zero:  # the HPA does not act on a deployment at 0
                    wanted = state.controller.desired(
                        now, current, waiting(state), in_flight(state), published(state, now)
                    )
                    scale_to(state, now, max(wanted, 1) if state.keda_zero else wanted)
                state.next_sync = now + policy.sync_s
            retire(state, now)
        for state in states:  # a replica ready now takes work now
            for r in state.live:
                if not replicas.closed[r] and replicas.ready_at[r] <= now:
                    replicas.accept[r] = True
        run(now, now)
        if now == next_point:
            points = []
            for state in states:
                point = {
                    "t_s": now,
                    "replicas": requested(state),
                    "ready_replicas": ready(state, now),
                    "queue_depth": waiting(state),
                    "in_flight": int(sum(replicas.busy[r] for r in state.live)),
                }
                state.timeline.append(point)
                points.append(point)
            timeline.append({k: (now if k == "t_s" else sum(p[k] for p in points)) for k in points[0]})
            if streamed:  # the exact mode finds it afterwards, from every task's wait
                timeline[-1]["oldest_wait_s"] = w.oldest_wait(now)
                counters[_eventloop.NEXT_ARRIVAL] = w.fold(int(counters[_eventloop.NEXT_ARRIVAL]))
            next_point = now + sync_every
        settled = all(s.spec.policy.name == "fixed" or requested(s) <= s.spec.fleet.min_replicas for s in states)
        if not settled:
            at_min_since = math.inf
        elif at_min_since == math.inf:
            at_min_since = now
        if w.exhausted and counters[_eventloop.FINISHED] == w.loaded:
            last_finish = w.last_finish()
            if horizon == math.inf:
                longest = max(max(p.policy.down_window_s, p.policy.cooldown_s) for p in pools)
                horizon = last_finish + longest + 4 * max(max(p.policy.sync_s, p.policy.polling_s) for p in pools)
                if not math.isfinite(horizon):
                    horizon = last_finish + longest
            if settled or now >= horizon:
                end = max(last_finish, at_min_since) if settled else now
                break
        elif not any(s.live for s in states) and not any(math.isfinite(s.next_poll) for s in states):
            raise InputError("no replica can serve the queue (max replicas 0?)")
    if streamed:
        from capacity.sizing.stream import streamed_result

        w.fold(int(counters[_eventloop.NEXT_ARRIVAL]), everything=True)
        return streamed_result(classes, pools, states, replicas, pool_work, w, timeline, end)
    return _result(
        classes, pools, states, replicas, pool_work, w.arrivals, w.services, w.starts, task_class_of, timeline, end,
        wait_target_s, wait_critical_s,
    )  # fmt: skip


def _result(
    classes: list[TaskClass],
    pools: list[Pool],
    states: list[_PoolState],
    replicas: _Replicas,
    work: np.ndarray,
    arrivals: np.ndarray,
    services: np.ndarray,
    starts: np.ndarray,
    task_class_of: np.ndarray,
    timeline: list[dict[str, float]],
    end: float,
    wait_target_s: float,
    wait_critical_s: float,
) -> AutoscaleResult:
    waits = starts - arrivals
    finishes = starts + services
    class_results = []
    times = np.asarray([p["t_s"] for p in timeline])
    oldest = np.zeros(len(times))
    for k, task_class in enumerate(classes):
        mask = slice(None) if len(classes) == 1 else task_class_of == k
        a, w, s, f = arrivals[mask], waits[mask], services[mask], finishes[mask]
        class_results.append(_class_result(task_class, a, w, s, f, wait_target_s, wait_critical_s))
        if len(a) and len(times):
            # FCFS within a queue: starts never decrease, so the first task not started by t is
            # the oldest waiting one (if it has arrived)
            j = np.minimum(np.searchsorted(a + w, times, side="right"), len(a) - 1)
            oldest = np.maximum(oldest, np.where((a[j] <= times) & (a[j] + w[j] > times), times - a[j], 0.0))
    timeline = [{**p, "oldest_wait_s": float(o)} for p, o in zip(timeline, oldest, strict=True)]
    if len(classes) == 1:
        whole = class_results[0]
    else:
        whole = _class_result(TaskClass("all", "*", arrivals, services), arrivals, waits, services, finishes,
                              wait_target_s, wait_critical_s)  # fmt: skip
    return assemble(classes, pools, states, replicas, work, class_results, whole, timeline, end)


def assemble(
    classes: list[TaskClass],
    pools: list[Pool],
    states: list[_PoolState],
    replicas: _Replicas,
    work: np.ndarray,
    class_results: list[ClassResult],
    whole: ClassResult,
    timeline: list[dict[str, float]],
    end: float,
    percentiles: str = "exact",
) -> AutoscaleResult:
    """The result from the classes' figures (exact, or streamed) and what the pools did."""
    seconds = [min(replicas.retired[r], end) - replicas.created[r] for r in range(replicas.n)]
    per_pool_seconds = np.bincount(replicas.pool[: replicas.n], weights=seconds, minlength=len(pools))
    # the slot-seconds each pool could serve: from ready to gone, x its concurrency
    ready_seconds = [
        max(0.0, min(replicas.retired[r], end) - replicas.ready_at[r]) * pools[int(replicas.pool[r])].fleet.concurrency
        for r in range(replicas.n)
    ]
    capacity = np.bincount(replicas.pool[: replicas.n], weights=ready_seconds, minlength=len(pools))
    pool_results = tuple(
        PoolResult(
            name=pool.name,
            policy=pool.policy.name,
            max_replicas=max([_first(pool), *(int(p["replicas"]) for p in state.timeline)]),
            replica_hours=float(per_pool_seconds[i]) / 3600,
            utilization=float(work[i] / capacity[i]) if capacity[i] > 0 else 0.0,
            timeline=tuple(state.timeline),
        )
        for i, (pool, state) in enumerate(zip(pools, states, strict=True))
    )  # fmt: skip
    return AutoscaleResult(
        policy=", ".join(sorted({p.policy.name for p in pools})),
        tasks=sum(c.tasks for c in class_results),
        drain_time_s=whole.drain_time_s,
        max_replicas=max([sum(_first(p) for p in pools), *(int(p["replicas"]) for p in timeline)]),
        wait_mean_s=whole.wait_mean_s,
        wait_p95_s=whole.wait_p95_s,
        wait_p99_s=whole.wait_p99_s,
        response_p95_s=whole.response_p95_s,
        replica_hours=float(sum(seconds)) / 3600,
        seconds_above_wait_target=whole.seconds_above_wait_target,
        seconds_critical=whole.seconds_critical,
        seconds_queue_critical=max(c.seconds_queue_critical for c in class_results),
        timeline=tuple(timeline),
        classes=tuple(class_results),
        pools=pool_results,
        floor_replicas=sum(p.policy.replicas if p.policy.name == "fixed" else p.fleet.min_replicas for p in pools),
        span_s=end,
        percentiles=percentiles,
    )


def _first(pool: Pool) -> int:
    if pool.policy.name == "fixed":
        return pool.policy.replicas
    return pool.fleet.initial_replicas if pool.fleet.initial_replicas is not None else pool.fleet.min_replicas


def _class_result(
    task_class: TaskClass,
    a: np.ndarray,
    w: np.ndarray,
    s: np.ndarray,
    f: np.ndarray,
    wait_target_s: float,
    wait_critical_s: float,
) -> ClassResult:
    if not len(a):
        return ClassResult(task_class.name, task_class.queue, 0, *([0.0] * 10))
    p95, p99 = np.percentile(w, [95, 99])
    r = w + s
    starts = a + w
    return ClassResult(
        name=task_class.name,
        queue=task_class.queue,
        tasks=len(a),
        wait_mean_s=float(w.mean()),
        wait_p95_s=float(p95),
        wait_p99_s=float(p99),
        wait_max_s=float(w.max()),
        response_mean_s=float(r.mean()),
        response_p95_s=float(np.percentile(r, 95)),
        drain_time_s=float(f.max() - a[0]),
        seconds_above_wait_target=time_above(a, starts, wait_target_s),
        seconds_critical=time_above(a, starts, wait_critical_s),
        seconds_queue_critical=time_deeper(a, starts, QUEUE_CRITICAL),
    )
