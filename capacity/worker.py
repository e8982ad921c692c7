"""A reference Celery app with synthetic tasks, for trying the whole loop without your own app.

    CAPACITY_BROKER_URL=redis://127.0.0.1:6379/0 celery -A capacity.worker worker -c 2

``process_file`` reads the payload file it is given (as seed 003's worker reads an upload), then
optionally burns CPU and sleeps, so its service time is known.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from celery import Celery

app = Celery("capacity.worker")
app.conf.update(
    broker_url=os.environ.get("CAPACITY_BROKER_URL")
    or os.environ.get("CELERY_BROKER_URL")
    or "redis://127.0.0.1:6379/0",
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # a result backend only when asked for (capacity metrics can read date_done from it)
    result_backend=os.environ.get("CAPACITY_RESULT_BACKEND") or None,
    task_ignore_result=not os.environ.get("CAPACITY_RESULT_BACKEND"),
    # e.g. {"polling_interval": 0.1} for SQS: kombu's default 1 s wait between polls caps a
    # prefetch-1 worker near one batch of `concurrency` tasks per second
    broker_transport_options=json.loads(os.environ.get("CAPACITY_WORKER_TRANSPORT_OPTIONS") or "{}"),
)


@app.task(name="capacity.worker.process_file")  # type: ignore[untyped-decorator]
def process_file(
    file: str | None = None,
    size_bytes: int = 0,
    user_id: str | None = None,
    injected_at: str | None = None,
    sleep_s: float = 0.0,
    cpu_s: float = 0.0,
    **extra: Any,
) -> dict[str, Any]:
    """Read the payload file (when it is local), spin ``cpu_s``, sleep ``sleep_s``."""
    read = 0
    if file and not file.startswith("s3://") and os.path.isfile(file):
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                read += len(chunk)
    deadline = time.process_time() + cpu_s
    while time.process_time() < deadline:
        pass
    if sleep_s:
        time.sleep(sleep_s)
    return {"read_bytes": read, "user_id": user_id}
