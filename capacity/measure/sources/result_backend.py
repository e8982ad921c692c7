"""Celery's Redis result backend: state and date_done per task id (it stores no start time)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from capacity.brokers import is_redis_url
from capacity.measure.inputs import Problems, TaskLog, timing_schema
from capacity.measure.sources import SourceSettings, TimingSource
from capacity.measure.sources._redis import connect

if TYPE_CHECKING:
    import pyarrow as pa

#: Celery's key for a task's result (celery.backends.base.KeyValueStoreBackend.task_keyprefix)
KEY_PREFIX = "celery-task-meta-"


def read_backend(client: Any, task_ids: list[str], problems: Problems) -> pa.Table:
    """State and finish time of each logged id, read with MGET in pages of 1,000."""
    problems.warn("result backend: Celery stores no start time there, so service time and wait are missing")
    found_ids: list[str] = []
    finished: list[float | None] = []
    states: list[str | None] = []
    for i in range(0, len(task_ids), 1000):
        chunk = task_ids[i : i + 1000]
        for task_id, raw in zip(chunk, client.mget([f"{KEY_PREFIX}{t}" for t in chunk]), strict=True):
            if raw is None:
                continue
            meta = json.loads(raw)
            done = meta.get("date_done")
            if done:
                moment = datetime.fromisoformat(str(done))
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                finished.append(moment.timestamp())
            else:
                finished.append(None)
            found_ids.append(task_id)
            states.append(meta.get("status"))
    import pyarrow as pa

    n = len(found_ids)
    return pa.table(
        {
            "task_id": pa.array(found_ids, pa.string()),
            "received": pa.nulls(n, pa.float64()),
            "started": pa.nulls(n, pa.float64()),
            "finished": pa.array(finished, pa.float64()),
            "record_start": pa.nulls(n, pa.float64()),
            "state": pa.array(states, pa.string()),
            "host": pa.nulls(n, pa.string()),
        },
        schema=timing_schema(),
    )


class ResultBackend(TimingSource):
    kind = "backend"
    label = "result backend"

    @classmethod
    def accepts(cls, source: str) -> bool:
        return is_redis_url(source)

    def load(self, source: str, log: TaskLog, settings: SourceSettings) -> None:
        client = connect(source)
        task_ids = log.query(lambda store: store.task_ids())
        log.store.timing_tables.append(read_backend(client, task_ids, log.problems))
