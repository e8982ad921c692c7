"""RabbitMQ (AMQP 0-9-1), as Celery publishes on it through kombu and py-amqp: one
``basic.publish`` per task on the exchange and routing key Celery chose (for ``-Q photos``: the
default exchange, routing key ``photos``, a durable queue declared by Celery itself), persistent
delivery, **publisher confirms**.

Whether a task landed is what the broker confirmed: a batch is written at once, then its
``basic.ack``/``basic.nack`` are read (acks with ``multiple`` cover every earlier tag). A task acked
is on the queue (RabbitMQ confirms a persistent message on a durable queue once it is on disk); a
nack is a refusal (a full queue with ``x-max-length`` and ``reject-publish``); a task neither acked
nor nacked when the connection broke, or when no answer came within the retry time, is in doubt
and never sent again by us. Before a batch is written, an unreachable broker is retried (nothing
of that batch can have landed).

Frames are packed here rather than by py-amqp's ``basic_publish``: py-amqp serializes every
message's properties table in Python (~60 us for Celery's 20 headers), 15,000 tasks/s at best;
the message, exchange, routing key and properties are still Celery's own (captured from
``send_task`` on the real channel), and only the parts that vary per task (id, body, reprs) are
put into frames laid out as py-amqp lays them (a test compares the bytes with py-amqp's writer).
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import threading
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from capacity.brokers import Broker, BrokerOptions, Payload, QueueDepth, SendFailed
from capacity.brokers._retry import attempts
from capacity.brokers.messages import Splice, celery_body, celery_reprs
from capacity.errors import BrokerError, InputError

_FRAME_END = b"\xce"
_BASIC = 60
_PUBLISH = 40
#: the headers that differ between tasks of a batch, written last in the table (a table's order
#: carries no meaning in AMQP, and Celery reads headers by name)
_PER_TASK = ("id", "root_id")
_PER_BATCH = ("argsrepr", "kwargsrepr", "eta")
_ID_PLACEHOLDER = b"\x00capacity-task-id-placeholder-36byte"  # 36 bytes, as every id new_ids makes
#: how old the management API's counts may be: RabbitMQ's collect_statistics_interval (5 s) and
#: a margin
STATS_LAG_S = 5.5
#: RabbitMQ's default max_message_size (128 MiB since 3.8)
RABBITMQ_MAX_MESSAGE_BYTES = 134_217_728


def _shortstr(value: bytes) -> bytes:
    if len(value) > 255:
        raise InputError(f"{value[:40]!r}...: AMQP short strings (queue names, task ids) take at most 255 bytes")
    return bytes((len(value),)) + value


def _header_item(key: str, value: str) -> bytes:
    """A table entry holding a string, as py-amqp writes one: key, ``S``, 32-bit length, UTF-8."""
    raw = value.encode("utf-8", "surrogatepass")
    return _shortstr(key.encode()) + b"S" + struct.pack(">I", len(raw)) + raw


@dataclass(frozen=True)
class FrameTemplate:
    """A captured Celery publish, cut so that each task's frames are a few joins: the method
    frame, the properties around the headers table and the correlation id, and the headers that
    are the same for every task."""

    channel_id: int
    frame_max: int
    method_frame: bytes
    flags: bytes
    before_headers: bytes
    between: bytes  # from after the headers table to the correlation id
    after: bytes
    fixed_items: bytes
    countdown_s: float | None

    def render(
        self,
        task_ids: Sequence[str],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        now: datetime,
        per_task: dict[str, Sequence[str]] | None = None,
    ) -> list[bytes]:
        """The frames of each task's ``basic.publish`` (method, content header, body)."""
        n = len(task_ids)
        serialized = celery_body(args, kwargs)
        argsrepr, kwargsrepr = celery_reprs(args, kwargs)
        eta = (now + timedelta(seconds=self.countdown_s)).isoformat() if self.countdown_s else None
        if not per_task:
            batch_items = self._batch_items(argsrepr, kwargsrepr, eta)
            frames = self._frames(_ID_PLACEHOLDER.decode(), serialized.encode(), batch_items)
            pieces = frames.split(_ID_PLACEHOLDER)
            out = []
            for task_id in task_ids:
                raw = task_id.encode()
                out.append(
                    raw.join(pieces) if len(raw) == 36 else self._frames(task_id, serialized.encode(), batch_items)
                )
            return out
        bodies = Splice.of(serialized).fill(per_task, n)
        argsreprs = Splice.of(argsrepr).fill(per_task, n)
        kwargsreprs = Splice.of(kwargsrepr).fill(per_task, n)
        return [
            self._frames(task_ids[i], bodies[i].encode(), self._batch_items(argsreprs[i], kwargsreprs[i], eta))
            for i in range(n)
        ]

    @staticmethod
    def _batch_items(argsrepr: str, kwargsrepr: str, eta: str | None) -> bytes:
        items = _header_item("argsrepr", argsrepr) + _header_item("kwargsrepr", kwargsrepr)
        return items + (_header_item("eta", eta) if eta else b"")

    def _frames(self, task_id: str, body: bytes, batch_items: bytes) -> bytes:
        table = self.fixed_items + _header_item("id", task_id) + _header_item("root_id", task_id) + batch_items
        header = b"".join(
            (
                struct.pack(">HHQ", _BASIC, 0, len(body)),
                self.flags,
                self.before_headers,
                struct.pack(">I", len(table)),
                table,
                self.between,
                _shortstr(task_id.encode()),
                self.after,
            )
        )
        parts = [self.method_frame, struct.pack(">BHI", 2, self.channel_id, len(header)), header, _FRAME_END]
        chunk = self.frame_max - 8
        for start in range(0, len(body), chunk):
            piece = body[start : start + chunk]
            parts += (struct.pack(">BHI", 3, self.channel_id, len(piece)), piece, _FRAME_END)
        return b"".join(parts)


