"""``inject``: put real Celery tasks on a broker on a schedule, logging every accepted task id."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capacity.brokers import Broker, BrokerOptions, Payload, SendFailed, open_broker
from capacity.brokers.messages import new_ids, per_task_marker
from capacity.errors import InputError, Interrupted, WriteFailed
from capacity.load.abort import LIVE, Aborter, Condition, SendTimes, Watch
from capacity.load.live import LiveTimings
from capacity.load.mix import MixClass, classes_of, counts_of, summed_depth
from capacity.load.monitor import Monitor, Sample, Trend, samples_path, trend
from capacity.load.payload import PER_TASK, PerTaskValue, substitute, uses
from capacity.load.runner import Clock, RunProgress, drive
from capacity.load.schedules import Schedule, describe, lateness_summary
from capacity.load.start import agreed_start, wait_until
from capacity.load.tasklog import RESULTS_DIR, LogFull, TaskLogWriter, iso, log_path
from capacity.load.watch import NoBullMQWorker, UnregisteredTask, check_task_registered
from capacity.secrets import mask


@dataclass(frozen=True)
class InjectConfig:
    broker_url: str
    schedule: Schedule
    task: str = "capacity.worker.process_file"
    queue: str = "celery"
    log_dir: Path = RESULTS_DIR
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: a payload file's lines (args, kwargs), taken in turn; args/kwargs are then unused
    rows: tuple[tuple[list[Any], dict[str, Any]], ...] = ()
    file_reference: str | None = None
    size_bytes: int = 0
    user_id: str | None = None
    priority: int | None = None
    countdown_s: float | None = None
    transport_options: dict[str, Any] = field(default_factory=dict)
    retry_for_s: float = 30.0
    threads: int = 8
    batch_size: int | None = None
    monitor: bool = False
    monitor_interval_s: float = 1.0
    monitor_for_s: float = 600.0
    #: --monitor: how long messages may wait with nothing taken before "no worker consumes it"
    idle_warning_s: float = 30.0
    #: one run sent from several machines: the same run id, shard (index, total), a common start
    run_id: str | None = None
    shard: tuple[int, int] | None = None
    start_at: float | None = None  # epoch seconds
    #: a task mix: several classes, apportioned by weight over the schedule, shuffled by mix_seed
    mix: tuple[MixClass, ...] = ()
    mix_seed: int = 1
    #: --abort-if: stop the run when one of these is broken (evaluated every second)
    abort_if: tuple[Condition, ...] = ()
    #: --prometheus: serve the run's live figures at http://HOST:PORT/metrics
    prometheus: tuple[str, int] | None = None
    #: shards with a run id and no start_at agree on one through the broker: now + start_delay_s
    agree_start: bool = False
    start_delay_s: float = 30.0
    #: a start more than late_grace_s past: "refuse" (exit 2), "shift" (start now) or "catch-up"
    late: str = "refuse"
    late_grace_s: float = 5.0
    #: ask Celery workers on the broker which tasks they know, and refuse one none of them knows
    check_task: bool = False
    #: where the finished log (and monitor samples) are copied: an s3://bucket/prefix/
    upload_to: str | None = None
    #: "celery", or "bullmq" (jobs for BullMQ's Node workers) with its key prefix and job options
    protocol: str = "celery"
    prefix: str | None = None
    job_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class InjectResult:
    log_path: Path
    run_id: str
    status: str  # completed, not_drained, interrupted, aborted, broker_unreachable, broker_refused, log_full, failed
    sent: int
    target: int
    elapsed_s: float
    in_doubt: list[str]
    lateness: dict[str, float | int | None]
    error: str | None = None
    monitor_csv: Path | None = None
    samples: list[Sample] = field(default_factory=list)
    trend: Trend | None = None
    drained_after_s: float | None = None
    uploaded: list[str] = field(default_factory=list)
    upload_error: str | None = None
    #: the broker's notes on its own answers (RabbitMQ without its management API)
    notes: list[str] = field(default_factory=list)

    @property
    def rate_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


class _Payloads:
    """The tasks' arguments with their placeholders, Celery's message captured once for them, and
    each batch rendered: per-run values substituted once, ``$injected_at`` per batch, ``$task_id``,
    ``$seq`` and ``$uuid`` spliced per task; a payload file's lines taken in turn."""

    def __init__(self, config: InjectConfig, broker: Broker, run_id: str) -> None:
        self.config = config
        self.rows = config.rows or ((config.args, config.kwargs),)
        self.values: dict[str, Any] = {
            "$file": config.file_reference,
            "$size_bytes": config.size_bytes,
            "$user_id": config.user_id,
            "$run_id": run_id,
            "$injected_at": None,
            **{f"${name}": PerTaskValue(name) for name in PER_TASK},
        }
        used = set().union(*(uses(args) | uses(kwargs) for args, kwargs in self.rows))
        self.per_task = sorted(used & set(PER_TASK))
        self.per_batch = "injected_at" in used
        self._marker = per_task_marker
        self._fixed = [self._substitute(row, self.values) for row in self.rows]
        args, kwargs = self._fixed[0]
        self.template = broker.template(config.task, config.queue, args, kwargs, config.priority, config.countdown_s)
        shard = config.shard
        self._seq_start, self._seq_step = (shard[0], shard[1]) if shard else (0, 1)

    def _substitute(self, row: tuple[list[Any], dict[str, Any]], values: dict[str, Any]) -> tuple[Any, Any]:
        return substitute(row[0], values, self._marker), substitute(row[1], values, self._marker)

    def render(
        self, task_ids: Sequence[str], first: int, now: datetime, positions: Sequence[int] | None = None
    ) -> list[Payload]:
        """The messages of tasks ``first``, ``first + 1``, ... of this injector, or of the tasks at
        ``positions`` (a mix's class: its tasks are scattered over the run); ``$seq`` counts the
        whole run: a shard's tasks are every N-th of it."""
        where = range(first, first + len(task_ids)) if positions is None else positions
        rows = self._fixed
        if self.per_batch:
            batch_values = {**self.values, "$injected_at": now.isoformat()}
            rows = [self._substitute(row, batch_values) for row in self.rows]
        n = len(task_ids)
        columns: dict[str, Sequence[str]] = {}
        if "task_id" in self.per_task:
            columns["task_id"] = task_ids
        if "seq" in self.per_task:
            columns["seq"] = [str(self._seq_start + k * self._seq_step) for k in where]
        if "uuid" in self.per_task:
            columns["uuid"] = new_ids(n)
        if len(rows) == 1:
            args, kwargs = rows[0]
            return list(self.template.render(task_ids, args, kwargs, now, columns or None))
        # a payload file: group the batch's tasks by line, render each group, put them back in order
        lines = len(rows)
        out: list[Payload] = [""] * n
        by_line: dict[int, list[int]] = {}
        for i, k in enumerate(where):
            by_line.setdefault(k % lines, []).append(i)
        for line, chosen in by_line.items():
            group = {key: [v[i] for i in chosen] for key, v in columns.items()}
            args, kwargs = rows[line]
            rendered = self.template.render([task_ids[i] for i in chosen], args, kwargs, now, group or None)
            for i, message in zip(chosen, rendered, strict=True):
                out[i] = message
        return out

    def check_size(self, broker: Broker) -> None:
        """Refuse, before the log exists or anything is sent, a message larger than the broker takes."""
        now = datetime.now(UTC)
        ids = ["0" * 36] * min(len(self.rows), 1000)
        encoded = (broker.encode(m) if isinstance(m, str) else m for m in self.render(ids, 0, now))
        largest = max(len(m.encode()) if isinstance(m, str) else len(m) for m in encoded)
        limit = broker.max_message_bytes
        if limit is not None and largest > limit:
            raise InputError(
                f"one message is {largest:,} bytes; {broker.name} takes at most "
                f"{limit:,}: make the task's arguments smaller"
            )


