"""The report of a fleet simulation (``autoscale``, ``simulate --fleet``): the whole fleet, each
class and pool, the timeline, the goal search, and the KEDA ScaledObjects of the policies used."""

from __future__ import annotations

from typing import Any

from capacity.render.model import Report, Table
from capacity.sizing.autoscale import AutoscaleResult, Pool
from capacity.sizing.goal import Search, worst_p95
from capacity.sizing.policies import KEDA_POLICIES, Policy
from capacity.units import format_duration


def monthly_cost(result: AutoscaleResult, hourly: float | None, span_s: float | None = None) -> float | None:
    """The replica-hours over ``span_s`` (default: the run's own) at the instance's price, scaled
    from that window to 730 h. The targets of a search are priced over one window, the longest run's."""
    if hourly is None:
        return None
    span = span_s or result.span_s or 1.0
    return hourly * result.replica_hours_over(span) * (730 * 3600 / span)


def _behavior(policy: Policy) -> dict[str, Any]:
    """The HPA behaviour simulated, as the ScaledObject's horizontalPodAutoscalerConfig states it."""
    period = round(policy.sync_s)
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": policy.up_pods, "periodSeconds": period},
                {"type": "Percent", "value": round(policy.up_percent), "periodSeconds": period},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": round(policy.down_window_s),
            "policies": [{"type": "Percent", "value": round(policy.down_percent), "periodSeconds": period}],
        },
    }


def _manifests(
    fleet_pools: list[Pool], queue: str | None, brokers: dict[str, str | None]
) -> tuple[tuple[dict[str, Any], ...] | None, list[str]]:
    """Each KEDA-scaled pool's ScaledObject (and the TriggerAuthentication that reads its broker's
    credentials from a Secret), with the notes on what to create first."""
    from capacity.render.manifests import connection, scaled_object, trigger_authentication

    manifests: list[dict[str, Any]] = []
    notes: list[str] = []
    for pool in fleet_pools:
        p = pool.policy
        if p.name not in KEDA_POLICIES:
            continue
        scaler = p.name.removeprefix("keda-")
        queue_name = queue or ",".join(pool.queues)
        via = connection(scaler, queue_name, brokers.get(pool.name), pool.name)
        if via.secret_keys:
            manifests.append(trigger_authentication(pool.name, via.secret_keys))
        if via.note:
            notes.append(f"{pool.name}: {via.note}.")
        manifests.append(
            scaled_object(
                pool.name,
                scaler,
                queue_name,
                p.target,
                pool.fleet.min_replicas,
                pool.fleet.max_replicas,
                p.polling_s,
                p.cooldown_s,
                p.activation,
                _behavior(p),
                p.mode,
                p.protocol,
                via,
            )
        )
    return tuple(manifests) or None, notes


