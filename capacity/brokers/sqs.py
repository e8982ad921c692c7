"""Amazon SQS, as kombu's SQS transport uses it: SendMessageBatch of up to 10 entries, several
batches in flight on a thread pool; only the failed entries of a batch are retried.

The queue URL, the boto3 client (endpoint, credentials, region) and the body encoding all come
from kombu's own SQS channel, so ``sqs://key:secret@127.0.0.1:PORT`` finds a local endpoint
exactly as a Celery worker would.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from capacity.brokers import Broker, BrokerOptions, Payload, QueueDepth, SendFailed
from capacity.brokers._retry import attempts
from capacity.errors import BrokerError, InputError

SQS_BATCH_ENTRIES = 10
#: 256 KiB: the limit of one message and of one batch's sum when the queue does not say (AWS
#: raised the maximum to 1 MiB in 2025; a queue's MaximumMessageSize may be set anywhere below it)
SQS_MAX_MESSAGE_BYTES = 262_144


class SQSBroker(Broker):
    name = "SQS"
    max_message_bytes = SQS_MAX_MESSAGE_BYTES
    # kombu's SQS wait_time_seconds (10 s) plus a second: a stopped worker's long poll stays open
    # at the server that long and can take the next cell's first messages (seen on moto)
    idle_poll_s = 11.0
    supports_events = False

    def __init__(self, url: str, options: BrokerOptions) -> None:
        super().__init__(url, options)
        try:
            from botocore.exceptions import BotoCoreError, ClientError
            from kombu import Connection
        except ImportError as exc:  # pragma: no cover - dependencies
            raise BrokerError(f"SQS support needs boto3 and kombu: pip install 'celery[sqs]' ({exc})") from None
        self._transient: tuple[type[BaseException], ...] = (BotoCoreError, ClientError)
        self.max_batch = SQS_BATCH_ENTRIES * max(1, options.threads)
        self._kombu = Connection(url, transport_options=options.transport_options)
        try:
            self._channel = self._kombu.default_channel
            self.queue_url: str = self._channel._new_queue(options.queue)
            self._client = self._channel.sqs(queue=self._channel.canonical_queue_name(options.queue))
        except Exception as exc:
            self._kombu.release()
            raise BrokerError(f"cannot reach broker {self.safe_url}: {_one_line(exc)}") from None
        self.max_message_bytes = self._queue_limit()
        self._pool = ThreadPoolExecutor(max_workers=max(1, options.threads), thread_name_prefix="capacity-sqs")
        self._base64 = bool(self._channel.sqs_base64_encoding)
        self.api_calls = 0

    def _queue_limit(self) -> int:
        """The queue's own MaximumMessageSize (bytes), read once; the 256 KiB default if it cannot
        be read (a policy without sqs:GetQueueAttributes): never more than the queue takes."""
        try:
            attributes = self._client.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["MaximumMessageSize"]
            )["Attributes"]
            return int(attributes["MaximumMessageSize"])
        except Exception:  # botocore's errors, a missing attribute
            return SQS_MAX_MESSAGE_BYTES

    @property
    def channel(self) -> Any:
        return self._channel

    def encode(self, message_json: str) -> str:
        # kombu's SQS _put: AsyncMessage().encode(dumps(message)) is base64 of the UTF-8 JSON
        if self._base64:
            return base64.b64encode(message_json.encode()).decode()
        return message_json

    def _chunks(self, task_ids: Sequence[str], payloads: Sequence[Payload]) -> list[list[tuple[str, str]]]:
        """Entries grouped in batches of at most 10 and 256 KiB in all."""
        chunks: list[list[tuple[str, str]]] = []
        current: list[tuple[str, str]] = []
        size = 0
        for task_id, message in zip(task_ids, payloads, strict=True):
            payload = message.decode() if isinstance(message, bytes) else message
            length = len(payload.encode())
            if length > self.max_message_bytes:
                raise InputError(
                    f"message for task {task_id} is {length:,} bytes; this queue takes at most "
                    f"{self.max_message_bytes:,} (its MaximumMessageSize): make the payload smaller"
                )
            if current and (len(current) == SQS_BATCH_ENTRIES or size + length > self.max_message_bytes):
                chunks.append(current)
                current, size = [], 0
            current.append((task_id, payload))
            size += length
        if current:
            chunks.append(current)
        return chunks

    def _send_chunk(self, chunk: list[tuple[str, str]]) -> tuple[list[str], list[str], str]:
        """(accepted ids, in-doubt ids, error text); retries failed entries only."""
        pending = {f"m{i}": entry for i, entry in enumerate(chunk)}
        accepted: list[str] = []
        maybe_landed: set[str] = set()
        error = ""
        for _ in attempts(self.options.retry_for_s, self.options.stop):
            entries = [{"Id": key, "MessageBody": payload} for key, (_, payload) in pending.items()]
            try:
                self.api_calls += 1
                response = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except self._transient as exc:
                # the request may have reached SQS before the connection broke
                maybe_landed.update(pending)
                error = _one_line(exc)
                continue
            for ok in response.get("Successful", []):
                accepted.append(pending.pop(ok["Id"])[0])
            for failed in response.get("Failed", []):
                error = f"{failed.get('Code')}: {failed.get('Message', '')}"
                if failed.get("SenderFault"):
                    task_id = pending[failed["Id"]][0]
                    raise InputError(f"SQS refused task {task_id}: {error}")
                maybe_landed.discard(failed["Id"])  # SQS says it did not take this one
            if not pending:
                break
        in_doubt = [task_id for key, (task_id, _) in pending.items() if key in maybe_landed]
        return accepted, in_doubt, error

    def send_batch(self, task_ids: Sequence[str], payloads: Sequence[Payload]) -> None:
        results = list(self._pool.map(self._send_chunk, self._chunks(task_ids, payloads)))
        accepted = [task_id for ok, _, _ in results for task_id in ok]
        if len(accepted) == len(task_ids):
            return
        in_doubt = [task_id for _, doubt, _ in results for task_id in doubt]
        errors = "; ".join(sorted({err for _, _, err in results if err}))
        raise SendFailed(
            f"broker {self.safe_url} did not take {len(task_ids) - len(accepted)} of {len(task_ids)} "
            f"messages within {self.options.retry_for_s:g} s: {errors}",
            accepted=accepted,
            in_doubt=in_doubt,
        )

    def depth(self) -> QueueDepth:
        try:
            attributes = self._client.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        except self._transient as exc:
            raise BrokerError(f"cannot read queue depth from {self.safe_url}: {_one_line(exc)}") from None
        return QueueDepth(
            visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._kombu.release()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