def _run_line(config: InjectConfig, schedule: Schedule, broker: Broker, run_id: str, started: float) -> dict[str, Any]:
    extra: dict[str, Any] = {"start_at": iso(config.start_at)} if config.start_at is not None else {}
    if config.agree_start:
        extra["start_agreed"] = True  # through the broker, by the first shard to start
    if config.mix:
        counts = counts_of(config.mix, schedule)
        extra["mix"] = [
            {"task": c.task, "weight": c.weight, "queue": c.queue or config.queue, "count_in_run": n}
            for c, n in zip(config.mix, counts, strict=True)
        ]
    if config.protocol != "celery":
        extra |= {"protocol": config.protocol, "prefix": getattr(broker, "prefix", None)}
        extra |= {"job_options": config.job_options}
    return {
        "run_id": run_id,
        "broker": broker.safe_url,
        "queue": config.queue,
        "task": "mix" if config.mix else config.task,
        **describe(schedule),
        **extra,
        "size_bytes": config.size_bytes,
        "file": config.file_reference,
        "user_id": config.user_id,
        "priority": config.priority,
        "countdown_s": config.countdown_s,
        "host": socket.gethostname(),
        "started_at": iso(started),
    }


_M_TOP_PAD = -2  # glibc's malloc.h


def keep_heap_top(pad: int = 64 << 20) -> None:
    """Ask glibc's malloc to keep ``pad`` bytes at the top of the heap instead of handing them back
    to the system whenever they are free: a batch's frame (~1.2 MB) and its messages otherwise took
    the top back and forth every batch, and every batch page-faulted it in again; with per-task
    values that was a third of a Redis burst's time (310-360k vs 465-540k tasks/s measured without
    and with it, ``benchmarks/bench_inject.py``). No library sets malloc's options; glibc's own
    ``mallopt`` through ctypes is the way. Elsewhere (musl, macOS) it does nothing."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_TOP_PAD, pad)


@dataclass
class _Lane:
    """Where one class of tasks goes: its task name, queue, broker and messages (a run without a
    mix has one lane)."""

    task: str
    queue: str
    broker: Broker
    payloads: _Payloads
    #: the task name goes on every log line of a mix (metrics splits its figures by it)
    logged_task: str | None = None

    def encoded(self, messages: list[Payload]) -> list[Payload]:
        if type(self.broker).encode is Broker.encode:
            return messages
        encode = self.broker.encode
        return [encode(m) if isinstance(m, str) else m for m in messages]


class _Sender:
    """Sends one batch and logs exactly the ids the broker accepted (the in-doubt ones are kept
    apart for the end line). With a mix, a batch's tasks go to their classes' lanes, each logged
    as its broker accepts it."""

    def __init__(
        self,
        config: InjectConfig,
        lanes: list[_Lane],
        writer: TaskLogWriter,
        progress: RunProgress,
        wall0: float,
        on_progress: Callable[[RunProgress], None] | None,
        classes: list[int] | None = None,
    ) -> None:
        self.config = config
        self.lanes = lanes
        self.writer = writer
        self.progress = progress
        self.wall0 = wall0
        self.on_progress = on_progress
        self.in_doubt: list[str] = []
        #: the class of every task of the whole schedule (a mix), and this shard's place in it
        self.classes = classes
        self._start, self._step = config.shard if config.shard else (0, 1)
        #: when each task was sent, for --abort-if oldest_wait
        self.send_times = SendTimes()
        self.exporter: Any = None  # --prometheus
        self._keep_times = any(c.figure == "oldest_wait" for c in config.abort_if)

    def __call__(self, scheduled: Sequence[float], now_offset: float) -> None:
        wall0 = self.wall0
        sent_dt = datetime.fromtimestamp(wall0 + now_offset, UTC)
        task_ids = new_ids(len(scheduled), self.config.shard[0] if self.config.shard else None)
        sent_at = sent_dt.isoformat(timespec="microseconds")
        scheduled_at: str | list[str]
        if scheduled[0] == scheduled[-1]:
            scheduled_at = iso(wall0 + scheduled[0])
        else:
            scheduled_at = [iso(wall0 + s) for s in scheduled]
        first = self.progress.sent
        if self.classes is None:
            lane = self.lanes[0]
            messages = lane.encoded(lane.payloads.render(task_ids, first, sent_dt))
            self._send(lane, task_ids, messages, scheduled_at, sent_at)
        else:
            groups: dict[int, list[int]] = {}
            for i in range(len(task_ids)):
                groups.setdefault(self.classes[self._start + (first + i) * self._step], []).append(i)
            for index, chosen in sorted(groups.items()):
                lane = self.lanes[index]
                ids = [task_ids[i] for i in chosen]
                # $seq of each task is its place in the whole run, whichever class it is
                positions = [first + i for i in chosen]
                messages = lane.encoded(lane.payloads.render(ids, first, sent_dt, positions))
                when = scheduled_at if isinstance(scheduled_at, str) else [scheduled_at[i] for i in chosen]
                self._send(lane, ids, messages, when, sent_at)
        self.progress.sent = first  # drive() counts the whole batch once it returns
        if self.on_progress is not None:
            self.on_progress(self.progress)

    def _send(
        self, lane: _Lane, task_ids: list[str], messages: list[Payload], scheduled_at: str | list[str], sent_at: str
    ) -> None:
        size, queue = self.config.size_bytes, lane.queue
        try:
            lane.broker.send_batch(task_ids, messages)
        except SendFailed as failure:
            accepted = set(failure.accepted)
            if accepted:
                keep = [i for i, t in enumerate(task_ids) if t in accepted]
                when = scheduled_at if isinstance(scheduled_at, str) else [scheduled_at[i] for i in keep]
                self.writer.write_batch([task_ids[i] for i in keep], when, sent_at, size, queue, lane.logged_task)
                self.progress.sent += len(keep)
                if self.exporter is not None:
                    self.exporter.sent(queue, lane.task, len(keep))
                if self._keep_times:
                    self.send_times.add(time.time(), len(keep))
            self.in_doubt.extend(failure.in_doubt)
            raise
        self.writer.write_batch(task_ids, scheduled_at, sent_at, size, queue, lane.logged_task)
        self.progress.sent += len(task_ids)
        if self.exporter is not None:
            self.exporter.sent(queue, lane.task, len(task_ids))
        if self._keep_times:
            self.send_times.add(time.time(), len(task_ids))


def inject(
    config: InjectConfig,
    stop: threading.Event | None = None,
    clock: Clock | None = None,
    on_progress: Callable[[RunProgress], None] | None = None,
    on_sample: Callable[[Sample], None] | None = None,
    on_idle: Callable[[Sample], None] | None = None,
    broker_factory: Callable[[str, BrokerOptions], Broker] = open_broker,
) -> InjectResult:
    """Run one injection. Raises CapacityError before anything is sent when the input or the
    broker is wrong; once sending has started, problems end the run with the log intact."""
    stop = stop or threading.Event()
    keep_heap_top()
    run_id = config.run_id or uuid.uuid4().hex[:12]
    schedule = config.schedule  # a Shard of the whole schedule when config.shard is set
    options = BrokerOptions(
        queue=config.queue,
        transport_options=config.transport_options,
        retry_for_s=config.retry_for_s,
        threads=config.threads,
        run_id=run_id,
        protocol=config.protocol,
        prefix=config.prefix,
        job_options=config.job_options,
        stop=stop,
    )
    with contextlib.ExitStack() as brokers:
        lanes: list[_Lane] = []
        for lane_config in _lane_configs(config):
            lane_options = dataclasses.replace(options, queue=lane_config.queue)
            lane_broker = brokers.enter_context(
                _open_interruptibly(broker_factory, config.broker_url, lane_options, stop)
            )
            if config.check_task:
                check_task_registered(lane_broker, lane_config.task)
            lane_broker.use_priority(config.priority)
            lane_payloads = _Payloads(lane_config, lane_broker, run_id)
            lane_payloads.check_size(lane_broker)
            lanes.append(
                _Lane(
                    lane_config.task,
                    lane_config.queue,
                    lane_broker,
                    lane_payloads,
                    lane_config.task if config.mix else None,
                )
            )
        return _inject_on(config, lanes, stop, clock, on_progress, on_sample, on_idle, run_id, schedule)


def _lane_configs(config: InjectConfig) -> list[InjectConfig]:
    """The run's own task, or each class of its mix as a run of its own (task, arguments, queue)."""
    if not config.mix:
        return [config]
    return [
        dataclasses.replace(
            config, task=c.task, args=c.args, kwargs=c.kwargs, rows=c.rows, queue=c.queue or config.queue
        )
        for c in config.mix
    ]


