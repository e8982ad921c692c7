"""``recommend``: concurrency and worker counts from resources, photo counts, topologies, backlogs.

Every function is a formula from a seed (named in its docstring) over plain numbers; profile
tables are carried beside the formula and shown where they differ, never silently preferred.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from capacity.errors import InputError
from capacity.profiles import (
    InstanceType,
    JobType,
    PhotoProfile,
    PhotoTier,
    ReplicaTier,
    ReplicaTiers,
    UserScenario,
    UserScenarios,
)

# Seed 002: memory / 0.5 with memory in GiB, i.e. half a GiB per job.
DEFAULT_MEM_PER_JOB_BYTES = 2**29
DEFAULT_CPU_PER_JOB = 1.0
DEFAULT_TENANT_SHARE = 0.3


def _floor_div(a: float, b: float) -> int:
    """floor(a / b) in exact arithmetic: 2 / 0.4 must be 5, not 4.999..."""
    return math.floor(Fraction(str(a)) / Fraction(str(b)))


def _positive(value: float, what: str, allow_zero: bool = False) -> float:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        need = "zero or more" if allow_zero else "more than zero"
        raise InputError(f"{what} must be {need}, got {value:g}")
    return value


# --- 1. resources (seed 002) -------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceRecommendation:
    cpu: float
    memory_bytes: int
    cpu_per_job: float
    mem_per_job_bytes: int
    tenant_share: float
    cpu_slots: int
    memory_slots: int
    global_concurrency: int
    per_tenant_concurrency: int
    limited_by: str
    cpu_headroom: float
    memory_headroom_bytes: int
    instance: InstanceType | None = None
    job_type: JobType | None = None

    @property
    def policy_differs(self) -> bool:
        if self.instance is None:
            return False
        policy = self.instance.policy
        return (policy.global_concurrency, policy.per_tenant_concurrency) != (
            self.global_concurrency,
            self.per_tenant_concurrency,
        )


def concurrency_from_resources(
    cpu: float,
    memory_bytes: int,
    cpu_per_job: float = DEFAULT_CPU_PER_JOB,
    mem_per_job_bytes: int = DEFAULT_MEM_PER_JOB_BYTES,
    tenant_share: float = DEFAULT_TENANT_SHARE,
    instance: InstanceType | None = None,
    job_type: JobType | None = None,
) -> ResourceRecommendation:
    """Seed 002's calculateConcurrency: global = min(floor(cpu/cpu_per_job),
    floor(memory/mem_per_job)); per-tenant = max(1, floor(global * share))."""
    _positive(cpu, "cpu")
    _positive(memory_bytes, "memory")
    _positive(cpu_per_job, "cpu per job")
    _positive(mem_per_job_bytes, "memory per job")
    if not 0 < tenant_share <= 1:
        raise InputError(f"tenant share must be in (0, 1], got {tenant_share:g}")
    cpu_slots = _floor_div(cpu, cpu_per_job)
    memory_slots = memory_bytes // mem_per_job_bytes
    global_concurrency = min(cpu_slots, memory_slots)
    limited_by = "cpu and memory" if cpu_slots == memory_slots else "cpu" if cpu_slots < memory_slots else "memory"
    # A machine that cannot run one job has no tenant slot either (the seed's max(1, ...) would say 1).
    share = math.floor(global_concurrency * Fraction(str(tenant_share)))
    per_tenant = max(1, share) if global_concurrency else 0
    return ResourceRecommendation(
        cpu=cpu,
        memory_bytes=memory_bytes,
        cpu_per_job=cpu_per_job,
        mem_per_job_bytes=mem_per_job_bytes,
        tenant_share=tenant_share,
        cpu_slots=cpu_slots,
        memory_slots=memory_slots,
        global_concurrency=global_concurrency,
        per_tenant_concurrency=per_tenant,
        limited_by=limited_by,
        cpu_headroom=float(Fraction(str(cpu)) - global_concurrency * Fraction(str(cpu_per_job))),
        memory_headroom_bytes=memory_bytes - global_concurrency * mem_per_job_bytes,
        instance=instance,
        job_type=job_type,
    )


def implied_cpu_per_job(instance: InstanceType) -> float:
    """The CPU per job at which seed 002's formula gives the instance's policy global figure."""
    return instance.cpu / instance.policy.global_concurrency


# --- 2. photos (seed 000) ----------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoRecommendation:
    photos: int
    tier: PhotoTier
    worker_concurrency: int
    face_worker_concurrency: int
    memory_cap: int | None
    peak_memory_bytes: tuple[int, int]
    bandwidth_bytes: tuple[int, int]
    concurrent_llm_calls: int
    concurrent_face_calls: int
    service_time_s: float | None
    api_rate_limit_per_min: float | None
    llm_calls_per_min: float | None
    api_limited: bool
    max_concurrency_within_api_limit: int | None
    throughput_per_min: float | None
    duration_s: float | None
    horizontal_scaling: bool


def photo_tier(photos: int, profile: PhotoProfile) -> PhotoTier:
    """Seed 000's scenario tier for a photo count: the first tier whose max_photos covers it."""
    if photos < 1:
        raise InputError(f"photos must be a positive count, got {photos}")
    for tier in profile.tiers:
        if tier.max_photos is None or photos <= tier.max_photos:
            return tier
    raise AssertionError("profile validation guarantees an open last tier")


