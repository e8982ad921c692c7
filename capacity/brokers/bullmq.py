"""BullMQ on Redis: jobs added exactly as BullMQ's own clients add them.

The job layout is BullMQ's, not ours: the Lua scripts (``addStandardJob``, ``addPrioritizedJob``,
``addDelayedJob``) are the ones the official ``bullmq`` package ships (PyPI, maintained with the
Node package; same keys, same arguments), and each job's arguments are packed by that package's
own ``Scripts.addJobArgs`` for one template job per batch. Per job only the id (chosen here, before
sending) and the timestamp change; both have fixed-width encodings in the packed arguments, so
they are spliced into the template's bytes (checked against ``addJobArgs`` in the tests), which
is what makes a burst faster than ``Queue.addBulk``.

Each batch is one pipeline (not MULTI/EXEC: that halved the rate) in which a counter is raised
after every 100 jobs. A late reply is waited for on the connection that sent the batch (as in
``capacity.brokers.redis``: a new connection could be served before the old one's buffered
commands); unanswered within the retry time, the batch's jobs are in doubt and not sent again.
Redis runs a connection's commands in order, so after a broken connection the
counter says how many jobs landed, give or take the next 100, which their hashes or the queue's
events stream decide. The rest is sent again; a job that cannot be told
(its event trimmed and its hash removed by a worker since) is reported in doubt, never sent twice.
A job Redis refuses (an error reply) is not logged and ends the run. redis-py's own retries are off (a retried pipeline
after a timeout would be a second batch).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from capacity.brokers import Broker, BrokerOptions, Payload, QueueDepth, SendFailed
from capacity.brokers._retry import attempts
from capacity.brokers.messages import Splice
from capacity.brokers.redis import MARKER_TTL_S, Late, Unsent, claim_start, exchange_patiently, redis_client
from capacity.errors import BrokerError, InputError

DEFAULT_PREFIX = "bull"
# the keys each script takes, in order (bullmq.scripts.Scripts.addStandardJob and siblings)
_SCRIPT_KEYS = {
    "addStandardJob": ("wait", "paused", "meta", "id", "completed", "delayed", "active", "events", "marker"),
    "addPrioritizedJob": ("marker", "meta", "id", "prioritized", "delayed", "completed", "active", "events", "pc"),
    "addDelayedJob": ("marker", "meta", "id", "delayed", "completed", "events"),
}
_ID_WIDTH = 36  # our ids are UUID-shaped
_COUNTER_STEP = 100  # the batch's counter is raised after every 100 jobs (1% more commands)
_TEMPLATE_ID = "0" * _ID_WIDTH
_TEMPLATE_TIMESTAMP = 0x7FFF_FFFF_FFFF  # msgpack packs it as uint64: 0xcf + 8 bytes, like any ms epoch


def _script_source(name: str) -> str:
    """The Lua source the official bullmq package ships for ``name`` (its own table of files)."""
    from importlib import resources

    from bullmq.redis_connection import SCRIPT_DEFINITIONS

    source: str = (resources.files("bullmq") / "commands" / SCRIPT_DEFINITIONS[name]).read_text(encoding="utf-8")
    return source


def _pack(commands: list[Any], connection: Any) -> Iterator[list[bytes]]:
    """A pipeline's commands in Redis's protocol, packed by redis-py for ``connection``, a step of
    jobs at a time: sent as each is packed, Redis runs the first jobs' scripts while the next
    are packed (it is the slower side: a burst waited on it half its time)."""
    step = _COUNTER_STEP + 1  # the jobs and their counter's INCRBY
    for start in range(0, len(commands), step):
        yield connection.pack_commands(commands[start : start + step])


@dataclass(frozen=True)
class JobTemplate:
    """The data object of every job of a batch (BullMQ jobs carry one JSON object, ``data``)."""

    name: str

    def render(
        self,
        task_ids: Sequence[str],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        now: datetime,
        per_task: dict[str, Sequence[str]] | None = None,
    ) -> list[str]:
        if args:
            raise InputError("BullMQ jobs take one data object: give --kwargs or a template's kwargs, not args")
        data = json.dumps(kwargs, separators=(",", ":"), allow_nan=False)
        if per_task:
            return Splice.of(data).fill(per_task, len(task_ids))
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
        self._client = redis_client(
            url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=0, retry=no_retry
        )
        try:
            seconds, micros = self._client.time()
        except self._errors as exc:
            raise BrokerError(f"cannot reach broker {self.safe_url}: {exc}") from None
        # the events stream's ids are the server's milliseconds: how far its clock is from ours
        self._clock_offset_ms = round(int(seconds) * 1000 + int(micros) / 1000 - time.time() * 1000)
        self.prefix = options.prefix or DEFAULT_PREFIX
        self.job_options: dict[str, Any] = dict(options.job_options)
        self.keys: dict[str, str] = QueueKeys(self.prefix).getKeys(options.queue)
        self._job_class = Job
        # Scripts.addJobArgs and encodeOpts read only ``keys``: the rest of Scripts (its async
        # connection) is not needed to pack arguments
        self._scripts = Scripts.__new__(Scripts)
        self._scripts.keys = self.keys
        self._seq = 0
        self._shas: dict[str, str] = {}
        self.task = "job"
        self._template: tuple[bytes, int, int, bytes] | None = None

    def claim_start(self, run_id: str, proposed: float) -> float | None:
        return claim_start(self._client, run_id, proposed, self._errors)

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
        self._template = None
        if priority is not None:
            self.job_options["priority"] = priority
        if countdown_s:
            self.job_options["delay"] = round(countdown_s * 1000)
        try:
            # BullMQ's own packer, once, before anything is sent: options it cannot pack are the
            # user's input (it raised "subsection not found" deep in a batch before)
            self.job_arguments("capacity-check", "{}", 0)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            shown = json.dumps(self.job_options)[:200]
            raise InputError(f"--job-options {shown}: BullMQ cannot take them: {exc}") from None
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
        return [packed, data_json, opts, self._last_argument(timestamp_ms)]

    def _last_argument(self, timestamp_ms: int) -> int:
        """The script's last ARGV: addStandardJob and addPrioritizedJob get the job's timestamp,
        addDelayedJob its delay (as bullmq.scripts.Scripts.addJob passes them)."""
        return int(self.job_options.get("delay") or 0) if self.script_name() == "addDelayedJob" else timestamp_ms

    def _splicer(self) -> tuple[bytes, int, int, bytes]:
        """The template job's packed arguments, where its id and timestamp sit in them, and its
        packed options. The packed arguments do not hold the data (a separate ARGV), so one
        template serves every job of the run."""
        if self._template is None:
            packed, _, opts, _ = self.job_arguments(_TEMPLATE_ID, "{}", _TEMPLATE_TIMESTAMP)
            assert isinstance(packed, bytes) and isinstance(opts, bytes)
            id_at = packed.index(_TEMPLATE_ID.encode())
            stamp_at = packed.index(b"\xcf" + _TEMPLATE_TIMESTAMP.to_bytes(8, "big"))
            self._template = (packed, id_at, stamp_at, opts)
        return self._template

    # --- sending --------------------------------------------------------------------------------------------

    def _script_sha(self, name: str) -> str:
        if name not in self._shas:
            self._shas[name] = str(self._client.script_load(_script_source(name)))
        return self._shas[name]

    def _marker(self, seq: int) -> str:
        return f"capacity:sent:{self.options.run_id}:{seq}"

    def send_batch(self, task_ids: Sequence[str], payloads: Sequence[Payload]) -> None:
        if not payloads:
            return
        pending = list(zip(task_ids, payloads, strict=True))
        accepted: list[str] = []
        unknown = False  # a pipeline broke mid-way: a prefix of ``pending`` may have landed
        counter, since_ms = "", 0
        last_error: BaseException | None = None
        patience = time.monotonic() + self.options.retry_for_s
        for _attempt in attempts(self.options.retry_for_s, self.options.stop):
            try:
                if unknown:
                    landed = self._landed(pending, counter, since_ms)
                    if landed is None:
                        break  # one job's evidence is gone (event trimmed, hash removed): in doubt
                    accepted += [i for i, _ in pending[:landed]]
                    pending, unknown = pending[landed:], False
                    if not pending:
                        return
                self._seq += 1
                counter = self._marker(self._seq)
                since_ms = round(time.time() * 1000) + self._clock_offset_ms - 1000
                name = self.script_name()
                sha = self._script_sha(name)
                keys = [self.keys[k] for k in _SCRIPT_KEYS[name]]
                pipe = self._client.pipeline(transaction=False)
                self._add_jobs(pipe, sha, keys, counter, [i for i, _ in pending], [d for _, d in pending])
                pipe.expire(counter, MARKER_TTL_S)
                commands = [args for args, _ in pipe.command_stack]
                unknown = True
                pack = functools.partial(_pack, commands)
                replies = exchange_patiently(self._client, pack, len(commands), patience, self.options.stop)[:-1]
                # the jobs' replies, without the counter's (one after every STEP jobs)
                results = [r for i, r in enumerate(replies) if (i + 1) % (_COUNTER_STEP + 1)]
                unknown = False
            except Late:
                # sent, unanswered: the jobs may still be added, so they are not sent again
                raise SendFailed(
                    f"broker {self.safe_url} did not answer {len(pending)} jobs within {self.options.retry_for_s:g} s",
                    accepted=accepted,
                    in_doubt=[i for i, _ in pending],
                ) from None
            except Unsent as exc:  # a pipeline is not atomic: a prefix may have arrived whole
                last_error = exc.__cause__
                continue
            except self._errors as exc:
                last_error = exc
                continue
            refused = [(item, r) for item, r in zip(pending, results, strict=False) if isinstance(r, Exception)]
            accepted += [item[0] for item, r in zip(pending, results, strict=False) if not isinstance(r, Exception)]
            if not refused:
                return
            pending = [item for item, _ in refused]
            if all("NOSCRIPT" in str(r) for _, r in refused):
                self._shas = {}  # the server restarted without its script cache: load and send the rest
                continue
            reason = " ".join(str(refused[0][1]).split())
            raise SendFailed(f"{self.safe_url} refused {len(refused)} jobs: {reason}", accepted=accepted, refused=True)
        raise SendFailed(
            f"broker {self.safe_url} unreachable for {self.options.retry_for_s:g} s: {last_error}",
            accepted=accepted,
            in_doubt=[i for i, _ in pending] if unknown else [],
        )

    def _landed(self, pending: list[tuple[str, Payload]], counter: str, since_ms: int) -> int | None:
        """How many of the pending jobs landed before the connection broke.

        Redis runs one connection's commands in order, and the batch's counter is raised by
        STEP after every STEP jobs, so a counter at c says jobs 1..c landed and jobs past c+STEP
        did not. In between, the landed ones are a prefix: up to the last job whose hash exists
        or whose added/waiting/delayed event is in the queue's events stream, read from the newest
        entry back until the event of a job known to have landed (or the batch's start). Where the
        stream was trimmed past that, only a worker could have removed their hashes: with no
        worker connected the others did not land, and with one they are in doubt (None)."""
        client: Any = self._client
        count = int(client.get(counter) or 0)
        if count >= len(pending):
            return len(pending)
        window = [job_id for job_id, _ in pending[count : count + _COUNTER_STEP]]
        pipe = client.pipeline(transaction=False)
        for job_id in window:
            pipe.exists(self.keys[""] + job_id)
        known = max((i + 1 for i, hit in enumerate(pipe.execute()) if hit), default=0)
        if known == len(window):
            return count + known
        anchor = window[known - 1] if known else (pending[count - 1][0] if count else None)
        position = {job_id: i for i, job_id in enumerate(window)}
        landing = (b"added", b"waiting", b"delayed")
        newest = "+"
        while True:
            entries = client.xrevrange(self.keys["events"], max=newest, min="-", count=10_000)
            if newest != "+":
                entries = entries[1:]
            if not entries:
                break
            for entry_id, fields in entries:
                job = fields.get(b"jobId", b"").decode()
                if job in position and position[job] >= known and fields.get(b"event") in landing:
                    return count + position[job] + 1  # the newest landed one: the prefix ends there
                if (anchor is not None and job == anchor) or int(entry_id.split(b"-")[0]) < since_ms:
                    return count + known  # back before them: none of the rest landed
            newest = entries[-1][0].decode()
        return count + known if not self.consumers() else None

    def _add_jobs(
        self, pipe: Any, sha: str, keys: list[str], counter: str, task_ids: Sequence[str], payloads: Sequence[Payload]
    ) -> None:
        packed, id_at, stamp_at, opts = self._splicer()
        now_ms = round(time.time() * 1000)
        timestamp = now_ms.to_bytes(8, "big")
        last = str(self._last_argument(now_ms)).encode()
        head = (b"EVALSHA", sha.encode(), str(len(keys)).encode(), *(k.encode() for k in keys))
        encoded: dict[Payload, bytes] = {}
        counter_key, step, since_step = counter.encode(), str(_COUNTER_STEP).encode(), 0
        execute = pipe.execute_command
        id_end, stamp_start, stamp_end = id_at + _ID_WIDTH, stamp_at + 1, stamp_at + 9
        for task_id, data in zip(task_ids, payloads, strict=True):
            if len(task_id) != _ID_WIDTH:
                raise InputError(f"job id {task_id!r}: expected {_ID_WIDTH} characters")
            data_bytes = encoded.get(data)
            if data_bytes is None:
                data_bytes = encoded[data] = data.encode() if isinstance(data, str) else data
            spliced = packed[:id_at] + task_id.encode() + packed[id_end:stamp_start] + timestamp + packed[stamp_end:]
            execute(*head, spliced, data_bytes, opts, last)
            since_step += 1
            if since_step == _COUNTER_STEP:
                execute(b"INCRBY", counter_key, step)
                since_step = 0
        if since_step:
            execute(b"INCRBY", counter_key, str(since_step).encode())

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
        return len(self.worker_names())

    def worker_names(self) -> list[str]:
        """The Redis client names of the Workers on this queue (``consumers`` counts them)."""
        import base64

        name = f"{self.prefix}:{base64.b64encode(self.options.queue.encode()).decode()}"
        try:
            clients = self._client.client_list()
        except self._errors as exc:
            raise BrokerError(f"cannot list clients on {self.safe_url}: {exc}") from None
        names = [str(c.get("name", "")) for c in clients]
        return sorted(n for n in names if n == name or n.startswith(name + ":w:"))

    def oldest_wait_s(self) -> float | None:
        """How long the oldest waiting job has waited: BullMQ adds to the left of the wait list and
        its workers take from the right, and each job's hash holds when it was added (ms)."""
        try:
            oldest = self._client.lindex(self.keys["wait"], -1)
            if oldest is None:
                return 0.0
            added = self._client.hget(self.keys[""] + oldest.decode(), "timestamp")
            server_s, micros = self._client.time()
        except self._errors as exc:
            raise BrokerError(f"cannot read the oldest job on {self.safe_url}: {exc}") from None
        if added is None:
            return None
        return max(0.0, int(server_s) + int(micros) / 1e6 - int(added) / 1000)

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
