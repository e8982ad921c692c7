"""--abort-if: its expressions, and the oldest waiting task's age computed by hand."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from capacity.brokers import QueueDepth
from capacity.errors import InputError
from capacity.load.abort import Aborter, SendTimes, parse_abort


def test_expressions() -> None:
    assert parse_abort("depth>200").bound == 200 and parse_abort(" depth >= 5 ").op == ">="
    assert parse_abort("oldest_wait>2m").bound == 120
    for bad in ("depth>lots", "p99>1s", "depth<5", "oldest_wait>soon", "failed>many%"):
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


def test_live_conditions_read_the_probes_stream(tmp_path: Path) -> None:
    """p95 and failed come from the probe's Redis stream as it grows (computed by hand: service
    times 1, 2, 3, 4 and 10 s: p95 by linear interpolation is 4 + 0.8 x 6 = 8.8 s; 1 of 6 failed)."""
    import json

    from capacity.load.live import LiveTimings
    from tests.realbrokers import RedisServer

    server = RedisServer(tmp_path).start()
    try:
        live = LiveTimings(server.url)
        stop = threading.Event()
        conditions = [parse_abort("p95>9s"), parse_abort("failed>20%"), parse_abort("failed>0")]
        aborter = Aborter(conditions[:2], lambda: QueueDepth(0, 0), SendTimes(), stop, live)
        assert aborter.check() is None  # nothing finished yet: not known, not broken
        client = server.client()
        for i, service in enumerate((1, 2, 3, 4, 10)):
            line = {"task_id": f"t{i}", "event": "done", "started": 0.0, "finished": float(service), "state": "SUCCESS"}
            client.xadd("capacity:timings", {"line": json.dumps(line)})
        client.xadd("capacity:timings", {"line": json.dumps({"task_id": "f", "event": "done", "state": "FAILURE"})})
        assert aborter.check() is None  # p95 8.8 s, 1 of 6 failed (16.7%)
        assert live.service_p95() == pytest.approx(8.8)
        strict = Aborter([conditions[2]], lambda: QueueDepth(0, 0), SendTimes(), stop, live)
        assert strict.check() == "--abort-if failed>0: 1 tasks failed"
    finally:
        server.stop()


def test_live_conditions_need_a_redis_stream() -> None:
    from capacity.load.live import LiveTimings

    with pytest.raises(InputError, match="CAPACITY_TIMINGS=redis://"):
        LiveTimings("/var/timings")
