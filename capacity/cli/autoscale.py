"""``capacity autoscale``: will this scaling policy keep the queue under control, at what cost?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from capacity.cli._common import FormatOption, OutputOption, ProfilesOption, emit, handle_errors, profiles
from capacity.errors import InputError
from capacity.render.model import Report, Table
from capacity.sizing.autoscale import POLICIES, AutoscaleResult, Fleet, Policy, simulate_fleet
from capacity.sizing.simulate import Workload
from capacity.units import format_duration, parse_duration, parse_rate

HELP = f"""Simulate a worker fleet under a scaling policy ({", ".join(POLICIES)}): replicas of
--concurrency slots that start --startup after being asked for, fed by a burst, a rate, Poisson
arrivals or a replayed task log. keda-redis and keda-sqs follow KEDA's metric (Redis listLength;
SQS queueLength = visible + in flight) read by the Kubernetes HPA every 15 s with its 10%
tolerance, max(+4 pods, +100%) per 15 s up and a 300 s scale-down window. Reports drain time,
waits, peak replicas, replica-hours and (with --instance) the monthly cost; --goal-p95-wait finds
the cheapest target that meets the goal."""

Opt = typer.Option
#: an event loop in Python (~10 s per million tasks here): larger runs are refused rather than left
#: running for hours; the vectorised fleet simulation that would take a day at 1,000/s is not built yet
MAX_TASKS = 5_000_000
#: targets tried by --goal-p95-wait (KEDA listLength / queueLength values)
TARGETS = (5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2000)


@handle_errors
def command(
    concurrency: Annotated[int, Opt(help="Slots per replica (the worker's --concurrency).")],
    policy: Annotated[str, Opt(help=f"Scaling policy: {', '.join(POLICIES)}.")] = "keda-redis",
    target: Annotated[float, Opt(help="KEDA listLength / queueLength: tasks per replica.")] = 100.0,
    replicas: Annotated[int, Opt(help="--policy fixed: the number of replicas.")] = 1,
    min_replicas: Annotated[int, Opt(help="The HPA's minReplicas.")] = 1,
    max_replicas: Annotated[int, Opt(help="The HPA's maxReplicas.")] = 10,
    startup: Annotated[str, Opt(help="From asking for a replica to its worker taking tasks.")] = "30s",
    sync: Annotated[str, Opt(help="The HPA's sync period (--horizontal-pod-autoscaler-sync-period).")] = "15s",
    scale_up_pods: Annotated[int, Opt(help="Scale-up policy: pods per period.")] = 4,
    scale_up_percent: Annotated[float, Opt(help="Scale-up policy: percent per period.")] = 100.0,
    scale_down_window: Annotated[str, Opt(help="Scale-down stabilization window.")] = "300s",
    arrival: Annotated[str, Opt(help="burst, fixed, poisson or replay.")] = "burst",
    arrival_rate: Annotated[str | None, Opt(help="fixed/poisson: e.g. 20/s.")] = None,
    count: Annotated[int, Opt(help="Tasks to simulate.")] = 10_000,
    tasks_log: Annotated[list[Path] | None, Opt("--tasks-log", help="Task logs to replay (repeatable).")] = None,
    speedup: Annotated[float, Opt(help="Replay: divide the trace's times by this.")] = 1.0,
    service: Annotated[str, Opt(help="constant, exponential or lognormal.")] = "constant",
    service_time: Annotated[str, Opt(help="Mean service time, e.g. 12s.")] = "1s",
    service_cv: Annotated[float, Opt(help="Lognormal: coefficient of variation.")] = 1.0,
    seed: Annotated[int, Opt(help="Random seed.")] = 1,
    wait_target: Annotated[str, Opt(help="Seed 002's wait target (time above it is reported).")] = "10s",
    wait_critical: Annotated[str, Opt(help="Seed 002's critical wait.")] = "60s",
    goal_p95_wait: Annotated[
        str | None, Opt(help="Find the cheapest --target whose p95 wait meets this, e.g. 60s.")
    ] = None,
    instance: Annotated[str | None, Opt(help="Instance type per replica, for the monthly cost.")] = None,
    profiles_dir: ProfilesOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = "-",
) -> None:
    if speedup <= 0:
        raise InputError("--speedup must be above zero")
    if arrival != "replay" and count > MAX_TASKS:
        raise InputError(f"--count {count:,}: this simulation handles up to {MAX_TASKS:,} tasks (about a minute)")
    workload = Workload(
        slots=1,
        arrival=arrival,
        arrival_rate_per_s=parse_rate(arrival_rate, "--arrival-rate") if arrival_rate is not None else None,
        count=count,
        service=service,
        service_time_s=parse_duration(service_time, "--service-time"),
        service_cv=service_cv,
        replay_offsets_s=_sent_offsets(tasks_log) / speedup if arrival == "replay" and tasks_log else None,
    )
    workload.check()
    arrivals, services = workload.draw(np.random.default_rng(seed))
    fleet = Fleet(concurrency, min_replicas, max_replicas, parse_duration(startup, "--startup"))
    base = Policy(
        policy,
        target=target,
        replicas=replicas,
        sync_s=parse_duration(sync, "--sync"),
        up_pods=scale_up_pods,
        up_percent=scale_up_percent,
        down_window_s=parse_duration(scale_down_window, "--scale-down-window"),
    )
    waits = (parse_duration(wait_target, "--wait-target"), parse_duration(wait_critical, "--wait-critical"))
    hourly = profiles(profiles_dir).instance(instance).cost_per_hour_usd if instance is not None else None
    result = simulate_fleet(arrivals, services, fleet, base, *waits)
    search: list[tuple[float, AutoscaleResult]] = []
    if goal_p95_wait is not None:
        goal = parse_duration(goal_p95_wait, "--goal-p95-wait")
        if policy not in ("keda-redis", "keda-sqs"):
            raise InputError("--goal-p95-wait searches KEDA's target: give --policy keda-redis or keda-sqs")
        search = [(t, simulate_fleet(arrivals, services, fleet, _with_target(base, t), *waits)) for t in TARGETS]
        meeting = [(t, r) for t, r in search if r.wait_p95_s <= goal]
        if not meeting:
            raise InputError(f"no target from {TARGETS[0]} to {TARGETS[-1]} keeps p95 wait under {goal_p95_wait}")
        target, result = min(meeting, key=lambda pair: (pair[1].replica_hours, -pair[0]))
    emit(_report(result, target, hourly, search, goal_p95_wait), fmt, output)


def _with_target(policy: Policy, target: float) -> Policy:
    from dataclasses import replace

    return replace(policy, target=target)


def _monthly(result: AutoscaleResult, hourly: float | None) -> float | None:
    """The trace's replica-hours at the instance's price, scaled from the trace's length to 730 h."""
    if hourly is None:
        return None
    span_s = max([result.drain_time_s, *(p["t_s"] for p in result.timeline)]) or 1.0
    return hourly * result.replica_hours * (730 * 3600 / span_s)


