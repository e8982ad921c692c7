"""Load shapes are pure schedules; the runner is driven by a fake clock, so nothing sleeps."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capacity.errors import InputError
from capacity.load.runner import drive
from capacity.load.schedules import Burst, Ramp, fixed_rate, lateness_summary, load_stages


class FakeClock:
    """Time moves only when someone sleeps or a send takes time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_burst_is_all_due_at_zero() -> None:
    assert list(Burst(3).offsets()) == [0.0, 0.0, 0.0]


def test_fixed_rate_by_count_and_by_duration() -> None:
    # seed 003: 50 tasks at 10/min, one every 6 s
    s = fixed_rate(10 / 60, count=50)
    offsets = list(s.offsets())
    assert len(offsets) == 50 and offsets[:3] == pytest.approx([0, 6, 12]) and offsets[-1] == pytest.approx(294)
    assert fixed_rate(2.0, duration_s=5).count == 10


def test_ramp_counts_and_spacing() -> None:
    # 0 -> 10/s over 10 s: N(t) = t^2 / 2, 50 tasks, the i-th at sqrt(2 i)
    ramp = Ramp(0.0, 10.0, 10.0)
    offsets = list(ramp.offsets())
    assert ramp.count == 50
    assert offsets[8] == pytest.approx(4.0)
    assert all(b >= a for a, b in itertools.pairwise(offsets))
    assert Ramp(10.0, 0.0, 10.0).count == 50  # and back down
    assert max(Ramp(10.0, 0.0, 10.0).offsets()) <= 10.0


@given(st.floats(0.1, 100), st.floats(0.1, 100), st.floats(1, 100))
def test_ramp_offsets_stay_in_the_window_and_ascend(r0: float, r1: float, duration: float) -> None:
    offsets = list(Ramp(r0, r1, duration).offsets())
    assert all(0 <= o <= duration + 1e-6 for o in offsets)
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(offsets))


def test_stages_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "stages.yaml"
    path.write_text("- {duration: 10s, rate: 1/s}\n- {duration: 10s, from: 1/s, to: 3/s}\n")
    stages = load_stages(path)
    offsets = list(stages.offsets())
    assert stages.count == 10 + 20
    assert offsets[10] == pytest.approx(10.0)
    path.write_text("- {rate: 1/s}\n")
    with pytest.raises(InputError, match="stage 1: needs duration"):
        load_stages(path)


def test_sustained_needs_count_or_duration() -> None:
    with pytest.raises(InputError, match="--count or --duration"):
        fixed_rate(1.0)


def run_with(offsets_schedule: Ramp | Burst, send_cost_s: float, max_batch: int = 100):  # type: ignore[no-untyped-def]
    clock = FakeClock()
    sent: list[tuple[list[float], float]] = []

    def send(batch: Sequence[float], now: float) -> None:
        sent.append((list(batch), now))
        clock.now += send_cost_s

    progress = drive(offsets_schedule, send, max_batch, threading.Event(), clock)
    return clock, sent, progress


def test_runner_sends_on_schedule_with_a_fast_broker() -> None:
    _, sent, progress = run_with(fixed_rate(10.0, count=20), send_cost_s=0.0)
    assert [len(b) for b, _ in sent] == [1] * 20
    assert progress.sent == 20
    assert max(progress.lateness_s) < 1e-6


def test_slow_broker_makes_sends_late_never_fewer_or_drifting() -> None:
    # each send takes 0.25 s at 10/s: tasks fall due while sending and go out together
    schedule = fixed_rate(10.0, count=40)
    _, sent, progress = run_with(schedule, send_cost_s=0.25)
    scheduled = [due for batch, _ in sent for due in batch]
    assert scheduled == list(schedule.offsets())  # every task, at its intended time, none dropped
    assert progress.sent == 40 and max(len(b) for b, _ in sent) > 1
    assert max(progress.lateness_s) <= 0.25 + 1e-9  # bounded: the schedule did not drift


def test_runner_stops_between_batches() -> None:
    clock = FakeClock()
    stop = threading.Event()
    seen: list[int] = []

    def send(batch: Sequence[float], now: float) -> None:
        seen.append(len(batch))
        if len(seen) == 3:
            stop.set()

    progress = drive(fixed_rate(1.0, count=10), send, 10, stop, clock)
    assert progress.sent == 3 == sum(seen)


def test_burst_batches_respect_max_batch() -> None:
    _, sent, _ = run_with(Burst(2500), send_cost_s=0.001, max_batch=1000)
    assert [len(b) for b, _ in sent] == [1000, 1000, 500]


def test_lateness_summary() -> None:
    summary = lateness_summary([0.0] * 98 + [1.5, 2.0])
    assert summary["max_s"] == 2.0 and summary["late_over_1s"] == 2 and summary["p50_s"] == 0.0
    assert lateness_summary([])["p99_s"] is None