def _inject_on(
    config: InjectConfig,
    lanes: list[_Lane],
    stop: threading.Event,
    clock: Clock | None,
    on_progress: Callable[[RunProgress], None] | None,
    on_sample: Callable[[Sample], None] | None,
    on_idle: Callable[[Sample], None] | None,
    run_id: str,
    schedule: Schedule,
) -> InjectResult:
    """The run itself, once every lane's broker is open and its messages checked."""
    live = None
    if any(c.figure in LIVE for c in config.abort_if):  # before the log exists: a missing stream is an input error
        live = LiveTimings(os.environ.get("CAPACITY_TIMINGS") or "")
    exporter = None
    if config.prometheus is not None:  # before the log exists: a busy port is an input error
        from capacity.load.exporter import Exporter  # prometheus_client: only for a run that serves it

        queues = {lane.queue: lane.broker.depth for lane in lanes}
        exporter = Exporter(config.prometheus, queues, os.environ.get("CAPACITY_TIMINGS"))
    broker = lanes[0].broker
    config = dataclasses.replace(config, start_at=agreed_start(config, broker, run_id))
    started = time.time()
    path = log_path(config.log_dir, started, config.shard)
    writer = TaskLogWriter(path, _run_line(config, schedule, broker, run_id, started))
    progress = RunProgress(target=schedule.count)
    monitor = None
    if config.monitor:
        try:
            monitor = Monitor(
                summed_depth({lane.queue: lane.broker for lane in lanes}),
                lambda: progress.sent,
                samples_path(path),
                config.monitor_interval_s,
                on_sample,
            ).start()
        except WriteFailed as exc:  # nothing sent yet: the log says so and ends
            writer.close({"status": "failed", "sent": 0, "target": progress.target, "error": str(exc)})
            raise
    if config.start_at is not None:
        wait_until(config.start_at, stop)
    wall0 = time.time() if config.start_at is None else config.start_at
    sender = _Sender(
        config, lanes, writer, progress, wall0, on_progress, classes_of(config.mix, schedule, config.mix_seed)
    )
    status, error = "completed", None
    unexpected: Exception | None = None
    depth = summed_depth({lane.queue: lane.broker for lane in lanes})
    aborter = Aborter(list(config.abort_if), depth, sender.send_times, stop, live, _watches(config, lanes)).start()
    sender.exporter = exporter
    try:
        drive(
            schedule,
            sender,
            config.batch_size or broker.max_batch,
            stop,
            clock,
            record_lateness=schedule.mode != "burst",
            progress=progress,
            started_ago_s=time.time() - wall0,
        )
        if stop.is_set() and progress.sent < progress.target:
            status = "interrupted"
    except SendFailed as failure:
        refused = "broker_refused" if failure.refused else "broker_unreachable"
        status = "interrupted" if stop.is_set() else refused
        error = str(failure)
    except LogFull as full:
        status, error = "log_full", str(full)
    except Exception as exc:  # anything else once sending began: the log still gets its end line
        status, error, unexpected = "failed", f"{type(exc).__name__}: {exc}", exc
    last_send = time.time()
    drained_at = None
    try:
        if monitor is not None and status == "completed":
            drained_at = monitor.wait_drained(config.monitor_for_s, stop, config.idle_warning_s, on_idle)
            if drained_at is not None:
                aborter.last_word()  # drained before a watch's turn: workers that dropped every task
            if stop.is_set():
                status = "interrupted"
            elif drained_at is None:
                status = "not_drained"
    finally:
        aborter.close()
        if sender.exporter is not None:
            sender.exporter.close()
        closing = None
        if monitor is not None:
            closing = monitor.sample()  # the queue now, not the last periodic sample
            monitor.stop()
    if aborter.reason is not None and status in ("completed", "interrupted", "not_drained"):
        status, error = "aborted", aborter.reason
    if status == "not_drained":
        error = (
            f"the queue {config.queue!r} did not drain within {config.monitor_for_s:g} s: "
            f"{closing.visible if closing is not None else '?'} messages still waiting"
        )
    lateness = lateness_summary(progress.lateness_s)
    phase_trend = (
        trend(monitor.samples, wall0, last_send, _rate_per_min(schedule))
        if monitor is not None and schedule.mode != "burst"
        else None
    )
    end = {"status": status, "sent": writer.tasks, "target": progress.target, "ended_at": iso(time.time())}
    writer.close({**end, "in_doubt": sender.in_doubt, "lateness": lateness, "error": mask(error or "") or None})
    if unexpected is not None:
        raise unexpected
    uploaded, upload_error = _upload(config.upload_to, [path, monitor.csv_path if monitor else None])
    return InjectResult(
        log_path=path,
        run_id=run_id,
        status=status,
        sent=writer.tasks,
        target=progress.target,
        elapsed_s=progress.elapsed_s,
        in_doubt=sender.in_doubt,
        lateness=lateness,
        error=error,
        monitor_csv=monitor.csv_path if monitor else None,
        samples=monitor.samples if monitor else [],
        trend=phase_trend,
        drained_after_s=None if drained_at is None else max(0.0, drained_at - wall0),
        uploaded=uploaded,
        upload_error=upload_error,
        notes=[note for lane in lanes for note in lane.broker.notes],
    )


