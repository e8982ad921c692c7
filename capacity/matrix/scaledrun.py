"""A real scaled run, to validate the autoscaling simulation (issue #14).

Real Celery worker processes (one per replica, the reference worker or the user's command
template) are started and stopped by the very controller the simulation uses
(``capacity.sizing.autoscale.Controller``: the HPA's rules, KEDA's metric) while a trace is
injected on a real Redis or RabbitMQ. The metric is what KEDA's scaler reads: on Redis ``LLEN`` of
the queue's list (listLength: the tasks waiting; a prefetch-1, acks-late worker holds no more than
its slots); on RabbitMQ the ready messages of a passive declare (``protocol: amqp``), or ready +
unacknowledged from the management API (``protocol: http``).
A replica asked for counts from that moment; it is ready when its worker logs Celery's
"ready." line, and that start-up is measured. Scale-down sends SIGTERM (Celery's warm shutdown:
running tasks finish); the replica is gone when its process exits.

Then the same trace (the send times the task log recorded), the service times the probe measured
(task by task, in send order) and the mean start-up measured are run through the simulation with
the same policy, and the replicas timeline, drain time and p95 wait compared.
"""

from __future__ import annotations

import csv
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from capacity.brokers import BrokerOptions, broker_scheme, is_redis_url, open_broker
from capacity.brokers.redis import redis_client
from capacity.errors import BrokerError, InputError, Interrupted, RunFailed
from capacity.load.inject import InjectConfig, InjectResult, inject
from capacity.load.payload import REFERENCE_TASK, PayloadSpec
from capacity.load.schedules import Schedule
from capacity.matrix.processes import REFERENCE_WORKER, WorkerControl, WorkerProcess
from capacity.matrix.run import finished_tasks
from capacity.measure.metrics import run_metrics
from capacity.secrets import mask, redact_url
from capacity.sizing.autoscale import AutoscaleResult, Controller, simulate_fleet
from capacity.sizing.policies import Fleet, Policy

#: the figures compared, and how close the simulation must come (issue #14: within 15%)
TOLERANCE = 0.15


@dataclass(frozen=True)
class ScaledRunConfig:
    broker_url: str
    run_dir: Path
    schedule: Schedule
    concurrency: int
    policy: Policy
    min_replicas: int = 1
    max_replicas: int = 10
    sleep_s: float = 1.0  # the reference task's sleep_s: its service time
    queue: str = "capacity-autoscale"
    worker_command: str = REFERENCE_WORKER
    task: str = REFERENCE_TASK
    args: list[Any] | None = None  # a user's task: its arguments ($task_id... per task)
    kwargs: dict[str, Any] | None = None
    ready_timeout_s: float = 60.0
    drain_timeout_s: float = 600.0
    poll_s: float = 0.05  # how often readiness and exits are looked at between syncs
    #: --prometheus: the injection serves its live figures there while the run lasts
    prometheus: tuple[str, int] | None = None

    def check(self) -> None:
        if self.policy.name == "keda-sqs":
            raise InputError(
                "a real scaled run reads Redis or RabbitMQ: use keda-redis, keda-rabbitmq, aws-backlog or seed002"
            )
        rabbit = broker_scheme(self.broker_url) in ("amqp", "amqps", "pyamqp")
        if not rabbit and not is_redis_url(self.broker_url):
            raise InputError("a real scaled run runs on Redis or RabbitMQ: give --broker redis://... or amqp://...")
        if self.policy.name == "keda-rabbitmq" and not rabbit:
            raise InputError("--policy keda-rabbitmq reads a RabbitMQ queue: give --broker amqp://...")
        if self.policy.name == "keda-rabbitmq" and self.policy.mode != "QueueLength":
            raise InputError("a real scaled run follows keda-rabbitmq's QueueLength mode (MessageRate: simulate it)")
        if self.policy.name == "keda-redis" and rabbit:
            raise InputError("--policy keda-redis reads a Redis list: give --policy keda-rabbitmq for RabbitMQ")
        Fleet(self.concurrency, self.min_replicas, self.max_replicas, 0.0).check()
        self.policy.check()


