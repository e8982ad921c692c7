"""``cost``: monthly cost per instance type and worker count, and the cheapest way to a throughput."""

from __future__ import annotations

import math
from dataclasses import dataclass

from capacity.errors import InputError
from capacity.profiles import InstanceType, JobType
from capacity.sizing.recommend import (
    DEFAULT_CPU_PER_JOB,
    DEFAULT_MEM_PER_JOB_BYTES,
    concurrency_from_resources,
)

HOURS_PER_MONTH = 730.0  # the cloud providers' convention (8760 h / 12)


@dataclass(frozen=True)
class CostRow:
    instance: str
    workers: int
    hourly_usd: float
    monthly_usd: float
    concurrency_per_worker: int | None = None
    utilization: float | None = None
    within_max_workers: bool = True


def monthly_cost(instance: InstanceType, workers: int, hours_per_month: float = HOURS_PER_MONTH) -> CostRow:
    """Hourly price x workers x hours per month (seed 002's Cost Estimate uses 720 h)."""
    if workers < 0:
        raise InputError(f"workers must be zero or more, got {workers}")
    if not 0 < hours_per_month <= 744:
        raise InputError(f"hours per month must be in (0, 744], got {hours_per_month:g}")
    hourly = instance.cost_per_hour_usd * workers
    return CostRow(
        instance=instance.name,
        workers=workers,
        hourly_usd=round(hourly, 6),
        monthly_usd=round(hourly * hours_per_month, 2),
        within_max_workers=workers <= instance.max_workers,
    )


def cheapest_for_throughput(
    instances: tuple[InstanceType, ...],
    throughput_per_s: float,
    service_time_s: float,
    target_utilization: float = 0.8,
    job_type: JobType | None = None,
    use_policy: bool = False,
    hours_per_month: float = HOURS_PER_MONTH,
) -> list[CostRow]:
    """Per instance type, the workers that carry ``throughput`` at ``target_utilization``, by cost.

    Offered load is throughput x service time busy slots (Little's law); each worker offers its
    concurrency (seed 002's formula with the job's resources, or the policy table) x utilisation.
    """
    if throughput_per_s <= 0 or service_time_s <= 0:
        raise InputError("throughput and service time must be more than zero")
    if not 0 < target_utilization <= 1:
        raise InputError(f"target utilization must be in (0, 1], got {target_utilization:g}")
    busy_slots = throughput_per_s * service_time_s
    rows = []
    for instance in instances:
        if use_policy:
            concurrency = instance.policy.global_concurrency
        else:
            concurrency = concurrency_from_resources(
                instance.cpu,
                instance.memory,
                cpu_per_job=job_type.cpu[1] if job_type else DEFAULT_CPU_PER_JOB,
                mem_per_job_bytes=job_type.memory[1] if job_type else DEFAULT_MEM_PER_JOB_BYTES,
            ).global_concurrency
        if concurrency == 0:
            continue  # cannot run one job: not a configuration
        # rounded first so that 4.0000000001 slots (float noise) does not cost a fifth worker
        workers = max(1, math.ceil(round(busy_slots / (concurrency * target_utilization), 9)))
        row = monthly_cost(instance, workers, hours_per_month)
        rows.append(
            CostRow(
                **{
                    **row.__dict__,
                    "concurrency_per_worker": concurrency,
                    "utilization": round(busy_slots / (workers * concurrency), 4),
                }
            )
        )
    if not rows:
        raise InputError("no instance type can run one job of this size")
    return sorted(rows, key=lambda r: (not r.within_max_workers, r.monthly_usd, r.workers))
