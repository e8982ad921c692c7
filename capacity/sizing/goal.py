"""``autoscale --goal-p95-wait``: the cheapest KEDA target and minimum replicas that meet a p95
wait goal on a trace, by simulating each pair (a grid: the metric is not monotone in either, as
the HPA's tolerance, rate limits and scale-down window interact)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from capacity.errors import InputError
from capacity.sizing.autoscale import AutoscaleResult, Pool, TaskClass, simulate_pools
from capacity.sizing.policies import KEDA_POLICIES

#: targets tried (KEDA listLength / queueLength values)
TARGETS = (5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2000)
#: minimum replicas tried besides the one given (0 only when given: KEDA's activation)
MINIMUMS = (1, 2, 4)


@dataclass(frozen=True)
class Trial:
    target: float
    min_replicas: int
    result: AutoscaleResult


@dataclass(frozen=True)
class Search:
    trials: tuple[Trial, ...]
    chosen: Trial
    #: the window every trial is priced over: the longest run's (one that ends sooner still pays
    #: its minimum replicas until then)
    span_s: float
    pools: tuple[Pool, ...]  # with the chosen target and minimum


def worst_p95(result: AutoscaleResult) -> float:
    """The p95 wait of the worst-served class (of the only one, with one queue)."""
    return max(c.wait_p95_s for c in result.classes)


def _with(pools: list[Pool], target: float, minimum: int) -> list[Pool]:
    return [
        replace(p, policy=replace(p.policy, target=target), fleet=replace(p.fleet, min_replicas=minimum))
        if p.policy.name in KEDA_POLICIES
        else p
        for p in pools
    ]


def search(
    classes: list[TaskClass],
    pools: list[Pool],
    goal_s: float,
    wait_target_s: float = 10.0,
    wait_critical_s: float = 60.0,
) -> Search:
    """Every target x minimum on the KEDA pools; the cheapest meeting the goal (ties: the larger
    target, then the smaller minimum)."""
    scaled = [p for p in pools if p.policy.name in KEDA_POLICIES]
    if not scaled:
        raise InputError("--goal-p95-wait searches KEDA's target: give --policy keda-redis, keda-sqs or keda-rabbitmq")
    ceiling = min(p.fleet.max_replicas for p in scaled)
    given = {p.fleet.min_replicas for p in scaled}
    minimums = sorted(m for m in {*given, *MINIMUMS} if m <= ceiling)
    trials = tuple(
        Trial(t, m, simulate_pools(classes, _with(pools, t, m), wait_target_s, wait_critical_s))
        for m in minimums
        for t in TARGETS
    )
    meeting = [trial for trial in trials if worst_p95(trial.result) <= goal_s]
    if not meeting:
        raise InputError(
            f"no target from {TARGETS[0]} to {TARGETS[-1]} with minimum replicas {', '.join(map(str, minimums))} "
            f"keeps p95 wait under {goal_s:g} s (raise --max-replicas, or shorten --startup)"
        )
    span = max(trial.result.span_s for trial in trials)
    chosen = min(meeting, key=lambda t: (t.result.replica_hours_over(span), -t.target, t.min_replicas))
    return Search(trials, chosen, span, tuple(_with(pools, chosen.target, chosen.min_replicas)))
