"""The test suite's Celery app: the reference worker plus a record of every task it ran.

Each executed task appends {"task_id", "state", "pid"} to $CAPACITY_TEST_EXECUTED (O_APPEND
writes of one short line, so concurrent threads and processes do not interleave).
"""

from __future__ import annotations

import json
import os
from typing import Any

from celery.signals import task_postrun

from capacity.workerside.reference import app

__all__ = ["app"]


@task_postrun.connect
def _record(task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    target = os.environ.get("CAPACITY_TEST_EXECUTED")
    if target and task_id:
        line = json.dumps({"task_id": task_id, "state": state, "pid": os.getpid()}) + "\n"
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
