"""A reference Celery app with synthetic tasks, for trying the whole loop without your own app.

    CAPACITY_BROKER_URL=redis://127.0.0.1:6379/0 celery -A capacity.worker worker -c 2

``process_file`` reads the payload file it is given (as seed 003's worker reads an upload), then
holds memory, burns CPU and sleeps (I/O wait), so its service time and resource use are known.
With ``job_type="3D Render"`` (any name in the job_types profile) it behaves like that job type:
a duration drawn from the profile's range, that share of it on the CPU (the profile's CPU range)
and the rest waiting, and the profile's memory held, scaled by ``time_scale``/``memory_scale``.
The timings probe (capacity.probe) is included: set CAPACITY_TIMINGS to record timings.
"""

from __future__ import annotations

import json
import os
import random
import time
from functools import cache
from typing import Any

from celery import Celery

app = Celery("capacity.worker", include=["capacity.probe"])
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

PAGE = 4096


@cache
def _job_types() -> dict[str, Any]:
    from capacity.profiles import load_profiles  # only when a job type is asked for

    return {job.name.lower(): job for job in load_profiles().job_types.job_types}


def job_plan(job_type: str, time_scale: float = 1.0, memory_scale: float = 1.0, rng: Any = random) -> dict[str, float]:
    """cpu_s, sleep_s and memory_bytes for one run of a profile job type (drawn within its ranges)."""
    job = _job_types().get(job_type.lower())
    if job is None:
        raise ValueError(f"unknown job type {job_type!r}; known: {', '.join(sorted(_job_types()))}")
    duration = rng.uniform(*job.duration) * time_scale
    cpu_share = min(1.0, rng.uniform(*job.cpu))
    return {
        "cpu_s": duration * cpu_share,
        "sleep_s": duration * (1 - cpu_share),
        "memory_bytes": rng.uniform(*job.memory) * memory_scale,
    }


@app.task(name="capacity.worker.process_file")  # type: ignore[untyped-decorator]
def process_file(
    file: str | None = None,
    size_bytes: int = 0,
    user_id: str | None = None,
    injected_at: str | None = None,
    sleep_s: float = 0.0,
    cpu_s: float = 0.0,
    memory_bytes: float = 0,
    job_type: str | None = None,
    time_scale: float = 1.0,
    memory_scale: float = 1.0,
    **extra: Any,
) -> dict[str, Any]:
    """Read the payload file (when it is local), hold memory, spin ``cpu_s``, sleep ``sleep_s``."""
    if job_type:
        plan = job_plan(job_type, time_scale, memory_scale)
        cpu_s, sleep_s, memory_bytes = plan["cpu_s"], plan["sleep_s"], plan["memory_bytes"]
    read = 0
    if file and not file.startswith("s3://") and os.path.isfile(file):
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                read += len(chunk)
    held = bytearray(int(memory_bytes))
    held[::PAGE] = b"\x01" * len(range(0, len(held), PAGE))  # touch every page, so it is resident
    deadline = time.process_time() + cpu_s
    while time.process_time() < deadline:
        pass
    if sleep_s:
        time.sleep(sleep_s)
    del held
    return {"read_bytes": read, "user_id": user_id, "cpu_s": cpu_s, "sleep_s": sleep_s}
