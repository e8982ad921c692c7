"""Redis, as kombu's Redis transport uses it: one list per queue (and priority), LPUSH to send.

Each batch goes in one MULTI/EXEC: a single multi-value LPUSH plus a marker key. The marker makes
a retry after a broken connection exact: if it exists, the batch landed; if not, it did not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from capacity.brokers import Broker, BrokerOptions, QueueDepth, SendFailed
from capacity.brokers._retry import attempts
from capacity.errors import BrokerError, InputError
from capacity.secrets import redact_url

MARKER_TTL_S = 86_400


def redis_py_url(url: str) -> str:
    """kombu's ``redis+socket:///path`` is redis-py's ``unix:///path``."""
    if url.startswith("redis+socket://"):
        return "unix://" + url[len("redis+socket://") :]
    return url


def redis_client(url: str, **options: Any) -> Any:
    """redis-py's client for ``url`` (kombu's socket form understood); a URL redis-py cannot take
    (a port out of range, ``?password=`` beside a password, an unknown option) is an InputError
    naming it without its password. The one place the package builds a redis-py client."""
    import redis

    try:
        return redis.Redis.from_url(redis_py_url(url), **options)
    except (ValueError, TypeError) as exc:
        raise InputError(f"Redis URL {redact_url(url)!r} is not usable: {exc}") from None


class RedisBroker(Broker):
    name = "Redis"
    max_batch = 1000
    supports_priority = True

    def __init__(self, url: str, options: BrokerOptions) -> None:
        super().__init__(url, options)
        try:
            import redis
            from kombu import Connection
        except ImportError as exc:  # pragma: no cover - both are dependencies
            raise BrokerError(f"Redis support needs redis and kombu: pip install 'celery[redis]' ({exc})") from None
        self._errors: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
        self._response_error = redis.ResponseError
        # kombu's Redis transport waits forever by default: rediss:// to a plain Redis hung in the
        # TLS handshake, deaf to Ctrl-C; the user's transport options still win
        transport = {"socket_timeout": 5, "socket_connect_timeout": 5, **options.transport_options}
        try:
            self._kombu = Connection(url, transport_options=transport)
        except (ValueError, TypeError) as exc:  # kombu's URL parser: "?password=" beside a password
            raise InputError(f"broker URL {self.safe_url!r} is not usable: {exc}") from None
        try:
            self._kombu.ensure_connection(max_retries=1, interval_start=0.1, timeout=5)
            self._channel = self._kombu.default_channel
        except Exception as exc:
            self._kombu.release()
            raise BrokerError(f"cannot reach broker {self.safe_url}: {exc}") from None
        import redis.backoff
        import redis.retry

        # no retries inside redis-py (its default retries a timed-out MULTI/EXEC itself, which put
        # a stalled batch on the queue twice): the marker check below is the only retry
        self._client = redis_client(
            url,
            socket_timeout=5,
            socket_connect_timeout=5,
            health_check_interval=0,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        )
        self._seq = 0
        self.key = options.queue

    @property
    def channel(self) -> Any:
        return self._channel

    def use_priority(self, priority: int | None) -> None:
        """Send to the list kombu uses for this priority (queue, or queue + separator + step)."""
        self.key = self._channel._q_for_pri(self.options.queue, priority or 0)

    def _marker(self, seq: int) -> str:
        return f"capacity:sent:{self.options.run_id}:{seq}"

    def send_batch(self, task_ids: Sequence[str], payloads: Sequence[str]) -> None:
        if not payloads:
            return
        self._seq += 1
        marker = self._marker(self._seq)
        maybe_landed = False
        last_error: BaseException | None = None
        for attempt in attempts(self.options.retry_for_s, self.options.stop):
            try:
                if attempt and maybe_landed:
                    if self._client.exists(marker):
                        return
                    maybe_landed = False  # marker and LPUSH are atomic: absent marker, absent batch
                pipe = self._client.pipeline(transaction=True)
                # bytes skip redis-py's per-value Encoder (a third of the cost of a burst)
                pipe.lpush(self.key, *[payload.encode() for payload in payloads])
                pipe.set(marker, 1, ex=MARKER_TTL_S)
                maybe_landed = True
                pipe.execute()
                return
            except self._errors as exc:
                last_error = exc
            except self._response_error as exc:
                # an error reply (OOM under maxmemory, READONLY replica): EXEC applied nothing, so
                # the batch is not on the queue; retrying would not change the server's mind
                # redis-py prefixes "Command # 1 (LPUSH celery {...}) of pipeline caused error: "
                reason = " ".join(str(exc).split()).rpartition("caused error: ")[2]
                raise SendFailed(
                    f"{self.safe_url} refused a batch of {len(payloads)}: {reason}", refused=True
                ) from None
        raise SendFailed(
            f"broker {self.safe_url} unreachable for {self.options.retry_for_s:g} s: {last_error}",
            in_doubt=list(task_ids) if maybe_landed else [],
        )

    def landed(self, seq: int) -> bool:
        """Whether batch ``seq`` of this run is on the broker (for reconciling in-doubt batches)."""
        return bool(self._client.exists(self._marker(seq)))

    def depth(self) -> QueueDepth:
        channel = self._channel
        try:
            pipe = self._client.pipeline(transaction=False)
            for step in channel.priority_steps:
                pipe.llen(channel._q_for_pri(self.options.queue, step))
            pipe.hlen(channel.unacked_key)
            *sizes, unacked = pipe.execute()
        except self._errors as exc:
            raise BrokerError(f"cannot read queue depth from {self.safe_url}: {exc}") from None
        return QueueDepth(visible=int(sum(sizes)), in_flight=int(unacked))

    def close(self) -> None:
        self._client.close()
        self._kombu.release()
