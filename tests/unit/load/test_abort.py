"""--abort-if: its expressions, and the oldest waiting task's age computed by hand."""

from __future__ import annotations

import threading

import pytest

from capacity.brokers import QueueDepth
from capacity.errors import InputError
from capacity.load.abort import Aborter, SendTimes, parse_abort


def test_expressions() -> None:
    assert parse_abort("depth>200").bound == 200 and parse_abort(" depth >= 5 ").op == ">="
    assert parse_abort("oldest_wait>2m").bound == 120
    for bad in ("depth>lots", "p99>1s", "depth<5", "oldest_wait>soon"):
        with pytest.raises(InputError, match="--abort-if"):
            parse_abort(bad)


def test_the_oldest_waiting_task_is_the_first_not_yet_taken() -> None:
    # sent: 3 tasks at t=100, 2 at t=104; 2 waiting (first in, first out): the oldest waiting is
    # the 4th sent (index 5 - 2 = 3), sent at 104: at t=110 it has waited 6 s
    times = SendTimes()
    times.add(100.0, 3)
    times.add(104.0, 2)
    assert times.oldest_waiting(2, 110.0) == 6.0
    assert times.oldest_waiting(5, 110.0) == 10.0 and times.oldest_waiting(0, 110.0) == 0.0
    assert times.oldest_waiting(9, 110.0) == 10.0  # more waiting than this run sent: others' tasks


def test_a_breach_names_the_condition_and_sets_stop() -> None:
    stop = threading.Event()
    times = SendTimes()
    times.add(0.0, 10)
    aborter = Aborter([parse_abort("depth>5"), parse_abort("oldest_wait>1h")], lambda: QueueDepth(6, 0), times, stop)
    assert aborter.check() == "--abort-if depth>5: 6 tasks waiting"
    quiet = Aborter([parse_abort("depth>5")], lambda: QueueDepth(5, 3), times, stop)
    assert quiet.check() is None and not stop.is_set()