def fleet_report(
    result: AutoscaleResult,
    fleet_pools: list[Pool],
    hourly: float | None,
    search: Search | None,
    goal: str | None,
    queue: str | None,
    brokers: dict[str, str | None] | None = None,
) -> Report:
    span = search.span_s if search is not None else result.span_s
    monthly = monthly_cost(result, hourly, span)
    single = len(fleet_pools) == 1 and len(result.classes) == 1
    targets = {p.name: p.policy.target for p in fleet_pools if "keda" in p.policy.name}
    data: dict[str, Any] = {**result.to_json(), "monthly_cost_usd": monthly}
    if single:
        data["target"] = fleet_pools[0].policy.target
        data["min_replicas"] = fleet_pools[0].fleet.min_replicas
    else:
        data["targets"] = targets
    described = "; ".join(
        f"{p.name}: {p.policy.name}"
        + (f", target {p.policy.target:g} tasks per replica" if "keda" in p.policy.name else "")
        + (f", {p.fleet.min_replicas}-{p.fleet.max_replicas} replicas" if p.policy.name != "fixed" else "")
        + (f", {p.policy.replicas} replicas" if p.policy.name == "fixed" else "")
        + f", {p.fleet.concurrency} slots each"
        for p in fleet_pools
    )
    summary = [
        ("Policy", described),
        ("Tasks", f"{result.tasks:,}"),
        ("Drain time (first arrival to last finish)", format_duration(result.drain_time_s)),
        (
            "Wait mean / p95 / p99",
            " / ".join(format_duration(v) for v in (result.wait_mean_s, result.wait_p95_s, result.wait_p99_s)),
        ),
        ("Response p95", format_duration(result.response_p95_s)),
        ("Peak replicas", str(result.max_replicas)),
        (
            "Replica-hours",
            f"{result.replica_hours:,.3f}"
            + (
                f" ({result.replica_hours_over(span):,.3f} over {format_duration(span)}, the targets' window)"
                if span > result.span_s
                else ""
            ),
        ),
        (
            "Oldest task above the wait target / critical (seed 002)",
            f"{format_duration(result.seconds_above_wait_target)} / {format_duration(result.seconds_critical)}",
        ),
        ("A queue above 100 tasks (seed 002: critical)", format_duration(result.seconds_queue_critical)),
    ]
    if monthly is not None:
        summary.append(("Monthly cost at this trace's pace", f"${monthly:,.2f}"))
    step = max(1, len(result.timeline) // 25)
    tables = [
        Table(
            "Replicas and queue over time",
            ("t", "replicas", "ready", "waiting", "in flight", "oldest wait"),
            tuple(
                (
                    format_duration(p["t_s"]),
                    str(int(p["replicas"])),
                    str(int(p["ready_replicas"])),
                    f"{int(p['queue_depth']):,}",
                    f"{int(p['in_flight']):,}",
                    format_duration(p["oldest_wait_s"]),
                )
                for p in result.timeline[::step]
            ),
        )
    ]
    if not single:
        tables.append(
            Table(
                "Task classes",
                ("class", "queue", "tasks", "wait mean", "wait p95", "wait p99", "response p95", "drain"),
                tuple(
                    (
                        c.name,
                        c.queue,
                        f"{c.tasks:,}",
                        *(format_duration(v) for v in (c.wait_mean_s, c.wait_p95_s, c.wait_p99_s)),
                        format_duration(c.response_p95_s),
                        format_duration(c.drain_time_s),
                    )
                    for c in result.classes
                ),
            )
        )
        tables.append(
            Table(
                "Pools",
                ("pool", "policy", "peak replicas", "replica-hours", "utilisation"),
                tuple(
                    (p.name, p.policy, str(p.max_replicas), f"{p.replica_hours:,.3f}", f"{p.utilization:.1%}")
                    for p in result.pools
                ),
            )
        )
    if search is not None:
        data["search"] = [
            {
                "target": t.target,
                "min_replicas": t.min_replicas,
                **{k: v for k, v in t.result.to_json().items() if k not in ("timeline", "pools", "classes")},
                "monthly_cost_usd": monthly_cost(t.result, hourly, span),
                "replica_hours_over_window": t.result.replica_hours_over(span),
            }
            for t in search.trials
        ]
        columns: tuple[str, ...] = (
            "target",
            "min",
            "p95 wait",
            "peak replicas",
            f"replica-hours over {format_duration(span)}",
        )
        columns += ("monthly",) if hourly else ()
        # the chosen minimum's row for every target, and the chosen target's for every minimum
        shown = [
            t for t in search.trials if t.min_replicas == search.chosen.min_replicas or t.target == search.chosen.target
        ]
        tables.append(
            Table(
                f"Targets and minimum replicas tried (goal: p95 wait <= {goal}; the cheapest meeting it is used, *)",
                columns,
                tuple(
                    (
                        f"{t.target:g}" + (" *" if t is search.chosen else ""),
                        str(t.min_replicas),
                        format_duration(worst_p95(t.result)),
                        str(t.result.max_replicas),
                        f"{t.result.replica_hours_over(span):,.3f}",
                        *((f"${monthly_cost(t.result, hourly, span) or 0:,.2f}",) if hourly else ()),
                    )
                    for t in shown
                ),
            )
        )
    notes = []
    policies = {p.policy.name for p in fleet_pools}
    if policies & set(KEDA_POLICIES):
        notes.append(
            "HPA: desired = ceil(metric / target) outside a 10% tolerance; up at most max(+4 pods, +100%) per 15 s; "
            "down to the highest recommendation of the last 300 s (kubernetes.io, Horizontal Pod Autoscaling)."
        )
        if any(p.fleet.min_replicas == 0 for p in fleet_pools):
            notes.append(
                "With a minimum of 0, KEDA scales 0 -> 1 when the metric passes the activation threshold (checked "
                "every pollingInterval) and back to 0 after cooldownPeriod."
            )
    if "aws-backlog" in policies:
        notes.append("aws-backlog: AWS target tracking on backlog per instance (acceptable latency / service time).")
    if "seed002" in policies:
        notes.append("seed002: ceil(depth / (concurrency x 0.8) x 1.2) every period (seed 002's formula).")
    if not single:
        notes.append("A pool takes from its queues in the order listed (Celery's -Q order; kombu may rotate it).")
    if result.percentiles == "sketch":
        notes.append(
            f"Streamed ({result.tasks:,} tasks, never all in memory): the wait and response percentiles come from a "
            "DDSketch and are within 1% of the exact ones; counts, means, maxima and times are exact."
        )
    manifests, connection_notes = _manifests(fleet_pools, queue, brokers or {})
    notes += connection_notes
    return Report("Autoscaling simulation", data, tuple(summary), tuple(tables), tuple(notes), None, manifests)