def frame_template(
    message: Any, exchange: str, routing_key: str, channel_id: int, frame_max: int, countdown_s: float | None
) -> FrameTemplate:
    """Cut py-amqp's ``message`` (as Celery's producer prepared it) into a FrameTemplate: every
    property serialized by py-amqp itself, the headers table and correlation id left open."""
    from amqp.basic_message import Message
    from amqp.serialization import dumps

    args = dumps("Bssbb", (0, exchange, routing_key, False, False))
    method = struct.pack(">HH", _BASIC, _PUBLISH) + args
    method_frame = struct.pack(">BHI", 1, channel_id, len(method)) + method + _FRAME_END
    properties = dict(message.properties)
    headers = dict(properties.get("application_headers") or {})
    # eta is written per batch only for a countdown; otherwise it stays Celery's None
    for key in (*_PER_TASK, *(_PER_BATCH if countdown_s else _PER_BATCH[:2])):
        headers.pop(key, None)
    fixed_items = dumps("F", [headers])[4:]  # py-amqp's own table, without its length
    flag_bits = 0
    pieces: list[list[bytes]] = [[], [], []]
    part = 0
    for index, (key, kind) in enumerate(Message.PROPERTIES):
        if key in ("application_headers", "correlation_id"):
            flag_bits |= 1 << (15 - index)
            part += 1
            continue
        value = properties.get(key)
        if value is not None:
            flag_bits |= 1 << (15 - index)
            pieces[part].append(dumps(kind, [value]))
    return FrameTemplate(
        channel_id=channel_id,
        frame_max=frame_max,
        method_frame=method_frame,
        flags=struct.pack(">H", flag_bits),
        before_headers=b"".join(pieces[0]),
        between=b"".join(pieces[1]),
        after=b"".join(pieces[2]),
        fixed_items=fixed_items,
        countdown_s=countdown_s,
    )


def capture_publish(
    channel: Any,
    exists: bool,
    task: str,
    queue: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    priority: int | None,
    countdown_s: float | None,
) -> tuple[Any, str, str]:
    """Celery's ``send_task`` on the real kombu channel (which declares the queue as Celery does),
    with ``basic_publish`` replaced so the prepared message is kept instead of sent."""
    from celery import Celery
    from kombu import Producer

    app = Celery("capacity-inject", set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], task_protocol=2)
    captured: list[tuple[Any, str, str]] = []

    def publish(message: Any, exchange: str = "", routing_key: str = "", *_: Any, **__: Any) -> None:
        captured.append((message, exchange, routing_key))

    options: dict[str, Any] = {"queue": queue, "task_id": "capacity-capture", "producer": Producer(channel)}
    if exists:
        # declared already, perhaps with arguments (x-max-length, a quorum type) that Celery's
        # bare declaration would contradict (PRECONDITION_FAILED): leave it as it is
        options["declare"] = []
    original = channel.basic_publish
    channel.basic_publish = publish
    try:
        if priority is not None:
            options["priority"] = priority
        if countdown_s:
            options["countdown"] = countdown_s
        app.send_task(task, args=list(args) or None, kwargs=kwargs, **options)
    except TypeError as exc:
        raise InputError(f"task arguments cannot be serialized as JSON: {exc}") from None
    except Exception as exc:  # py-amqp's channel errors: access refused, a queue declared otherwise
        raise BrokerError(f"cannot declare queue {queue!r} on the broker: {' '.join(str(exc).split())}") from None
    finally:
        channel.basic_publish = original
    if len(captured) != 1:
        raise InputError(f"Celery routed the task to {len(captured)} queues; expected exactly one")
    return captured[0]


