"""``capacity scaled-run``: a real run under a scaling policy, compared with its simulation."""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from capacity.cli._common import (
    OutputOption,
    emit,
    format_option,
    handle_errors,
    json_list_option,
    json_object_option,
    note,
)
from capacity.errors import InputError, RunFailed
from capacity.load.payload import REFERENCE_TASK
from capacity.load.schedules import Burst, Schedule, load_stages
from capacity.load.tasklog import RESULTS_DIR
from capacity.render import formats
from capacity.render.model import Report, Table
from capacity.sizing.policies import Policy
from capacity.units import format_duration, parse_duration

HELP = """Validate the autoscaling simulation against real workers: on an embedded Redis (or
--broker), start and stop real Celery worker processes (the reference worker, or --worker-cmd) as
the policy says, reading the queue's length every sync period as KEDA's Redis scaler does, while a
burst (--count) or a stages file (--stages) is injected; measure each replica's start-up, the
replicas over time, the drain time and the p95 wait; then simulate the same trace with the
measured service times and start-up, and compare. Exit 1 when a figure is more than 15% off."""

if TYPE_CHECKING:
    from capacity.matrix.scaledrun import Validation

Opt = typer.Option
ScaledFormat = Annotated[str, format_option(*formats.DATA_FORMATS, "html")]


@handle_errors
def command(
    concurrency: Annotated[int, Opt(help="Slots per replica (the worker's --concurrency).")] = 2,
    count: Annotated[int | None, Opt(help="A burst of this many tasks.")] = None,
    stages: Annotated[Path | None, Opt(help="A stages file (as inject --stages), e.g. a step in rate.")] = None,
    policy: Annotated[
        str,
        Opt(
            help="keda-redis, keda-rabbitmq (QueueLength), aws-backlog, seed002 or fixed [default: keda-redis, "
            "keda-rabbitmq on amqp://]."
        ),
    ] = "",
    target: Annotated[float, Opt(help="KEDA listLength / RabbitMQ QueueLength value: tasks per replica.")] = 10.0,
    rabbitmq_protocol: Annotated[
        str, Opt(help="keda-rabbitmq: amqp (ready messages) or http (ready + unacked, from the management API).")
    ] = "amqp",
    replicas: Annotated[int, Opt(help="--policy fixed: the number of replicas.")] = 1,
    min_replicas: Annotated[int, Opt(help="minReplicas (at least 1 here).")] = 1,
    max_replicas: Annotated[int, Opt(help="maxReplicas.")] = 5,
    sync: Annotated[str, Opt(help="The controller's period (the HPA's 15 s, scaled down).")] = "2s",
    scale_down_window: Annotated[str, Opt(help="Scale-down stabilization window (scaled down).")] = "10s",
    service_time: Annotated[str, Opt(help="The reference task's sleep: each task's service time.")] = "1s",
    broker: Annotated[str | None, Opt(help="A Redis or RabbitMQ (amqp://) URL instead of the embedded Redis.")] = None,
    queue: Annotated[str, Opt(help="The queue (a Redis list, a RabbitMQ queue).")] = "capacity-autoscale",
    worker_cmd: Annotated[
        str | None, Opt(help="Worker command template per replica ({concurrency}, {queue}, {cell}, {python}...).")
    ] = None,
    task: Annotated[str, Opt(help="The task to send [default: the reference worker's].")] = REFERENCE_TASK,
    args: Annotated[str | None, Opt(help="JSON list of the task's arguments ($task_id, $seq... per task).")] = None,
    kwargs: Annotated[str | None, Opt(help="JSON object of the task's keyword arguments.")] = None,
    run_dir: Annotated[Path | None, Opt(help=f"Run directory [default: {RESULTS_DIR}/scaled-run-<time>].")] = None,
    prometheus: Annotated[
        str | None, Opt(help="Serve the injection's live figures at http://HOST:PORT/metrics while it runs.")
    ] = None,
    fmt: ScaledFormat = "table",
    output: OutputOption = "-",
) -> None:
    from capacity.load.exporter import parse_address
    from capacity.matrix.embedded import EmbeddedRedis  # the matrix extra
    from capacity.matrix.processes import REFERENCE_WORKER
    from capacity.matrix.scaledrun import ScaledRunConfig, run_scaled, validate

    if (count is None) == (stages is None):
        raise InputError("give --count N (a burst) or --stages FILE (e.g. a step in rate)")
    if min_replicas < 1:
        raise InputError("--min-replicas: a real scaled run starts from at least 1 (KEDA's 0 is simulated only)")
    schedule: Schedule = Burst(count) if count is not None else load_stages(stages)  # type: ignore[arg-type]
    if count is not None and count < 1:
        raise InputError("--count must be at least 1")
    if not policy:
        rabbit = broker is not None and broker.split("://", 1)[0].lower() in ("amqp", "amqps", "pyamqp")
        policy = "keda-rabbitmq" if rabbit else "keda-redis"
    base = Policy(
        policy,
        protocol=rabbitmq_protocol,
        target=target,
        replicas=replicas,
        sync_s=parse_duration(sync, "--sync"),
        down_window_s=parse_duration(scale_down_window, "--scale-down-window"),
    )
    from capacity.cli.matrix import probe_note

    said = probe_note(worker_cmd) if worker_cmd else None
    directory = run_dir or RESULTS_DIR / time.strftime("scaled-run-%Y%m%d-%H%M%S")
    stop = threading.Event()
    with EmbeddedRedis() if broker is None else nullcontext() as embedded:
        config = ScaledRunConfig(
            broker_url=broker or embedded.url,  # type: ignore[union-attr]
            run_dir=directory,
            schedule=schedule,
            concurrency=concurrency,
            policy=base,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            sleep_s=parse_duration(service_time, "--service-time"),
            queue=queue,
            worker_command=worker_cmd or REFERENCE_WORKER,
            task=task,
            args=json_list_option(args, "--args"),
            kwargs=json_object_option(kwargs, "--kwargs") if kwargs is not None else None,
            prometheus=parse_address(prometheus) if prometheus is not None else None,
        )
        try:
            real = run_scaled(config, stop)
        except KeyboardInterrupt:
            stop.set()
            raise
    if said:  # once the run went through: a run that fails says one line, its error
        note(said)
    check = validate(config, real)
    report = _report(check, base, directory)
    if fmt == "html":
        from capacity.render.timeline import timeline_png  # matplotlib: the matrix extra

        png = timeline_png(
            "Real run and simulation",
            check.simulated.timeline,
            [("real", real.timeline), ("simulated", check.simulated.timeline)],
        )
        report = replace(report, images=(("scaled_run_timeline.png", png),))
    emit(report, fmt, output)
    if not check.within:
        missed = ", ".join(f.name for f in check.figures if not f.within)
        raise RunFailed(f"the simulation is more than 15% off the real run on {missed} (the notes say why)")