def _upload(prefix: str | None, files: list[Path | None]) -> tuple[list[str], str | None]:
    """Copy the finished files to ``prefix`` (s3://); the URLs, or the error (the local files stay)."""
    if prefix is None:
        return [], None
    from capacity.errors import BrokerError
    from capacity.load import s3

    urls = []
    try:
        for local in files:
            if local is not None and local.is_file():
                urls.append(s3.upload(local, prefix.rstrip("/") + "/"))
    except BrokerError as exc:
        return urls, str(exc)
    return urls, None


#: BullMQ job options the injector sets itself, each with why a user's value cannot be taken
INJECTOR_OWNED_JOB_OPTIONS = {
    "jobId": "each job's id is the injector's, so the task log can name it (one id for every job would add one job)",
    "repeat": "a repeatable job is a schedule, not a load: use --mode sustained or --stages",
    "parent": "jobs with a parent (flows) are not injected; give the children's options only",
}


def _open_interruptibly(
    factory: Callable[[str, BrokerOptions], Broker], url: str, options: BrokerOptions, stop: threading.Event
) -> Broker:
    """The broker, opened in a thread while this one watches ``stop``: a connection that hangs
    (rediss:// to a plain Redis waits out its 5 s timeouts in the TLS handshake) is not a reason to
    ignore Ctrl-C for seconds (#23). Nothing is sent before it returns, so an interrupt here loses
    nothing; a connection that completes after it is closed by its thread."""
    found: dict[str, Any] = {}

    def connect() -> None:
        try:
            broker = factory(url, options)
        except BaseException as exc:  # re-raised in the caller's thread, whatever it is
            found["error"] = exc
            return
        if stop.is_set():
            broker.close()
        else:
            found["broker"] = broker

    thread = threading.Thread(target=connect, name="capacity-connect", daemon=True)
    thread.start()
    while thread.is_alive():
        if stop.wait(0.05):
            raise Interrupted("interrupted while connecting to the broker: nothing was sent")
    if "error" in found:
        raise found["error"]
    if stop.is_set():
        found.pop("broker").close()
        raise Interrupted("interrupted while connecting to the broker: nothing was sent")
    broker: Broker = found["broker"]
    return broker


