"""``capacity plan``: Erlang C for an arrival rate and service time; slots for a target; cost."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from capacity.cli._common import FormatOption, OutputOption, ProfilesOption, emit, handle_errors, profiles
from capacity.errors import InputError
from capacity.files import read_input
from capacity.render.builders import plan_report
from capacity.sizing.cost import monthly_cost
from capacity.sizing.queueing import MMc, Target, required_slots
from capacity.sizing.recommend import concurrency_from_resources
from capacity.units import parse_duration, parse_rate, parse_rate_limit

HELP = """Predict before you load-test (M/M/c, Erlang C): offered load, utilisation, P(wait), mean
and percentile waits, service level, response time and queue length for --workers slots, or the
fewest slots that meet a target (--target-wait, --target-p95-wait, --service-level with
--answer-time, --max-utilization), with the nearby slot counts; with --instance, the workers and
monthly cost."""

Opt = typer.Option


def _service_from_metrics(path: Path) -> float:
    try:
        data: dict[str, Any] = json.loads(read_input(path))
    except (OSError, ValueError) as exc:
        raise InputError(f"--from-metrics {path}: not a metrics JSON file ({exc})") from None
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise InputError(f"--from-metrics {path}: not a metrics JSON file (a JSON {kind}, not an object)")
    value = data.get("service_time_mean_s")
    if not isinstance(value, (int, float)) or value <= 0:
        raise InputError(f"--from-metrics {path}: no measured service_time_mean_s (capacity metrics -f json)")
    return float(value)


@handle_errors
def command(
    arrival_rate: Annotated[str, Opt(help="Arrivals, e.g. 120/min.")],
    service_time: Annotated[str | None, Opt(help="Mean service time, e.g. 12s.")] = None,
    from_metrics: Annotated[
        Path | None, Opt(help="Take the mean service time from `capacity metrics -f json`.")
    ] = None,
    workers: Annotated[int | None, Opt(help="Slots to evaluate (workers x concurrency).")] = None,
    target_wait: Annotated[str | None, Opt(help="Target mean wait, e.g. 30s.")] = None,
    target_p95_wait: Annotated[str | None, Opt(help="Target 95th-percentile wait.")] = None,
    target_wait_percentile: Annotated[float, Opt(help="Percentile for --target-p95-wait (0-1).")] = 0.95,
    service_level: Annotated[float | None, Opt(help="Target share answered within --answer-time, e.g. 0.8.")] = None,
    answer_time: Annotated[str, Opt(help="Threshold for the service level P(wait <= t).")] = "20s",
    max_utilization: Annotated[float | None, Opt(help="Highest acceptable utilisation, e.g. 0.85.")] = None,
    concurrency: Annotated[int | None, Opt(help="Slots per worker [default: 1, or the instance's formula].")] = None,
    instance: Annotated[str | None, Opt(help="Instance type for workers and monthly cost.")] = None,
    rate_limit: Annotated[
        str | None, Opt(help="A BullMQ limiter, max jobs per duration: 100/min (seed 002), 10/1s.")
    ] = None,
    profiles_dir: ProfilesOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = "-",
) -> None:
    rate = parse_rate(arrival_rate, "--arrival-rate")
    if (service_time is None) == (from_metrics is None):
        raise InputError("give one of --service-time or --from-metrics")
    service_s = (
        parse_duration(service_time, "--service-time")
        if service_time is not None
        else _service_from_metrics(
            from_metrics  # type: ignore[arg-type]
        )
    )
    if rate <= 0 or service_s <= 0:
        raise InputError("arrival rate and service time must be above zero")
    answer_s = parse_duration(answer_time, "--answer-time")
    target = Target(
        mean_wait_s=parse_duration(target_wait, "--target-wait") if target_wait is not None else None,
        wait_percentile=(target_wait_percentile, parse_duration(target_p95_wait, "--target-p95-wait"))
        if target_p95_wait is not None
        else None,
        service_level=(service_level, answer_s) if service_level is not None else None,
        max_utilization=max_utilization,
    )
    if workers is not None and not target.empty:
        raise InputError("--workers evaluates a number of slots; targets find one: give one or the other")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    required = None if workers is not None else required_slots(rate, service_s, target)
    slots = workers if workers is not None else required
    assert slots is not None
    nearby = [MMc(rate, service_s, c) for c in range(max(1, slots - 2), slots + 4)] if required else []
    cost: dict[str, Any] | None = None
    if instance is not None or concurrency is not None:
        loaded = profiles(profiles_dir)
        inst = loaded.instance(instance) if instance is not None else None
        per_worker = concurrency or (
            concurrency_from_resources(inst.cpu, inst.memory).global_concurrency if inst else 1
        )
        if per_worker < 1:
            raise InputError("--concurrency must be at least 1")
        count = math.ceil(slots / per_worker)
        cost = {"workers": count, "concurrency_per_worker": per_worker}
        if inst is not None:
            row = monthly_cost(inst, count)
            cost.update(instance=inst.name, hourly_usd=row.hourly_usd, monthly_usd=row.monthly_usd)
    limit = parse_rate_limit(rate_limit) if rate_limit is not None else None
    emit(plan_report(MMc(rate, service_s, slots), answer_s, required, nearby, cost, limit), fmt, output)
