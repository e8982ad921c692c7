"""``matrix run``: every cell of a test matrix against a real worker, one after the other.

Per cell: start the worker at that concurrency (a command template, or the user's up/down
templates), inject, wait for the queue to drain and every task to finish (bounded), stop the
worker, compute the metrics from the probe's timings, and write ``cells/<id>/result.json``
beside the task log, the monitor CSV, the per-task CSV and the worker's resource samples.
``results.json``/``results.csv`` in the run directory are rebuilt from the cells after each one,
so a rerun skips the finished cells and an interrupted cell is simply run again.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from capacity.brokers import BrokerOptions, broker_class, open_broker
from capacity.errors import BrokerError, InputError, Interrupted, RunFailed
from capacity.load.inject import InjectConfig, InjectResult, inject
from capacity.load.payload import default_payload, synthetic_file
from capacity.load.schedules import build_schedule
from capacity.matrix.spec import Matrix, ModeSpec
from capacity.measure.metrics import run_metrics
from capacity.secrets import mask, redact_url
from capacity.units import format_size

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
MATRIX_COPY = "matrix.yaml"

#: the reference worker, as ``capacity bench`` starts it ({python} is this interpreter)
REFERENCE_WORKER = (
    "{python} -m celery -A capacity.worker worker --pool prefork --concurrency {concurrency} -Q {queue} "
    "--without-gossip --without-mingle --without-heartbeat --loglevel INFO --hostname bench-{cell}@%h {events}"
)
#: --timings events: Celery events recorded per cell by capacity collect (workers need -E)
EVENTS = "events"


@dataclass(frozen=True)
class WorkerControl:
    """How a cell gets its worker: a command we start and stop, or the user's up/down templates.

    Templates take {concurrency}, {queue}, {broker}, {cell}, {timings}, {python}. ``command`` is
    split like a shell line and run without a shell (its process tree is sampled with psutil);
    ``up``/``down`` run in a shell (``kubectl scale ...``, ``systemctl restart ...``)."""

    command: str | None = None
    up: str | None = None
    down: str | None = None
    ready_timeout_s: float = 60.0
    settle_s: float = 5.0  # after ``up``: no log to watch, so wait this long
    env: dict[str, str] = field(default_factory=dict)


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

    @property
    def cooldown(self) -> float:
        if self.cooldown_s is not None:
            return self.cooldown_s
        return broker_class(self.broker_url).idle_poll_s


@dataclass(frozen=True)
class CellSpec:
    index: int
    cell_id: str
    size_bytes: int
    concurrency: int
    mode: ModeSpec

    def describe(self) -> dict[str, Any]:
        return {
            "cell": self.cell_id,
            "size": format_size(self.size_bytes),
            "size_bytes": self.size_bytes,
            "concurrency": self.concurrency,
            "mode": self.mode.mode,
            "rate": self.mode.rate,
            "count": self.mode.count,
            "duration": self.mode.duration,
        }


Progress = Callable[[CellSpec, str], None]  # (cell, phase): "skipped", "worker", "inject", "drain", "metrics", "done"


def cells(matrix: Matrix) -> list[CellSpec]:
    return [
        CellSpec(i, cell_id, size, c, mode)
        for i, (cell_id, (size, c, mode)) in enumerate(zip(matrix.cell_ids(), matrix.cells(), strict=True))
    ]


def prepare_run_dir(run_dir: Path, matrix: Matrix, fresh: bool) -> None:
    """Create the run directory, or check that an existing one holds the same matrix."""
    copy = run_dir / MATRIX_COPY
    wanted = matrix.model_dump(mode="json")
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    if copy.is_file():
        held = yaml.safe_load(copy.read_text(encoding="utf-8"))
        if held != wanted:
            raise InputError(
                f"{run_dir} holds the results of a different matrix; give another --run-dir, or --fresh to start over"
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    copy.write_text(yaml.safe_dump(wanted, sort_keys=False), encoding="utf-8")


def run_matrix(config: RunConfig, stop: threading.Event, on_progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run every unfinished cell; the results of every finished cell, in matrix order."""
    progress = on_progress or (lambda cell, phase: None)
    ran = 0
    for cell in cells(config.matrix):
        if (config.run_dir / "cells" / cell.cell_id / "result.json").is_file():
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


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    """Every finished cell's result, in cell order (by number: 100 comes after 99)."""

    def number(path: Path) -> tuple[int, str]:
        head = path.parent.name.split("-", 1)[0]
        return (int(head) if head.isdigit() else 0, path.parent.name)

    found = sorted((run_dir / "cells").glob("*/result.json"), key=number)
    return [json.loads(path.read_text(encoding="utf-8")) for path in found]


