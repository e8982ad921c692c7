"""``matrix run``: every cell of a test matrix against a real worker, one after the other.

Per cell: start the worker at that concurrency (a command template, or the user's up/down
templates), inject, wait for the queue to drain and every task to finish (bounded), stop the
worker, compute the metrics from the probe's timings, and write ``cells/<id>/result.json``
beside the task log, the monitor CSV, the per-task CSV and the worker's resource samples.
``results.json``/``results.csv`` in the run directory are rebuilt from the cells after each one,
so a rerun skips the finished cells and an interrupted cell is simply run again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capacity import files
from capacity.brokers import BrokerOptions, broker_class, broker_scheme, open_broker
from capacity.errors import BrokerError, InputError, Interrupted, RunFailed
from capacity.load.inject import InjectConfig, InjectResult, inject
from capacity.load.mix import mix_from
from capacity.load.payload import synthetic_file, uses
from capacity.load.schedules import build_schedule
from capacity.matrix.processes import NODE_WORKER_DIR, EventsCollector, WorkerControl, WorkerProcess
from capacity.matrix.results import (
    CellInfo,
    CellResult,
    disturbed_percent,
    is_finished,
    write_result,
    write_results,
)
from capacity.matrix.sampler import ResourceSampler, bottleneck, local_listeners
from capacity.matrix.spec import CellSpec, Matrix, cells
from capacity.measure.metrics import AUTO_BUCKET, run_metrics
from capacity.secrets import redact_url
from capacity.units import parse_rate_limit

#: --timings events: Celery events recorded per cell by capacity collect (workers need -E)
EVENTS = "events"


@dataclass(frozen=True)
class RunConfig:
    matrix: Matrix
    broker_url: str
    run_dir: Path
    worker: WorkerControl
    timings: str | None = None  # None: a probe directory per cell; "events": Celery events per cell
    transport_options: dict[str, Any] = field(default_factory=dict)
    upload_dir: str = "load_tests/uploads"
    drain_timeout_s: float = 300.0
    sample_interval_s: float = 0.5
    purge: bool = False
    #: pause between cells; None: as long as the broker's idle polls last (Broker.idle_poll_s)
    cooldown_s: float | None = None
    #: "celery", or "bullmq": BullMQ jobs for a Node worker, timed from BullMQ's own job hashes
    protocol: str = "celery"
    prefix: str | None = None
    #: --prometheus: each cell's inject serves its live figures there while it runs
    prometheus: tuple[str, int] | None = None

    @property
    def cooldown(self) -> float:
        if self.cooldown_s is not None:
            return self.cooldown_s
        return broker_class(self.broker_url, self.protocol).idle_poll_s


Progress = Callable[[CellSpec, str], None]  # (cell, phase): "skipped", "worker", "inject", "drain", "metrics", "done"


def run_matrix(config: RunConfig, stop: threading.Event, on_progress: Progress | None = None) -> list[CellResult]:
    """Run every unfinished cell; the results of every finished cell, in matrix order."""
    progress = on_progress or (lambda cell, phase: None)
    disturbed_percent()  # a bad CAPACITY_DISTURBED_PERCENT is refused before the first cell
    ran = 0
    for cell in cells(config.matrix):
        if is_finished(config.run_dir / "cells" / cell.cell_id):
            progress(cell, "skipped")
            continue
        if ran and config.cooldown:
            progress(cell, "cooldown")
            stop.wait(config.cooldown)
        if stop.is_set():
            raise Interrupted("interrupted; finished cells are kept, rerun to go on")
        run_cell(config, cell, stop, progress)
        ran += 1
        write_results(config.run_dir)
        progress(cell, "done")
    return write_results(config.run_dir)


# --- one cell -----------------------------------------------------------------------------------


def run_cell(config: RunConfig, cell: CellSpec, stop: threading.Event, progress: Progress) -> CellResult:
    cell_dir = config.run_dir / "cells" / cell.cell_id
    if cell_dir.exists():
        shutil.rmtree(cell_dir)  # what an interrupted attempt left
    cell_dir.mkdir(parents=True)
    _check_queue_empty(config, cell)
    args, kwargs, rows = config.matrix.payload().resolve(config.matrix.task)
    # a payload file only when the task's arguments refer to it ($file): a user's task that
    # takes its own arguments gets none, and no file it would never read is written
    reference = None
    if "file" in uses([args, kwargs, rows]):
        reference = synthetic_file(cell.size_bytes, config.upload_dir).reference
    collector: EventsCollector | None = None
    if config.timings == EVENTS:
        collector = EventsCollector(config.broker_url, cell_dir / "events.jsonl")
        timings = f"events:{(cell_dir / 'events.jsonl').resolve()}"
    elif config.protocol == "bullmq":
        timings = config.timings or f"bullmq:{config.broker_url}"  # BullMQ's own job hashes
    else:
        timings = config.timings or str((cell_dir / "timings").resolve())
        if config.timings is None:  # made here: a worker without the probe leaves it empty, not missing (#22)
            (cell_dir / "timings").mkdir(exist_ok=True)
    fields = {
        "concurrency": str(cell.concurrency),
        "replicas": str(cell.replicas),
        "pool": cell.pool or "prefork",
        "queue": config.matrix.queue,
        "broker": config.broker_url,
        "cell": cell.cell_id,
        "timings": timings,
        "python": sys.executable,
        "events": "-E" if collector is not None else "",
        "node_worker": _node_worker(config),
        "job_types": str(_job_types_file(config.run_dir)),
        "limiter": _limiter_flags(config.matrix.rate_limit),
    }
    started = time.time()
    progress(cell, "worker")
    readiness = contextlib.ExitStack()  # the broker connection BullMQ's readiness is read on
    control = _worker_control(config, readiness)
    if config.matrix.env:
        control = dataclasses.replace(control, env={**control.env, **_cell_env(config.matrix.env, fields)})
    worker = WorkerProcess(control, fields, cell_dir / "worker.log", config.broker_url, timings)
    sampler: ResourceSampler | None = None
    try:
        if collector is not None:
            collector.start()
        worker.start(stop, cell.replicas)
        sampler = ResourceSampler(
            worker.pids, cell_dir / "resources.csv", config.sample_interval_s, local_listeners(config.broker_url)
        ).start()
        progress(cell, "inject")
        injecting = sampler.mark()
        result = _inject(config, cell, cell_dir, (args, kwargs, rows), reference, stop)
        if result.status != "completed":
            if stop.is_set():
                raise Interrupted("interrupted; finished cells are kept, rerun to go on")
            if result.status == "not_drained":
                worker.check_task_known()
                who = "a BullMQ Worker on this queue name and prefix" if config.protocol == "bullmq" else "the worker"
                raise RunFailed(f"cell {cell.cell_id}: {result.error}; is {who} consuming it?")
            raise BrokerError(f"cell {cell.cell_id}: inject {result.status}: {result.error}")
        progress(cell, "drain")
        _wait_finished(result, timings, cell, config.drain_timeout_s, stop, worker)
        finished = sampler.mark()
    finally:
        readiness.close()
        if sampler is not None:
            sampler.stop()
        worker.stop()
        if collector is not None:
            collector.stop()
    progress(cell, "metrics")
    metrics = run_metrics(
        [result.log_path],
        [timings],
        concurrency=cell.total_concurrency,
        per_task_csv=cell_dir / "tasks.csv",
        bucket_s=AUTO_BUCKET,  # the report plots each cell's percentiles over time
    )
    data = metrics.to_json()
    # the busy part of the cell: the worker's start-up (imports, forks) is not the workload's
    resources = sampler.summary(injecting, finished) if sampler is not None else None
    interference = sampler.interference(injecting, finished) if sampler is not None else None
    record = CellResult(
        cell=CellInfo(**cell.describe(), task=config.matrix.task),
        task=config.matrix.task,
        queue=config.matrix.queue,
        broker=redact_url(config.broker_url),
        worker=worker.description,
        started_at=started,
        ended_at=time.time(),
        task_log=os.path.relpath(result.log_path, cell_dir),
        monitor_csv=os.path.relpath(result.monitor_csv, cell_dir) if result.monitor_csv else None,
        metrics=data,
        resources=resources,
        interference=interference,
        resource_samples=tuple(dict(zip(ResourceSampler.COLUMNS, row, strict=True)) for row in sampler.rows)
        if sampler
        else (),
        bottleneck=bottleneck(
            cell,
            data,
            resources,
            config.matrix.rate_limit,
            broker_scheme(config.broker_url),
            interference,
        ),
    )
    write_result(cell_dir, record)
    return record


def _check_queue_empty(config: RunConfig, cell: CellSpec) -> None:
    with open_broker(config.broker_url, _options(config)) as broker:
        visible = broker.depth().visible
        if visible and config.purge:
            broker.purge()
        elif visible:
            raise InputError(
                f"queue {config.matrix.queue!r} holds {visible} messages before cell {cell.cell_id} "
                "(left by an interrupted run?): they would be measured too; drain it or pass --purge"
            )


def _options(config: RunConfig) -> BrokerOptions:
    return BrokerOptions(
        queue=config.matrix.queue,
        transport_options=config.transport_options,
        retry_for_s=5,
        protocol=config.protocol,
        prefix=config.prefix,
    )


def _worker_control(config: RunConfig, connections: contextlib.ExitStack) -> WorkerControl:
    """The worker control, with BullMQ's readiness (a worker connected to the queue) where the
    worker is a command we start: a Node worker prints no line we could rely on. The broker is
    opened once, on ``connections``, and polled until the worker shows up."""
    control = config.worker
    if config.protocol != "bullmq" or not control.command or control.ready is not None:
        return control
    broker = connections.enter_context(open_broker(config.broker_url, _options(config)))
    return dataclasses.replace(control, ready=lambda: bool(broker.consumers()))


def _node_worker(config: RunConfig) -> str:
    """The reference Node worker's script, its packages installed (once, into a cache after a
    pip install) only when the worker command uses it."""
    if "{node_worker}" not in (config.worker.command or ""):
        return str(NODE_WORKER_DIR / "worker.js")
    from capacity.matrix.nodeworker import node_worker_script

    return str(node_worker_script())


def _cell_env(env: dict[str, str], fields: dict[str, str]) -> dict[str, str]:
    """The matrix file's ``env:`` for one cell, its values templated with the cell's fields."""
    try:
        return {name: str(value).format(**fields) for name, value in env.items()}
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(f"the matrix file's env: bad template ({exc}); fields: {', '.join(fields)}") from None


def _limiter_flags(rate_limit: str | None) -> str:
    """The reference Node worker's flags for the matrix's limiter ({limiter} in templates)."""
    if rate_limit is None:
        return ""
    max_jobs, duration_s = parse_rate_limit(rate_limit, "rate_limit")
    return f"--limiter-max {max_jobs} --limiter-duration {round(duration_s * 1000)}"


def _job_types_file(run_dir: Path) -> Path:
    """The profiles' job types as JSON for the Node worker (--job-types), written once per run."""
    path = run_dir / "job_types.json"
    if not path.is_file():
        from capacity.profiles import load_profiles

        types = {
            job.name: {"duration": list(job.duration), "cpu": list(job.cpu), "memory": list(job.memory)}
            for job in load_profiles().job_types.job_types
        }
        files.write_text(path, json.dumps(types, indent=2))
    return path


