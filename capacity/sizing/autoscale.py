"""A worker fleet under a scaling policy: a discrete-event simulation (issue #14, first part).

Tasks arrive (``simulate``'s Workload: burst, fixed, Poisson, replayed logs; constant,
exponential, lognormal or measured service times) at one FCFS queue served by replicas of
``concurrency`` slots each. A replica the policy adds is ready ``startup_s`` later (scheduling,
image pull, worker start); one it removes takes no new task and leaves when its tasks finish
(Celery's warm shutdown).

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
model queues, not Kubernetes' controller); the queue part follows ``simulate``'s FCFS pool.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from capacity.errors import InputError

POLICIES = ("keda-redis", "keda-sqs", "aws-backlog", "seed002", "fixed")


@dataclass(frozen=True)
class Fleet:
    concurrency: int
    min_replicas: int = 1
    max_replicas: int = 10
    startup_s: float = 30.0
    initial_replicas: int | None = None  # default: min_replicas (at least 1 when min is 0 and tasks wait)

    def check(self) -> None:
        if self.concurrency < 1:
            raise InputError(f"--concurrency must be at least 1, got {self.concurrency}")
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise InputError("replicas: need 0 <= --min-replicas <= --max-replicas, --max-replicas >= 1")
        if self.startup_s < 0:
            raise InputError("--startup must be zero or more")


@dataclass(frozen=True)
class Policy:
    """A scaling policy and its settings (the HPA's defaults unless overridden)."""

    name: str = "keda-redis"
    target: float = 100.0  # KEDA listLength / queueLength: tasks per replica
    replicas: int = 1  # fixed
    sync_s: float = 15.0
    tolerance: float = 0.1
    up_pods: int = 4
    up_percent: float = 100.0
    down_percent: float = 100.0
    down_window_s: float = 300.0
    polling_s: float = 30.0  # KEDA's pollingInterval: the 0 <-> 1 decisions
    cooldown_s: float = 300.0  # KEDA's cooldownPeriod: inactive this long before scaling to 0
    activation: float = 0.0  # activationListLength / activationQueueLength
    utilization: float = 0.8  # seed002
    buffer: float = 0.2  # seed002

    def check(self) -> None:
        if self.name not in POLICIES:
            raise InputError(f"--policy {self.name!r}: use one of {', '.join(POLICIES)}")
        if self.target <= 0 or not math.isfinite(self.target):
            raise InputError("--target must be above zero")
        if self.sync_s <= 0:
            raise InputError("--sync must be above zero")


@dataclass
class _Replica:
    ready_at: float
    busy: int = 0
    removing: bool = False


@dataclass(frozen=True)
class AutoscaleResult:
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

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "tasks": self.tasks,
            "drain_time_s": self.drain_time_s,
            "max_replicas": self.max_replicas,
            "wait_mean_s": self.wait_mean_s,
            "wait_p95_s": self.wait_p95_s,
            "wait_p99_s": self.wait_p99_s,
            "response_p95_s": self.response_p95_s,
            "replica_hours": self.replica_hours,
            "seconds_above_wait_target": self.seconds_above_wait_target,
            "seconds_critical": self.seconds_critical,
            "timeline": list(self.timeline),
        }


class _Fleet:
    """The replicas and the HPA's memory of its recommendations."""

    def __init__(self, fleet: Fleet, policy: Policy, first: int) -> None:
        self.fleet, self.policy = fleet, policy
        self.replicas: list[_Replica] = [_Replica(0.0) for _ in range(first)]
        self.recommendations: deque[tuple[float, int]] = deque()

    @property
    def requested(self) -> int:
        return sum(1 for r in self.replicas if not r.removing)

    def ready(self, now: float) -> list[_Replica]:
        return [r for r in self.replicas if not r.removing and r.ready_at <= now]

    def _remember(self, now: float, raw: int) -> int:
        """Keep ``raw`` with the recommendations of the scale-down window (those strictly after
        now - window); the highest of them."""
        self.recommendations.append((now, raw))
        while self.recommendations and self.recommendations[0][0] <= now - self.policy.down_window_s:
            self.recommendations.popleft()
        return max(r for _, r in self.recommendations)

    def desired(self, now: float, waiting: int, in_flight: int) -> int:
        policy, current = self.policy, self.requested
        if policy.name == "fixed":
            return policy.replicas
        if policy.name == "seed002":
            depth = waiting
            return math.ceil(depth / (self.fleet.concurrency * policy.utilization) * (1 + policy.buffer))
        metric = waiting + in_flight if policy.name == "keda-sqs" else waiting
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
            floor_ = math.floor(current * (1 - policy.down_percent / 100))
            raw = max(raw, floor_)
        elif raw > current:
            raw = min(raw, max(current + policy.up_pods, math.floor(current * (1 + policy.up_percent / 100))))
        return raw

    def scale_to(self, now: float, wanted: int) -> None:
        wanted = max(self.fleet.min_replicas, min(self.fleet.max_replicas, wanted))
        current = self.requested
        for _ in range(wanted - current):
            self.replicas.append(_Replica(now + self.fleet.startup_s))
        if wanted < current:
            # remove the ones not started yet first, then the least busy (graceful: they finish)
            order = sorted((r for r in self.replicas if not r.removing), key=lambda r: (r.ready_at <= now, r.busy))
            for replica in order[: current - wanted]:
                replica.removing = True
            self.replicas = [r for r in self.replicas if not (r.removing and (r.busy == 0 or r.ready_at > now))]


