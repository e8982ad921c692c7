"""Backoff shared by the brokers: retry until a deadline, sleeping 0.1 s doubling to 5 s."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator


def attempts(
    retry_for_s: float, stop: threading.Event | None = None, sleep: Callable[[float], None] | None = None
) -> Iterator[int]:
    """Yield attempt numbers 0, 1, 2, ... with backoff between them until ``retry_for_s`` is spent
    or ``stop`` is set (Ctrl-C during an outage ends the retries at once, not after 30 s)."""
    pause: Callable[[float], object] = sleep or (stop.wait if stop is not None else time.sleep)
    deadline = time.monotonic() + retry_for_s
    delay = 0.1
    attempt = 0
    while True:
        yield attempt
        attempt += 1
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (stop is not None and stop.is_set()):
            return
        pause(min(delay, remaining))
        if stop is not None and stop.is_set():
            return
        delay = min(delay * 2, 5.0)
