"""``--prometheus HOST:PORT``: a run's live figures in Prometheus' text exposition format at
``/metrics``, served by the maintained client library (prometheus_client) while the run lasts, for
the Grafana a team already has (``profiles/grafana/capacity.json`` reads them).

* ``capacity_queue_depth{queue}``, ``capacity_queue_in_flight{queue}``: the broker's counts, read
  every ``interval_s`` (in flight where the broker gives it);
* ``capacity_tasks_sent_total{queue,task}``: tasks the broker accepted, as the task log names them;
* with live timings (the probe writing to a Redis stream, ``CAPACITY_TIMINGS=redis://...``):
  ``capacity_tasks_completed_total``, ``capacity_tasks_failed_total`` and the histogram
  ``capacity_service_time_seconds`` (finished - started), from the stream's new entries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from capacity.brokers import QueueDepth, is_redis_url
from capacity.errors import BrokerError, InputError
from capacity.load.live import LiveTimings, service_of, succeeded

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, every interface) for ``--prometheus``."""
    host, sep, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not 0 < number < 65536:
        raise InputError(f"--prometheus {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9108")
    return host.strip("[]") or "0.0.0.0", number


class Exporter:
    """The run's registry and HTTP server; ``sent`` is called by the sender, the rest by a thread."""

    def __init__(
        self,
        address: tuple[str, int],
        depths: dict[str, Callable[[], QueueDepth]],
        timings_url: str | None = None,
        interval_s: float = 1.0,
    ) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
        except ImportError as exc:  # pragma: no cover - a dependency of the brokers extra
            raise InputError(f"--prometheus needs prometheus_client: pip install prometheus-client ({exc})") from None
        self.registry = registry = CollectorRegistry()
        self._depth = Gauge("capacity_queue_depth", "Tasks waiting on the queue", ["queue"], registry=registry)
        self._flight = Gauge(
            "capacity_queue_in_flight", "Tasks taken by workers, not yet acknowledged", ["queue"], registry=registry
        )
        self._sent = Counter(
            "capacity_tasks_sent_total", "Tasks the broker accepted", ["queue", "task"], registry=registry
        )
        self.depths = depths
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._live = LiveTimings(timings_url) if timings_url and is_redis_url(timings_url) else None
        if self._live is not None:  # without live timings these are not known: not exported as zeros
            self._completed = Counter(
                "capacity_tasks_completed_total", "Tasks completed (live timings)", registry=registry
            )
            self._failed = Counter("capacity_tasks_failed_total", "Tasks failed (live timings)", registry=registry)
            self._service = Histogram(
                "capacity_service_time_seconds", "Service time, finished - started (live timings)",
                buckets=BUCKETS, registry=registry,
            )  # fmt: skip
        try:
            self._server, _ = start_http_server(address[1], address[0], registry=self.registry)
        except OSError as exc:
            raise InputError(f"--prometheus {address[0]}:{address[1]}: cannot listen there ({exc.strerror})") from None
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._loop, name="capacity-prometheus", daemon=True)
        self._thread.start()

    def sent(self, queue: str, task: str, count: int) -> None:
        self._sent.labels(queue, task).inc(count)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for queue, depth in self.depths.items():
                try:
                    now = depth()
                except BrokerError:
                    continue
                self._depth.labels(queue).set(now.visible)
                if now.in_flight is not None:
                    self._flight.labels(queue).set(now.in_flight)
            self._read_timings()
            self._stop.wait(self.interval_s)

    def _read_timings(self) -> None:
        if self._live is None:
            return
        failed_before = self._live.failed
        for line in self._live.poll():
            if succeeded(line):
                self._completed.inc()
                service = service_of(line)
                if service is not None:
                    self._service.observe(service)
        self._failed.inc(self._live.failed - failed_before)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._read_timings()
        if self._live is not None:
            self._live.close()
        self._server.shutdown()
        self._server.server_close()


__all__ = ["Exporter", "parse_address"]
