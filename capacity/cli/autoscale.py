"""``capacity autoscale``: will this scaling policy keep the queue under control, at what cost?"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from capacity.cli._common import OutputOption, ProfilesOption, emit, format_option, handle_errors, profiles
from capacity.errors import InputError
from capacity.render import formats
from capacity.render.fleet import fleet_report
from capacity.sizing.autoscale import Pool, TaskClass, simulate_pools
from capacity.sizing.fleetfile import Arrivals, draw_classes, load_fleet, pools, scale_trace
from capacity.sizing.goal import Search, search
from capacity.sizing.memory import check_tasks_fit
from capacity.sizing.policies import POLICIES, Fleet, Policy
from capacity.sizing.simulate import Workload, read_service_times
from capacity.units import parse_duration, parse_rate

HELP = f"""Simulate a worker fleet under a scaling policy ({", ".join(POLICIES)}): replicas of
--concurrency slots that start --startup after being asked for, fed by a burst, a rate, Poisson
arrivals, a stages file or a replayed task log. keda-redis and keda-sqs follow KEDA's metric (Redis
listLength; SQS queueLength = visible + in flight) read by the Kubernetes HPA every 15 s with its
10% tolerance, max(+4 pods, +100%) per 15 s up and a 300 s scale-down window. --fleet FILE
simulates several queues and pools (each with its own policy). Reports drain time, waits, peak
replicas, replica-hours and (with --instance) the monthly cost; --goal-p95-wait finds the cheapest
target that meets the goal (--format k8s prints its ScaledObject); --format html plots the
timeline."""

Opt = typer.Option
#: about a minute and ~10 GB here (a day at 1,000 tasks/s is 86.4 million)
MAX_TASKS = 100_000_000
AutoscaleFormat = Annotated[str, format_option(*formats.DATA_FORMATS, "html", "k8s")]


@handle_errors
def command(
    concurrency: Annotated[int | None, Opt(help="Slots per replica (the worker's --concurrency).")] = None,
    fleet_file: Annotated[
        Path | None,
        Opt(
            "--fleet",
            help="A fleet file (YAML): task classes on queues and the pools consuming them, with their policies "
            "and thresholds (the single-queue options are then not used).",
        ),
    ] = None,
    policy: Annotated[str, Opt(help=f"Scaling policy: {', '.join(POLICIES)}.")] = "keda-redis",
    target: Annotated[float, Opt(help="KEDA listLength / queueLength: tasks per replica.")] = 100.0,
    replicas: Annotated[int, Opt(help="--policy fixed: the number of replicas.")] = 1,
    min_replicas: Annotated[int, Opt(help="The HPA's minReplicas (0: KEDA activates from 0).")] = 1,
    max_replicas: Annotated[int, Opt(help="The HPA's maxReplicas.")] = 10,
    startup: Annotated[str, Opt(help="From asking for a replica to its worker taking tasks.")] = "30s",
    sync: Annotated[str, Opt(help="The HPA's sync period (--horizontal-pod-autoscaler-sync-period).")] = "15s",
    scale_up_pods: Annotated[int, Opt(help="Scale-up policy: pods per period.")] = 4,
    scale_up_percent: Annotated[float, Opt(help="Scale-up policy: percent per period.")] = 100.0,
    scale_down_percent: Annotated[float, Opt(help="Scale-down policy: percent per period.")] = 100.0,
    scale_down_window: Annotated[str, Opt(help="Scale-down stabilization window.")] = "300s",
    polling: Annotated[str, Opt(help="KEDA's pollingInterval (0 <-> 1 decisions).")] = "30s",
    cooldown: Annotated[str, Opt(help="KEDA's cooldownPeriod (back to 0).")] = "300s",
    activation: Annotated[
        float, Opt(help="KEDA's activationListLength / activationQueueLength / activationValue.")
    ] = 0.0,
    rabbitmq_mode: Annotated[
        str, Opt(help="keda-rabbitmq: QueueLength (messages per replica) or MessageRate (published/s per replica).")
    ] = "QueueLength",
    rabbitmq_protocol: Annotated[
        str, Opt(help="keda-rabbitmq: amqp (counts ready messages) or http (ready + unacked; needed by MessageRate).")
    ] = "amqp",
    tolerance: Annotated[float, Opt(help="The HPA's tolerance (--horizontal-pod-autoscaler-tolerance).")] = 0.1,
    arrival: Annotated[str, Opt(help="burst, fixed, poisson, stages or replay.")] = "burst",
    arrival_rate: Annotated[str | None, Opt(help="fixed/poisson: e.g. 20/s.")] = None,
    count: Annotated[int, Opt(help="Tasks to simulate.")] = 10_000,
    stages: Annotated[Path | None, Opt(help="--arrival stages: a stages file (as inject --stages).")] = None,
    tasks_log: Annotated[list[Path] | None, Opt("--tasks-log", help="Task logs to replay (repeatable).")] = None,
    speedup: Annotated[float, Opt(help="Replay/stages: divide the trace's times by this.")] = 1.0,
    volume: Annotated[str, Opt(help="Replay/stages: times the trace's tasks, e.g. 2x or 0.5.")] = "1",
    service: Annotated[str, Opt(help="constant, exponential, lognormal or empirical.")] = "constant",
    service_time: Annotated[str, Opt(help="Mean service time, e.g. 12s.")] = "1s",
    service_cv: Annotated[float, Opt(help="Lognormal: coefficient of variation.")] = 1.0,
    from_metrics: Annotated[Path | None, Opt(help="Empirical: the per-task CSV of `capacity metrics --csv`.")] = None,
    seed: Annotated[int | None, Opt(min=0, help="Random seed [default: the fleet file's, or 1].")] = None,
    percentiles: Annotated[
        str,
        Opt(
            help="Percentiles of waits and response times: exact (every task held: ~130 bytes a task), sketch "
            "(streamed in bounded memory, within 1%: a week at 1,000/s), or auto (sketch above 20,000,000 tasks)."
        ),
    ] = "auto",
    wait_target: Annotated[str, Opt(help="Seed 002's wait target (time above it is reported).")] = "10s",
    wait_critical: Annotated[str, Opt(help="Seed 002's critical wait.")] = "60s",
    goal_p95_wait: Annotated[
        str | None, Opt(help="Find the cheapest --target and --min-replicas whose p95 wait meets this, e.g. 60s.")
    ] = None,
    instance: Annotated[str | None, Opt(help="Instance type per replica, for the monthly cost.")] = None,
    queue: Annotated[
        str, Opt(help="--format k8s: the queue (Redis list, SQS URL or name, RabbitMQ queue) of the trigger.")
    ] = "celery",
    broker: Annotated[
        str | None,
        Opt(
            help="--format k8s: the broker URL the workers use: the trigger's address, and a TriggerAuthentication "
            "for its password (read from a Secret; never printed)."
        ),
    ] = None,
    name: Annotated[str, Opt(help="--format k8s: the Deployment the ScaledObject scales.")] = "celery-worker",
    profiles_dir: ProfilesOption = None,
    fmt: AutoscaleFormat = "table",
    output: OutputOption = "-",
) -> None:
    waits = (parse_duration(wait_target, "--wait-target"), parse_duration(wait_critical, "--wait-critical"))
    if fleet_file is not None:
        spec, base = load_fleet(fleet_file)
        classes = draw_classes(spec, base, seed, read_trace, percentiles)
        fleet_pools = pools(spec)
        waits = (spec.wait_target, spec.wait_critical)
    else:
        if concurrency is None:
            raise InputError("give --concurrency (slots per replica), or --fleet FILE")
        classes = [_one_class(arrival, arrival_rate, count, stages, tasks_log, speedup, volume, service,
                              service_time, service_cv, from_metrics, 1 if seed is None else seed, queue,
                              percentiles)]  # fmt: skip
        base_policy = Policy(
            policy,
            target=target,
            replicas=replicas,
            sync_s=parse_duration(sync, "--sync"),
            up_pods=scale_up_pods,
            up_percent=scale_up_percent,
            down_percent=scale_down_percent,
            down_window_s=parse_duration(scale_down_window, "--scale-down-window"),
            polling_s=parse_duration(polling, "--polling"),
            cooldown_s=parse_duration(cooldown, "--cooldown"),
            activation=activation,
            tolerance=tolerance,
            mode=rabbitmq_mode,
            protocol=rabbitmq_protocol,
        )
        if policy == "fixed":  # the fixed size is the fleet's size
            min_replicas, max_replicas = min(min_replicas, replicas), max(max_replicas, replicas)
        fleet = Fleet(concurrency, min_replicas, max_replicas, parse_duration(startup, "--startup"))
        fleet_pools = [Pool(name, (queue,), fleet, base_policy)]
    total = sum(len(c.arrivals) for c in classes)  # held in memory (a streamed class holds none)
    if total > MAX_TASKS:
        raise InputError(f"{total:,} tasks: this simulation handles up to {MAX_TASKS:,} (about a minute, ~10 GB)")
    check_tasks_fit(total)
    hourly = profiles(profiles_dir).instance(instance).cost_per_hour_usd if instance is not None else None
    found: Search | None = None
    if goal_p95_wait is not None:  # every trial is a run: the given settings need none of their own
        found = search(classes, fleet_pools, parse_duration(goal_p95_wait, "--goal-p95-wait"), *waits)
        result, fleet_pools = found.chosen.result, list(found.pools)
    else:
        result = simulate_pools(classes, fleet_pools, *waits)
    if fleet_file is not None:
        brokers = {p.name: p.broker or spec.broker or broker for p in spec.pools}
    else:
        brokers = {name: broker}
    report = fleet_report(
        result, fleet_pools, hourly, found, goal_p95_wait, queue if fleet_file is None else None, brokers
    )
    if fmt == "html":
        from capacity.render.timeline import timeline_png  # matplotlib: the matrix extra

        png = timeline_png(
            f"Replicas, queue and wait: {result.policy}",
            result.timeline,
            [(p.name, p.timeline) for p in result.pools],
        )
        report = replace(report, images=(("autoscale_timeline.png", png),))
    emit(report, fmt, output)


def _one_class(
    arrival: str,
    arrival_rate: str | None,
    count: int,
    stages: Path | None,
    tasks_log: list[Path] | None,
    speedup: float,
    volume: str,
    service: str,
    service_time: str,
    service_cv: float,
    from_metrics: Path | None,
    seed: int,
    queue: str,
    percentiles: str = "exact",
) -> TaskClass:
    if speedup <= 0:
        raise InputError("--speedup must be above zero")
    try:
        times = float(volume.strip().removesuffix("x"))
    except ValueError:
        times = math.nan
    if not 0 < times < math.inf:
        raise InputError(f"--volume {volume!r}: a factor above zero, e.g. 2x or 0.5")
    from capacity.sizing.stream import ArraySource, DrawnSource, streams

    counted = arrival not in ("replay", "stages")
    streamed = streams(percentiles, count if counted else 0)
    drawn_later = streamed and arrival in ("poisson", "fixed")  # a block at a time, never whole
    if counted and count > MAX_TASKS and not drawn_later:
        raise InputError(
            f"--count {count:,}: this simulation holds up to {MAX_TASKS:,} tasks (about a minute); "
            "poisson or fixed arrivals stream more (--percentiles sketch)"
        )
    if counted and not drawn_later:
        check_tasks_fit(count)
    rng = np.random.default_rng(seed)
    offsets = None
    if arrival == "stages":
        if stages is None:
            raise InputError("--arrival stages needs --stages FILE")
        from capacity.load.schedules import load_stages

        offsets = np.fromiter(load_stages(stages).offsets(), float)
    elif arrival == "replay" and tasks_log:
        offsets = _sent_offsets(tasks_log)
    if offsets is not None:
        offsets = scale_trace(offsets, speedup, times, rng)
    workload = Workload(
        slots=1,
        arrival="replay" if arrival == "stages" else arrival,
        arrival_rate_per_s=parse_rate(arrival_rate, "--arrival-rate") if arrival_rate is not None else None,
        count=count,
        service=service,
        service_time_s=parse_duration(service_time, "--service-time"),
        service_cv=service_cv,
        replay_offsets_s=offsets,
        empirical_s=read_service_times(from_metrics) if from_metrics is not None else None,
    )
    workload.check()
    if drawn_later:
        return TaskClass("tasks", queue, np.empty(0), np.empty(0), source=DrawnSource(workload, seed))
    arrivals, services = workload.draw(rng)
    return TaskClass("tasks", queue, arrivals, services, source=ArraySource(arrivals, services) if streamed else None)


def read_trace(arrivals: Arrivals, base: Path) -> Any:
    """A fleet file's stages file or task logs as send offsets (paths from the file's folder)."""
    if arrivals.kind == "stages":
        from capacity.load.schedules import load_stages

        return np.fromiter(load_stages(base / str(arrivals.stages)).offsets(), float)
    return _sent_offsets([base / p for p in arrivals.tasks_log or ()])


def _sent_offsets(tasks_log: list[Path]) -> Any:
    from capacity.measure.inputs import sent_offsets  # DuckDB and pyarrow: the measure extra

    return np.asarray(sent_offsets(tasks_log), dtype=float)
