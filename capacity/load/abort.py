"""Stopping a run that is already failing (k6's ``abortOnFail``): ``inject --abort-if EXPR``.

Each expression is evaluated every second while the run sends and drains, on what the broker says:

* ``depth>N``: tasks waiting on the queue (the monitor's "visible");
* ``oldest_wait>30s``: how long the oldest waiting task of this run has waited. Queues are first in,
  first out, so with ``d`` waiting of the ``n`` this run has sent, the oldest waiting is the
  (n - d)-th sent: its send time is this run's own record. (Other producers' tasks on the same
  queue, or other shards', make this an upper bound: said in the end line's reason.)

and, with live timings (the probe writing to a Redis stream, ``CAPACITY_TIMINGS=redis://...``):

* ``p95>30s``: the 95th percentile of the service times of the tasks completed so far;
* ``failed>5%`` (of the tasks finished so far) or ``failed>10`` (tasks).

On a breach the run stops sending (the batch in flight completes and is logged), its log ends with
``"status": "aborted"`` and the reason, and the command exits 1.
"""

from __future__ import annotations

import re
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from capacity.brokers import QueueDepth
from capacity.errors import BrokerError, InputError
from capacity.load.live import LiveTimings
from capacity.units import parse_duration

_EXPRESSION = re.compile(r"^\s*(depth|oldest_wait|p95|failed)\s*(>=|>)\s*(\S+)\s*$", re.IGNORECASE)
#: the conditions read from the workers' live timings rather than the broker
LIVE = ("p95", "failed", "failed%")
#: how often the conditions are evaluated
EVERY_S = 1.0


@dataclass(frozen=True)
class Condition:
    """One ``--abort-if``: a figure, ``>`` or ``>=``, and its bound (tasks, or seconds)."""

    text: str
    figure: str
    op: str
    bound: float

    def broken(self, value: float) -> bool:
        return value > self.bound if self.op == ">" else value >= self.bound


def parse_abort(text: str) -> Condition:
    """``depth>200``, ``oldest_wait>30s``, ``p95>30s``, ``failed>5%`` or ``failed>10``; InputError
    naming what is accepted otherwise."""
    match = _EXPRESSION.match(text)
    if not match:
        raise InputError(
            f"--abort-if {text!r}: expected depth>N, oldest_wait>DURATION, p95>DURATION or failed>N(%), "
            "e.g. 'depth>200'"
        )
    figure, op, raw = match.group(1).lower(), match.group(2), match.group(3)
    if figure == "failed":
        share = raw.endswith("%")
        try:
            bound = float(raw.rstrip("%")) / (100 if share else 1)
        except ValueError:
            raise InputError(f"--abort-if {text!r}: {raw!r} is not a number or a percentage") from None
        return Condition(text.strip(), "failed%" if share else "failed", op, bound)
    if figure == "depth":
        try:
            bound = float(int(raw))
        except ValueError:
            raise InputError(f"--abort-if {text!r}: {raw!r} is not a whole number of tasks") from None
    else:
        bound = parse_duration(raw, f"--abort-if {text!r}")
    return Condition(text.strip(), figure, op, bound)


class SendTimes:
    """When each task of this run was sent (8 bytes a task), for the oldest waiting one's age."""

    def __init__(self) -> None:
        self.times = array("d")
        self._lock = threading.Lock()

    def add(self, when: float, count: int) -> None:
        with self._lock:
            self.times.extend(array("d", [when]) * count)

    def oldest_waiting(self, waiting: int, now: float) -> float:
        """Seconds the oldest of ``waiting`` tasks (first in, first out) has waited."""
        with self._lock:
            sent = len(self.times)
            if waiting <= 0 or sent == 0:
                return 0.0
            return max(0.0, now - self.times[max(0, sent - waiting)])


#: a watch (capacity.load.watch): the depth now (None: asked at the end) and whether to ask now
#: rather than on its own schedule; the reason to abort, or None
Watch = Callable[[QueueDepth | None, bool], str | None]


class Aborter:
    """Evaluates the conditions every second in a thread; on a breach says why and sets ``stop``."""

    def __init__(
        self,
        conditions: list[Condition],
        depth: Callable[[], QueueDepth],
        send_times: SendTimes,
        stop: threading.Event,
        live: LiveTimings | None = None,
        watches: Sequence[Watch] = (),
    ) -> None:
        self.conditions = conditions
        self.live = live
        #: mistakes watched for beside the conditions (capacity.load.watch): each gives a reason or None
        self.watches = list(watches)
        self._depth = depth
        self.send_times = send_times
        self.stop = stop
        #: why the run was aborted (None: it was not)
        self.reason: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="capacity-abort", daemon=True)

    def start(self) -> Aborter:
        if self.conditions or self.watches:
            self._thread.start()
        return self

    def last_word(self) -> str | None:
        """The watches asked once more, now (a queue that drained before a watch's next turn);
        the reason the run is aborted for, if one objects."""
        if self.reason is None:
            self.reason = next((r for watch in self.watches if (r := watch(None, True)) is not None), None)
        return self.reason

    def check(self) -> str | None:
        """Evaluate every condition once; the reason of the first broken one, or None."""
        try:
            depth = self._depth()
        except BrokerError:
            return None  # a missed reading is not a breach; the next second reads again
        waiting = depth.visible
        if self.live is not None:
            self.live.poll()
        for condition in self.conditions:
            found = self._value(condition, waiting)
            if found is not None and condition.broken(found[0]):
                return f"--abort-if {condition.text}: {found[1]}"
        return next((r for watch in self.watches if (r := watch(depth, False)) is not None), None)

    def _value(self, condition: Condition, waiting: int) -> tuple[float, str] | None:
        """The condition's figure now and how to say it; None while it is not known (no task
        finished yet)."""
        if condition.figure == "depth":
            return float(waiting), f"{waiting} tasks waiting"
        if condition.figure == "oldest_wait":
            value = self.send_times.oldest_waiting(waiting, time.time())
            return value, f"the oldest waiting task has waited {value:.1f} s (first in, first out)"
        live = self.live
        if live is None:
            return None
        if condition.figure == "p95":
            p95 = live.service_p95()
            return None if p95 is None else (p95, f"the service time's p95 is {p95:.2f} s ({live.completed} done)")
        share = live.failed_share()
        if condition.figure == "failed%":
            finished = live.completed + live.failed
            return (
                None if share is None else (share, f"{live.failed} of {finished} finished tasks failed ({share:.1%})")
            )
        return float(live.failed), f"{live.failed} tasks failed"

    def _loop(self) -> None:
        while not self._done.wait(EVERY_S):
            if self.stop.is_set():
                return
            reason = self.check()
            if reason is not None:
                self.reason = reason
                self.stop.set()
                return

    def close(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.live is not None:
            self.live.close()


__all__ = ["Aborter", "Condition", "SendTimes", "parse_abort"]
