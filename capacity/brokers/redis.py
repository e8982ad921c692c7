"""Redis, as kombu's Redis transport uses it: one list per queue (and priority), LPUSH to send.

Each batch goes in one MULTI/EXEC: a single multi-value LPUSH plus a marker key, so the batch and
its marker land together or not at all. Whether a batch landed is learnt, in this order:
- the send did not complete: EXEC never reached Redis in full, so nothing can apply; resend;
- the reply is late (a stalled or busy Redis): keep reading on the same connection, which Redis
  answers in order, until the retry time is spent (then the batch is in doubt, not sent again).
  Asking a new connection for the marker instead is a race: a stalled Redis, resumed, may serve
  the new connection before it executes the old one's buffered transaction (seen in CI: the
  marker was absent, the batch went out twice);
- the connection broke while waiting (Redis restarted or closed it): the old connection and its
  buffer are gone with it, so the marker, asked on a new connection, is exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from capacity.brokers import Broker, BrokerOptions, Payload, QueueDepth, SendFailed
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


def pack_transaction(key: str, payloads: Sequence[Payload], marker: str) -> bytes:
    """``MULTI; LPUSH key payloads...; SET marker 1 EX ttl; EXEC`` in Redis's protocol (RESP).

    Written here, not left to redis-py, because its packer (hiredis's ``pack_command``) copies
    each value at ~1.3 us for a 1.2 KB message, 12x a join of the framing: a third of a burst's
    time (``benchmarks/bench_inject.py``). Payloads are sent as UTF-8.
    """
    values = [payload.encode() if isinstance(payload, str) else payload for payload in payloads]
    parts = [b"*1\r\n$5\r\nMULTI\r\n*%d\r\n$5\r\nLPUSH\r\n" % (len(values) + 2), _bulk(key.encode())]
    for value in values:
        parts += (b"$%d\r\n" % len(value), value, b"\r\n")
    parts.append(b"*5\r\n$3\r\nSET\r\n" + _bulk(marker.encode()) + b"$1\r\n1\r\n$2\r\nEX\r\n")
    parts.append(_bulk(b"%d" % MARKER_TTL_S) + b"*1\r\n$4\r\nEXEC\r\n")
    return b"".join(parts)


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


#: how long an agreed start is kept: a sharded run longer than a day is started by hand
START_TTL_S = 86_400


def claim_start(client: Any, run_id: str, proposed: float, errors: tuple[type[BaseException], ...]) -> float:
    """``SET capacity:start:RUN proposed NX EX 1 day`` then ``GET``: the first shard's claim wins,
    and it never changes once set, so the two commands need no transaction."""
    key = f"capacity:start:{run_id}"
    try:
        client.set(key, repr(proposed), nx=True, ex=START_TTL_S)
        value = client.get(key)
    except errors as exc:
        raise BrokerError(f"cannot agree on the start through the broker: {exc}") from None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BrokerError(f"the broker holds {value!r} as run {run_id}'s start, not a time") from None


class Unsent(Exception):
    """What was sent did not reach Redis in full: nothing of it after the break can apply (for a
    transaction: its EXEC was not among what arrived)."""


class Late(Exception):
    """No reply to what was sent within the retry time (or before a stop): it may still apply."""


def exchange_patiently(
    client: Any,
    pack: Callable[[Any], Iterable[list[bytes]]],
    replies: int,
    patience: float,
    stop: threading.Event | None,
) -> list[Any]:
    """Send commands packed by ``pack(connection)`` on one of ``client``'s pooled connections, a
    part at a time as ``pack`` yields them (Redis starts on the first part while the next is
    packed), and read their ``replies`` replies on that connection, waiting for a late one until ``patience``
    (a monotonic time) or a stop (see the module's docstring for why not on a new connection).
    Error replies come back as redis-py's ResponseError objects, in place. Raises Unsent when the
    send failed, Late when a reply did not come in time, redis-py's ConnectionError when the
    connection broke while waiting."""
    import redis

    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        try:
            for part in pack(connection):
                connection.send_packed_command(part, check_health=False)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise Unsent() from exc
        out = []
        for _ in range(replies):
            while True:
                # polled a second at a time, so a stop (Ctrl-C) is seen within one (redis-py 6.2,
                # the oldest the package allows, has no timeout on read_response itself)
                if connection.can_read(timeout=1.0):
                    try:
                        out.append(connection.read_response(disconnect_on_error=False))
                        break
                    except redis.ResponseError as exc:
                        out.append(exc)
                        break
                    except redis.TimeoutError:  # part of a reply: the parser keeps it, wait on
                        pass
                if time.monotonic() >= patience or (stop is not None and stop.is_set()):
                    raise Late()
        return out
    except BaseException:
        connection.disconnect()  # replies may be left unread: not reusable
        raise
    finally:
        pool.release(connection)


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

    def registered_tasks(self, timeout_s: float = 1.0) -> dict[str, list[str]] | None:
        from capacity.brokers import celery_registered

        return celery_registered(self.url, self.safe_url, timeout_s, self._errors)

    def claim_start(self, run_id: str, proposed: float) -> float | None:
        return claim_start(self._client, run_id, proposed, self._errors)

    def use_priority(self, priority: int | None) -> None:
        """Send to the list kombu uses for this priority (queue, or queue + separator + step)."""
        self.key = self._channel._q_for_pri(self.options.queue, priority or 0)

    def _marker(self, seq: int) -> str:
        return f"capacity:sent:{self.options.run_id}:{seq}"

    def send_batch(self, task_ids: Sequence[str], payloads: Sequence[Payload]) -> None:
        if not payloads:
            return
        self._seq += 1
        marker = self._marker(self._seq)
        packed = pack_transaction(self.key, payloads, marker)
        patience = time.monotonic() + self.options.retry_for_s
        maybe_landed = False
        last_error: BaseException | None = None
        for attempt in attempts(self.options.retry_for_s, self.options.stop):
            try:
                if attempt and maybe_landed:
                    # only after a broken connection (see the module's docstring)
                    if self._client.exists(marker):
                        return
                    maybe_landed = False  # marker and LPUSH are atomic: absent marker, absent batch
                self._execute(packed, patience)
                return
            except Unsent as exc:
                last_error = exc.__cause__
            except Late:
                # sent, unanswered: it may still apply, so it is not sent again
                raise SendFailed(
                    f"broker {self.safe_url} did not answer a batch of {len(payloads)} within "
                    f"{self.options.retry_for_s:g} s",
                    in_doubt=list(task_ids),
                ) from None
            except self._errors as exc:
                maybe_landed = True
                last_error = exc
            except self._response_error as exc:
                # an error reply (OOM under maxmemory, READONLY replica): EXEC applied nothing, so
                # the batch is not on the queue; retrying would not change the server's mind
                raise SendFailed(
                    f"{self.safe_url} refused a batch of {len(payloads)}: {' '.join(str(exc).split())}", refused=True
                ) from None
        raise SendFailed(
            f"broker {self.safe_url} unreachable for {self.options.retry_for_s:g} s: {last_error}",
            in_doubt=list(task_ids) if maybe_landed else [],
        )

    def _execute(self, packed: bytes, patience: float) -> None:
        """Send a packed MULTI ... EXEC and read its four replies (what redis-py's transaction
        pipeline does, without packing the values again and without giving up on a late reply);
        an error reply is raised, the first error inside EXEC's reply too."""
        *queued, executed = exchange_patiently(self._client, lambda _: [[packed]], 4, patience, self.options.stop)
        # an error while queueing (OOM) comes before EXEC's own (EXECABORT), and says why
        replies = [*queued, *(executed if isinstance(executed, list) else [executed])]
        errors = [reply for reply in replies if isinstance(reply, self._response_error)]
        if errors:
            raise errors[0]

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
