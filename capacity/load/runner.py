"""One runner for every load shape: walks a schedule's offsets with an injectable clock.

Open loop: the schedule is anchored at the start and never re-anchored, so a slow broker makes
sends late (lateness is recorded) but never fewer and never drifting; tasks that fell due while
the previous batch was sending go out together in the next batch.
"""

from __future__ import annotations

import threading
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

from capacity.load.schedules import Schedule


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# Sleeping the last sub-microsecond is below the clock's resolution (and, with float offsets,
# may not advance a clock at all): a task that close to due is sent.
_EARLY_S = 1e-6

#: send(scheduled offsets, offset at which the send starts) -> None; raises to stop the run
SendFunction = Callable[[Sequence[float], float], None]


@dataclass
class RunProgress:
    """What the runner has done so far (read by progress displays from another thread)."""

    target: int
    sent: int = 0
    elapsed_s: float = 0.0
    lateness_s: array[float] = field(default_factory=lambda: array("d"))

    @property
    def rate_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def drive(
    schedule: Schedule,
    send: SendFunction,
    max_batch: int,
    stop: threading.Event,
    clock: Clock | None = None,
    record_lateness: bool = True,
    progress: RunProgress | None = None,
    started_ago_s: float = 0.0,
) -> RunProgress:
    """Send every task of ``schedule`` when due, in batches of at most ``max_batch``.

    Returns when the schedule is done or ``stop`` is set (checked between batches, so the batch
    being sent always completes and is logged). ``started_ago_s`` anchors the schedule that long
    before now (a shard that starts after the agreed instant catches up instead of shifting).
    """
    clock = clock or SystemClock()
    state = progress or RunProgress(target=schedule.count)
    offsets = iter(schedule.offsets())
    # the next offsets, read ahead a batch at a time: a burst's batch is one slice, not a
    # Python step per task (offsets are in order, so the due ones are a prefix found by bisect)
    ahead: list[float] = []
    first = 0  # ahead[first:] are not sent yet
    start = clock.monotonic() - max(0.0, started_ago_s)
    max_sleep = 0.05
    while not stop.is_set():
        if len(ahead) - first < max_batch:
            ahead = ahead[first:] + list(islice(offsets, max_batch))
            first = 0
            if not ahead:
                break
        pending = ahead[first]
        now = clock.monotonic() - start
        if pending > now + _EARLY_S:
            clock.sleep(min(pending - now, max_sleep))
            continue
        now = max(now, pending)  # within a microsecond of due counts as due (and not early)
        last = bisect_right(ahead, now, first, min(len(ahead), first + max_batch))
        batch, first = ahead[first:last], last
        send(batch, now)
        if record_lateness:
            if batch[0] == batch[-1]:
                state.lateness_s.extend(array("d", [now - batch[0]]) * len(batch))
            else:
                state.lateness_s.extend([now - offset for offset in batch])
        state.sent += len(batch)
        state.elapsed_s = clock.monotonic() - start
    state.elapsed_s = clock.monotonic() - start
    return state