def _report(check: Validation, policy: Policy, directory: Path) -> Report:
    real, sim = check.real, check.simulated
    startups = real.startup_s
    summary = [
        ("Policy", f"{policy.name}" + (f", target {policy.target:g}" if "keda" in policy.name else "")),
        ("Tasks", f"{real.tasks:,} ({real.completed:,} completed)"),
        (
            "Replica start-up measured (mean, min-max)",
            f"{format_duration(real.startup_mean_s)} ({format_duration(min(startups))}-"
            f"{format_duration(max(startups))}, {len(startups)} replicas)"
            if startups
            else "no replica added",
        ),
        ("Simulation within 15% on every figure", "yes" if check.within else "no"),
        ("Run directory", str(directory)),
    ]

    def shown(name: str, value: float) -> str:
        return format_duration(value) if name.endswith("_s") else f"{value:,.1f}"

    figures = Table(
        "Real run against its simulation",
        ("figure", "real", "simulated", "difference", "within 15%"),
        tuple(
            (
                f.name,
                shown(f.name, f.real),
                shown(f.name, f.simulated),
                f"{f.difference:+.1%}",
                "yes" if f.within else "NO",
            )
            for f in check.figures
        ),
    )
    by_time = {p["t_s"]: p for p in sim.timeline}
    timeline = Table(
        "Replicas and queue, real / simulated",
        ("t", "replicas", "ready", "waiting"),
        tuple(
            (
                format_duration(p["t_s"]),
                f"{int(p['replicas'])} / {int(by_time.get(p['t_s'], {}).get('replicas', -1))}",
                f"{int(p['ready_replicas'])} / {int(by_time.get(p['t_s'], {}).get('ready_replicas', -1))}",
                f"{int(p['queue_depth'])} / {int(by_time.get(p['t_s'], {}).get('queue_depth', -1))}",
            )
            for p in real.timeline
        ),
    )
    notes = [
        "The simulation replays the real send times, the service times the probe measured (task by task) and the "
        "mean start-up measured; the controller is the same code in both (capacity.sizing.autoscale.Controller).",
        "-1 in the timeline: the simulation had stopped by then (its fleet was back at the minimum).",
    ]
    if startups and max(startups) - min(startups) > 0.3 * real.startup_mean_s:
        notes.append(
            "Start-up varied by more than 30% between replicas; the simulation gives every replica the mean, so a "
            "replica that was slow (or quick) to start shifts the real timeline against the simulated one."
        )
    for f in check.figures:
        if not f.within:
            notes.append(_why(f.name))
    data = {**check.to_json(), "policy": policy.name, "target": policy.target, "run_dir": str(directory)}
    return Report("Scaled run", data, tuple(summary), (figures, timeline), tuple(notes))


def _why(figure: str) -> str:
    return {
        "drain_time_s": "drain time missed: the workers' real throughput differs from slots / service time "
        "(a CPU-saturated host, the broker's round trips between tasks, prefetch holding tasks on a busy replica).",
        "wait_p95_s": "p95 wait missed: the waits depend on when replicas became ready; a start-up far from the "
        "mean, or a controller period that slipped on a loaded host, moves them.",
        "max_replicas": "peak replicas missed: the queue length the controller read differed at a sync (tasks "
        "reserved by workers are not in the list KEDA reads).",
        "replica_seconds": "replica-seconds missed: a replica's warm shutdown waits for its running tasks, and the "
        "scale-down timing follows the queue length read at each sync.",
    }[figure]