def check_job_options(options: dict[str, Any], protocol: str, where: str) -> None:
    """BullMQ job options: only with BullMQ, and none the injector sets itself."""
    if options and protocol != "bullmq":
        raise InputError(f"{where} are BullMQ's job options: give --protocol bullmq")
    owned = sorted(set(options) & set(INJECTOR_OWNED_JOB_OPTIONS))
    if owned:
        raise InputError(f"{where} {owned[0]!r}: {INJECTOR_OWNED_JOB_OPTIONS[owned[0]]}")


def _watches(config: InjectConfig, lanes: list[_Lane]) -> list[Watch]:
    """What a monitored run watches for besides --abort-if (capacity.load.watch, #22)."""
    if not config.monitor:
        return []
    if config.protocol == "bullmq":
        prefix = str(getattr(lanes[0].broker, "prefix", config.prefix))
        return [NoBullMQWorker(lanes[0].broker, config.queue, prefix, config.idle_warning_s)]
    return [UnregisteredTask({lane.task: lane.broker for lane in lanes})] if config.check_task else []


def _rate_per_min(schedule: Schedule) -> float | None:
    described = describe(schedule)
    rate = described.get("rate_per_s")
    if isinstance(rate, (int, float)):
        return float(rate) * 60
    if isinstance(rate, list):
        return max(float(r) for r in rate) * 60
    return None
