"""``capacity simulate``: a discrete-event simulation of a worker pool."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from capacity.cli._common import FormatOption, OutputOption, emit, handle_errors
from capacity.errors import InputError
from capacity.render.model import Report, Table
from capacity.sizing.simulate import RateLimit, Workload, read_service_times, replicate
from capacity.units import format_duration, parse_duration, parse_rate, parse_rate_limit

HELP = """Simulate C worker slots, FCFS: arrivals as a burst (N at t=0), a fixed rate, Poisson, or
replayed from task logs; service times constant, exponential, lognormal (--service-cv) or
resampled from a measured run (--from-metrics: the per-task CSV of `capacity metrics --csv`).
Seeded; --replications K gives 95% confidence intervals. Reports X, S, W and R, queue depth over
time and the time to drain."""

Opt = typer.Option


@handle_errors
def command(
    workers: Annotated[int | None, Opt("--workers", help="Worker slots C (workers x concurrency).")] = None,
    fleet_file: Annotated[
        Path | None,
        Opt("--fleet", help="A fleet file (YAML): task classes on queues and pools of fixed replicas consuming them."),
    ] = None,
    arrival: Annotated[str, Opt(help="burst, fixed, poisson or replay.")] = "poisson",
    arrival_rate: Annotated[str | None, Opt(help="Arrival rate for fixed/poisson, e.g. 2/s.")] = None,
    count: Annotated[int, Opt(help="Tasks to simulate.")] = 10_000,
    tasks_log: Annotated[list[Path] | None, Opt("--tasks-log", help="Task logs to replay (repeatable).")] = None,
    service: Annotated[str, Opt(help="constant, exponential, lognormal or empirical.")] = "exponential",
    service_time: Annotated[str | None, Opt(help="Mean service time, e.g. 10s.")] = None,
    service_cv: Annotated[float, Opt(help="Lognormal: coefficient of variation.")] = 1.0,
    from_metrics: Annotated[Path | None, Opt(help="Per-task CSV from `capacity metrics --csv` (empirical).")] = None,
    percentiles: Annotated[
        str,
        typer.Option(
            help="--fleet: percentiles exact (every task held), sketch (streamed in bounded memory, within 1%), "
            "or auto (sketch above 20,000,000 tasks)."
        ),
    ] = "auto",
    seed: Annotated[
        int | None,
        Opt(min=0, help="Random seed (replication k uses seed + k) [default: the fleet file's, or 1]."),
    ] = None,
    replications: Annotated[int, Opt(help="Independent replications, for confidence intervals.")] = 1,
    rate_limit: Annotated[
        str | None, Opt(help="A BullMQ limiter, max jobs started per duration: 100/min, 10/1s.")
    ] = None,
    fmt: FormatOption = "table",
    output: OutputOption = "-",
) -> None:
    if fmt in ("env", "k8s"):
        raise InputError(f"--format {fmt} is not available for simulate")
    if fleet_file is not None:
        emit(_fleet(fleet_file, seed, percentiles), fmt, output)
        return
    if workers is None:
        raise InputError("give --workers (slots), or --fleet FILE")
    workload = Workload(
        slots=workers,
        arrival=arrival,
        arrival_rate_per_s=parse_rate(arrival_rate, "--arrival-rate") if arrival_rate is not None else None,
        count=count,
        service=service,
        service_time_s=parse_duration(service_time, "--service-time") if service_time is not None else None,
        service_cv=service_cv,
        replay_offsets_s=_sent_offsets(tasks_log) if arrival == "replay" and tasks_log else None,
        empirical_s=read_service_times(from_metrics) if from_metrics is not None else None,
        rate_limit=RateLimit(*parse_rate_limit(rate_limit)) if rate_limit is not None else None,
    )
    result = replicate(workload, 1 if seed is None else seed, replications)
    ci = result.ci95_half_width or {}

    def show(key: str, seconds: bool = True) -> str:
        value = getattr(result, key)
        text = format_duration(value) if seconds else f"{value:,.2f}"
        return text + (f" ± {format_duration(ci[key]) if seconds else f'{ci[key]:,.2f}'}" if key in ci else "")

    summary = (
        ("Model", result.model),
        ("Tasks x replications", f"{result.tasks:,} x {replications}"),
        ("X throughput", show("throughput_per_min", seconds=False) + " tasks/min"),
        ("S service time mean", show("service_time_mean_s")),
        ("W wait mean / p95 / p99", f"{show('wait_mean_s')} / {show('wait_p95_s')} / {show('wait_p99_s')}"),
        ("R response mean / p95", f"{show('response_time_mean_s')} / {show('response_time_p95_s')}"),
        ("Utilisation", f"{result.utilization:.1%}"),
        ("Time to drain (first arrival to last finish)", show("drain_time_s")),
    )
    depth = result.queue_depth
    step = max(1, len(depth) // 20)
    table = Table(
        "Tasks waiting over time (first replication)",
        ("t", "waiting"),
        tuple((format_duration(p["t_s"]), str(p["waiting"])) for p in depth[::step]),
    )
    notes = ("± is the 95% confidence half-width across replications (Student's t).",) if ci else ()
    emit(Report("Simulation", result.to_json(), summary, (table,), notes), fmt, output)


def _fleet(path: Path, seed: int | None, percentiles: str) -> Report:
    """Every class and pool of a fleet file, each pool at its fixed replicas."""
    from capacity.cli.autoscale import read_trace
    from capacity.render.fleet import fleet_report
    from capacity.sizing.autoscale import simulate_pools
    from capacity.sizing.fleetfile import draw_classes, load_fleet, pools

    spec, base = load_fleet(path)
    fixed = pools(spec, fixed_only=True)
    classes = draw_classes(spec, base, seed, read_trace, percentiles)
    result = simulate_pools(classes, fixed, spec.wait_target, spec.wait_critical)
    return replace(fleet_report(result, fixed, None, None, None, None), manifests=None, title="Fleet simulation")


def _sent_offsets(tasks_log: list[Path]) -> Any:
    from capacity.measure.inputs import sent_offsets  # DuckDB and pyarrow: the measure extra

    return sent_offsets(tasks_log)
