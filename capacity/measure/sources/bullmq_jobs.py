"""BullMQ's own timestamps, with no probe: each job's hash keeps ``timestamp`` (added),
``processedOn`` (taken by a worker, last attempt), ``finishedOn``, ``atm`` (attempts made) and
``failedReason``; read for the logged job ids with pipelined HMGETs, in pages, so millions of jobs
stream through. Where the worker removed finished jobs (``removeOnComplete``), the queue's events
stream gives the times instead (an ``active`` and a ``completed``/``failed`` event per job, at the
stream entry's millisecond); what neither has is reported missing, never guessed. BullMQ keeps
milliseconds, so S, W and R here have millisecond resolution."""

from __future__ import annotations

from typing import Any

from capacity.brokers import is_redis_url
from capacity.measure.inputs import TaskLog, timing_schema
from capacity.measure.sources import SourceSettings, TimingSource
from capacity.measure.sources._redis import connect, stream_entries

PAGE = 1000
FIELDS = ("processedOn", "finishedOn", "atm", "failedReason")


def _queues(log: TaskLog) -> list[str]:
    """The key prefixes (``bull:QUEUE:``) of the BullMQ runs in the logs."""
    found = []
    for run in log.runs:
        if run.get("protocol") == "bullmq":
            key = f"{run.get('prefix') or 'bull'}:{run.get('queue')}:"
            if key not in found:
                found.append(key)
    return found


def _ms(value: Any) -> float | None:
    return float(value) / 1000 if value not in (None, b"", "") else None


class BullMQJobs(TimingSource):
    kind = "bullmq"
    label = "BullMQ job hashes"

    @classmethod
    def accepts(cls, source: str) -> bool:
        return is_redis_url(source)

    @classmethod
    def claims_for(cls, source: str, log: TaskLog | None) -> bool:
        """A Redis URL given with the logs of a BullMQ run (``inject --protocol bullmq``)."""
        return is_redis_url(source) and log is not None and bool(_queues(log))

    def load(self, source: str, log: TaskLog, settings: SourceSettings) -> None:
        prefixes = _queues(log)
        if not prefixes:
            log.problems.warn("bullmq: the task logs are not from a BullMQ run (inject --protocol bullmq)")
            return
        client = connect(source)
        task_ids = log.query(lambda store: store.task_ids())
        log.problems.warn("BullMQ timestamps have millisecond resolution")
        rows: dict[str, list[Any]] = {name: [] for name in timing_schema().names}
        missing: list[str] = []
        retried = failed = 0
        reasons: list[str] = []
        for start in range(0, len(task_ids), PAGE):
            page = task_ids[start : start + PAGE]
            found = self._hashes(client, prefixes, page)
            for task_id, values in zip(page, found, strict=True):
                if values is None:
                    missing.append(task_id)
                    continue
                processed, finished, attempts, reason = values
                if attempts not in (None, b"") and int(attempts) > 1:
                    retried += 1
                state = None
                if _ms(finished) is not None:
                    state = "FAILURE" if reason else "SUCCESS"
                    if reason:
                        failed += 1
                        if len(reasons) < 3:
                            reasons.append(reason.decode(errors="replace")[:200])
                self._row(rows, task_id, _ms(processed), _ms(finished), state)
        if missing:
            missing = self._from_events(client, prefixes, missing, rows, log)
        if retried:
            log.problems.warn(f"bullmq: {retried} jobs took more than one attempt (retries)")
        if reasons:
            log.problems.warn(f"bullmq: {failed} jobs failed; first reasons: " + " | ".join(reasons))
        if missing:
            log.problems.warn(
                f"bullmq: {len(missing)} jobs have neither a hash nor events (removed, and older than the events "
                "stream keeps): their timings are missing"
            )
        import pyarrow as pa

        log.store.timing_tables.append(pa.table(rows, schema=timing_schema()))

    @staticmethod
    def _row(
        rows: dict[str, list[Any]], task_id: str, started: float | None, finished: float | None, state: str | None
    ) -> None:
        rows["task_id"].append(task_id)
        rows["received"].append(None)
        rows["started"].append(started)
        rows["finished"].append(finished)
        rows["record_start"].append(None)
        rows["state"].append(state)
        rows["host"].append(None)

    @staticmethod
    def _hashes(client: Any, prefixes: list[str], page: list[str]) -> list[tuple[Any, ...] | None]:
        """Each id's fields from the first queue whose hash has it (None: no hash)."""
        pipe = client.pipeline(transaction=False)
        for task_id in page:
            for prefix in prefixes:
                pipe.hmget(prefix + task_id, *FIELDS, "timestamp")
        answers = pipe.execute()
        found: list[tuple[Any, ...] | None] = []
        for i in range(len(page)):
            hit = None
            for values in answers[i * len(prefixes) : (i + 1) * len(prefixes)]:
                if values[-1] is not None:  # every job hash has its timestamp
                    hit = tuple(values[:-1])
                    break
            found.append(hit)
        return found

    def _from_events(
        self, client: Any, prefixes: list[str], missing: list[str], rows: dict[str, list[Any]], log: TaskLog
    ) -> list[str]:
        """Times of the jobs without a hash from the queues' events streams; the ids still missing."""
        wanted = set(missing)
        started: dict[str, float] = {}
        finished: dict[str, tuple[float, str]] = {}
        for prefix in prefixes:
            for entry_id, fields in stream_entries(client, prefix + "events"):
                job = fields.get(b"jobId", b"").decode()
                if job not in wanted:
                    continue
                at = int(entry_id.split(b"-")[0]) / 1000
                event = fields.get(b"event")
                if event == b"active":
                    started[job] = at
                elif event in (b"completed", b"failed"):
                    finished[job] = (at, "SUCCESS" if event == b"completed" else "FAILURE")
        still = []
        for job in missing:
            if job in finished:
                self._row(rows, job, started.get(job), finished[job][0], finished[job][1])
            else:
                still.append(job)
        if len(still) < len(missing):
            log.problems.warn(f"bullmq: {len(missing) - len(still)} removed jobs timed from the queue's events stream")
        return still