def _report(
    result: AutoscaleResult,
    target: float,
    hourly: float | None,
    search: list[tuple[float, AutoscaleResult]],
    goal: str | None,
) -> Report:
    monthly = _monthly(result, hourly)
    data: dict[str, Any] = {**result.to_json(), "target": target, "monthly_cost_usd": monthly}
    summary = [
        ("Policy", f"{result.policy}" + (f", target {target:g} tasks per replica" if "keda" in result.policy else "")),
        ("Tasks", f"{result.tasks:,}"),
        ("Drain time (first arrival to last finish)", format_duration(result.drain_time_s)),
        (
            "Wait mean / p95 / p99",
            " / ".join(format_duration(v) for v in (result.wait_mean_s, result.wait_p95_s, result.wait_p99_s)),
        ),
        ("Peak replicas", str(result.max_replicas)),
        ("Replica-hours", f"{result.replica_hours:,.3f}"),
        (
            "Oldest task above the wait target / critical",
            f"{format_duration(result.seconds_above_wait_target)} / {format_duration(result.seconds_critical)}",
        ),
    ]
    if monthly is not None:
        summary.append(("Monthly cost at this trace's pace", f"${monthly:,.2f}"))
    step = max(1, len(result.timeline) // 25)
    tables = [
        Table(
            "Replicas and queue over time",
            ("t", "replicas", "ready", "waiting", "in flight"),
            tuple(
                (
                    format_duration(p["t_s"]),
                    str(int(p["replicas"])),
                    str(int(p["ready_replicas"])),
                    f"{int(p['queue_depth']):,}",
                    f"{int(p['in_flight']):,}",
                )
                for p in result.timeline[::step]
            ),
        )
    ]
    if search:
        data["search"] = [{"target": t, **{k: v for k, v in r.to_json().items() if k != "timeline"}} for t, r in search]
        tables.append(
            Table(
                f"Targets tried (goal: p95 wait <= {goal})",
                ("target", "p95 wait", "peak replicas", "replica-hours"),
                tuple(
                    (f"{t:g}", format_duration(r.wait_p95_s), str(r.max_replicas), f"{r.replica_hours:,.3f}")
                    for t, r in search
                ),
            )
        )
    notes = (
        "HPA: desired = ceil(metric / target) outside a 10% tolerance; up at most max(+4 pods, +100%) per 15 s; "
        "down to the highest recommendation of the last 300 s (kubernetes.io, Horizontal Pod Autoscaling).",
        "With --min-replicas 0, KEDA scales 0 -> 1 when the metric passes the activation threshold (checked every "
        "30 s) and back to 0 after a 300 s cooldown. Not modelled yet: several queues and pools, a validated real run.",
    )
    return Report("Autoscaling simulation", data, tuple(summary), tuple(tables), notes)


def _sent_offsets(tasks_log: list[Path]) -> Any:
    from capacity.measure.inputs import sent_offsets  # DuckDB and pyarrow: the measure extra

    return np.asarray(sent_offsets(tasks_log), dtype=float)