RESULT_COLUMNS = (
    ("cell", ("cell", "cell")),
    ("size", ("cell", "size")),
    ("size_bytes", ("cell", "size_bytes")),
    ("concurrency", ("cell", "concurrency")),
    ("mode", ("cell", "mode")),
    ("rate", ("cell", "rate")),
    ("sent", ("metrics", "sent")),
    ("completed", ("metrics", "completed")),
    ("failed", ("metrics", "failed")),
    ("missing", ("metrics", "missing")),
    ("completion_rate", ("metrics", "completion_rate")),
    ("window_s", ("metrics", "window_s")),
    ("throughput_per_min", ("metrics", "throughput_per_min")),
    ("service_time_mean_s", ("metrics", "service_time_mean_s")),
    ("service_time_p95_s", ("metrics", "service_time_p95_s")),
    ("wait_mean_s", ("metrics", "wait_mean_s")),
    ("response_time_mean_s", ("metrics", "response_time_mean_s")),
    ("utilization", ("metrics", "utilization")),
    ("worker_cpu_mean_percent", ("resources", "worker_cpu_mean_percent")),
    ("worker_cpu_max_percent", ("resources", "worker_cpu_max_percent")),
    ("worker_rss_peak_bytes", ("resources", "worker_rss_peak_bytes")),
    ("worker_read_mb_per_s", ("resources", "worker_read_mb_per_s")),
    ("bottleneck", ("bottleneck",)),
)


