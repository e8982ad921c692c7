"""When a run starts: a given ``--start-at``, or the instant the shards of one run agree on through
the broker; and what a shard does when it finds that start already past (#27)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from capacity.brokers import Broker
from capacity.errors import InputError
from capacity.load.tasklog import iso

if TYPE_CHECKING:
    from capacity.load.inject import InjectConfig

LATE_RULES = ("refuse", "shift", "catch-up")


def agreed_start(config: InjectConfig, broker: Broker, run_id: str) -> float | None:
    """When the schedule starts: the given --start-at, or the instant the shards agree on through
    the broker; a start more than ``late_grace_s`` past is refused unless told to shift (start
    now, the schedule kept) or to catch up (send what is due at once, then on schedule)."""
    start = config.start_at
    if config.agree_start and start is None:
        start = broker.claim_start(run_id, time.time() + config.start_delay_s)
        if start is None:
            raise InputError(
                f"shards of one run agree on their start through the broker, and {broker.name} cannot hold it: "
                "give every shard the same --start-at"
            )
    if start is None:
        return None
    late_by = time.time() - start
    if late_by <= config.late_grace_s or config.late == "catch-up":
        return start
    if config.late == "shift":
        return time.time()
    raise InputError(
        f"this run's start ({iso(start)}) is {late_by:,.1f} s past, more than --late-grace {config.late_grace_s:g} s: "
        "give --late shift to start now on the same schedule, or --late catch-up to send what is due at once"
    )


def wait_until(instant: float, stop: threading.Event) -> None:
    """Sleep until the wall clock reads ``instant`` (the shards' common start): coarse waits,
    then a short spin for the last 2 ms; returns early when ``stop`` is set."""
    while not stop.is_set():
        remaining = instant - time.time()
        if remaining <= 0:
            return
        if remaining > 0.002:
            stop.wait(min(remaining - 0.002, 0.5))
