"""``capacity top``: what a broker's queues and workers are doing now, read-only (Flower's workers
page and a queue's depth side by side), for a production broker as much as for a load test.

Queues: waiting, in flight, delayed and failed as the broker registry's ``depth`` gives them,
consumers, and for BullMQ the oldest waiting job's age (its hash holds when it was added; Celery's
messages carry no such time, so it is not shown for them rather than guessed). Workers: Celery's
own ``inspect`` broadcasts (``stats``, ``active``, ``reserved``: per host its pool size, tasks
running, tasks reserved and tasks processed so far); BullMQ's are the Redis clients its Worker
names after the queue. Rates come from two snapshots: out = tasks processed per second (Celery's
counters), in = out + the change of waiting and in flight per second. Nothing is written anywhere.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from capacity.brokers import Broker, BrokerOptions, celery_inspect, open_broker
from capacity.errors import BrokerError
from capacity.secrets import redact_url


@dataclass(frozen=True)
class QueueNow:
    queue: str
    waiting: int
    in_flight: int | None
    delayed: int | None
    failed: int | None
    consumers: int | None
    oldest_wait_s: float | None = None
    rate_in_per_s: float | None = None
    rate_out_per_s: float | None = None


@dataclass(frozen=True)
class WorkerNow:
    name: str
    concurrency: int | None = None
    active: int | None = None
    reserved: int | None = None
    processed: int | None = None


@dataclass(frozen=True)
class Snapshot:
    broker: str
    taken_at: float
    queues: tuple[QueueNow, ...]
    workers: tuple[WorkerNow, ...]
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "broker": self.broker,
            "read_only": True,
            "taken_at": self.taken_at,
            "queues": [asdict(q) for q in self.queues],
            "workers": [asdict(w) for w in self.workers],
            "notes": list(self.notes),
        }


class Top:
    """Open once, snapshot as often as asked; ``close`` releases the connections."""

    def __init__(self, url: str, queues: list[str], protocol: str = "celery", prefix: str | None = None) -> None:
        self.url = url
        self.protocol = protocol
        self.brokers: dict[str, Broker] = {}
        try:
            for queue in queues:
                self.brokers[queue] = open_broker(url, BrokerOptions(queue=queue, protocol=protocol, prefix=prefix))
        except BaseException:
            self.close()
            raise
        self._previous: Snapshot | None = None

    def snapshot(self, inspect_timeout_s: float = 1.0) -> Snapshot:
        notes: list[str] = []
        workers = self._workers(inspect_timeout_s, notes)
        queues = [self._queue(name, broker) for name, broker in self.brokers.items()]
        now = time.time()
        snap = Snapshot(next(iter(self.brokers.values())).safe_url, now, tuple(queues), tuple(workers))
        snap = _with_rates(snap, self._previous)
        for broker in self.brokers.values():
            notes += [n for n in broker.notes if n not in notes]
        snap = Snapshot(snap.broker, snap.taken_at, snap.queues, snap.workers, tuple(notes))
        self._previous = snap
        return snap

    def _queue(self, name: str, broker: Broker) -> QueueNow:
        depth = broker.depth()
        try:
            consumers = broker.consumers()
        except BrokerError:
            consumers = None
        oldest = getattr(broker, "oldest_wait_s", None)
        return QueueNow(
            name, depth.visible, depth.in_flight, depth.delayed, depth.failed, consumers,
            oldest() if callable(oldest) else None,
        )  # fmt: skip

    def _workers(self, timeout_s: float, notes: list[str]) -> list[WorkerNow]:
        broker = next(iter(self.brokers.values()))
        if self.protocol == "bullmq":
            names = getattr(broker, "worker_names", None)
            return [WorkerNow(name) for name in (names() if callable(names) else [])]
        if not broker.supports_events:  # SQS: no broadcast to ask the workers through
            notes.append(f"{broker.name} carries no broadcast: Celery workers cannot be asked there")
            return []
        return celery_workers(self.url, timeout_s)

    def close(self) -> None:
        for broker in self.brokers.values():
            broker.close()


def celery_workers(url: str, timeout_s: float) -> list[WorkerNow]:
    """Celery's ``inspect stats``, ``active`` and ``reserved``, answered by every worker on ``url``."""

    def ask(inspect: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        return inspect.stats() or {}, inspect.active() or {}, inspect.reserved() or {}

    stats, active, reserved = celery_inspect(url, redact_url(url), timeout_s, ask)
    found = []
    for name in sorted(set(stats) | set(active) | set(reserved)):
        info = stats.get(name) or {}
        pool = info.get("pool") or {}
        totals = info.get("total") or {}
        found.append(
            WorkerNow(
                name,
                concurrency=pool.get("max-concurrency") if isinstance(pool.get("max-concurrency"), int) else None,
                active=len(active.get(name) or []) if name in active else None,
                reserved=len(reserved.get(name) or []) if name in reserved else None,
                processed=sum(v for v in totals.values() if isinstance(v, int)) if name in stats else None,
            )
        )
    return found


def _with_rates(now: Snapshot, before: Snapshot | None) -> Snapshot:
    """Per queue: out = processed per second (the workers' counters over the queues they share),
    in = out + the change of waiting and in flight per second; None on the first snapshot."""
    if before is None or now.taken_at <= before.taken_at:
        return now
    dt = now.taken_at - before.taken_at
    processed_now = [w.processed for w in now.workers]
    processed_before = [w.processed for w in before.workers]
    out = None
    if now.workers and None not in processed_now and len(processed_before) == len(processed_now):
        out = max(0.0, (sum(p or 0 for p in processed_now) - sum(p or 0 for p in processed_before)) / dt)
    previous = {q.queue: q for q in before.queues}
    queues = []
    for q in now.queues:
        last = previous.get(q.queue)
        rate_in = None
        if out is not None and len(now.queues) == 1 and last is not None:
            held = q.waiting + (q.in_flight or 0) - last.waiting - (last.in_flight or 0)
            rate_in = max(0.0, out + held / dt)
        queues.append(
            QueueNow(**{**asdict(q), "rate_out_per_s": out if len(now.queues) == 1 else None, "rate_in_per_s": rate_in})
        )
    return Snapshot(now.broker, now.taken_at, tuple(queues), now.workers, now.notes)


__all__ = ["QueueNow", "Snapshot", "Top", "WorkerNow", "celery_workers"]