@dataclass
class _Replica:
    worker: WorkerProcess
    asked_at: float
    ready_at: float | None = None
    closing_at: float | None = None
    gone_at: float | None = None


@dataclass(frozen=True)
class ScaledRun:
    """What the real run did, measured."""

    tasks: int
    completed: int
    timeline: tuple[dict[str, float], ...]  # t_s, replicas, ready_replicas, queue_depth
    startup_s: tuple[float, ...]
    drain_time_s: float
    wait_p95_s: float
    wait_mean_s: float
    replica_seconds: float
    max_replicas: int
    sent_offsets_s: tuple[float, ...] = field(repr=False)
    services_s: tuple[float, ...] = field(repr=False)

    @property
    def startup_mean_s(self) -> float:
        return float(np.mean(self.startup_s)) if self.startup_s else 0.0


@dataclass(frozen=True)
class Figure:
    name: str
    real: float
    simulated: float

    @property
    def difference(self) -> float:
        """(simulated - real) / real; 0 when both are 0."""
        if self.real == 0:
            return 0.0 if self.simulated == 0 else math.inf
        return (self.simulated - self.real) / self.real

    @property
    def within(self) -> bool:
        return abs(self.difference) <= TOLERANCE


@dataclass(frozen=True)
class Validation:
    real: ScaledRun
    simulated: AutoscaleResult
    figures: tuple[Figure, ...]

    @property
    def within(self) -> bool:
        return all(f.within for f in self.figures)

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": self.real.tasks,
            "startup_s": list(self.real.startup_s),
            "figures": {
                f.name: {"real": f.real, "simulated": f.simulated, "difference": f.difference, "within": f.within}
                for f in self.figures
            },
            "within": self.within,
            "tolerance": TOLERANCE,
            "real_timeline": list(self.real.timeline),
            "simulated_timeline": list(self.simulated.timeline),
        }


