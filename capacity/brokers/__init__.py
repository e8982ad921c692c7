"""Brokers: a small interface (send a batch, read queue depth, close), one module per broker,
found by URL scheme through one registry. Rate control, batching and logging live above it."""

from __future__ import annotations

import difflib
import importlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from capacity.errors import BrokerError, InputError
from capacity.secrets import redact_url

T = TypeVar("T")

# scheme -> "module:Class"; imported lazily so a Redis user never imports boto3 and vice versa.
# Other protocols than Celery's on the same URL schemes are found by (protocol, scheme).
PROTOCOLS: dict[tuple[str, str], str] = {
    ("bullmq", "redis"): "capacity.brokers.bullmq:BullMQBroker",
    ("bullmq", "rediss"): "capacity.brokers.bullmq:BullMQBroker",
    ("bullmq", "redis+socket"): "capacity.brokers.bullmq:BullMQBroker",
}
REGISTRY: dict[str, str] = {
    "redis": "capacity.brokers.redis:RedisBroker",
    "rediss": "capacity.brokers.redis:RedisBroker",
    "redis+socket": "capacity.brokers.redis:RedisBroker",
    "sqs": "capacity.brokers.sqs:SQSBroker",
    "amqp": "capacity.brokers.amqp:AMQPBroker",
    "amqps": "capacity.brokers.amqp:AMQPBroker",
    "pyamqp": "capacity.brokers.amqp:AMQPBroker",
}

#: what a broker sends for one task: text (kombu's JSON message, a BullMQ job's data) or, on
#: RabbitMQ, the publish's frames
Payload = str | bytes


@dataclass(frozen=True)
class QueueDepth:
    """Messages waiting (visible) and taken by workers but not yet acknowledged (in flight); for
    brokers that keep them apart, jobs scheduled for later (delayed) and failed ones."""

    visible: int
    in_flight: int | None
    delayed: int | None = None
    failed: int | None = None
    #: how old ``in_flight`` may be (RabbitMQ's management API refreshes it every 5 s): the queue
    #: counts as drained only after it has looked drained for this long; with a lag, an
    #: ``in_flight`` of None is a count not known yet (not drained), without one a count the
    #: broker never gives (drained on what is waiting)
    lag_s: float = 0.0


@dataclass(frozen=True)
class BrokerOptions:
    """What a broker needs beyond its URL; transport options are passed to kombu as Celery would."""

    queue: str = "celery"
    transport_options: dict[str, Any] = field(default_factory=dict)
    retry_for_s: float = 30.0
    threads: int = 8
    run_id: str = ""
    #: the job protocol on that broker: "celery" (kombu's messages) or "bullmq" (BullMQ's jobs)
    protocol: str = "celery"
    #: BullMQ: the key prefix of the user's queues, and the job options their producer sets
    prefix: str | None = None
    job_options: dict[str, Any] = field(default_factory=dict)
    #: set by Ctrl-C/SIGTERM: retries of an outage end at once (the run then ends as interrupted)
    stop: threading.Event | None = field(default=None, compare=False)


class SendFailed(BrokerError):
    """A batch could not be fully sent. ``accepted`` ids are on the broker; ``in_doubt`` ids may
    or may not be (the connection broke after the request left); the rest were not sent."""

    def __init__(
        self, message: str, accepted: Sequence[str] = (), in_doubt: Sequence[str] = (), refused: bool = False
    ) -> None:
        super().__init__(message)
        self.accepted = list(accepted)
        self.in_doubt = list(in_doubt)
        #: the broker answered with an error (OOM, too large) rather than being out of reach
        self.refused = refused