def _inject(
    config: RunConfig,
    cell: CellSpec,
    cell_dir: Path,
    payload: tuple[list[Any], dict[str, Any], tuple[tuple[list[Any], dict[str, Any]], ...]],
    reference: str | None,
    stop: threading.Event,
) -> InjectResult:
    mode = cell.mode
    args, kwargs, rows = payload
    return inject(
        InjectConfig(
            broker_url=config.broker_url,
            schedule=build_schedule(mode.mode, mode.count, mode.rate, mode.duration, None, None),
            task=config.matrix.task,
            queue=config.matrix.queue,
            log_dir=cell_dir,
            args=args,
            kwargs=kwargs,
            rows=rows,
            file_reference=reference,
            size_bytes=cell.size_bytes,
            transport_options=config.transport_options,
            protocol=config.protocol,
            prefix=config.prefix,
            job_options=dict(config.matrix.job_options),
            mix=mix_from(config.matrix.mix, "the matrix file's mix", Path.cwd()) if config.matrix.mix else (),
            monitor=True,
            monitor_interval_s=config.sample_interval_s,
            monitor_for_s=config.drain_timeout_s,
            prometheus=config.prometheus,
        ),
        stop,
    )


def _wait_finished(
    result: InjectResult,
    timings: str,
    cell: CellSpec,
    limit_s: float,
    stop: threading.Event,
    worker: WorkerProcess | None = None,
) -> None:
    """The queue is empty once the last task is taken; wait until every sent task has finished.
    A worker that says it does not know the task stops the cell at once, saying so."""
    deadline = time.monotonic() + limit_s
    while True:
        if stop.is_set():
            raise Interrupted("interrupted; finished cells are kept, rerun to go on")
        if worker is not None:
            worker.check_task_known()
        finished = finished_tasks(result.log_path, timings)
        if finished >= result.sent:
            return
        if time.monotonic() > deadline:
            raise RunFailed(
                f"cell {cell.cell_id}: {finished} of {result.sent} tasks finished within "
                f"{limit_s:.0f} s (--drain-timeout); is the worker consuming {result.log_path.name}'s queue?"
                + (worker.probe_hint if worker is not None and finished == 0 else "")
            )
        stop.wait(0.3)


def finished_tasks(log_path: Path, timings: str) -> int:
    """Tasks of the log the timings show finished, successfully or not."""
    metrics = run_metrics([log_path], [timings])
    return int(metrics.completed or 0) + int(metrics.failed or 0)