def run_scaled(config: ScaledRunConfig, stop: threading.Event) -> ScaledRun:
    """Inject the trace while the controller starts and stops real workers; measure."""
    config.check()
    config.run_dir.mkdir(parents=True, exist_ok=True)
    timings = str((config.run_dir / "timings").resolve())
    depth, close_depth = _depth_reader(config)
    if sum(depth()):
        close_depth()
        raise InputError(f"queue {config.queue!r} is not empty: a scaled run needs it to start empty")
    controller = Controller(Fleet(config.concurrency, config.min_replicas, config.max_replicas, 0.0), config.policy)
    replicas: list[_Replica] = []
    made = 0

    def launch(now: float) -> None:
        nonlocal made
        fields = {
            "concurrency": str(config.concurrency),
            "replicas": "1",
            "replica": "0",
            "pool": "prefork",
            "queue": config.queue,
            "broker": config.broker_url,
            "cell": f"r{made}",
            "timings": timings,
            "python": sys.executable,
            "events": "",
        }
        control = WorkerControl(command=config.worker_command, ready_timeout_s=config.ready_timeout_s, probe=True)
        worker = WorkerProcess(control, fields, config.run_dir / f"replica-{made}.log", config.broker_url, timings)
        made += 1
        worker.launch(fields)
        replicas.append(_Replica(worker, now))

    def look(now: float) -> None:
        for r in replicas:
            if r.ready_at is None and r.closing_at is None and r.worker.ready_now():
                r.ready_at = now
            if r.closing_at is not None and r.gone_at is None and r.worker.exited():
                r.gone_at = now
            if r.ready_at is None and r.closing_at is None and r.worker.exited():
                raise RunFailed(f"a worker replica exited before it was ready: {r.worker.tail()}")

    def open_replicas() -> list[_Replica]:
        return [r for r in replicas if r.closing_at is None]

    def scale_to(now: float, wanted: int) -> None:
        wanted = max(config.min_replicas, min(config.max_replicas, wanted))
        current = open_replicas()
        for _ in range(wanted - len(current)):
            launch(now)
        # not ready yet first, then the newest (the simulation takes the least busy: unknown here)
        order = sorted(current, key=lambda r: (r.ready_at is not None, r.asked_at))
        for r in order[: max(0, len(current) - wanted)]:
            r.closing_at = now
            r.worker.terminate()

    timeline: list[dict[str, float]] = []
    result: InjectResult | None = None
    try:
        # the replicas the simulation has ready at 0: started, and ready, before the first send
        first = config.policy.replicas if config.policy.name == "fixed" else config.min_replicas
        for _ in range(first):
            launch(0.0)
        deadline = time.monotonic() + config.ready_timeout_s
        while not all(r.worker.ready_now() for r in replicas):
            look(0.0)
            if time.monotonic() > deadline or stop.wait(config.poll_s):
                if stop.is_set():
                    raise Interrupted("interrupted")
                raise RunFailed(f"the first replicas were not ready within {config.ready_timeout_s:.0f} s")
        for r in replicas:
            r.asked_at, r.ready_at = 0.0, 0.0
        outcome: dict[str, Any] = {}

        def send() -> None:  # its failure is raised here, in the controller's thread, not printed
            try:
                outcome["result"] = _inject(config, stop)
            except BaseException as exc:
                outcome["error"] = exc

        sender = threading.Thread(target=send, name="scaled-run-inject", daemon=True)
        t0 = time.monotonic()
        sender.start()
        next_sync = config.policy.sync_s
        finished_at: float | None = None
        settled_since: float | None = 0.0  # when the fleet last came back to its minimum
        horizon = math.inf
        while True:
            now = time.monotonic() - t0
            look(now)
            if now + 1e-9 < next_sync:
                if stop.wait(min(config.poll_s, next_sync - now)):
                    raise Interrupted("interrupted")
                continue
            if not sender.is_alive() and finished_at is None:
                if "error" in outcome:
                    raise outcome["error"]
                if outcome["result"].status != "completed":
                    raise RunFailed(f"inject ended {outcome['result'].status}: {outcome['result'].error}")
            waiting, in_flight = depth()
            current = len(open_replicas())
            wanted = controller.desired(next_sync, current, waiting, in_flight)
            scale_to(now, wanted)
            timeline.append(
                {
                    "t_s": next_sync,
                    "replicas": len(open_replicas()),
                    "ready_replicas": sum(1 for r in open_replicas() if r.ready_at is not None),
                    "queue_depth": waiting,
                }
            )
            next_sync += config.policy.sync_s
            settled = config.policy.name == "fixed" or len(open_replicas()) <= config.min_replicas
            if not settled:
                settled_since = None
            elif settled_since is None:
                settled_since = now
            if finished_at is None and not sender.is_alive() and waiting == 0:
                result = outcome["result"]
                if finished_tasks(result.log_path, timings) >= result.sent:
                    finished_at = now
                    # the fleet is back at its minimum within the scale-down window (KEDA's
                    # cooldown applies only at 0, which a real run does not use)
                    horizon = now + config.policy.down_window_s + 4 * config.policy.sync_s
            if finished_at is not None and (settled_since is not None or now >= horizon):
                break
            if now > config.drain_timeout_s:
                raise RunFailed(f"the scaled run did not finish within {config.drain_timeout_s:.0f} s")
        # as the simulation: the run ends at its last task, or when the fleet is back at its minimum
        end = settled_since if settled_since is not None else time.monotonic() - t0
        sender.join()
    finally:
        for r in replicas:
            r.worker.stop()
        close_depth()
    assert result is not None
    return _measured(config, result, timings, replicas, timeline, end)


