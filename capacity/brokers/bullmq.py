"""BullMQ on Redis: jobs added exactly as BullMQ's own clients add them.

The job layout is BullMQ's, not ours: the Lua scripts (``addStandardJob``, ``addPrioritizedJob``,
``addDelayedJob``) are the ones the official ``bullmq`` package ships (PyPI, maintained with the
Node package; same keys, same arguments), and each job's arguments are packed by that package's
own ``Scripts.addJobArgs`` for one template job per batch. Per job only the id (chosen here, before
sending) and the timestamp change; both have fixed-width encodings in the packed arguments, so
they are spliced into the template's bytes (checked against ``addJobArgs`` in the tests), which
is what makes a burst faster than ``Queue.addBulk``.

Each batch runs in one MULTI/EXEC with a marker key, as for Celery on Redis: after a broken
connection the marker says whether the batch landed, so a retry never adds a job twice and the
task log names exactly the jobs Redis accepted. redis-py's own retries are off (a retried EXEC
after a timeout would be a second batch).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from capacity.brokers import Broker, BrokerOptions, QueueDepth, SendFailed
from capacity.brokers._retry import attempts
from capacity.brokers.redis import MARKER_TTL_S, redis_py_url
from capacity.errors import BrokerError, InputError

DEFAULT_PREFIX = "bull"
# the keys each script takes, in order (bullmq.scripts.Scripts.addStandardJob and siblings)
_SCRIPT_KEYS = {
    "addStandardJob": ("wait", "paused", "meta", "id", "completed", "delayed", "active", "events", "marker"),
    "addPrioritizedJob": ("marker", "meta", "id", "prioritized", "delayed", "completed", "active", "events", "pc"),
    "addDelayedJob": ("marker", "meta", "id", "delayed", "completed", "events"),
}
_ID_WIDTH = 36  # our ids are UUID-shaped
_TEMPLATE_ID = "0" * _ID_WIDTH
_TEMPLATE_TIMESTAMP = 0x7FFF_FFFF_FFFF  # msgpack packs it as uint64: 0xcf + 8 bytes, like any ms epoch


def _script_source(name: str) -> str:
    """The Lua source the official bullmq package ships for ``name`` (its own table of files)."""
    from importlib import resources

    from bullmq.redis_connection import SCRIPT_DEFINITIONS

    source: str = (resources.files("bullmq") / "commands" / SCRIPT_DEFINITIONS[name]).read_text(encoding="utf-8")
    return source


@dataclass(frozen=True)
class JobTemplate:
    """The data object of every job of a batch (BullMQ jobs carry one JSON object, ``data``)."""

    name: str

    def render(self, task_ids: Sequence[str], args: Sequence[Any], kwargs: dict[str, Any], now: datetime) -> list[str]:
        if args:
            raise InputError("BullMQ jobs take one data object: give --kwargs or a template's kwargs, not args")
        data = json.dumps(kwargs, separators=(",", ":"), allow_nan=False)
        return [data] * len(task_ids)


class BullMQBroker(Broker):
    name = "BullMQ"
    max_batch = 1000
    supports_priority = True
    supports_events = False  # Celery's events: BullMQ keeps its own in the queue's events stream

    def __init__(self, url: str, options: BrokerOptions) -> None:
        super().__init__(url, options)
        try:
            import redis
            import redis.backoff
            import redis.retry
            from bullmq.job import Job
            from bullmq.queue_keys import QueueKeys
            from bullmq.scripts import Scripts
        except ImportError as exc:
            raise BrokerError(f"BullMQ support needs the bullmq package: pip install bullmq ({exc})") from None
        self._errors: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
        self._response_error = redis.ResponseError
        # no retries inside redis-py: a retried EXEC after a timeout would add the batch twice
        no_retry = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
        self._client = redis.Redis.from_url(
            redis_py_url(url), socket_timeout=5, socket_connect_timeout=5, health_check_interval=0, retry=no_retry
        )
        try:
            self._client.ping()
        except self._errors as exc:
            raise BrokerError(f"cannot reach broker {self.safe_url}: {exc}") from None
        self.prefix = options.prefix or DEFAULT_PREFIX
        self.job_options: dict[str, Any] = dict(options.job_options)
        self.keys: dict[str, str] = QueueKeys(self.prefix).getKeys(options.queue)
        self._job_class = Job
        # Scripts.addJobArgs and encodeOpts read only ``keys``: the rest of Scripts (its async
        # connection) is not needed to pack arguments
        self._scripts = Scripts.__new__(Scripts)
        self._scripts.keys = self.keys
        self._seq = 0
        self.task = "job"

    # --- messages ---------------------------------------------------------------------------------------

    @property
    def channel(self) -> Any:
        raise BrokerError("BullMQ has no kombu channel")

    def template(
        self,
        task: str,
        queue: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        priority: int | None,
        countdown_s: float | None,
    ) -> JobTemplate:
        self.task = task
        if priority is not None:
            self.job_options["priority"] = priority
        if countdown_s:
            self.job_options["delay"] = round(countdown_s * 1000)
        return JobTemplate(task)

    def script_name(self) -> str:
        """Which add script BullMQ's client uses for these options (bullmq.scripts.Scripts.addJob)."""
        if self.job_options.get("delay"):
            return "addDelayedJob"
        if self.job_options.get("priority"):
            return "addPrioritizedJob"
        return "addStandardJob"

    def job_arguments(self, job_id: str, data: str, timestamp_ms: int) -> list[bytes | str | int]:
        """The ARGV of one job exactly as ``Scripts.addJobArgs`` builds it (without the splice)."""
        # a Job keeps its queue's backend and qualified name; neither is used to pack arguments
        queue = SimpleNamespace(backend=None, qualifiedName=self.keys[""].rstrip(":"))
        job = self._job_class(queue, self.task, json.loads(data), self.job_options, job_id)
        job.timestamp = timestamp_ms
        packed, data_json, opts = self._scripts.addJobArgs(job)
        return [packed, data_json, opts, self._last_argument(job)]

    def _last_argument(self, job: Any) -> int:
        # addStandardJob and addPrioritizedJob get the job's timestamp; addDelayedJob its delay
        return int(self.job_options.get("delay") or 0) if self.script_name() == "addDelayedJob" else job.timestamp

    def _splicer(self, data: str) -> tuple[bytes, int, int, bytes, bytes]:
        """The template job's packed arguments and where its id and timestamp sit in them."""
        packed, data_json, opts, _ = self.job_arguments(_TEMPLATE_ID, data, _TEMPLATE_TIMESTAMP)
        assert isinstance(packed, bytes) and isinstance(opts, bytes) and isinstance(data_json, str)
        id_at = packed.index(_TEMPLATE_ID.encode())
        stamp = b"\xcf" + _TEMPLATE_TIMESTAMP.to_bytes(8, "big")
        stamp_at = packed.index(stamp)
        return packed, id_at, stamp_at, data_json.encode(), opts

    # --- sending --------------------------------------------------------------------------------------------

    def _script_sha(self, name: str) -> str:
        if not hasattr(self, "_shas"):
            self._shas: dict[str, str] = {}
        if name not in self._shas:
            self._shas[name] = str(self._client.script_load(_script_source(name)))
        return self._shas[name]

    def _marker(self, seq: int) -> str:
        return f"capacity:sent:{self.options.run_id}:{seq}"

    def send_batch(self, task_ids: Sequence[str], payloads: Sequence[str]) -> None:
        if not payloads:
            return
        self._seq += 1
        marker = self._marker(self._seq)
        maybe_landed = False
        last_error: BaseException | None = None
        name = self.script_name()
        for attempt in attempts(self.options.retry_for_s):
            try:
                if attempt and maybe_landed:
                    if self._client.exists(marker):
                        return
                    maybe_landed = False  # marker and jobs are one MULTI/EXEC: no marker, no jobs
                sha = self._script_sha(name)
                keys = [self.keys[k] for k in _SCRIPT_KEYS[name]]
                pipe = self._client.pipeline(transaction=True)
                self._add_jobs(pipe, sha, keys, task_ids, payloads)
                pipe.set(marker, 1, ex=MARKER_TTL_S)
                maybe_landed = True
                pipe.execute()
                return
            except self._errors as exc:
                last_error = exc
            except self._response_error as exc:  # NOSCRIPT after a restart: load and retry
                if "NOSCRIPT" not in str(exc):
                    raise BrokerError(f"{self.safe_url} refused the batch: {exc}") from None
                self._shas = {}
                maybe_landed = False
        raise SendFailed(
            f"broker {self.safe_url} unreachable for {self.options.retry_for_s:g} s: {last_error}",
            in_doubt=list(task_ids) if maybe_landed else [],
        )

    def _add_jobs(self, pipe: Any, sha: str, keys: list[str], task_ids: Sequence[str], payloads: Sequence[str]) -> None:
        timestamp = round(time.time() * 1000).to_bytes(8, "big")
        cache: dict[str, tuple[bytes, int, int, bytes, bytes]] = {}
        delayed = self.script_name() == "addDelayedJob"
        last = int(self.job_options.get("delay") or 0) if delayed else int.from_bytes(timestamp, "big")
        for task_id, data in zip(task_ids, payloads, strict=True):
            if len(task_id) != _ID_WIDTH:
                raise InputError(f"job id {task_id!r}: expected {_ID_WIDTH} characters")
            if data not in cache:
                cache[data] = self._splicer(data)
            packed, id_at, stamp_at, data_bytes, opts = cache[data]
            spliced = bytearray(packed)
            spliced[id_at : id_at + _ID_WIDTH] = task_id.encode()
            spliced[stamp_at + 1 : stamp_at + 9] = timestamp
            pipe.evalsha(sha, len(keys), *keys, bytes(spliced), data_bytes, opts, last)

    # --- watching -------------------------------------------------------------------------------------------

    def depth(self) -> QueueDepth:
        """Waiting (wait + prioritized + paused), active, delayed and failed, as BullMQ counts them."""
        keys = self.keys
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.llen(keys["wait"])
            pipe.zcard(keys["prioritized"])
            pipe.llen(keys["paused"])
            pipe.llen(keys["active"])
            pipe.zcard(keys["delayed"])
            pipe.zcard(keys["failed"])
            wait, prioritized, paused, active, delayed, failed = pipe.execute()
        except self._errors as exc:
            raise BrokerError(f"cannot read queue depth from {self.safe_url}: {exc}") from None
        return QueueDepth(
            visible=int(wait) + int(prioritized) + int(paused),
            in_flight=int(active),
            delayed=int(delayed),
            failed=int(failed),
        )

    def consumers(self) -> int:
        """Workers connected to the queue: Redis clients named as BullMQ names them (its
        Queue.getWorkers: ``prefix:base64(queue)``, or that and ``:w:NAME``)."""
        import base64

        name = f"{self.prefix}:{base64.b64encode(self.options.queue.encode()).decode()}"
        try:
            clients = self._client.client_list()
        except self._errors as exc:
            raise BrokerError(f"cannot list clients on {self.safe_url}: {exc}") from None
        return sum(1 for c in clients if c.get("name") == name or str(c.get("name", "")).startswith(name + ":w:"))

    def purge(self) -> int:
        """Remove the queue's waiting, prioritized, paused and delayed jobs (BullMQ's drain)."""
        keys = self.keys
        client: Any = self._client
        try:
            ids: list[bytes] = [*client.lrange(keys["wait"], 0, -1), *client.lrange(keys["paused"], 0, -1)]
            ids += [*client.zrange(keys["prioritized"], 0, -1), *client.zrange(keys["delayed"], 0, -1)]
            pipe = self._client.pipeline(transaction=True)
            for key in ("wait", "paused", "prioritized", "delayed"):
                pipe.delete(keys[key])
            for job_id in ids:
                pipe.delete(keys[""] + job_id.decode())
            pipe.execute()
        except self._errors as exc:
            raise BrokerError(f"cannot purge {self.options.queue} on {self.safe_url}: {exc}") from None
        return len(ids)

    def close(self) -> None:
        self._client.close()