def _pick(result: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = result
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def write_results(run_dir: Path) -> list[dict[str, Any]]:
    """Rebuild results.json and results.csv from the finished cells."""
    results = read_results(run_dir)
    (run_dir / RESULTS_JSON).write_text(json.dumps({"cells": results}, indent=2), encoding="utf-8")
    with (run_dir / RESULTS_CSV).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([name for name, _ in RESULT_COLUMNS])
        for result in results:
            writer.writerow(["" if (v := _pick(result, path)) is None else v for _, path in RESULT_COLUMNS])
    return results


# --- one cell -----------------------------------------------------------------------------------


def run_cell(config: RunConfig, cell: CellSpec, stop: threading.Event, progress: Progress) -> dict[str, Any]:
    cell_dir = config.run_dir / "cells" / cell.cell_id
    if cell_dir.exists():
        shutil.rmtree(cell_dir)  # what an interrupted attempt left
    cell_dir.mkdir(parents=True)
    _check_queue_empty(config, cell)
    payload = synthetic_file(cell.size_bytes, config.upload_dir)
    collector: _Collector | None = None
    if config.timings == EVENTS:
        collector = _Collector(config.broker_url, cell_dir / "events.jsonl")
        timings = f"events:{(cell_dir / 'events.jsonl').resolve()}"
    else:
        timings = config.timings or str((cell_dir / "timings").resolve())
    fields = {
        "concurrency": str(cell.concurrency),
        "queue": config.matrix.queue,
        "broker": config.broker_url,
        "cell": cell.cell_id,
        "timings": timings,
        "python": sys.executable,
        "events": "-E" if collector is not None else "",
    }
    started = time.time()
    progress(cell, "worker")
    worker = _Worker(config.worker, fields, cell_dir / "worker.log", config.broker_url, timings)
    sampler: _Sampler | None = None
    try:
        if collector is not None:
            collector.start()
        worker.start(stop)
        sampler = _Sampler(worker.pid, cell_dir / "resources.csv", config.sample_interval_s).start()
        progress(cell, "inject")
        injecting = sampler.mark()
        result = _inject(config, cell, cell_dir, payload.reference, payload.size_bytes, stop)
        if result.status != "completed":
            if stop.is_set():
                raise Interrupted("interrupted; finished cells are kept, rerun to go on")
            raise BrokerError(f"cell {cell.cell_id}: inject {result.status}: {result.error}")
        progress(cell, "drain")
        _wait_finished(result, timings, cell, config.drain_timeout_s, stop)
        finished = sampler.mark()
    finally:
        if sampler is not None:
            sampler.stop()
        worker.stop()
        if collector is not None:
            collector.stop()
    progress(cell, "metrics")
    metrics = run_metrics(
        [result.log_path], [timings], concurrency=cell.concurrency, per_task_csv=cell_dir / "tasks.csv"
    )
    data = metrics.as_dict()
    # the busy part of the cell: the worker's start-up (imports, forks) is not the workload's
    resources = sampler.summary(injecting, finished) if sampler is not None else {}
    record = {
        "cell": cell.describe(),
        "task": config.matrix.task,
        "queue": config.matrix.queue,
        "broker": redact_url(config.broker_url),
        "worker": worker.description,
        "started_at": started,
        "ended_at": time.time(),
        "task_log": os.path.relpath(result.log_path, cell_dir),
        "monitor_csv": os.path.relpath(result.monitor_csv, cell_dir) if result.monitor_csv else None,
        "metrics": data,
        "resources": resources,
        # every sample, also in resources.csv: t, worker CPU %, RSS, bytes read, host CPU %
        "resource_samples": [dict(zip(_Sampler.COLUMNS, row, strict=True)) for row in sampler.rows] if sampler else [],
        "bottleneck": bottleneck(cell, data, resources),
    }
    # written whole or not at all: a result.json is what marks the cell finished
    partial = cell_dir / "result.json.part"
    partial.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    partial.replace(cell_dir / "result.json")
    return record


def _check_queue_empty(config: RunConfig, cell: CellSpec) -> None:
    options = BrokerOptions(queue=config.matrix.queue, transport_options=config.transport_options, retry_for_s=5)
    with open_broker(config.broker_url, options) as broker:
        visible = broker.depth().visible
        if visible and config.purge:
            broker.purge()
        elif visible:
            raise InputError(
                f"queue {config.matrix.queue!r} holds {visible} messages before cell {cell.cell_id} "
                "(left by an interrupted run?): they would be measured too; drain it or pass --purge"
            )


def _inject(
    config: RunConfig, cell: CellSpec, cell_dir: Path, reference: str, size_bytes: int, stop: threading.Event
) -> InjectResult:
    mode = cell.mode
    args, kwargs = default_payload(dict(config.matrix.kwargs))
    return inject(
        InjectConfig(
            broker_url=config.broker_url,
            schedule=build_schedule(mode.mode, mode.count, mode.rate, mode.duration, None, None),
            task=config.matrix.task,
            queue=config.matrix.queue,
            log_dir=cell_dir,
            args=args,
            kwargs=kwargs,
            file_reference=reference,
            size_bytes=size_bytes,
            transport_options=config.transport_options,
            monitor=True,
            monitor_interval_s=config.sample_interval_s,
            monitor_for_s=config.drain_timeout_s,
        ),
        stop,
    )


def _wait_finished(result: InjectResult, timings: str, cell: CellSpec, limit_s: float, stop: threading.Event) -> None:
    """The queue is empty once the last task is taken; wait until every sent task has finished."""
    deadline = time.monotonic() + limit_s
    while True:
        if stop.is_set():
            raise Interrupted("interrupted; finished cells are kept, rerun to go on")
        finished = _finished(result.log_path, timings)
        if finished >= result.sent:
            return
        if time.monotonic() > deadline:
            raise RunFailed(
                f"cell {cell.cell_id}: {finished} of {result.sent} tasks finished within "
                f"{limit_s:.0f} s (--drain-timeout); is the worker consuming {result.log_path.name}'s queue?"
            )
        stop.wait(0.3)


def _finished(log_path: Path, timings: str) -> int:
    metrics = run_metrics([log_path], [timings])
    return int(metrics.completed or 0) + int(metrics.failed or 0)


class _Collector:
    """``capacity collect`` in a thread for the length of a cell (brokers with events: Redis, AMQP)."""

    def __init__(self, broker_url: str, out: Path) -> None:
        self.broker_url = broker_url
        self.out = out
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="capacity-collect", daemon=True)

    def _run(self) -> None:
        from capacity.measure.collect import collect

        try:
            collect(self.broker_url, self.out, None, self._stop, self._ready)
        except BaseException as exc:  # handed to the main thread in start()/stop()
            self._error = exc
            self._ready.set()

    def start(self) -> None:
        self.out.touch()
        self._thread.start()
        if not self._ready.wait(15) and self._error is None:
            raise BrokerError(f"no event receiver on {redact_url(self.broker_url)} within 15 s")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        if self._error is not None:
            raise self._error