def _depth_reader(config: ScaledRunConfig) -> tuple[Callable[[], tuple[int, int]], Callable[[], None]]:
    """(waiting, in flight) as KEDA's scaler reads them; BrokerError when the broker does not
    answer. Redis: ``LLEN`` of the queue's list, nothing in flight counted (listLength). RabbitMQ:
    the broker's depth (ready; unacknowledged where the management API answers)."""
    if is_redis_url(config.broker_url):
        client = redis_client(config.broker_url, socket_timeout=5)

        def llen() -> tuple[int, int]:
            try:
                return int(client.llen(config.queue)), 0
            except Exception as exc:  # redis-py's ConnectionError, TimeoutError, AuthenticationError
                raise BrokerError(
                    f"cannot read the queue's length on {redact_url(config.broker_url)}: {mask(str(exc))}"
                ) from None

        return llen, client.close
    broker = open_broker(config.broker_url, BrokerOptions(queue=config.queue))

    def declared() -> tuple[int, int]:
        now = broker.depth()
        return now.visible, now.in_flight or 0

    return declared, broker.close


def _inject(config: ScaledRunConfig, stop: threading.Event) -> InjectResult:
    if config.task == REFERENCE_TASK and not config.args:
        # the reference task sleeps sleep_s: a service time known in advance
        args: list[Any] = []
        kwargs = {"sleep_s": config.sleep_s, **(config.kwargs or {})}
    else:
        args, kwargs, _ = PayloadSpec(config.args, config.kwargs).resolve(config.task)
    return inject(
        InjectConfig(
            broker_url=config.broker_url,
            schedule=config.schedule,
            task=config.task,
            queue=config.queue,
            log_dir=config.run_dir,
            args=args,
            kwargs=kwargs,
            prometheus=config.prometheus,
        ),
        stop,
    )


def _measured(
    config: ScaledRunConfig,
    result: InjectResult,
    timings: str,
    replicas: list[_Replica],
    timeline: list[dict[str, float]],
    end: float,
) -> ScaledRun:
    per_task = config.run_dir / "tasks.csv"
    metrics = run_metrics([result.log_path], [timings], per_task_csv=per_task)
    if metrics.failed or metrics.completed < metrics.sent:
        raise RunFailed(f"{metrics.completed} of {metrics.sent} tasks completed ({metrics.failed} failed)")
    with per_task.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    sent = np.array([float(r["sent"]) for r in rows])
    started = np.array([float(r["started"]) for r in rows])
    finished = np.array([float(r["finished"]) for r in rows])
    services = np.array([float(r["service_s"]) for r in rows])
    origin = float(sent.min())
    end = max(end, float(finished.max() - origin))
    replica_seconds = sum(min(r.gone_at if r.gone_at is not None else end, end) - r.asked_at for r in replicas)
    startups = tuple(r.ready_at - r.asked_at for r in replicas if r.ready_at is not None and r.asked_at > 0)
    return ScaledRun(
        tasks=len(rows),
        completed=int(metrics.completed),
        timeline=tuple(timeline),
        startup_s=startups,
        drain_time_s=float(finished.max() - origin),
        wait_p95_s=float(np.percentile(started - sent, 95)),
        wait_mean_s=float(np.mean(started - sent)),
        replica_seconds=float(replica_seconds),
        max_replicas=max(int(p["replicas"]) for p in timeline) if timeline else len(replicas),
        sent_offsets_s=tuple((sent - origin).tolist()),
        services_s=tuple(services.tolist()),
    )


def validate(config: ScaledRunConfig, real: ScaledRun) -> Validation:
    """The simulation of the real run's trace, service times and measured start-up, compared."""
    fleet = Fleet(config.concurrency, config.min_replicas, config.max_replicas, real.startup_mean_s)
    simulated = simulate_fleet(np.array(real.sent_offsets_s), np.array(real.services_s), fleet, config.policy)
    figures = (
        Figure("drain_time_s", real.drain_time_s, simulated.drain_time_s),
        Figure("wait_p95_s", real.wait_p95_s, simulated.wait_p95_s),
        Figure("max_replicas", real.max_replicas, simulated.max_replicas),
        Figure("replica_seconds", real.replica_seconds, simulated.replica_hours * 3600),
    )
    return Validation(real, simulated, figures)


__all__ = ["ScaledRun", "ScaledRunConfig", "Validation", "run_scaled", "validate"]
