"""``capacity recommend``: parse flags, pick the mode, call the core, render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any

import typer

from capacity.cli._common import OutputOption, ProfilesOption, emit, format_option, handle_errors, profiles
from capacity.errors import InputError
from capacity.profiles import Profiles
from capacity.render.builders import photos_report, resources_report, scaleout_report, topology_report
from capacity.render.model import Report
from capacity.sizing.recommend import (
    DEFAULT_CPU_PER_JOB,
    DEFAULT_MEM_PER_JOB_BYTES,
    DEFAULT_TENANT_SHARE,
    ReplicaTopology,
    TaskThroughput,
    UserTopology,
    concurrency_from_resources,
    recommend_photos,
    replica_topology,
    required_workers,
    task_throughput,
    topology_for_users,
)
from capacity.units import SIZE_HELP, parse_duration, parse_rate, parse_rate_limit, parse_size

HELP = """Recommend concurrency and worker counts. Name the mode with a sub-command (recommend
resources|photos|topology|scale-out), or let the flags pick it:

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
    "topology": ({"users", "task_type", "replicas"}, {"threads", "concurrency", "app", "arrival_rate", "service_time"}),
    "scale-out": (
        {"queue_depth"},
        {"concurrency", "utilization", "buffer", "latency", "service_time", "scaler", "queue", "name", "rate_limit"},
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


RecommendFormat = Annotated[str, format_option("json", "yaml", "markdown", "csv", "env", "k8s", "bullmq", "fleet")]

# One alias per flag, shared by the sub-commands and the flag-selected form.
Cpu = Annotated[float | None, Opt(help="CPUs on the worker machine.")]
Memory = Annotated[str | None, Opt(help=f"Memory on the worker machine; {SIZE_HELP}.")]
MemPerJob = Annotated[str | None, Opt(help="Memory one job holds [default: 0.5GiB, seed 002].")]
CpuPerJob = Annotated[float | None, Opt(help=f"CPU one job uses [default: {DEFAULT_CPU_PER_JOB:g}].")]
TenantShare = Annotated[
    float | None, Opt(help=f"Share of global concurrency per tenant [default: {DEFAULT_TENANT_SHARE}].")
]
Instance = Annotated[str | None, Opt(help="Instance type from the profile (small, medium, large, xlarge).")]
JobType = Annotated[str | None, Opt(help='Job type from the profile, e.g. "2D Render".')]
Photos = Annotated[int | None, Opt(help="Number of photos to process (seed 000 tiers).")]
ApiRateLimit = Annotated[str | None, Opt(help="LLM API rate limit, e.g. 60/min.")]
ServiceTime = Annotated[str | None, Opt(help="Time one job takes, e.g. 8s.")]
Users = Annotated[int | None, Opt(help="Number of users (seed 004 scenarios).")]
TaskType = Annotated[str | None, Opt(help="Task type for per-slot throughput (seed 004).")]
Replicas = Annotated[int | None, Opt(help="Worker replicas (seed 001: replicas x threads).")]
Threads = Annotated[int | None, Opt(help="Threads per replica [default: profile, 4].")]
App = Annotated[str | None, Opt(help="Celery app for the worker command lines.")]
QueueDepth = Annotated[int | None, Opt(help="Jobs waiting in the queue.")]
Concurrency = Annotated[str | None, Opt(help="Concurrency per worker (a range like 2-4 in topology mode).")]
Utilization = Annotated[float | None, Opt(help="Target utilisation [default: 0.8].")]
Buffer = Annotated[float | None, Opt(help="Extra capacity [default: 0.2].")]
Latency = Annotated[str | None, Opt(help="Acceptable latency for AWS's backlog per instance, e.g. 60s.")]
ArrivalRate = Annotated[
    str | None,
    Opt(help="Topology, for --format fleet: tasks per second, 2/s for every queue, or emails=2/s,celery=0.1/s."),
]
Scaler = Annotated[str | None, Opt(help="KEDA scaler for --format k8s: sqs or redis [default: sqs].")]
Queue = Annotated[str | None, Opt(help="Queue name or URL for the KEDA trigger [default: celery].")]
Name = Annotated[str | None, Opt(help="Deployment name for --format k8s.")]
RateLimitOption = Annotated[
    str | None, Opt("--rate-limit", help="A BullMQ limiter, max jobs per duration: 100/min (seed 002), 10/1s.")
]


def resources(
    loaded: Profiles,
    cpu: float | None = None,
    memory: str | None = None,
    mem_per_job: str | None = None,
    cpu_per_job: float | None = None,
    tenant_share: float | None = None,
    instance: str | None = None,
    job_type: str | None = None,
) -> Report:
    inst = loaded.instance(instance) if instance is not None else None
    job = loaded.job_type(job_type) if job_type is not None else None
    if inst is None and (cpu is None or memory is None):
        raise InputError("resources mode needs --cpu and --memory, or --instance")
    return resources_report(
        concurrency_from_resources(
            cpu=cpu if cpu is not None else inst.cpu,  # type: ignore[union-attr]
            memory_bytes=parse_size(memory, "--memory") if memory is not None else inst.memory,  # type: ignore[union-attr]
            cpu_per_job=cpu_per_job if cpu_per_job is not None else (job.cpu[1] if job else DEFAULT_CPU_PER_JOB),
            mem_per_job_bytes=(
                parse_size(mem_per_job, "--mem-per-job")
                if mem_per_job is not None
                else (job.memory[1] if job else DEFAULT_MEM_PER_JOB_BYTES)
            ),
            tenant_share=tenant_share if tenant_share is not None else DEFAULT_TENANT_SHARE,
            instance=inst,
            job_type=job,
        )
    )


def photos(
    loaded: Profiles,
    photos: int,
    memory: str | None = None,
    api_rate_limit: str | None = None,
    service_time: str | None = None,
) -> Report:
    return photos_report(
        recommend_photos(
            photos,
            loaded.photos,
            memory_bytes=parse_size(memory, "--memory") if memory is not None else None,
            api_rate_limit_per_s=parse_rate(api_rate_limit, "--api-rate-limit") if api_rate_limit is not None else None,
            service_time_s=parse_duration(service_time, "--service-time") if service_time is not None else None,
        ),
        loaded.photos.contradictions,
        loaded.photos.worked_example,
    )


def topology(
    loaded: Profiles,
    users: int | None = None,
    task_type: str | None = None,
    replicas: int | None = None,
    threads: int | None = None,
    concurrency: str | None = None,
    app: str | None = None,
    arrival_rate: str | None = None,
    service_time: str | None = None,
) -> Report:
    topo = loaded.topologies
    if users is None and task_type is None and replicas is None:
        raise InputError("topology needs --users, --task-type or --replicas")
    if users is not None and users < 0:
        raise InputError(f"--users must be zero or more, got {users}")
    by_users = topology_for_users(users, topo.user_scenarios, app) if users is not None else None
    by_replicas = replica_topology(replicas, threads, topo.replica_tiers) if replicas is not None else None
    throughput = (
        task_throughput(loaded.job_type(task_type), _slots(concurrency or "1")) if task_type is not None else None
    )
    report = topology_report(by_users, by_replicas, throughput)
    if arrival_rate is None:
        return report
    return replace(report, fleet=_fleet(by_users, by_replicas, throughput, arrival_rate, service_time))


def _fleet_needs_rate(fmt: str, arrival_rate: str | None) -> None:
    if fmt == "fleet" and arrival_rate is None:
        raise InputError("--format fleet needs --arrival-rate (and --service-time, or --task-type's durations)")


def _fleet(
    users: UserTopology | None,
    replicas: ReplicaTopology | None,
    throughput: TaskThroughput | None,
    arrival_rate: str,
    service_time: str | None,
) -> dict[str, Any]:
    """The topology as a fleet file: its workers as pools, a Poisson class per queue."""
    if users is not None:
        workers = [(tuple(w.queues), w.concurrency) for w in users.scenario.workers]
        source = f"seed 004's {users.scenario.name} scenario ({users.users} users)"
    elif replicas is not None:
        workers = [(("celery",), replicas.threads)] * replicas.replicas
        source = f"seed 001's {replicas.replicas} replicas x {replicas.threads} threads"
    else:
        assert throughput is not None
        workers = [(("celery",), throughput.slots[0])]
        source = f"{throughput.slots[0]} slots for {throughput.job_type.name}"
    queues = sorted({q for queues, _ in workers for q in queues})
    from capacity.sizing.fleetfile import per_queue, topology_fleet  # numpy: only for --format fleet

    rates = per_queue(arrival_rate, queues, "--arrival-rate", parse_rate)
    if service_time is not None:
        means = per_queue(service_time, queues, "--service-time", parse_duration)
        missing = sorted(set(rates) - set(means))
        if missing:
            raise InputError(f"--service-time: give one for {', '.join(missing)}")
        if any(means[q] <= 0 for q in rates):
            raise InputError("--service-time: an exponential service needs a mean above zero")
        services: dict[str, dict[str, Any]] = {q: {"kind": "exponential", "mean": f"{means[q]:g}s"} for q in rates}
        how = "exponential service with the --service-time mean"
    elif throughput is not None:
        fastest, slowest = throughput.job_type.duration
        mean = (fastest + slowest) / 2
        shape: dict[str, Any] = {
            "kind": "lognormal",
            "mean": f"{mean:g}s",
            "cv": round((slowest - fastest) / (slowest + fastest), 3),
        }
        services = dict.fromkeys(rates, shape)
        how = (
            f"lognormal service around {throughput.job_type.name}'s duration range ({fastest:g}-{slowest:g} s): "
            "mean at its middle, one standard deviation spanning it"
        )
    else:
        raise InputError("--format fleet needs --service-time (or --task-type for its duration range)")
    note = f"{source}; Poisson arrivals at --arrival-rate for 1 h; {how}. Edit to your traffic."
    return topology_fleet(workers, rates, services, note)


def scale_out(
    queue_depth: int,
    concurrency: str | None = None,
    utilization: float | None = None,
    buffer: float | None = None,
    latency: str | None = None,
    service_time: str | None = None,
    scaler: str | None = None,
    queue: str | None = None,
    name: str | None = None,
    rate_limit: str | None = None,
) -> Report:
    if concurrency is None:
        raise InputError("scale-out mode needs --concurrency (jobs one worker runs at once)")
    slots = _slots(concurrency)
    if slots[0] != slots[1]:
        raise InputError("--concurrency takes one number in scale-out mode")
    if scaler not in (None, "sqs", "redis"):
        raise InputError(f"--scaler: {scaler!r} is not sqs or redis")
    return scaleout_report(
        required_workers(
            queue_depth,
            slots[0],
            utilization=0.8 if utilization is None else utilization,
            buffer=0.2 if buffer is None else buffer,
            acceptable_latency_s=parse_duration(latency, "--latency") if latency is not None else None,
            service_time_s=parse_duration(service_time, "--service-time") if service_time is not None else None,
        ),
        queue=queue or "celery",
        scaler=scaler or "sqs",
        name=name or "capacity-worker",
        rate_limit=parse_rate_limit(rate_limit) if rate_limit is not None else None,
    )


app = typer.Typer(help=HELP, no_args_is_help=False, invoke_without_command=True, rich_markup_mode=None)


@app.callback(invoke_without_command=True)
@handle_errors
def command(
    ctx: typer.Context,
    cpu: Cpu = None,
    memory: Memory = None,
    mem_per_job: MemPerJob = None,
    cpu_per_job: CpuPerJob = None,
    tenant_share: TenantShare = None,
    instance: Instance = None,
    job_type: JobType = None,
    photos: Photos = None,
    api_rate_limit: ApiRateLimit = None,
    service_time: ServiceTime = None,
    users: Users = None,
    task_type: TaskType = None,
    replicas: Replicas = None,
    threads: Threads = None,
    app: App = None,
    queue_depth: QueueDepth = None,
    concurrency: Concurrency = None,
    utilization: Utilization = None,
    buffer: Buffer = None,
    latency: Latency = None,
    scaler: Scaler = None,
    queue: Queue = None,
    name: Name = None,
    rate_limit: RateLimitOption = None,
    arrival_rate: ArrivalRate = None,
    profiles_dir: ProfilesOption = None,
    fmt: RecommendFormat = "table",
    output: OutputOption = "-",
) -> None:
    """Recommend concurrency and worker counts: a sub-command names the mode, or the flags pick it."""
    given = {key: value for key, value in locals().items() if value is not None and key in _FLAGS}
    if ctx.invoked_subcommand is not None:
        if given:
            raise InputError(f"give {', '.join(_flag(k) for k in given)} after {ctx.invoked_subcommand}")
        return
    mode = pick_mode(set(given))
    _fleet_needs_rate(fmt, arrival_rate)
    report = scale_out(**given) if mode == "scale-out" else _BY_MODE[mode](profiles(profiles_dir), **given)
    emit(report, fmt, output)


_BY_MODE: dict[str, Callable[..., Report]] = {"resources": resources, "photos": photos, "topology": topology}
_FLAGS = {flag for primary, secondary in _MODES.values() for flag in primary | secondary}


@app.command("resources")
@handle_errors
def resources_command(
    cpu: Cpu = None,
    memory: Memory = None,
    mem_per_job: MemPerJob = None,
    cpu_per_job: CpuPerJob = None,
    tenant_share: TenantShare = None,
    instance: Instance = None,
    job_type: JobType = None,
    profiles_dir: ProfilesOption = None,
    fmt: RecommendFormat = "table",
    output: OutputOption = "-",
) -> None:
    """Concurrency from CPU and memory (seed 002's calculateConcurrency)."""
    loaded = profiles(profiles_dir)
    emit(resources(loaded, cpu, memory, mem_per_job, cpu_per_job, tenant_share, instance, job_type), fmt, output)


@app.command("photos")
@handle_errors
def photos_command(
    count: Annotated[int, typer.Argument(help="Number of photos to process (seed 000 tiers).")],
    memory: Memory = None,
    api_rate_limit: ApiRateLimit = None,
    service_time: ServiceTime = None,
    profiles_dir: ProfilesOption = None,
    fmt: RecommendFormat = "table",
    output: OutputOption = "-",
) -> None:
    """WORKER_CONCURRENCY and FACE_WORKER_CONCURRENCY for a photo count (seed 000's tiers)."""
    emit(photos(profiles(profiles_dir), count, memory, api_rate_limit, service_time), fmt, output)


@app.command("topology")
@handle_errors
def topology_command(
    users: Users = None,
    task_type: TaskType = None,
    replicas: Replicas = None,
    threads: Threads = None,
    concurrency: Concurrency = None,
    app: App = None,
    arrival_rate: ArrivalRate = None,
    service_time: ServiceTime = None,
    profiles_dir: ProfilesOption = None,
    fmt: RecommendFormat = "table",
    output: OutputOption = "-",
) -> None:
    """Celery topologies: workers and queues for a user count (seed 004), replicas x threads (seed 001).
    With --arrival-rate, --format fleet writes it as a fleet file for simulate/autoscale --fleet."""
    _fleet_needs_rate(fmt, arrival_rate)
    loaded = profiles(profiles_dir)
    report = topology(loaded, users, task_type, replicas, threads, concurrency, app, arrival_rate, service_time)
    emit(report, fmt, output)


@app.command("scale-out")
@handle_errors
def scale_out_command(
    queue_depth: Annotated[int, typer.Argument(help="Jobs waiting in the queue.")],
    concurrency: Concurrency = None,
    utilization: Utilization = None,
    buffer: Buffer = None,
    latency: Latency = None,
    service_time: ServiceTime = None,
    scaler: Scaler = None,
    queue: Queue = None,
    name: Name = None,
    rate_limit: RateLimitOption = None,
    fmt: RecommendFormat = "table",
    output: OutputOption = "-",
) -> None:
    """Workers for a backlog: seed 002's formula, AWS's backlog per instance and the KEDA target."""
    report = scale_out(
        queue_depth, concurrency, utilization, buffer, latency, service_time, scaler, queue, name, rate_limit
    )
    emit(report, fmt, output)


__all__ = ["HELP", "app", "command", "pick_mode"]
