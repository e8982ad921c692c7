"""Mistakes a run watches for while it monitors (#22), each ending it early with the fix in one line:

* a Celery task name no worker knows: before sending, when workers answer ``inspect registered``,
  the run is refused (exit 2); while monitoring, once workers answer (they started after the
  injector), a name none of them knows ends the run (exit 1): Celery logs "Received unregistered
  task" and drops every such message, so the queue would drain and the run look fine;
* a BullMQ queue no Worker is connected to: BullMQ Workers take every job name of their queue, so a
  job with no worker for it is a queue (name or prefix) no Worker listens on; when jobs wait, none
  is active and Redis lists no Worker for the queue for ``--idle-after``, the run ends.
"""

from __future__ import annotations

import difflib
import time

from capacity.brokers import Broker, QueueDepth
from capacity.errors import BrokerError, InputError

#: how often a watch that asks the workers (a broadcast of up to a second) asks
ASK_EVERY_S = 3.0


def registered(broker: Broker) -> tuple[list[str], int] | None:
    """The task names the Celery workers answering on this broker registered (Celery's own left
    out), and how many answered; None when none answers (no worker up yet, SQS)."""
    replies = broker.registered_tasks()
    if not replies:
        return None
    known = sorted({name for names in replies.values() for name in names if not name.startswith("celery.")})
    return known, len(replies)


def _what_they_know(task: str, known: list[str]) -> str:
    close = difflib.get_close_matches(task, known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
    return f"{hint}they registered: {shown or 'nothing'}"


def check_task_registered(broker: Broker, task: str) -> None:
    """InputError when Celery workers answer on this broker and none of them registered ``task``
    (#22: a misspelt task name exited 0, "queue drained", while the worker logged "Received
    unregistered task" and dropped every message). No answer checks nothing."""
    found = registered(broker)
    if found is not None and task not in found[0]:
        raise InputError(
            f"no worker on this broker knows task {task!r} ({found[1]} answered); "
            f"{_what_they_know(task, found[0])} (--no-check sends anyway)"
        )


class UnregisteredTask:
    """While monitoring: once Celery workers answer, whether they know the run's task names."""

    def __init__(self, brokers: dict[str, Broker]) -> None:
        self._brokers = brokers  # task name -> the broker its lane sends on
        self._known: set[str] = set()
        self._asked = 0.0

    def __call__(self, depth: QueueDepth | None = None, force: bool = False) -> str | None:
        if not force and time.monotonic() - self._asked < ASK_EVERY_S:
            return None
        self._asked = time.monotonic()
        for task, broker in self._brokers.items():
            if task in self._known:
                continue
            try:
                found = registered(broker)
            except BrokerError:
                return None
            if found is None:
                continue
            if task in found[0]:  # answered and knows it: never asked again
                self._known.add(task)
                continue
            return (
                f"the Celery workers on this broker ({found[1]} answered) do not know task {task!r}: each logs "
                f"'Received unregistered task' and drops it; {_what_they_know(task, found[0])}"
            )
        return None


class NoBullMQWorker:
    """While monitoring: jobs wait, none is active, and no BullMQ Worker is connected to the queue."""

    def __init__(self, broker: Broker, queue: str, prefix: str, idle_s: float) -> None:
        self._broker = broker
        self._queue = queue
        self._prefix = prefix
        self._idle_s = idle_s
        self._since: float | None = None

    def __call__(self, depth: QueueDepth | None = None, force: bool = False) -> str | None:
        if depth is None or depth.visible == 0 or depth.in_flight:
            self._since = None
            return None
        try:
            workers = self._broker.consumers()
        except BrokerError:
            return None
        if workers:
            self._since = None
            return None
        now = time.monotonic()
        self._since = self._since if self._since is not None else now
        if now - self._since < self._idle_s:
            return None
        return (
            f"no BullMQ Worker is connected to queue {self._queue!r} (prefix {self._prefix!r}) and "
            f"{depth.visible} jobs have waited {self._idle_s:g} s: start one with this queue name and prefix "
            "(new Worker(name, processor, {prefix, connection})), or check --queue and --bullmq-prefix"
        )