class _Worker:
    """The cell's worker: started from the command template (its own process group), or up/down."""

    def __init__(self, control: WorkerControl, fields: dict[str, str], log: Path, broker_url: str, timings: str):
        self.control = control
        self.fields = fields
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "CAPACITY_BROKER_URL": broker_url}  # the broker the cell injects to
        self.env.pop("CAPACITY_TIMINGS", None)
        if not timings.startswith(("events:", "backend:", "records:")):
            self.env["CAPACITY_TIMINGS"] = timings.removeprefix("probe:")  # where the probe writes
        self.env.update(control.env)
        if control.command:
            self.description = {"command": _redacted(control.command, fields)}
        else:
            self.description = {
                "up": _redacted(control.up or "", fields),
                "down": _redacted(control.down or "", fields),
            }

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, stop: threading.Event) -> None:
        if self.control.command:
            try:
                argv = shlex.split(self.control.command.format(**self.fields))
            except (KeyError, IndexError, ValueError) as exc:
                raise InputError(f"--worker-cmd: bad template ({exc}); fields: {', '.join(self.fields)}") from None
            with self.log.open("wb") as out:
                try:
                    self.process = subprocess.Popen(
                        argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
                except OSError as exc:
                    raise InputError(f"--worker-cmd: cannot start {argv[0]!r}: {exc.strerror}") from None
            self._wait_ready(stop)
        else:
            self._shell(self.control.up or "", "--worker-up")
            stop.wait(self.control.settle_s)

    def _wait_ready(self, stop: threading.Event) -> None:
        """Celery logs "<name> ready." at INFO once it consumes; the worker must log at INFO."""
        assert self.process is not None
        deadline = time.monotonic() + self.control.ready_timeout_s
        while time.monotonic() < deadline and not stop.is_set():
            if self.process.poll() is not None:
                raise RunFailed(f"the worker exited with code {self.process.returncode}: {self._tail()}")
            if b" ready." in self.log.read_bytes():
                return
            stop.wait(0.1)
        if stop.is_set():
            raise Interrupted("interrupted; finished cells are kept, rerun to go on")
        raise RunFailed(
            f"the worker did not log 'ready.' within {self.control.ready_timeout_s:.0f} s "
            f"(run it with --loglevel INFO): {self._tail()}"
        )

    def _tail(self) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return mask(" | ".join(text[-3:])) if text else "(no output)"

    def _shell(self, template: str, flag: str) -> None:
        try:
            line = template.format(**self.fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(f"{flag}: bad template ({exc}); fields: {', '.join(self.fields)}") from None
        with self.log.open("ab") as out:
            done = subprocess.run(line, shell=True, env=self.env, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise RunFailed(f"{flag} exited with code {done.returncode}: {self._tail()}")

    def stop(self) -> None:
        if self.process is None:
            if self.control.down:
                self._shell(self.control.down, "--worker-down")
            return
        if self.process.poll() is None:
            try:  # warm shutdown of the whole group: the worker and its pool processes
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            except ProcessLookupError:
                pass


def _redacted(template: str, fields: dict[str, str]) -> str:
    """A template as recorded in result.json: the broker without its password, known secrets masked."""
    return mask(template.replace("{broker}", redact_url(fields["broker"])))


# --- worker resources ---------------------------------------------------------------------------------


class _Sampler:
    """CPU (summed over the worker's process tree), resident memory and bytes read, plus the
    host's CPU, every ``interval_s``; written to resources.csv as they come."""

    COLUMNS = ("t", "worker_cpu_percent", "worker_rss_bytes", "worker_read_bytes", "host_cpu_percent")

    def __init__(self, pid: int | None, path: Path, interval_s: float) -> None:
        self.pid = pid
        self.path = path
        self.interval_s = interval_s
        self.rows: list[tuple[float, float | None, int | None, int | None, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="capacity-sampler", daemon=True)
        self._last: tuple[float, float] | None = None
        self._lock = threading.Lock()

    def start(self) -> _Sampler:
        psutil.cpu_percent(None)
        self._thread.start()
        return self

    def _tree(self) -> list[psutil.Process]:
        if self.pid is None:
            return []
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def mark(self) -> float:
        """Take a sample now (the edges of the busy window), and return its time."""
        with self._lock:
            self._sample()
            return self.rows[-1][0]

    def _sample(self) -> None:
        now = time.time()
        cpu_time, rss, read = 0.0, 0, 0
        has_io = True
        processes = self._tree()
        for process in processes:
            try:
                times = process.cpu_times()
                cpu_time += times.user + times.system + times.children_user + times.children_system
                rss += process.memory_info().rss
                try:
                    read += process.io_counters().read_chars  # includes page-cache reads: what the task read
                except (AttributeError, psutil.Error):
                    has_io = False
            except psutil.Error:
                continue
        cpu_percent = None
        if processes and self._last is not None and now > self._last[0]:
            cpu_percent = max(0.0, 100.0 * (cpu_time - self._last[1]) / (now - self._last[0]))
        if processes:
            self._last = (now, cpu_time)
        row = (
            now,
            cpu_percent,
            rss if processes else None,
            read if processes and has_io else None,
            psutil.cpu_percent(None),
        )
        self.rows.append(row)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._sample()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with self.path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.COLUMNS)
            writer.writerows(["" if v is None else v for v in row] for row in self.rows)

    def summary(self, start: float, end: float) -> dict[str, Any]:
        rows = [r for r in self.rows if start <= r[0] <= end]
        cpu = [r[1] for r in rows if r[1] is not None]
        rss = [r[2] for r in rows if r[2] is not None]
        reads = [(r[0], r[3]) for r in rows if r[3] is not None]
        read_rate = None
        if len(reads) >= 2 and reads[-1][0] > reads[0][0]:
            read_rate = (reads[-1][1] - reads[0][1]) / (reads[-1][0] - reads[0][0]) / 1e6
        host = [r[4] for r in rows]
        return {
            "samples": len(rows),
            "worker_cpu_mean_percent": sum(cpu) / len(cpu) if cpu else None,
            "worker_cpu_max_percent": max(cpu) if cpu else None,
            "worker_rss_peak_bytes": max(rss) if rss else None,
            "worker_read_mb_per_s": read_rate,
            "host_cpu_mean_percent": sum(host) / len(host) if host else None,
            "cores": psutil.cpu_count() or 1,
            "host_memory_bytes": psutil.virtual_memory().total,
        }


def bottleneck(cell: CellSpec, metrics: dict[str, Any], resources: dict[str, Any]) -> str:
    """What limited the cell, from what was measured (seed 003 asks: CPU, decoding, disk, network).

    CPU: the worker's processes used >= 80% of the cores they could use (min(concurrency, cores)).
    Slots: utilisation X*S/c >= 0.8 with CPU below that (tasks wait inside: I/O, sleeps, APIs).
    Arrivals: a sustained cell whose slots were mostly idle kept up with the offered rate.
    Memory: peak resident memory over 80% of the host's. Network is not measured here."""
    notes = []
    cores = int(resources.get("cores") or 1)
    usable = min(cell.concurrency, cores)
    cpu = resources.get("worker_cpu_mean_percent")
    rss = resources.get("worker_rss_peak_bytes")
    utilization = metrics.get("utilization")
    if rss is not None and resources.get("host_memory_bytes") and rss > 0.8 * resources["host_memory_bytes"]:
        notes.append(f"memory: {format_size(rss)} resident")
    if cpu is not None and cpu >= 80.0 * usable:
        notes.append(f"worker CPU: {cpu:.0f}% of {usable} usable core(s)")
    elif utilization is not None and utilization >= 0.8:
        cpu_text = "" if cpu is None else f", CPU {cpu:.0f}%"
        notes.append(f"slots: {utilization:.0%} busy{cpu_text}; tasks wait inside (I/O, sleep): more concurrency helps")
    elif cell.mode.mode != "burst" and utilization is not None:
        notes.append(f"none: kept up with the arrivals ({utilization:.0%} busy)")
    read = resources.get("worker_read_mb_per_s")
    if read:
        notes.append(f"read {read:.0f} MB/s")
    return "; ".join(notes) or "not measured"
