"""The Redis client the Redis-backed sources share (the probe's stream, Celery's result backend)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from capacity.errors import BrokerError


def connect(url: str) -> Any:
    """A redis-py client for ``url``, checked with PING; BrokerError (no password) if unreachable."""
    import redis

    from capacity.brokers.redis import redis_client
    from capacity.secrets import redact_url

    client = redis_client(url, socket_timeout=10, socket_connect_timeout=5)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, ValueError) as exc:  # ValueError: a bad port
        raise BrokerError(f"cannot reach {redact_url(url)}: {exc}") from None
    return client


def stream_entries(client: Any, key: str) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry of the stream ``key``, oldest first, read in pages of 10,000."""
    last = "-"
    while True:
        page = client.xrange(key, min=last, max="+", count=10_000)
        if last != "-":
            page = page[1:]  # the page starts at the last entry already given
        if not page:
            return
        yield from page
        last = page[-1][0].decode()
