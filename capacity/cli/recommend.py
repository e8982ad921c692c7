"""``capacity recommend``: parse flags, pick the mode, call the core, render."""

from __future__ import annotations

from typing import Annotated

import typer

from capacity.cli._common import OutputOption, ProfilesOption, emit, format_option, handle_errors, profiles
from capacity.errors import InputError
from capacity.render.builders import photos_report, resources_report, scaleout_report, topology_report
from capacity.render.model import Report
from capacity.sizing.recommend import (
    DEFAULT_CPU_PER_JOB,
    DEFAULT_MEM_PER_JOB_BYTES,
    DEFAULT_TENANT_SHARE,
    concurrency_from_resources,
    recommend_photos,
    replica_topology,
    required_workers,
    task_throughput,
    topology_for_users,
)
from capacity.units import SIZE_HELP, parse_duration, parse_rate, parse_size

HELP = """Recommend concurrency and worker counts. The mode follows the flags given:

resources (--cpu/--memory, --instance, --job-type): seed 002's formula;
photos (--photos): seed 000's tiers; topology (--users, --task-type, --replicas): seeds 004
and 001; scale-out (--queue-depth with --concurrency): seed 002's required workers, AWS's backlog
per instance and the KEDA target.
"""

Opt = typer.Option

# Which flags belong to which mode; the first group of each is what selects it.
_MODES: dict[str, tuple[set[str], set[str]]] = {
    "resources": ({"cpu", "memory", "instance", "job_type"}, {"mem_per_job", "cpu_per_job", "tenant_share"}),
    "photos": ({"photos"}, {"memory", "api_rate_limit", "service_time"}),
    "topology": ({"users", "task_type", "replicas"}, {"threads", "concurrency", "app"}),
    "scale-out": (
        {"queue_depth"},
        {"concurrency", "utilization", "buffer", "latency", "service_time", "scaler", "queue", "name"},
    ),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def pick_mode(given: set[str]) -> str:
    """The single mode the given flags select; InputError on conflicts or missing flags."""
    selected = [mode for mode, (primary, _) in _MODES.items() if primary & given]
    # --memory alone is resources; with --photos it is the photo mode's memory cap.
    if "photos" in selected and "resources" in selected and not (given & {"cpu", "instance", "job_type"}):
        selected.remove("resources")
    if not selected:
        raise InputError(
            "say what to size: --cpu/--memory or --instance (resources), --photos, "
            "--users/--task-type/--replicas (topology) or --queue-depth (scale-out)"
        )
    if len(selected) > 1:
        raise InputError(f"conflicting modes: {' and '.join(selected)}; give the flags of one")
    mode = selected[0]
    primary, secondary = _MODES[mode]
    stray = sorted(given - primary - secondary)
    if stray:
        raise InputError(f"{', '.join(_flag(s) for s in stray)} does not apply to the {mode} mode")
    return mode


def _slots(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        pair = (int(low), int(high or low))
    except ValueError:
        raise InputError(f"--concurrency: {text!r} is not a count or a range like 2-4") from None
    if pair[0] < 1 or pair[1] < pair[0]:
        raise InputError(f"--concurrency: {text!r} must be positive, low end first")
    return pair


RecommendFormat = Annotated[str, format_option("json", "yaml", "markdown", "csv", "env", "k8s")]


@handle_errors
def command(
    cpu: Annotated[float | None, Opt(help="CPUs on the worker machine.")] = None,
    memory: Annotated[str | None, Opt(help=f"Memory on the worker machine; {SIZE_HELP}.")] = None,
    mem_per_job: Annotated[str | None, Opt(help="Memory one job holds [default: 0.5GiB, seed 002].")] = None,
    cpu_per_job: Annotated[float | None, Opt(help=f"CPU one job uses [default: {DEFAULT_CPU_PER_JOB:g}].")] = None,
    tenant_share: Annotated[
        float | None, Opt(help=f"Share of global concurrency per tenant [default: {DEFAULT_TENANT_SHARE}].")
    ] = None,
    instance: Annotated[str | None, Opt(help="Instance type from the profile (small, medium, large, xlarge).")] = None,
    job_type: Annotated[str | None, Opt(help='Job type from the profile, e.g. "2D Render".')] = None,
    photos: Annotated[int | None, Opt(help="Number of photos to process (seed 000 tiers).")] = None,
    api_rate_limit: Annotated[str | None, Opt(help="LLM API rate limit, e.g. 60/min.")] = None,
    service_time: Annotated[str | None, Opt(help="Time one job takes, e.g. 8s.")] = None,
    users: Annotated[int | None, Opt(help="Number of users (seed 004 scenarios).")] = None,
    task_type: Annotated[str | None, Opt(help="Task type for per-slot throughput (seed 004).")] = None,
    replicas: Annotated[int | None, Opt(help="Worker replicas (seed 001: replicas x threads).")] = None,
    threads: Annotated[int | None, Opt(help="Threads per replica [default: profile, 4].")] = None,
    app: Annotated[str | None, Opt(help="Celery app for the worker command lines.")] = None,
    queue_depth: Annotated[int | None, Opt(help="Jobs waiting in the queue.")] = None,
    concurrency: Annotated[str | None, Opt(help="Concurrency per worker (a range like 2-4 in topology mode).")] = None,
    utilization: Annotated[float | None, Opt(help="Target utilisation [default: 0.8].")] = None,
    buffer: Annotated[float | None, Opt(help="Extra capacity [default: 0.2].")] = None,
    latency: Annotated[str | None, Opt(help="Acceptable latency for AWS's backlog per instance, e.g. 60s.")] = None,
    scaler: Annotated[str | None, Opt(help="KEDA scaler for --format k8s: sqs or redis [default: sqs].")] = None,
    queue: Annotated[str | None, Opt(help="Queue name or URL for the KEDA trigger [default: celery].")] = None,
    name: Annotated[str | None, Opt(help="Deployment name for --format k8s.")] = None,
    profiles_dir: ProfilesOption = None,
    fmt: RecommendFormat = "table",
    output: OutputOption = "-",
) -> None:
    given = {
        key for key, value in locals().items() if value is not None and key not in {"profiles_dir", "fmt", "output"}
    }
    mode = pick_mode(given)
    loaded = profiles(profiles_dir)
    report: Report
    if mode == "resources":
        inst = loaded.instance(instance) if instance else None
        job = loaded.job_type(job_type) if job_type else None
        if inst is None and (cpu is None or memory is None):
            raise InputError("resources mode needs --cpu and --memory, or --instance")
        report = resources_report(
            concurrency_from_resources(
                cpu=cpu if cpu is not None else inst.cpu,  # type: ignore[union-attr]
                memory_bytes=parse_size(memory, "--memory") if memory else inst.memory,  # type: ignore[union-attr]
                cpu_per_job=cpu_per_job if cpu_per_job is not None else (job.cpu[1] if job else DEFAULT_CPU_PER_JOB),
                mem_per_job_bytes=(
                    parse_size(mem_per_job, "--mem-per-job")
                    if mem_per_job
                    else (job.memory[1] if job else DEFAULT_MEM_PER_JOB_BYTES)
                ),
                tenant_share=tenant_share if tenant_share is not None else DEFAULT_TENANT_SHARE,
                instance=inst,
                job_type=job,
            )
        )
    elif mode == "photos":
        assert photos is not None
        report = photos_report(
            recommend_photos(
                photos,
                loaded.photos,
                memory_bytes=parse_size(memory, "--memory") if memory else None,
                api_rate_limit_per_s=parse_rate(api_rate_limit, "--api-rate-limit") if api_rate_limit else None,
                service_time_s=parse_duration(service_time, "--service-time") if service_time else None,
            ),
            loaded.photos.contradictions,
            loaded.photos.worked_example,
        )
    elif mode == "topology":
        topo = loaded.topologies
        if users is not None and users < 0:
            raise InputError(f"--users must be zero or more, got {users}")
        report = topology_report(
            topology_for_users(users, topo.user_scenarios, app) if users is not None else None,
            replica_topology(replicas, threads, topo.replica_tiers) if replicas is not None else None,
            task_throughput(loaded.job_type(task_type), _slots(concurrency or "1")) if task_type else None,
        )
    else:
        assert queue_depth is not None
        if concurrency is None:
            raise InputError("scale-out mode needs --concurrency (jobs one worker runs at once)")
        slots = _slots(concurrency)
        if slots[0] != slots[1]:
            raise InputError("--concurrency takes one number in scale-out mode")
        if scaler not in (None, "sqs", "redis"):
            raise InputError(f"--scaler: {scaler!r} is not sqs or redis")
        report = scaleout_report(
            required_workers(
                queue_depth,
                slots[0],
                utilization=0.8 if utilization is None else utilization,
                buffer=0.2 if buffer is None else buffer,
                acceptable_latency_s=parse_duration(latency, "--latency") if latency else None,
                service_time_s=parse_duration(service_time, "--service-time") if service_time else None,
            ),
            queue=queue or "celery",
            scaler=scaler or "sqs",
            name=name or "capacity-worker",
        )
    emit(report, fmt, output)


__all__ = ["HELP", "command", "pick_mode"]
