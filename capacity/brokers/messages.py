"""Celery task messages built by Celery itself, fast.

``capture`` publishes one task through Celery's own ``send_task`` (task protocol 2, JSON) on the
broker's real kombu channel, with the channel's ``_put`` replaced so the fully wrapped message is
captured instead of sent. What varies per task (task id, delivery tag) and per batch (body,
kwargsrepr, ETA) is then cut out into placeholders, so building N messages is N string joins.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kombu.serialization import dumps as kombu_serialize
from kombu.utils.json import dumps as kombu_json

from capacity.errors import BrokerError, InputError

# Placeholders: strings that json.dumps leaves as they are and that cannot occur in a real message.
_TASK_ID = "capacity-placeholder-task-id-0f3a9c"
_TAG = "capacity-placeholder-delivery-tag-7b21d4"
_BODY = "capacity-placeholder-body-55e0aa"
_KWARGSREPR = "capacity-placeholder-kwargsrepr-9c81f2"
_ARGSREPR = "capacity-placeholder-argsrepr-d02b6e"
_ETA = "capacity-placeholder-eta-3e7f10"


#: per-task values (``$task_id``, ``$seq``, ``$uuid``) ride in args/kwargs as these markers until
#: each task's message is spliced; a whole-value number marker is replaced with its quotes
def per_task_marker(name: str, whole_number: bool = False) -> str:
    return f"@@capacity{'#' if whole_number else ':'}{name}@@"


_MARKER = re.compile(r"""["']@@capacity#(\w+)@@["']|@@capacity:(\w+)@@""")


@dataclass(frozen=True)
class Splice:
    """A text cut around per-task markers: ``fill`` puts each task's values back, one join each.

    Values are ids and numbers (no character JSON or repr would escape), so splicing the JSON
    (or repr) of the markers equals serialising each task's values: serialise once, join N times.
    """

    pieces: tuple[str, ...]
    keys: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> Splice:
        parts = _MARKER.split(text)
        # re.split with two groups: text, whole-number name, in-string name, text, ...
        pieces = tuple(parts[0::3])
        keys = tuple(a or b for a, b in zip(parts[1::3], parts[2::3], strict=True))
        return cls(pieces, keys)

    def fill(self, columns: dict[str, Sequence[str]], n: int) -> list[str]:
        if not self.keys:
            return [self.pieces[0]] * n
        cols = [columns[k] for k in self.keys]
        if len(cols) == 1:
            head, tail = self.pieces
            return [head + v + tail for v in cols[0]]
        # pieces and values interleaved by slice assignment (C loops), one join per task
        parts: list[str] = [""] * (2 * len(cols) + 1)
        parts[0::2] = self.pieces
        out = []
        for values in zip(*cols, strict=True):
            parts[1::2] = values
            out.append("".join(parts))
        return out


@dataclass(frozen=True)
class Template:
    """A captured message split around its varying parts."""

    pieces: tuple[str, ...]
    slots: tuple[str, ...]  # which placeholder follows each piece but the last
    body_encoding: str
    countdown_s: float | None
    example: dict[str, Any]

    def render(
        self,
        task_ids: Sequence[str],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        now: datetime,
        per_task: dict[str, Sequence[str]] | None = None,
    ) -> list[str]:
        """The kombu JSON message for each task id, with this batch's args/kwargs and time;
        ``per_task`` holds each task's value of every marker in args/kwargs (``per_task_marker``)."""
        serialized = celery_body(args, kwargs)
        if per_task:
            return self._render_each(task_ids, args, kwargs, now, per_task, serialized)
        raw = serialized.encode()
        body = base64.b64encode(raw).decode() if self.body_encoding == "base64" else serialized
        argsrepr, kwargsrepr = celery_reprs(args, kwargs)
        fixed = {
            _BODY: _json_inner(body),
            _KWARGSREPR: _json_inner(kwargsrepr),
            _ARGSREPR: _json_inner(argsrepr),
            _ETA: (now + timedelta(seconds=self.countdown_s)).isoformat() if self.countdown_s else "",
        }
        # Per batch: the message with only the task id left open. The delivery tag is the task id
        # too: kombu needs it unique per message (it keys the unacked hash), which the id already
        # is, and one C-level join per message is all that is left to do.
        parts = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            parts.append(fixed.get(slot, _TASK_ID))
            parts.append(piece)
        pieces = "".join(parts).split(_TASK_ID)
        return [task_id.join(pieces) for task_id in task_ids]

    def _render_each(
        self,
        task_ids: Sequence[str],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        now: datetime,
        per_task: dict[str, Sequence[str]],
        serialized: str,
    ) -> list[str]:
        """``render`` when args/kwargs hold per-task markers: the body, kwargsrepr and argsrepr are
        serialised once with the markers, spliced per task, and each body base64-encoded."""
        n = len(task_ids)
        bodies = Splice.of(serialized).fill(per_task, n)
        if self.body_encoding == "base64":
            b64 = binascii.b2a_base64  # base64.b64encode's own call, without its Python wrapper
            bodies = [b64(body.encode(), newline=False).decode() for body in bodies]
        else:
            bodies = [_json_inner(body) for body in bodies]
        # the reprs go into the message template as text (their markers with them), so each
        # task's message is one join: its id, its base64 body and its own values
        argsrepr, kwargsrepr = celery_reprs(args, kwargs)
        reprs = {
            _KWARGSREPR: _json_inner(kwargsrepr),
            _ARGSREPR: _json_inner(argsrepr),
            _ETA: (now + timedelta(seconds=self.countdown_s)).isoformat() if self.countdown_s else "",
            _BODY: per_task_marker("body"),
            _TASK_ID: per_task_marker("task"),
            _TAG: per_task_marker("task"),
        }
        text = self.pieces[0]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            text += reprs[slot] + piece
        columns: dict[str, Sequence[str]] = {**per_task, "task": task_ids, "body": bodies}
        return Splice.of(text).fill(columns, n)


def new_ids(n: int, shard: int | None = None) -> list[str]:
    """``n`` unique UUID-4-shaped ids, fast: a random 70-bit prefix per call and a counter.

    ``str(uuid.uuid4())`` costs ~3 us each, the largest part of building a message; ids from
    one call share a random prefix (version and variant bits set as in RFC 4122) and differ in
    the last 12 hex digits, so they are unique within the call and, by the prefix, across calls.
    A shard's ids carry its index in the three hex digits after the variant digit, so ids of
    different shards (up to 4096) cannot collide whatever the random draws.
    """
    prefix = str(uuid.uuid4())[:24]
    if shard is not None:
        prefix = f"{prefix[:20]}{shard:03x}-"
    return [f"{prefix}{i:012x}" for i in range(n)]


_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def celery_body(args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    """Task protocol 2's body as Celery serializes it to JSON: ``[args, kwargs, embed]``."""
    _, _, serialized = kombu_serialize((list(args), kwargs, _EMBED), serializer="json")
    return serialized.decode() if isinstance(serialized, bytes) else str(serialized)


def celery_reprs(args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[str, str]:
    """The ``argsrepr`` and ``kwargsrepr`` headers as Celery writes them (``saferepr``, 1024 chars;
    ``apply_async(kwargs=...)`` sends args ``()`` and reprs it so, given args are a list)."""
    from celery.utils.saferepr import saferepr

    return saferepr(list(args) if args else (), 1024), saferepr(kwargs, 1024)


def _json_inner(text: str) -> str:
    """``text`` as it appears inside a JSON string literal (without the quotes)."""
    inner: str = kombu_json(text)[1:-1]
    return inner


def capture(
    channel: Any,
    task_name: str,
    queue: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    priority: int | None = None,
    countdown_s: float | None = None,
) -> Template:
    """Publish one task through Celery's ``send_task`` on ``channel`` and keep what ``_put`` got."""
    from celery import Celery
    from kombu import Producer
    from kombu.exceptions import OperationalError

    app = Celery("capacity-inject", set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], task_protocol=2)
    captured: list[dict[str, Any]] = []

    def put(_queue: str, message: dict[str, Any], **_: Any) -> None:
        captured.append(message)

    original_put, original_tag = channel._put, channel._next_delivery_tag
    channel._put = put
    channel._next_delivery_tag = lambda: _TAG
    try:
        options: dict[str, Any] = {"queue": queue, "task_id": _TASK_ID, "producer": Producer(channel)}
        if priority is not None:
            options["priority"] = priority
        if countdown_s:
            options["countdown"] = countdown_s
        app.send_task(task_name, args=list(args) or None, kwargs=kwargs, **options)
    except TypeError as exc:
        raise InputError(f"task arguments cannot be serialized as JSON: {exc}") from None
    except OperationalError as exc:  # declaring the queue reached the broker and failed (no credentials)
        raise BrokerError(f"cannot declare queue {queue!r} on the broker: {' '.join(str(exc).split())}") from None
    finally:
        channel._put, channel._next_delivery_tag = original_put, original_tag
    if len(captured) != 1:
        raise InputError(f"Celery routed the task to {len(captured)} queues; expected exactly one")
    message = captured[0]
    example = kombu_json(message)
    message["body"] = _BODY
    headers = message["headers"]
    headers["kwargsrepr"] = _KWARGSREPR
    headers["argsrepr"] = _ARGSREPR
    if countdown_s:
        headers["eta"] = _ETA
    text = kombu_json(message)
    pieces, slots = _split(text, (_TASK_ID, _TAG, _BODY, _KWARGSREPR, _ARGSREPR, _ETA))
    return Template(
        pieces=pieces,
        slots=slots,
        body_encoding=message["properties"].get("body_encoding", "base64"),
        countdown_s=countdown_s,
        example=kombu_json_loads(example),
    )


def kombu_json_loads(text: str) -> dict[str, Any]:
    from kombu.utils.json import loads

    value: dict[str, Any] = loads(text)
    return value


def _split(text: str, markers: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    pieces: list[str] = []
    slots: list[str] = []
    rest = text
    while True:
        found = [(rest.find(m), m) for m in markers if m in rest]
        if not found:
            pieces.append(rest)
            return tuple(pieces), tuple(slots)
        index, marker = min(found)
        pieces.append(rest[:index])
        slots.append(marker)
        rest = rest[index + len(marker) :]
