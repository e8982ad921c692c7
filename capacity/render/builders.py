"""Report builders: each core result as a Report (public JSON keys, summary, tables, notes)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from capacity.render.manifests import scaled_object
from capacity.render.model import Report, Table
from capacity.sizing.assess import Assessment
from capacity.sizing.cost import CostRow
from capacity.sizing.recommend import (
    PhotoRecommendation,
    ReplicaTopology,
    ResourceRecommendation,
    ScaleOut,
    TaskThroughput,
    UserTopology,
    implied_cpu_per_job,
)
from capacity.units import format_duration, format_size

if TYPE_CHECKING:  # the metrics result is built where DuckDB and pyarrow are installed
    pass


def _range(pair: tuple[float, float], fmt: Any = str) -> str:
    low, high = (fmt(v) for v in pair)
    return low if low == high else f"{low} - {high}"


def _num(value: float) -> str:
    return f"{value:,.1f}" if value % 1 else f"{value:,.0f}"


def resources_report(r: ResourceRecommendation) -> Report:
    data: dict[str, Any] = {
        "mode": "resources",
        "global_concurrency": r.global_concurrency,
        "per_tenant_concurrency": r.per_tenant_concurrency,
        "limited_by": r.limited_by,
        "cpu": r.cpu,
        "memory_bytes": r.memory_bytes,
        "cpu_per_job": r.cpu_per_job,
        "mem_per_job_bytes": r.mem_per_job_bytes,
        "tenant_share": r.tenant_share,
        "cpu_slots": r.cpu_slots,
        "memory_slots": r.memory_slots,
        "cpu_headroom": r.cpu_headroom,
        "memory_headroom_bytes": r.memory_headroom_bytes,
        "source": "formula (seed 002 calculateConcurrency)",
    }
    notes = [
        "Computed with seed 002's formula: global = min(floor(cpu / cpu_per_job), "
        "floor(memory / mem_per_job)); per-tenant = max(1, floor(global x share))."
    ]
    if r.job_type is not None:
        data["job_type"] = r.job_type.name
        notes.append(
            f"Per-job resources from job type {r.job_type.name!r} ({r.job_type.source}), high end "
            f"of its ranges: CPU {_range(r.job_type.cpu)}, memory {_range(r.job_type.memory, format_size)}."
        )
    if r.global_concurrency == 0:
        notes.append("This machine cannot run one job of this size.")
    summary = [
        ("Global concurrency (WORKER_CONCURRENCY)", str(r.global_concurrency)),
        ("Per-tenant concurrency", str(r.per_tenant_concurrency)),
        ("Limited by", r.limited_by),
        ("CPU slots", f"{r.cpu_slots} ({r.cpu:g} CPU / {r.cpu_per_job:g} per job)"),
        (
            "Memory slots",
            f"{r.memory_slots} ({format_size(r.memory_bytes)} / {format_size(r.mem_per_job_bytes)} per job)",
        ),
        ("Headroom", f"{r.cpu_headroom:g} CPU, {format_size(r.memory_headroom_bytes)}"),
    ]
    if r.instance is not None:
        policy = r.instance.policy
        data["instance"] = r.instance.name
        data["policy_global_concurrency"] = policy.global_concurrency
        data["policy_per_tenant_concurrency"] = policy.per_tenant_concurrency
        data["policy_differs"] = r.policy_differs
        summary.append(
            ("Seed 002 policy table", f"global {policy.global_concurrency}, per-tenant {policy.per_tenant_concurrency}")
        )
        if r.policy_differs:
            notes.append(
                f"The seed's policy table for {r.instance.name} says global {policy.global_concurrency}, "
                f"per-tenant {policy.per_tenant_concurrency}; its own formula gives "
                f"{r.global_concurrency}/{r.per_tenant_concurrency} here. The table matches the formula "
                f"only at ~{implied_cpu_per_job(r.instance):.2g} CPU per job (--cpu-per-job "
                f"{implied_cpu_per_job(r.instance):.2g}). The formula's figure is the one used."
            )
    env = {
        "WORKER_CONCURRENCY": str(r.global_concurrency),
        "DEFAULT_TENANT_CONCURRENCY": str(r.per_tenant_concurrency),
    }
    manifest = _deployment("capacity-worker", 1, env, cpu=r.cpu, memory_bytes=r.memory_bytes)
    options = {"concurrency": r.global_concurrency}
    return Report(
        "Concurrency from resources", data, tuple(summary), (), tuple(notes), env, (manifest,), worker_options=options
    )


def _deployment(
    name: str, replicas: int, env: dict[str, str], cpu: float | None = None, memory_bytes: int | None = None
) -> dict[str, Any]:
    """A Deployment shaped like seed 002's Kubernetes example."""
    container: dict[str, Any] = {
        "name": "worker",
        "image": "REPLACE/worker:latest",
        "env": [{"name": k, "value": v} for k, v in env.items()],
    }
    if cpu is not None and memory_bytes is not None:
        container["resources"] = {"requests": {"cpu": f"{cpu:g}", "memory": f"{memory_bytes // 2**20}Mi"}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def photos_report(r: PhotoRecommendation, contradictions: tuple[str, ...], example: Any) -> Report:
    data: dict[str, Any] = {
        "mode": "photos",
        "photos": r.photos,
        "tier": r.tier.name,
        "worker_concurrency": r.worker_concurrency,
        "face_worker_concurrency": r.face_worker_concurrency,
        "global_concurrency": r.worker_concurrency,
        "peak_memory_bytes": list(r.peak_memory_bytes),
        "bandwidth_bytes": list(r.bandwidth_bytes),
        "concurrent_llm_calls": r.concurrent_llm_calls,
        "concurrent_face_calls": r.concurrent_face_calls,
        "service_time_s": r.service_time_s,
        "llm_calls_per_min": r.llm_calls_per_min,
        "api_rate_limit_per_min": r.api_rate_limit_per_min,
        "api_limited": r.api_limited,
        "max_concurrency_within_api_limit": r.max_concurrency_within_api_limit,
        "throughput_per_min": r.throughput_per_min,
        "duration_s": r.duration_s,
        "horizontal_scaling": r.horizontal_scaling,
    }
    summary = [
        ("Tier (seed 000)", f"{r.tier.name} ({r.tier.seed_range} photos)"),
        ("WORKER_CONCURRENCY", str(r.worker_concurrency)),
        ("FACE_WORKER_CONCURRENCY", str(r.face_worker_concurrency)),
        ("Peak memory", _range(r.peak_memory_bytes, format_size)),
        ("Bandwidth in flight", _range(r.bandwidth_bytes, format_size)),
        ("Simultaneous LLM / face calls", f"{r.concurrent_llm_calls} / {r.concurrent_face_calls}"),
    ]
    notes = [
        "Tier rule: the first of seed 000's scenario tiers whose range covers the count; counts "
        "between the seed's ranges take the next (more conservative) tier."
    ]
    notes += [f"Not used: {c}." for c in contradictions]
    if r.memory_cap is not None and r.memory_cap < r.tier.worker_concurrency:
        notes.append(f"Concurrency lowered from {r.tier.worker_concurrency} to {r.memory_cap} to fit the given memory.")
    if example is not None and example.worker_concurrency == r.worker_concurrency:
        notes.append(
            f"Seed 000's worked example for {example.worker_concurrency} says peak memory "
            f"{_range(example.peak_memory, format_size)} and bandwidth {_range(example.bandwidth, format_size)}; "
            "its per-photo figures give the values above, which are the ones used."
        )
    if r.llm_calls_per_min is not None:
        summary.append(("LLM calls per minute", _num(r.llm_calls_per_min)))
    if r.api_rate_limit_per_min is not None:
        summary.append(("API rate limit", f"{_num(r.api_rate_limit_per_min)}/min"))
        if r.api_limited:
            notes.append(
                f"The API limit binds: at most {r.max_concurrency_within_api_limit} concurrent photos keep "
                "within it; throughput and duration are capped by the limit."
            )
    if r.throughput_per_min is not None and r.duration_s is not None:
        summary.append(("Throughput", f"{_num(r.throughput_per_min)} photos/min"))
        summary.append((f"Time for {r.photos} photos", format_duration(r.duration_s)))
    else:
        notes.append("Give --service-time to get the API call rate, throughput and duration.")
    if r.horizontal_scaling:
        notes.append("Seed 000: above 5000 photos, consider several workers on different machines.")
    env = {
        "WORKER_CONCURRENCY": str(r.worker_concurrency),
        "FACE_WORKER_CONCURRENCY": str(r.face_worker_concurrency),
    }
    manifest = _deployment("capacity-photo-worker", 1, env)
    photo: dict[str, Any] = {"concurrency": r.worker_concurrency}
    if r.api_rate_limit_per_min:
        # seed 000's API rate limit as the photo worker's BullMQ limiter (per minute)
        photo["limiter"] = {"max": math.floor(r.api_rate_limit_per_min), "duration": 60_000}
    options = {"photo": photo, "face": {"concurrency": r.face_worker_concurrency}}
    return Report(
        "Concurrency for a photo count",
        data,
        tuple(summary),
        (),
        tuple(notes),
        env,
        (manifest,),
        worker_options=options,
    )


def topology_report(
    users: UserTopology | None, replicas: ReplicaTopology | None, throughput: TaskThroughput | None
) -> Report:
    data: dict[str, Any] = {"mode": "topology"}
    summary: list[tuple[str, str]] = []
    tables: list[Table] = []
    notes: list[str] = []
    env: dict[str, str] = {}
    if users is not None:
        s, cfg = users.scenario, users.settings
        data.update(
            users=users.users,
            scenario=s.name,
            workers=len(s.workers),
            global_concurrency=users.total_concurrency,
            total_concurrency=users.total_concurrency,
            seed_total_concurrency=list(s.total_concurrency),
            queue_separation=s.queue_separation,
            queues=sorted({q for w in s.workers for q in w.queues}),
            task_routes=cfg.task_routes,
            task_soft_time_limit_s=cfg.task_soft_time_limit,
            task_time_limit_s=cfg.task_time_limit,
            worker_max_tasks_per_child=cfg.worker_max_tasks_per_child,
            memory_per_worker_bytes=list(s.memory_per_worker),
            worker_commands=list(users.worker_commands),
        )
        summary += [
            ("Scenario (seed 004)", f"{s.name} ({users.users} users)"),
            ("Workers", str(len(s.workers))),
            ("Total concurrency", f"{users.total_concurrency} (seed: {_range(s.total_concurrency)})"),
            ("Queue separation", "yes" if s.queue_separation else "no"),
            ("Memory per worker", _range(s.memory_per_worker, format_size)),
            ("Time limits", f"soft {cfg.task_soft_time_limit:g} s, hard {cfg.task_time_limit:g} s"),
            ("Max tasks per child", str(cfg.worker_max_tasks_per_child)),
        ]
        tables.append(
            Table(
                "Workers",
                ("Role", "Queues", "Concurrency", "Command"),
                tuple(
                    (w.role, ",".join(w.queues), str(w.concurrency), cmd)
                    for w, cmd in zip(s.workers, users.worker_commands, strict=True)
                ),
            )
        )
        tables.append(
            Table("task_routes", ("Pattern", "Queue"), tuple((k, v["queue"]) for k, v in cfg.task_routes.items()))
        )
        notes.append(
            "Seed 004 gives worker_max_tasks_per_child 50 in its configuration and 100 in its plan; "
            'the configuration\'s 50 is used. 200 users counts as Medium Usage ("50-200").'
        )
        env["WORKER_CONCURRENCY"] = str(users.total_concurrency)
    if replicas is not None:
        tier = replicas.tier.name if replicas.tier else "outside the seed's tiers"
        data.update(
            replicas=replicas.replicas,
            threads=replicas.threads,
            total_concurrent_tasks=replicas.total_concurrent_tasks,
            replica_tier=replicas.tier.name if replicas.tier else None,
            memory_per_worker_bytes=replicas.tier.memory_per_worker if replicas.tier else None,
        )
        data.setdefault("global_concurrency", replicas.total_concurrent_tasks)
        summary += [
            (
                "Replicas x threads (seed 001)",
                f"{replicas.replicas} x {replicas.threads} = {replicas.total_concurrent_tasks} concurrent tasks",
            ),
            ("Seed 001 tier", tier),
        ]
        if replicas.tier:
            summary.append(("Memory per worker", format_size(replicas.tier.memory_per_worker)))
        env.update(
            CELERY_WORKER_CONCURRENCY=str(replicas.threads),
            CELERY_WORKER_POOL=replicas.pool,
            CELERY_WORKER_REPLICAS=str(replicas.replicas),
        )
    if throughput is not None:
        t = throughput
        data.update(
            task_type=t.job_type.name,
            slots=list(t.slots),
            per_slot_per_hour=list(t.per_slot_per_hour),
            tasks_per_hour=list(t.per_hour),
        )
        summary += [
            ("Task type", f"{t.job_type.name} ({_range(t.job_type.duration, format_duration)} each)"),
            ("Per slot", f"{_range(t.per_slot_per_hour, _num)} tasks/hour"),
            (f"With {_range(t.slots)} slots", f"{_range(t.per_hour, _num)} tasks/hour"),
        ]
        notes.append("Throughput: slots x 3600 / duration tasks per hour (seed 004), low end at the longest duration.")
    return Report("Celery topology", data, tuple(summary), tuple(tables), tuple(notes), env or None, None)


def scaleout_report(
    r: ScaleOut, queue: str, scaler: str, name: str, rate_limit: tuple[int, float] | None = None
) -> Report:
    data: dict[str, Any] = {
        "mode": "scale-out",
        "required_workers": r.required_workers,
        "queue_depth": r.queue_depth,
        "concurrency": r.concurrency,
        "utilization": r.utilization,
        "buffer": r.buffer,
        "jobs_per_worker": r.jobs_per_worker,
        "acceptable_latency_s": r.acceptable_latency_s,
        "service_time_s": r.service_time_s,
        "backlog_per_instance": r.backlog_per_instance,
        "backlog_per_worker": r.backlog_per_worker,
        "aws_required_workers": r.aws_required_workers,
        "keda_target": r.keda_target,
        "keda_target_source": r.keda_target_source,
    }
    summary = [
        ("Required workers (seed 002)", str(r.required_workers)),
        ("Jobs per worker", f"{r.concurrency} x {r.utilization:g} = {r.jobs_per_worker:g}"),
        ("Formula", f"ceil({r.queue_depth} / {r.jobs_per_worker:g} x {1 + r.buffer:g})"),
    ]
    if r.backlog_per_instance is not None:
        summary += [
            ("AWS backlog per instance", f"{r.backlog_per_instance:g} (latency / service time)"),
            ("Backlog per worker", f"{r.backlog_per_worker:g} (x concurrency {r.concurrency})"),
            ("Workers for this backlog (AWS)", str(r.aws_required_workers)),
        ]
    trigger_name = "KEDA SQS queueLength" if scaler == "sqs" else "KEDA Redis listLength"
    summary.append((trigger_name, str(r.keda_target)))
    notes = [
        "Seed 002's formula drains the whole backlog in one service time; AWS's backlog-per-instance "
        "target (give --latency and --service-time) sizes for an acceptable wait instead.",
        f"KEDA target from {r.keda_target_source}.",
    ]
    scaled = scaled_object(name, scaler, queue, r.keda_target, 0, max(1, r.required_workers))
    env = {"WORKER_CONCURRENCY": str(r.concurrency), "REQUIRED_WORKERS": str(r.required_workers)}
    options: dict[str, Any] = {"concurrency": r.concurrency}
    if rate_limit is not None:
        max_jobs, duration_s = rate_limit
        options["limiter"] = {"max": max_jobs, "duration": round(duration_s * 1000)}
        drain_s = r.queue_depth / (max_jobs / duration_s)
        data["limiter_drain_time_s"] = drain_s
        summary.append(("Backlog drain at the limiter", format_duration(drain_s)))
        if r.service_time_s:
            extra, lines, limiter_notes = limiter_lines(
                None, r.required_workers * r.concurrency, r.service_time_s, rate_limit
            )
            data.update(extra)
            summary += lines
            notes += limiter_notes
        notes.append(
            f"BullMQ's limiter is per queue, across all workers: the backlog takes at least {format_duration(drain_s)} "
            "whatever the replicas."
        )
    deployment = _deployment(name, r.required_workers, {"WORKER_CONCURRENCY": str(r.concurrency)})
    return Report(
        "Workers for a backlog",
        data,
        tuple(summary),
        (),
        tuple(notes),
        env,
        (deployment, scaled),
        worker_options=options,
    )


def assessment_report(a: Assessment, source: str) -> Report:
    rows = tuple((g.label, f"{g.value:g} {g.unit}", g.grade, g.target, g.warning, g.critical) for g in a.grades)
    advice = []
    if a.horizontal:
        advice.append("Scale horizontally (add workers): " + "; ".join(a.horizontal))
    if a.vertical:
        advice.append("Scale vertically (bigger instances): " + "; ".join(a.vertical))
    data = {
        "worst": a.worst,
        "critical": a.critical,
        "grades": [
            {
                "metric": g.metric,
                "value": g.value,
                "grade": g.grade,
                "target": g.target,
                "warning": g.warning,
                "critical": g.critical,
            }
            for g in a.grades
        ],
        "scale_horizontally": list(a.horizontal),
        "scale_vertically": list(a.vertical),
    }
    return Report(
        "Assessment",
        data,
        (("Worst grade", a.worst),),
        (Table("Grades", ("Metric", "Observed", "Grade", "Target", "Warning", "Critical"), rows),),
        (*tuple(advice), f"Thresholds: {source}."),
    )


def cost_report(rows: list[CostRow], hours_per_month: float, title: str, notes: tuple[str, ...]) -> Report:
    has_fit = any(r.concurrency_per_worker is not None for r in rows)
    columns: tuple[str, ...] = ("Instance", "Workers", "Hourly (USD)", "Monthly (USD)")
    if has_fit:
        columns += ("Concurrency/worker", "Utilization", "Within max workers")
    table_rows = []
    for r in rows:
        cells: tuple[str, ...] = (r.instance, str(r.workers), f"{r.hourly_usd:.2f}", f"{r.monthly_usd:,.2f}")
        if has_fit:
            cells += (
                str(r.concurrency_per_worker),
                f"{(r.utilization or 0):.0%}",
                "yes" if r.within_max_workers else "no",
            )
        table_rows.append(cells)
    data = {
        "hours_per_month": hours_per_month,
        "rows": [{k: v for k, v in r.__dict__.items() if v is not None} for r in rows],
    }
    return Report(
        title,
        data,
        (),
        (Table(title, columns, tuple(table_rows)),),
        (*notes, f"Monthly = hourly x workers x {hours_per_month:g} h."),
    )


def limiter_lines(
    arrival_per_s: float | None, slots: int, service_time_s: float, rate_limit: tuple[int, float]
) -> tuple[dict[str, Any], list[tuple[str, str]], list[str]]:
    """What a BullMQ limiter (max jobs per duration, whatever the concurrency) does to a pool of
    ``slots``: its JSON figures, summary lines and notes. The limiter binds when it allows fewer
    jobs per second than the slots can run (slots / S)."""
    max_jobs, duration_s = rate_limit
    limit_per_s = max_jobs / duration_s
    slots_per_s = slots / service_time_s
    binds = "limiter" if limit_per_s < slots_per_s else "slots"
    data: dict[str, Any] = {
        "rate_limit": {"max": max_jobs, "duration_ms": round(duration_s * 1000)},
        "capacity_slots_per_min": slots_per_s * 60,
        "capacity_limit_per_min": limit_per_s * 60,
        "throughput_cap_per_min": min(limit_per_s, slots_per_s) * 60,
        "binds": binds,
        "useful_slots": math.ceil(limit_per_s * service_time_s),
    }
    summary = [
        ("Limiter", f"{max_jobs} jobs per {format_duration(duration_s)} ({limit_per_s * 60:,.1f}/min)"),
        ("Throughput cap", f"{min(limit_per_s, slots_per_s) * 60:,.1f}/min: the {binds} bind"),
    ]
    notes = []
    if binds == "limiter":
        notes.append(
            f"The limiter binds, not the slots: {slots} slots could run {slots_per_s * 60:,.1f} jobs/min, the "
            f"limiter lets {limit_per_s * 60:,.1f}/min through; more than {data['useful_slots']} slots add nothing."
        )
    if arrival_per_s is not None and arrival_per_s >= limit_per_s:
        notes.append(
            f"Arrivals ({arrival_per_s * 60:,.1f}/min) reach the limiter's {limit_per_s * 60:,.1f}/min: the queue "
            "grows without bound whatever the slots."
        )
    return data, summary, notes


def plan_report(
    queue: Any,
    answer_time_s: float,
    required: int | None,
    nearby: list[Any],
    workers: dict[str, Any] | None,
    rate_limit: tuple[int, float] | None = None,
) -> Report:
    """An Erlang C evaluation (capacity.queueing.MMc), the slots a target needs and their cost."""
    percentiles = {f"wait_p{p}_s": queue.wait_percentile_s(p / 100) for p in (50, 90, 95, 99)}
    data: dict[str, Any] = {
        "model": "M/M/c (Erlang C)",
        "arrival_rate_per_s": queue.arrival_rate_per_s,
        "service_time_s": queue.service_time_s,
        "slots": queue.slots,
        "offered_load": queue.offered_load,
        "utilization": queue.utilization,
        "p_wait": queue.p_wait,
        "mean_wait_s": queue.mean_wait_s,
        **percentiles,
        "answer_time_s": answer_time_s,
        "service_level": queue.service_level(answer_time_s),
        "mean_response_s": queue.mean_response_s,
        "mean_queue_length": queue.mean_queue_length,
        "required_workers": required,
    }
    if workers:
        data.update(workers)
    summary = [
        ("Offered load", f"{queue.offered_load:.3f} Erlangs (busy slots on average)"),
        ("Slots", str(queue.slots) + (" (the fewest that meet the target)" if required is not None else "")),
        ("Utilisation", f"{queue.utilization:.1%}"),
        ("P(wait)", f"{queue.p_wait:.4f}"),
        ("Mean wait", format_duration(queue.mean_wait_s)),
        ("Wait p50 / p90 / p95 / p99", " / ".join(format_duration(v) for v in percentiles.values())),
        (f"Service level P(wait <= {answer_time_s:g} s)", f"{queue.service_level(answer_time_s):.2%}"),
        ("Mean response time", format_duration(queue.mean_response_s)),
        ("Mean queue length", f"{queue.mean_queue_length:.2f}"),
    ]
    if workers:
        summary.append(("Workers", f"{workers['workers']} x {workers['concurrency_per_worker']} slots"))
        if "monthly_usd" in workers:
            summary.append(("Monthly cost", f"${workers['monthly_usd']:,.2f} ({workers['instance']})"))
    rows = tuple(
        (
            str(q.slots),
            f"{q.utilization:.1%}",
            f"{q.p_wait:.4f}",
            format_duration(q.mean_wait_s),
            format_duration(q.wait_percentile_s(0.95)),
            f"{q.service_level(answer_time_s):.2%}",
        )
        for q in nearby
    )
    tables = (
        (
            Table(
                "Nearby slot counts",
                ("Slots", "Utilisation", "P(wait)", "Mean wait", "Wait p95", f"SL({answer_time_s:g} s)"),
                rows,
            ),
        )
        if rows
        else ()
    )
    notes: tuple[str, ...] = (
        "M/M/c: Poisson arrivals, exponential service times, FCFS; real service times with less "
        "variance wait less (capacity simulate models other distributions).",
    )
    if not queue.stable:
        notes += (
            f"Overloaded: offered load {queue.offered_load:.2f} >= {queue.slots} slots; the queue grows without bound.",
        )
    if rate_limit is not None:
        extra, lines, limiter_notes = limiter_lines(
            queue.arrival_rate_per_s, queue.slots, queue.service_time_s, rate_limit
        )
        data.update(extra)
        summary += lines
        notes += (*limiter_notes, "Erlang C's figures are for the slots alone; the limiter adds its own waits.")
    return Report("Queueing plan", data, tuple(summary), tables, notes)