class _Confirms:
    """The confirms of one batch: tags ``first`` .. ``first + n - 1``; 1 acked, 2 nacked."""

    def __init__(self, first: int, n: int) -> None:
        self.first = first
        self.status = bytearray(n)
        self.low = 0  # every index below is decided
        self.undecided = n

    def mark(self, tag: int, multiple: bool, code: int) -> None:
        index = tag - self.first
        if index < 0:
            return
        index = min(index, len(self.status) - 1) if multiple else index
        if index >= len(self.status):
            return
        for i in range(self.low if multiple else index, index + 1):
            if not self.status[i]:
                self.status[i] = code
                self.undecided -= 1
        if multiple:
            self.low = max(self.low, index + 1)

    def ids(self, task_ids: Sequence[str], code: int) -> list[str]:
        return [task_ids[i] for i, s in enumerate(self.status) if s == code]


class AMQPBroker(Broker):
    name = "RabbitMQ"
    max_batch = 1000
    max_message_bytes = RABBITMQ_MAX_MESSAGE_BYTES
    supports_priority = True

    def __init__(self, url: str, options: BrokerOptions) -> None:
        super().__init__(url, options)
        try:
            import amqp
            from kombu import Connection
        except ImportError as exc:  # pragma: no cover - dependencies of celery
            raise BrokerError(f"RabbitMQ support needs kombu and amqp: pip install celery ({exc})") from None
        self._amqp = amqp
        self._errors: tuple[type[BaseException], ...] = (
            OSError,
            amqp.exceptions.ConnectionError,
            amqp.exceptions.RecoverableConnectionError,
        )
        transport = {"connect_timeout": 5, **options.transport_options}
        self._kombu = Connection(url, transport_options=transport, connect_timeout=5)
        self._connect(first=True)
        self._template_args: tuple[Any, ...] | None = None
        self._watch: Any = None
        self._watch_channel: Any = None
        self._watch_lock = threading.Lock()
        self._management: bool | None = None
        self.template_: FrameTemplate | None = None

    # --- connection ---------------------------------------------------------------------------------------

    def _connect(self, first: bool = False) -> None:
        """(Re)open the connection, the kombu channel Celery's producer uses, a channel in confirm
        mode for publishing and one for reading depths."""
        try:
            self._kombu.ensure_connection(max_retries=1, interval_start=0.1, timeout=5)
            self._channel = self._kombu.default_channel
            self._conn: Any = self._kombu.connection
            self._publisher: Any = self._conn.channel()
            self._publisher.confirm_select()
            self._publisher.events["basic_ack"].add(self._on_ack)
            self._publisher.events["basic_nack"].add(self._on_nack)
            self._next_tag = 1
        except Exception as exc:
            if first:
                self._kombu.release()
            raise BrokerError(
                f"cannot reach broker {self.safe_url}: {' '.join(str(exc).split()) or type(exc).__name__}"
            ) from None
        self._broken = False
        self._confirms: _Confirms | None = None

    def _on_ack(self, tag: int, multiple: bool) -> None:
        if self._confirms is not None:
            self._confirms.mark(tag, multiple, 1)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        if self._confirms is not None:
            self._confirms.mark(tag, multiple, 2)

    @property
    def channel(self) -> Any:
        return self._channel

    # --- messages -----------------------------------------------------------------------------------------

    def template(
        self,
        task: str,
        queue: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        priority: int | None,
        countdown_s: float | None,
    ) -> FrameTemplate:
        exists = self._declare_ok(queue) is not None
        message, exchange, routing_key = capture_publish(
            self._channel, exists, task, queue, args, kwargs, priority, countdown_s
        )
        self._template_args = (message, exchange, routing_key, countdown_s)
        self.template_ = self._frame_template()
        return self.template_

    def _frame_template(self) -> FrameTemplate:
        assert self._template_args is not None
        message, exchange, routing_key, countdown_s = self._template_args
        return frame_template(
            message, exchange, routing_key, self._publisher.channel_id, self._conn.frame_max, countdown_s
        )

    def message_size(self, payload: str | bytes) -> int:
        return len(payload)

    # --- sending ------------------------------------------------------------------------------------------

    def send_batch(self, task_ids: Sequence[str], payloads: Sequence[Payload]) -> None:
        if not payloads:
            return
        data = b"".join(p if isinstance(p, bytes) else p.encode() for p in payloads)
        last_error: BaseException | None = None
        for _ in attempts(self.options.retry_for_s, self.options.stop):
            try:
                if self._broken:
                    self._reconnect()
                break
            except BrokerError as exc:
                last_error = exc
        else:
            raise SendFailed(f"broker {self.safe_url} unreachable for {self.options.retry_for_s:g} s: {last_error}")
        if self._broken:
            raise SendFailed(f"broker {self.safe_url} unreachable for {self.options.retry_for_s:g} s: {last_error}")
        confirms = _Confirms(self._next_tag, len(task_ids))
        self._next_tag += len(task_ids)
        self._confirms = confirms
        error = ""
        try:
            self._write(data)
            self._await(confirms)
        except self._errors as exc:
            self._broken = True
            error = " ".join(str(exc).split()) or type(exc).__name__
        except self._amqp.exceptions.AMQPError as exc:  # the server closed the channel (a 4xx reply)
            self._broken = True
            error = " ".join(str(exc).split()) or type(exc).__name__
        finally:
            self._confirms = None
        accepted = confirms.ids(task_ids, 1)
        if len(accepted) == len(task_ids):
            return
        refused = confirms.ids(task_ids, 2)
        in_doubt = confirms.ids(task_ids, 0)
        if in_doubt and not error:
            error = f"no confirm within {self.options.retry_for_s:g} s"
            self._broken = True  # late confirms would be counted against the next batch's tags
        if refused:
            raise SendFailed(
                f"{self.safe_url} refused {len(refused)} of {len(task_ids)} messages (a full queue: "
                f"x-max-length with overflow reject-publish?){'; ' + error if error else ''}",
                accepted=accepted,
                in_doubt=in_doubt,
                refused=True,
            )
        raise SendFailed(
            f"broker {self.safe_url} did not confirm {len(in_doubt)} of {len(task_ids)} messages: {error}",
            accepted=accepted,
            in_doubt=in_doubt,
        )

    def _reconnect(self) -> None:
        """A new connection after a broken one. The frames already rendered carry the publishing
        channel's number, which the same opening order gives again (checked)."""
        with contextlib.suppress(Exception):  # the old connection is gone: closing it can only fail
            self._kombu.close()
        self._connect()
        if self.template_ is not None and self._publisher.channel_id != self.template_.channel_id:
            self._broken = True
            raise BrokerError(
                f"the publishing channel is {self._publisher.channel_id} after reconnecting, "
                f"not {self.template_.channel_id}"
            )

    def _write(self, data: bytes) -> None:
        """Write ``data`` to the socket a second at a time: a stalled broker (SIGSTOP) is waited
        for up to the retry time, and a stop (Ctrl-C) is seen within a second."""
        sock = self._conn.transport.sock
        previous = sock.gettimeout()
        view = memoryview(data)
        deadline = time.monotonic() + self.options.retry_for_s
        stop = self.options.stop
        sock.settimeout(1.0)
        try:
            while view:
                try:
                    sent = sock.send(view)
                except TimeoutError:
                    sent = 0
                view = view[sent:]
                if view and (time.monotonic() >= deadline or (stop is not None and stop.is_set())):
                    raise TimeoutError(f"the broker took only part of a batch within {self.options.retry_for_s:g} s")
        finally:
            sock.settimeout(previous)

    def _await(self, confirms: _Confirms) -> None:
        """Read frames until every tag of the batch is acked or nacked, the retry time is spent or
        a stop is asked for (the undecided ones are then in doubt)."""
        deadline = time.monotonic() + self.options.retry_for_s
        stop = self.options.stop
        while confirms.undecided:
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                return
            try:
                self._conn.drain_events(timeout=1.0)
            except TimeoutError:
                continue

    # --- reading ------------------------------------------------------------------------------------------

    def _declare_ok(self, queue: str | None = None) -> Any:
        """A passive declare of the queue: (ready messages, consumers) or None when it does not
        exist. On a connection of its own: the monitor asks from its thread while batches are
        confirmed on the publishing one (a py-amqp connection is not shared between threads)."""
        amqp = self._amqp
        with self._watch_lock:
            try:
                if self._watch is None:
                    self._watch = self._kombu.clone()
                    self._watch.ensure_connection(max_retries=1, interval_start=0.1, timeout=5)
                    self._watch_channel = self._watch.connection.channel()
                elif not self._watch_channel.is_open:
                    self._watch_channel = self._watch.connection.channel()  # a NotFound closed the last
                return self._watch_channel.queue_declare(queue or self.options.queue, passive=True)
            except amqp.exceptions.NotFound:
                return None
            except Exception as exc:  # the connection broke: a new one next time
                if self._watch is not None:
                    with contextlib.suppress(Exception):
                        self._watch.release()
                self._watch = None
                detail = " ".join(str(exc).split()) or type(exc).__name__
                raise BrokerError(f"cannot read queue depth from {self.safe_url}: {detail}") from None

    def depth(self) -> QueueDepth:
        ok = self._declare_ok()
        if ok is None:  # no such queue (yet): nothing on it
            return QueueDepth(visible=0, in_flight=0)
        ready = int(ok.message_count)
        unacked = self._unacked()
        # where the API answers, a count not yet there (a new queue's statistics) is unknown for now
        return QueueDepth(visible=ready, in_flight=unacked, lag_s=STATS_LAG_S if self._management else 0.0)

    def consumers(self) -> int | None:
        ok = self._declare_ok()
        return int(ok.consumer_count) if ok is not None else 0

    def _unacked(self) -> int | None:
        """Messages delivered to workers and not yet acknowledged: AMQP does not say, RabbitMQ's
        management API does (``messages_unacknowledged``, refreshed every 5 s by default); None
        when it is not known. A broker whose API cannot be reached is not asked again, and
        ``notes`` says so."""
        if self._management is False:
            return None
        base, user, password = management_url(self.url)
        vhost = quote(_vhost(self.url), safe="")
        request = urllib.request.Request(f"{base}/api/queues/{vhost}/{quote(self.options.queue, safe='')}")
        request.add_header("Authorization", "Basic " + b64encode(f"{user}:{password}".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                value = json.load(response).get("messages_unacknowledged")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # a queue just declared is not in the statistics yet: unknown for now
                self._management = True
                return None
            self._no_management(base, f"it answered HTTP {exc.code}")
            return None
        except (OSError, ValueError) as exc:
            self._no_management(base, " ".join(str(exc).split()) or type(exc).__name__)
            return None
        self._management = True
        # a queue's statistics appear a few seconds after it is declared
        return value if isinstance(value, int) else None

    def _no_management(self, base: str, why: str) -> None:
        if self._management is None:
            self.notes.append(
                f"RabbitMQ's management API at {base} cannot be read ({why}): tasks taken by workers and "
                "not yet acknowledged are not counted, so 'drained' means only that none is waiting "
                "(enable the rabbitmq_management plugin, or set CAPACITY_RABBITMQ_MANAGEMENT to its URL)"
            )
        self._management = False

    def registered_tasks(self, timeout_s: float = 1.0) -> dict[str, list[str]] | None:
        from capacity.brokers import celery_registered

        return celery_registered(self.url, self.safe_url, timeout_s, self._errors)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection: releasing it can only fail
            self._kombu.release()
        if self._watch is not None:
            with contextlib.suppress(Exception):
                self._watch.release()


def _vhost(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def management_url(url: str) -> tuple[str, str, str]:
    """RabbitMQ's management API for the broker ``url``: ``$CAPACITY_RABBITMQ_MANAGEMENT`` when
    set, else port 15672 on the broker's host; with the broker's own credentials (guest/guest
    when the URL has none, as py-amqp)."""
    parts = urlsplit(url)
    given = os.environ.get("CAPACITY_RABBITMQ_MANAGEMENT")
    user = unquote(parts.username or "guest")
    password = unquote(parts.password or "guest")
    if given:
        return str(given).rstrip("/"), user, password
    host = parts.hostname or "localhost"
    scheme = "https" if parts.scheme == "amqps" else "http"
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:15672", user, password