def recommend_photos(
    photos: int,
    profile: PhotoProfile,
    memory_bytes: int | None = None,
    api_rate_limit_per_s: float | None = None,
    service_time_s: float | None = None,
) -> PhotoRecommendation:
    """Seed 000: tier concurrency, then what it implies (memory, bandwidth, API rate, duration)."""
    tier = photo_tier(photos, profile)
    per = profile.per_photo
    concurrency = tier.worker_concurrency
    memory_cap = None
    if memory_bytes is not None:
        memory_cap = memory_bytes // per.memory[1]
        if memory_cap < 1:
            raise InputError(f"memory {memory_bytes} bytes cannot hold one photo at {per.memory[1]} bytes")
        concurrency = min(concurrency, memory_cap)
    face = min(tier.face_worker_concurrency, concurrency)
    transfer = (per.download[0] + per.upload[0], per.download[1] + per.upload[1])
    llm_per_min = throughput = duration = None
    max_in_limit = None
    limited = False
    if service_time_s is not None:
        _positive(service_time_s, "service time")
        throughput = concurrency * 60.0 / service_time_s
        llm_per_min = throughput * per.llm_calls
        if api_rate_limit_per_s is not None and per.llm_calls:
            limit_per_min = api_rate_limit_per_s * 60.0
            max_in_limit = math.floor(limit_per_min * service_time_s / 60.0 / per.llm_calls)
            if llm_per_min > limit_per_min:
                limited = True
                throughput = limit_per_min / per.llm_calls
        duration = photos / throughput * 60.0 if throughput else math.inf
    return PhotoRecommendation(
        photos=photos,
        tier=tier,
        worker_concurrency=concurrency,
        face_worker_concurrency=face,
        memory_cap=memory_cap,
        peak_memory_bytes=(concurrency * per.memory[0], concurrency * per.memory[1]),
        bandwidth_bytes=(concurrency * transfer[0], concurrency * transfer[1]),
        concurrent_llm_calls=concurrency * per.llm_calls,
        concurrent_face_calls=face * per.face_api_calls,
        service_time_s=service_time_s,
        api_rate_limit_per_min=None if api_rate_limit_per_s is None else api_rate_limit_per_s * 60,
        llm_calls_per_min=llm_per_min,
        api_limited=limited,
        max_concurrency_within_api_limit=max_in_limit,
        throughput_per_min=throughput,
        duration_s=duration,
        horizontal_scaling=photos > profile.horizontal_scaling_above,
    )


# --- 3. topologies (seeds 001 and 004) ---------------------------------------------------------


@dataclass(frozen=True)
class TaskThroughput:
    """Seed 004: slots x 3600 / duration tasks per hour, low and high."""

    job_type: JobType
    slots: tuple[int, int]
    per_slot_per_hour: tuple[float, float]
    per_hour: tuple[float, float]


def task_throughput(job_type: JobType, slots: tuple[int, int] = (1, 1)) -> TaskThroughput:
    low_slots, high_slots = slots
    if low_slots < 1 or high_slots < low_slots:
        raise InputError(f"concurrency must be a positive count or range, got {slots}")
    fastest, slowest = job_type.duration
    per_slot = (3600.0 / slowest, 3600.0 / fastest)
    return TaskThroughput(
        job_type=job_type,
        slots=slots,
        per_slot_per_hour=per_slot,
        per_hour=(low_slots * per_slot[0], high_slots * per_slot[1]),
    )


@dataclass(frozen=True)
class UserTopology:
    users: int
    scenario: UserScenario
    settings: UserScenarios
    app: str

    @property
    def worker_commands(self) -> tuple[str, ...]:
        limits = (
            f"--soft-time-limit={self.settings.task_soft_time_limit:g} "
            f"--time-limit={self.settings.task_time_limit:g} "
            f"--max-tasks-per-child={self.settings.worker_max_tasks_per_child}"
        )
        return tuple(
            f"celery -A {self.app} worker -Q {','.join(w.queues)} "
            f"--concurrency={w.concurrency} {limits} --loglevel=info"
            for w in self.scenario.workers
        )

    @property
    def total_concurrency(self) -> int:
        return sum(w.concurrency for w in self.scenario.workers)


