"""Erlang C against published worked examples, named; and its properties."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capacity.errors import InputError
from capacity.sizing.queueing import MMc, Target, erlang_b, erlang_c, required_slots


def test_pyworkforce_readme_example() -> None:
    # pyworkforce README, ErlangC(transactions=100, asa=20/60, aht=3, interval=30):
    # required_positions(service_level=0.8, max_occupancy=0.85) -> raw_positions 14,
    # service_level 0.8883500191794669, occupancy 0.7142857142857143, waiting_probability 0.1741319335950498
    arrival = 100 / (30 * 60)  # per second
    queue = MMc(arrival, 3 * 60, 14)
    assert queue.offered_load == pytest.approx(10.0)
    assert queue.utilization == pytest.approx(0.7142857142857143)
    assert queue.p_wait == pytest.approx(0.1741319335950498, rel=1e-9)
    assert queue.service_level(20) == pytest.approx(0.8883500191794669, rel=1e-9)
    target = Target(service_level=(0.8, 20), max_utilization=0.85)
    assert required_slots(arrival, 180, target) == 14


def test_a_load_beyond_the_slot_limit_is_refused_at_once() -> None:
    # 2/s x 1e14 s is 2e14 busy slots on average: Erlang C is O(slots), so the search must stop
    # before evaluating any count (a fuzzed plan --service-time 99999999999999 ran until OOM)
    refused = r"the load \(200,000,000,000,000 busy slots on average\) needs more than 100,000 slots"
    with pytest.raises(InputError, match=refused):
        required_slots(2.0, 1e14, Target(max_utilization=0.9))
    assert required_slots(2.0, 49_999.0, Target(max_utilization=1.0)) == 99_999  # 99,998 busy: just inside


def test_erlang_b_textbook_value() -> None:
    # Erlang B table (e.g. Kleinrock, Queueing Systems vol. 1): B(c=10, a=5 Erlangs) = 0.01838
    assert erlang_b(10, 5.0) == pytest.approx(0.018385, abs=2e-6)


def test_mm1_closed_forms() -> None:
    # M/M/1: P(wait) = rho, Wq = rho / (mu - lambda)
    queue = MMc(0.5, 1.0, 1)
    assert queue.p_wait == pytest.approx(0.5)
    assert queue.mean_wait_s == pytest.approx(1.0)
    assert queue.mean_response_s == pytest.approx(2.0)
    # P(W > t) = rho exp(-(mu - lambda) t): the 90th percentile solves 0.5 exp(-0.5 t) = 0.1
    assert queue.wait_percentile_s(0.9) == pytest.approx(2 * math.log(5))


def test_hundreds_of_slots_do_not_overflow() -> None:
    queue = MMc(950.0, 1.0, 1000)  # a = 950 Erlangs: a^c / c! overflows a float
    assert 0 < queue.p_wait < 1
    assert math.isfinite(queue.mean_wait_s)


def test_overload_is_unstable() -> None:
    queue = MMc(2.0, 1.0, 2)
    assert not queue.stable and queue.p_wait == 1.0 and queue.mean_wait_s == math.inf


@given(st.floats(0.1, 50), st.integers(1, 200))
def test_more_slots_never_wait_longer(load: float, slots: int) -> None:
    a, b = MMc(load, 1.0, slots), MMc(load, 1.0, slots + 1)
    assert b.mean_wait_s <= a.mean_wait_s
    assert erlang_c(slots + 1, load) <= erlang_c(slots, load) + 1e-12


@given(st.floats(0.01, 20), st.floats(0, 10))
def test_more_arrivals_never_need_fewer_slots(rate: float, extra: float) -> None:
    target = Target(mean_wait_s=5.0)
    assert required_slots(rate + extra, 2.0, target) >= required_slots(rate, 2.0, target)


def test_plan_cli(tmp_path: Path) -> None:
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from capacity.cli import app

    runner = CliRunner()
    # the pyworkforce example through the CLI: 100 per 30 min = 200/h, 3 min each
    result = runner.invoke(
        app,
        [
            "plan",
            "--arrival-rate",
            "200/h",
            "--service-time",
            "3m",
            "--service-level",
            "0.8",
            "--answer-time",
            "20s",
            "--max-utilization",
            "0.85",
            "-f",
            "json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["required_workers"] == 14 and data["offered_load"] == pytest.approx(10.0)
    assert data["service_level"] == pytest.approx(0.8883500191794669)
    for key in ("utilization", "p_wait", "mean_wait_s"):
        assert key in data
    metrics_file = Path(tmp_path) / "m.json"
    metrics_file.write_text(json.dumps({"service_time_mean_s": 12.0}))
    result = runner.invoke(
        app,
        [
            "plan",
            "--arrival-rate",
            "120/min",
            "--from-metrics",
            str(metrics_file),
            "--workers",
            "26",
            "--instance",
            "medium",
            "-f",
            "json",
        ],
    )
    data = json.loads(result.stdout)
    assert (data["slots"], data["workers"], data["concurrency_per_worker"], data["monthly_usd"]) == (26, 13, 2, 949.0)
    result = runner.invoke(app, ["plan", "--arrival-rate", "1/s", "--service-time", "1s"])
    assert result.exit_code == 2 and "give a target" in result.stderr
    result = runner.invoke(app, ["plan", "--arrival-rate", "fast", "--service-time", "1s", "--workers", "2"])
    assert result.exit_code == 2 and "'fast' is not a rate" in result.stderr
