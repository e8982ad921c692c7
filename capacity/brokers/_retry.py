"""Backoff shared by the brokers: retry until a deadline, sleeping 0.1 s doubling to 5 s."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator


def attempts(retry_for_s: float, sleep: Callable[[float], None] = time.sleep) -> Iterator[int]:
    """Yield attempt numbers 0, 1, 2, ... with backoff between them until ``retry_for_s`` is spent."""
    deadline = time.monotonic() + retry_for_s
    delay = 0.1
    attempt = 0
    while True:
        yield attempt
        attempt += 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        sleep(min(delay, remaining))
        delay = min(delay * 2, 5.0)