def topology_for_users(users: int, settings: UserScenarios, app: str | None = None) -> UserTopology:
    """Seed 004's scenario for a number of users (< 50 light, 50-200 medium, 200+ heavy)."""
    if users < 0:
        raise InputError(f"users must be zero or more, got {users}")
    for scenario in settings.scenarios:
        if scenario.max_users is None or users <= scenario.max_users:
            return UserTopology(users=users, scenario=scenario, settings=settings, app=app or settings.app)
    raise InputError("the topology profile has no open-ended last scenario")


@dataclass(frozen=True)
class ReplicaTopology:
    replicas: int
    threads: int
    total_concurrent_tasks: int
    tier: ReplicaTier | None
    pool: str


def replica_topology(replicas: int, threads: int | None, profile: ReplicaTiers) -> ReplicaTopology:
    """Seed 001: replicas x threads = total concurrent tasks, and the tier it falls in."""
    threads = profile.threads_per_replica if threads is None else threads
    if replicas < 1 or threads < 1:
        raise InputError(f"replicas and threads must be positive, got {replicas} x {threads}")
    tier = next(
        (t for t in profile.tiers if t.replicas[0] <= replicas <= t.replicas[1]),
        None,
    )
    return ReplicaTopology(replicas, threads, replicas * threads, tier, profile.pool)


# --- 4. scale-out (seed 002, AWS, KEDA) --------------------------------------------------------


@dataclass(frozen=True)
class ScaleOut:
    queue_depth: int
    concurrency: int
    utilization: float
    buffer: float
    jobs_per_worker: float
    required_workers: int
    acceptable_latency_s: float | None
    service_time_s: float | None
    backlog_per_instance: float | None
    backlog_per_worker: float | None
    aws_required_workers: int | None
    keda_target: int
    keda_target_source: str


def required_workers(
    queue_depth: int,
    concurrency: int,
    utilization: float = 0.8,
    buffer: float = 0.2,
    acceptable_latency_s: float | None = None,
    service_time_s: float | None = None,
) -> ScaleOut:
    """Seed 002: ceil(depth / (concurrency x utilization) x (1 + buffer)).

    Beside it AWS's target tracking on backlog per instance (acceptable latency / processing
    time per message; per worker, times its concurrency) and the KEDA target (queueLength for
    SQS, listLength for Redis) that keeps that backlog per replica.
    """
    if queue_depth < 0:
        raise InputError(f"queue depth must be zero or more, got {queue_depth}")
    if concurrency < 1:
        raise InputError(f"concurrency must be at least 1, got {concurrency}")
    if not 0 < utilization <= 1:
        raise InputError(f"utilization must be in (0, 1], got {utilization:g}")
    if buffer < 0:
        raise InputError(f"buffer must be zero or more, got {buffer:g}")
    jobs_per_worker = Fraction(concurrency) * Fraction(str(utilization))
    exact = Fraction(queue_depth) / jobs_per_worker * (1 + Fraction(str(buffer)))
    workers = math.ceil(exact)
    per_instance = per_worker = None
    aws_workers = None
    if (acceptable_latency_s is None) != (service_time_s is None):
        raise InputError("--latency and --service-time go together (AWS backlog per instance)")
    if acceptable_latency_s is not None and service_time_s is not None:
        _positive(acceptable_latency_s, "acceptable latency")
        _positive(service_time_s, "service time")
        per_instance = acceptable_latency_s / service_time_s
        per_worker = per_instance * concurrency
        aws_workers = math.ceil(queue_depth / per_worker)
    if per_worker is not None:
        keda = max(1, math.floor(per_worker))
        source = "AWS backlog per worker (latency / service time x concurrency)"
    else:
        keda = max(1, math.floor(jobs_per_worker / (1 + Fraction(str(buffer)))))
        source = "seed 002 (concurrency x utilization / (1 + buffer) jobs per worker)"
    return ScaleOut(
        queue_depth=queue_depth,
        concurrency=concurrency,
        utilization=utilization,
        buffer=buffer,
        jobs_per_worker=float(jobs_per_worker),
        required_workers=workers,
        acceptable_latency_s=acceptable_latency_s,
        service_time_s=service_time_s,
        backlog_per_instance=per_instance,
        backlog_per_worker=per_worker,
        aws_required_workers=aws_workers,
        keda_target=keda,
        keda_target_source=source,
    )