def simulate_fleet(
    arrivals: np.ndarray,
    services: np.ndarray,
    fleet: Fleet,
    policy: Policy,
    wait_target_s: float = 10.0,
    wait_critical_s: float = 60.0,
) -> AutoscaleResult:
    """One run: every task's wait, and the replicas and queue over time (a point per sync)."""
    fleet.check()
    policy.check()
    n = len(arrivals)
    if n > 5_000_000:
        raise InputError(f"{n:,} tasks: the autoscaling simulation handles up to 5,000,000 (an event loop in Python)")
    order = np.argsort(arrivals, kind="stable")
    arrivals, services = np.asarray(arrivals, float)[order], np.asarray(services, float)[order]
    first = fleet.initial_replicas if fleet.initial_replicas is not None else fleet.min_replicas
    # KEDA owns 0 <-> 1 when the minimum is 0 (the HPA never scales to or from 0): every polling
    # interval it checks the metric against the activation threshold; scaled to 0 after
    # cooldownPeriod without activity
    keda_zero = policy.name in ("keda-redis", "keda-sqs") and fleet.min_replicas == 0
    next_poll = policy.polling_s if keda_zero else math.inf
    last_active = -math.inf
    if policy.name == "fixed":
        first = policy.replicas
    state = _Fleet(fleet, policy, first)
    waits = np.full(n, np.nan)
    queue: deque[int] = deque()
    # events: (time, kind, seq, payload); kinds ordered so completions free slots before a sync reads
    completions: list[tuple[float, int, int]] = []  # (time, seq, replica index in a dict)
    owners: dict[int, _Replica] = {}
    seq = 0
    next_arrival = 0
    next_sync = policy.sync_s
    in_flight = 0
    finished = 0
    last_finish = 0.0
    timeline: list[dict[str, float]] = []
    replica_seconds = 0.0
    last_t = 0.0
    above = critical = 0.0

    def dispatch(now: float) -> None:
        nonlocal seq, in_flight
        for replica in state.ready(now):
            while replica.busy < fleet.concurrency and queue:
                i = queue.popleft()
                waits[i] = now - arrivals[i]
                replica.busy += 1
                in_flight += 1
                seq += 1
                owners[seq] = replica
                heapq.heappush(completions, (now + services[i], seq, i))

    def pending_ready(now: float) -> float:
        later = [r.ready_at for r in state.replicas if not r.removing and r.ready_at > now]
        return min(later) if later else math.inf

    now = 0.0
    # after the last task, the syncs go on until the fleet is back at its minimum (the scale-down
    # window passes) or a horizon: those idle replica-hours are paid for too
    horizon = math.inf
    while finished < n or (state.requested > max(fleet.min_replicas, 0) and now < horizon):
        if policy.name == "fixed" and finished == n:
            break
        t_arrival = arrivals[next_arrival] if next_arrival < n else math.inf
        t_done = completions[0][0] if completions else math.inf
        t_ready = pending_ready(now)
        now_next = min(t_arrival, t_done, t_ready, next_sync, next_poll)
        if not math.isfinite(now_next):
            raise InputError("no replica can serve the queue (max replicas 0?)")
        replica_seconds += state.requested * (now_next - last_t) + sum(1 for r in state.replicas if r.removing) * (
            now_next - last_t
        )
        oldest = arrivals[queue[0]] if queue else None
        if oldest is not None:
            # time during which the oldest waiting task had waited beyond the targets
            span = now_next - last_t
            above += max(0.0, min(span, now_next - oldest - wait_target_s))
            critical += max(0.0, min(span, now_next - oldest - wait_critical_s))
        last_t = now = now_next
        if t_done == now:
            while completions and completions[0][0] == now:
                _, key, _ = heapq.heappop(completions)
                replica = owners.pop(key)
                replica.busy -= 1
                in_flight -= 1
                finished += 1
                last_finish = now
            state.replicas = [r for r in state.replicas if not (r.removing and r.busy == 0)]
            if finished == n:
                horizon = now + max(policy.down_window_s, policy.cooldown_s) + 4 * max(policy.sync_s, policy.polling_s)
        while next_arrival < n and arrivals[next_arrival] == now:
            queue.append(next_arrival)
            next_arrival += 1
        dispatch(now)
        if next_poll == now:
            metric = len(queue) + (in_flight if policy.name == "keda-sqs" else 0)
            if metric > policy.activation:
                last_active = now
                if state.requested == 0:
                    state.scale_to(now, 1)
            elif state.requested > 0 and now - last_active >= policy.cooldown_s:
                state.scale_to(now, 0)
            next_poll = now + policy.polling_s
        if next_sync == now:
            if state.requested > 0 or not keda_zero:  # the HPA does not act on a deployment at 0
                wanted = state.desired(now, len(queue), in_flight)
                state.scale_to(now, max(wanted, 1) if keda_zero else wanted)
            dispatch(now)
            timeline.append(
                {
                    "t_s": now,
                    "replicas": state.requested,
                    "ready_replicas": len(state.ready(now)),
                    "queue_depth": len(queue),
                    "in_flight": in_flight,
                }
            )
            next_sync = now + policy.sync_s
    response = waits + services
    return AutoscaleResult(
        policy=policy.name,
        tasks=n,
        drain_time_s=last_finish - float(arrivals[0]) if n else 0.0,
        max_replicas=max([first, *(int(p["replicas"]) for p in timeline)]),
        wait_mean_s=float(np.mean(waits)),
        wait_p95_s=float(np.percentile(waits, 95)),
        wait_p99_s=float(np.percentile(waits, 99)),
        response_p95_s=float(np.percentile(response, 95)),
        replica_hours=replica_seconds / 3600,
        seconds_above_wait_target=above,
        seconds_critical=critical,
        timeline=tuple(timeline),
    )
