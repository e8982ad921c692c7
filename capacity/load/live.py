"""Live timings: the probe's Redis stream read as it grows, for what a run watches while it runs
(``--abort-if p95>30s``, ``failed>5%``; ``--prometheus``'s completions and service times)."""

from __future__ import annotations

import json
from array import array
from typing import Any

from capacity.brokers import is_redis_url
from capacity.errors import InputError

#: the probe's stream of timings (capacity.workerside.probe.STREAM)
STREAM = "capacity:timings"


class LiveTimings:
    """The stream's ``done`` lines after the moment this was made: completions, failures and
    service times (finished - started) so far."""

    def __init__(self, url: str) -> None:
        if not is_redis_url(url):
            raise InputError(
                "live timings come from the probe writing to a Redis stream: set CAPACITY_TIMINGS=redis://... "
                "where the workers and this command run"
            )
        from capacity.brokers.redis import redis_client

        self.client = redis_client(url, socket_timeout=5, socket_connect_timeout=5)
        self.completed = 0
        self.failed = 0
        self.service_s = array("d")
        self._last = self._newest()

    def _newest(self) -> Any:
        """The stream's newest id now ("0-0" when empty or unreadable): XREAD's "$" would skip
        what arrives between two reads."""
        try:
            newest = self.client.xrevrange(STREAM, count=1)
        except Exception:  # redis-py's connection errors: read from the start
            return "0-0"
        return newest[0][0] if newest else "0-0"

    def poll(self) -> list[dict[str, Any]]:
        """The ``done`` lines that arrived since the last poll (counted here too)."""
        try:
            found = self.client.xread({STREAM: self._last}, count=10_000, block=10)
        except Exception:  # a missed read: the next one reads from the same place
            return []
        done = []
        for _, entries in found or ():
            for entry_id, fields in entries:
                self._last = entry_id
                try:
                    line = json.loads(fields[b"line"])
                except (KeyError, ValueError):
                    continue
                if isinstance(line, dict) and line.get("event") == "done":
                    done.append(line)
                    self._count(line)
        return done

    def _count(self, line: dict[str, Any]) -> None:
        if not succeeded(line):
            self.failed += 1
            return
        self.completed += 1
        service = service_of(line)
        if service is not None:
            self.service_s.append(service)

    def failed_share(self) -> float | None:
        total = self.completed + self.failed
        return self.failed / total if total else None

    def service_p95(self) -> float | None:
        """The 95th percentile of the service times so far (linear interpolation, numpy's default)."""
        if not self.service_s:
            return None
        ordered = sorted(self.service_s)
        rank = 0.95 * (len(ordered) - 1)
        low = int(rank)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)

    def close(self) -> None:
        self.client.close()


def succeeded(line: dict[str, Any]) -> bool:
    return bool(line.get("state", "SUCCESS") == "SUCCESS")


def service_of(line: dict[str, Any]) -> float | None:
    """A done line's service time, finished - started, when both are there and in order."""
    started, finished = line.get("started"), line.get("finished")
    if isinstance(started, (int, float)) and isinstance(finished, (int, float)) and finished >= started:
        return float(finished - started)
    return None


__all__ = ["STREAM", "LiveTimings", "service_of", "succeeded"]