class Broker(ABC):
    """One broker connection for one queue."""

    name: str = "broker"
    #: how many messages one send_batch call should carry at most
    max_batch: int = 1000
    #: the largest message the broker takes, in bytes (None: no limit worth checking)
    max_message_bytes: int | None = None
    #: how long a consumer's idle poll can stay open at the broker after the consumer stopped
    #: (an SQS long poll outlives its worker and can take the next run's first messages)
    idle_poll_s: float = 0.0
    #: whether Celery's task events travel over this broker (Celery has none on SQS)
    supports_events: bool = True
    #: whether the broker orders messages by priority (kombu's priority steps)
    supports_priority: bool = False

    def __init__(self, url: str, options: BrokerOptions) -> None:
        self.url = url
        self.safe_url = redact_url(url)
        self.options = options
        #: what the run should tell the user about this broker's answers (a count it cannot give)
        self.notes: list[str] = []

    @property
    @abstractmethod
    def channel(self) -> Any:
        """The kombu channel Celery would publish on (used to capture the exact message)."""

    def encode(self, message_json: str) -> Payload:
        """The broker payload for kombu's JSON message (what the transport's ``_put`` sends)."""
        return message_json

    def template(
        self,
        task: str,
        queue: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        priority: int | None,
        countdown_s: float | None,
    ) -> Any:
        """What renders a batch's messages (``.render(task_ids, args, kwargs, now)``): Celery's own
        message, captured once on this broker's kombu channel."""
        from capacity.brokers.messages import capture

        return capture(self.channel, task, queue, args, kwargs, priority, countdown_s)

    @abstractmethod
    def send_batch(self, task_ids: Sequence[str], payloads: Sequence[Payload]) -> None:
        """Put every payload on the queue, or raise SendFailed saying which ones landed."""

    def use_priority(self, priority: int | None) -> None:
        """Send with this priority where the broker orders by priority (kombu's behaviour: a
        broker without priorities ignores it, as Celery's own ``apply_async`` does)."""
        return None

    def consumers(self) -> int | None:
        """How many workers consume the queue now; None where the broker cannot tell."""
        return None

    def claim_start(self, run_id: str, proposed: float) -> float | None:
        """The start instant every shard of ``run_id`` agrees on: the first to ask claims
        ``proposed`` (epoch seconds), the others read it; None where the broker cannot hold a
        value for them (SQS, RabbitMQ: the shards need a given --start-at)."""
        return None

    def registered_tasks(self, timeout_s: float = 1.0) -> dict[str, list[str]] | None:
        """The task names each Celery worker on this broker registered (its answer to Celery's
        ``inspect registered`` broadcast, waited for ``timeout_s``); None where the broker carries
        no broadcast (SQS) or the protocol is not Celery's; an empty dict when no worker answered."""
        return None

    @abstractmethod
    def depth(self) -> QueueDepth:
        """The queue's depth now."""

    def purge(self) -> int:
        """Empty the queue with kombu's own ``queue_purge``; how many messages it removed."""
        try:
            return int(self.channel.queue_purge(self.options.queue) or 0)
        except Exception as exc:  # the transport's own errors: connection refused, access denied
            raise BrokerError(f"cannot purge {self.options.queue} on {self.safe_url}: {exc}") from None

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def celery_inspect(
    url: str, safe_url: str, timeout_s: float, ask: Callable[[Any], T], errors: tuple[type[BaseException], ...] = ()
) -> T:
    """``ask(inspect)`` with Celery's own ``app.control.inspect`` over the broker's pidbox
    broadcast (5 s connection timeouts); a broker out of reach is a BrokerError naming it."""
    from celery import Celery

    app = Celery("capacity-inspect", broker=url, set_as_current=False)
    app.conf.broker_transport_options = {"socket_timeout": 5, "socket_connect_timeout": 5}
    app.conf.broker_connection_timeout = 5
    caught: tuple[type[BaseException], ...] = (*errors, OSError)
    try:
        with app.connection_for_write() as connection:
            return ask(app.control.inspect(timeout=timeout_s, connection=connection))
    except caught as exc:
        raise BrokerError(f"cannot reach broker {safe_url}: {exc}") from None


def celery_registered(
    url: str, safe_url: str, timeout_s: float, errors: tuple[type[BaseException], ...]
) -> dict[str, list[str]]:
    """Celery's ``inspect registered``: each worker's task names (a name may carry its options,
    "add [rate_limit=10/m]": the first word is kept)."""
    replies = celery_inspect(url, safe_url, timeout_s, lambda inspect: inspect.registered() or {}, errors)
    return {worker: [str(name).split(" ", 1)[0] for name in names] for worker, names in replies.items()}


def resolve_broker_url(given: str | None) -> tuple[str, str | None]:
    """The broker URL from --broker, $CAPACITY_BROKER_URL, $CELERY_BROKER_URL, or seed 003's
    environment ($SQS_QUEUE_NAME, $AWS_REGION) meaning ``sqs://``; and the queue
    $SQS_QUEUE_NAME names whenever it is set (seed 003's .env), wherever the URL came from."""
    queue = os.environ.get("SQS_QUEUE_NAME") or None
    for candidate in (given, os.environ.get("CAPACITY_BROKER_URL"), os.environ.get("CELERY_BROKER_URL")):
        if candidate:
            return candidate, queue
    if queue:
        return "sqs://", queue
    raise InputError("no broker: give --broker URL or set CAPACITY_BROKER_URL (or CELERY_BROKER_URL)")


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""


def broker_scheme(url: str) -> str:
    """The URL's scheme, lower case ("" when unparsable): for notes that name a broker's settings."""
    return _scheme(url)


def is_broker_url(url: str) -> bool:
    """Whether ``url`` names a broker this package has (by its scheme)."""
    return _scheme(url) in REGISTRY


def is_redis_url(url: str) -> bool:
    """Whether ``url`` names a Redis server (a broker, a result backend or a probe sink)."""
    return _scheme(url) in ("redis", "rediss", "redis+socket", "unix")


def broker_class(url: str, protocol: str = "celery") -> type[Broker]:
    """The Broker class for the URL's scheme (and protocol); InputError with a did-you-mean, or
    naming what is malformed (a port out of range, an unclosed IPv6 bracket)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # parsed lazily by urllib: a bad port raises here, not deep in a client
    except ValueError as exc:
        raise InputError(f"broker URL {redact_url(url)!r} is malformed: {exc}") from None
    scheme = _scheme(url)
    if scheme not in REGISTRY:
        close = difflib.get_close_matches(scheme, list(REGISTRY), n=1)
        hint = f"; did you mean {close[0]}://?" if close else f"; supported: {', '.join(s + '://' for s in REGISTRY)}"
        raise InputError(f"unsupported broker URL {redact_url(url)!r}{hint}")
    entry = REGISTRY[scheme]
    if protocol != "celery":
        known = sorted({p for p, _ in PROTOCOLS} | {"celery"})
        if protocol not in known:
            close = difflib.get_close_matches(protocol, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"use one of {', '.join(known)}"
            raise InputError(f"--protocol {protocol!r} is unknown; {hint}")
        if (protocol, scheme) not in PROTOCOLS:
            raise InputError(f"--protocol {protocol} runs on Redis, not on {scheme}://")
        entry = PROTOCOLS[(protocol, scheme)]
    module_name, _, class_name = entry.partition(":")
    found: type[Broker] = getattr(importlib.import_module(module_name), class_name)
    return found


def open_broker(url: str, options: BrokerOptions) -> Broker:
    """The broker for the URL's scheme and ``options.protocol``, connected for ``options.queue``."""
    return broker_class(url, options.protocol)(url, options)
