"""``capacity cost``: monthly cost per instance type, or the cheapest way to a throughput."""

from __future__ import annotations

from typing import Annotated

import typer

from capacity.cli._common import FormatOption, OutputOption, ProfilesOption, emit, handle_errors, profiles
from capacity.errors import InputError
from capacity.render.builders import cost_report
from capacity.sizing.cost import HOURS_PER_MONTH, cheapest_for_throughput, monthly_cost
from capacity.units import parse_duration, parse_rate

HELP = """Monthly cost: hourly price x workers x hours per month (730 by default; 720 reproduces
seed 002's table). With --throughput and --service-time (or --job-type), the workers each instance
type needs at the target utilisation, ranked by monthly cost."""

Opt = typer.Option


@handle_errors
def command(
    instance: Annotated[str | None, Opt(help="Instance type (all types when omitted).")] = None,
    workers: Annotated[int | None, Opt(help="Number of workers [default: the seed's count per type].")] = None,
    hours_per_month: Annotated[float, Opt(help="Billing hours per month.")] = HOURS_PER_MONTH,
    throughput: Annotated[str | None, Opt(help="Throughput to carry, e.g. 300/min.")] = None,
    service_time: Annotated[str | None, Opt(help="Time one job takes, e.g. 12s.")] = None,
    job_type: Annotated[
        str | None, Opt(help="Job type: per-job resources and (if no --service-time) duration.")
    ] = None,
    utilization: Annotated[float, Opt(help="Target utilisation of the slots.")] = 0.8,
    policy: Annotated[
        bool, Opt("--policy", help="Use the seed's policy table for concurrency, not the formula.")
    ] = False,
    profiles_dir: ProfilesOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = "-",
) -> None:
    loaded = profiles(profiles_dir)
    instances = (loaded.instance(instance),) if instance is not None else loaded.instances.instances
    if throughput is None:
        if service_time is not None or job_type is not None:
            raise InputError("--service-time and --job-type need --throughput")
        rows = [monthly_cost(i, workers if workers is not None else i.seed_workers, hours_per_month) for i in instances]
        notes: tuple[str, ...] = () if workers is not None else ("Workers per type: seed 002's Cost Estimate table.",)
        emit(cost_report(rows, hours_per_month, "Monthly cost", notes), fmt, output)
        return
    if workers is not None:
        raise InputError("--workers and --throughput exclude each other: the throughput decides the workers")
    job = loaded.job_type(job_type) if job_type is not None else None
    if service_time is not None:
        service_s = parse_duration(service_time, "--service-time")
    elif job is not None:
        service_s = job.duration[1]
    else:
        raise InputError("--throughput needs --service-time or --job-type")
    rows = cheapest_for_throughput(
        instances, parse_rate(throughput, "--throughput"), service_s, utilization, job, policy, hours_per_month
    )
    source = (
        "seed 002's policy table" if policy else "seed 002's formula" + (f" with {job.name}'s resources" if job else "")
    )
    notes = (
        f"Concurrency per worker from {source}; service time {service_s:g} s.",
        "Ranked by monthly cost; configurations over the type's max workers last.",
    )
    emit(cost_report(rows, hours_per_month, "Cheapest configuration", notes), fmt, output)
