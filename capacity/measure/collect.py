"""``collect``: record Celery task events (received, started, succeeded, failed, revoked) to a
JSON Lines file in the probe's line format, for brokers that carry events (Redis, AMQP; not SQS).
Workers must send events (``celery worker -E`` or ``task_send_sent_event``/``worker_send_task_events``)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from capacity import files
from capacity.brokers import broker_class, is_broker_url, is_redis_url
from capacity.errors import BrokerError, InputError
from capacity.secrets import redact_url

_KINDS = {
    "task-received": "received",
    "task-started": "started",
    "task-succeeded": "succeeded",
    "task-failed": "failed",
    "task-revoked": "revoked",
}


def check_url(url: str) -> None:
    """A URL Celery would fail on deep inside kombu, refused here in one line: malformed (an
    unclosed IPv6 bracket, a port out of range), or a Redis URL redis-py cannot take (a password
    in the user part and in ``?password=`` too). Schemes beyond the broker registry (amqp://)
    are left to Celery."""
    from urllib.parse import parse_qs, urlsplit

    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise InputError(f"broker URL {redact_url(url)!r} is malformed: {exc}") from None
    if is_redis_url(url):
        if parts.password is not None and "password" in parse_qs(parts.query):
            raise InputError(
                f"broker URL {redact_url(url)!r} has two passwords (in the user part and as a query parameter); "
                "keep one"
            )
        from capacity.brokers.redis import redis_client

        redis_client(url)  # builds without connecting: an option redis-py refuses is an InputError


def collect(
    broker_url: str, out: Path, for_s: float | None, stop: threading.Event, ready: threading.Event | None = None
) -> int:
    """Write events until ``for_s`` passes or ``stop`` is set; the number of task events written."""
    check_url(broker_url)
    if is_broker_url(broker_url) and not broker_class(broker_url).supports_events:
        raise InputError("Celery has no events on SQS: use the probe (celery worker --include capacity.probe)")
    from celery import Celery

    app = Celery("capacity-collect", broker=broker_url, set_as_current=False)
    if is_redis_url(broker_url):
        # kombu's Redis transport waits forever by default: rediss:// to a plain Redis hung in the
        # TLS handshake, deaf to Ctrl-C (reads of the event stream are polled, not timed)
        app.conf.broker_transport_options = {"socket_timeout": 5, "socket_connect_timeout": 5}
    written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with files.append(out) as handle:

        def on_event(event: dict[str, Any]) -> None:
            nonlocal written
            kind = _KINDS.get(event.get("type", ""))
            if kind and event.get("uuid"):
                line = {
                    "task_id": event["uuid"],
                    "event": kind,
                    "t": event.get("timestamp"),
                    "host": event.get("hostname"),
                }
                if kind == "failed" and event.get("exception"):
                    line["error"] = str(event["exception"])[:300]  # "TypeError('...')" as Celery sends it
                handle.write(json.dumps(line, separators=(",", ":")) + "\n")
                handle.flush()
                written += 1

        deadline = None if for_s is None else time.monotonic() + for_s
        try:
            with app.connection_for_read() as connection:
                connection.ensure_connection(max_retries=1, timeout=5)
                receiver = app.events.Receiver(connection, handlers={"*": on_event})

                # One long capture, ended from outside: kombu's consume loop checks should_stop
                # at least every second, whereas a capture timeout never fires while worker
                # heartbeats keep arriving.
                def watch() -> None:
                    while not stop.wait(0.2):
                        if deadline is not None and time.monotonic() >= deadline:
                            break
                    receiver.should_stop = True

                def on_iteration() -> None:
                    if ready is not None:
                        ready.set()

                receiver.on_iteration = on_iteration
                watcher = threading.Thread(target=watch, daemon=True)
                watcher.start()
                receiver.capture(limit=None, timeout=None, wakeup=True)
                stop.set()
                watcher.join(5)
        except (OSError, ConnectionError) as exc:
            raise BrokerError(f"cannot reach broker {redact_url(broker_url)}: {exc}") from None
        except Exception as exc:  # kombu's OperationalError and friends
            if type(exc).__name__ in ("OperationalError", "ConnectionError"):
                raise BrokerError(f"cannot reach broker {redact_url(broker_url)}: {exc}") from None
            raise
    return written
