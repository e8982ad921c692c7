"""Worker-side timings probe: per task, received / started / finished times, state, host, pid.

Enable it in any Celery app without editing it:

    CAPACITY_TIMINGS=/shared/timings celery -A app worker --include capacity.probe
    CAPACITY_TIMINGS=redis://10.0.0.5:6379/2 celery -A app worker --include capacity.probe

It works where Celery has no events (SQS) and Flower sees nothing. The sink is a directory (one
JSON Lines file per process, each line flushed as written) or a Redis URL (lines XADDed to the
stream ``capacity:timings``). Two lines per task: ``received`` (in the worker's main process,
when the message arrives) and ``done`` (in the process that ran it: started, finished, state).
Deliberately light: no pandas, no rich; a sink error is reported once and never fails a task.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from typing import Any

ENV_VAR = "CAPACITY_TIMINGS"
STREAM = "capacity:timings"
HOST = socket.gethostname()

_local = threading.local()
_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "sink": None, "warned": False}


class _DirectorySink:
    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"timings-{HOST}-{os.getpid()}.jsonl")
        # never through a symlink planted at the name (the worker's own files, the same rule as the tool's)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)

    def write(self, line: str) -> None:
        os.write(self._fd, (line + "\n").encode())  # one O_APPEND write per line: never interleaved


class _RedisSink:
    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=5)

    def write(self, line: str) -> None:
        self._client.xadd(STREAM, {"line": line})


def _sink() -> Any:
    """The sink for this process (re-opened after a fork: prefork children get their own)."""
    target = os.environ.get(ENV_VAR)
    if not target:
        _warn_once(f"capacity.probe: loaded but ${ENV_VAR} is not set: no timings are written (#22)")
        return None
    with _lock:
        if _state["pid"] != os.getpid():
            _state["pid"] = os.getpid()
            if target.startswith(("redis://", "rediss://", "unix://")):
                _state["sink"] = _RedisSink(target)
            else:
                _state["sink"] = _DirectorySink(target)
        return _state["sink"]


def _emit(record: dict[str, Any]) -> None:
    try:
        sink = _sink()
        if sink is not None:
            sink.write(json.dumps(record, separators=(",", ":")))
    except Exception as exc:  # a broken sink must not break the worker's tasks
        _warn_once(f"capacity.probe: cannot write timings to ${ENV_VAR}: {exc}")


def _warn_once(message: str) -> None:
    """One line on the worker's stderr (its log), once per process."""
    if not _state["warned"]:
        _state["warned"] = True
        print(message, file=sys.stderr, flush=True)


def _on_received(request: Any = None, **_: Any) -> None:
    task_id = getattr(request, "id", None)
    if task_id:
        _emit({"task_id": task_id, "event": "received", "t": time.time(), "host": HOST, "pid": os.getpid()})


def _on_prerun(task_id: str | None = None, **_: Any) -> None:
    starts = getattr(_local, "starts", None)
    if starts is None:
        starts = _local.starts = {}
    if task_id:
        starts[task_id] = time.time()


def _on_failure(task_id: str | None = None, exception: BaseException | None = None, **_: Any) -> None:
    """The exception of a failed task, for its done line: "TypeError: ... unexpected keyword"."""
    errors = getattr(_local, "errors", None)
    if errors is None:
        errors = _local.errors = {}
    if task_id and exception is not None:
        errors[task_id] = f"{type(exception).__name__}: {exception}"[:300]


def _on_postrun(task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    finished = time.time()
    starts = getattr(_local, "starts", {})
    started = starts.pop(task_id, None)
    error = getattr(_local, "errors", {}).pop(task_id, None)
    if task_id:
        line = {
            "task_id": task_id,
            "event": "done",
            "started": started,
            "finished": finished,
            "state": state,
            "host": HOST,
            "pid": os.getpid(),
        }
        if error is not None:
            line["error"] = error
        _emit(line)


def _connect() -> None:
    """Hook the three signals (strong references: the handlers live as long as the worker)."""
    from celery.signals import task_failure, task_postrun, task_prerun, task_received

    task_received.connect(_on_received, weak=False)
    task_prerun.connect(_on_prerun, weak=False)
    task_failure.connect(_on_failure, weak=False)
    task_postrun.connect(_on_postrun, weak=False)
    if not os.environ.get(ENV_VAR):
        # said at load, in the worker's start-up output, not only once a task arrives
        _warn_once(f"capacity.probe: loaded but ${ENV_VAR} is not set: no timings will be written")


# A worker loads this module (--include) while it starts, so Celery's worker is imported by then;
# the planner imports it only for ENV_VAR and STREAM, and neither pays for Celery's signals (50 ms)
# nor hooks them (a planner that had imported Celery to send tasks printed the probe's warning)
if "celery.apps.worker" in sys.modules:
    with contextlib.suppress(ImportError):
        _connect()
