"""BullMQ's limiter (max jobs per duration, whatever the concurrency) in the model: simulate,
plan, recommend and the matrix's notes, each checked on a case computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from capacity.cli import app
from capacity.errors import InputError
from capacity.matrix.sampler import bottleneck
from capacity.matrix.spec import CellSpec, ModeSpec
from capacity.sizing.simulate import RateLimit, run_pool
from capacity.units import parse_rate_limit


def test_parse_rate_limit() -> None:
    assert parse_rate_limit("100/min") == (100, 60.0)  # seed 002: RATE_LIMIT_MAX=100, RATE_LIMIT_DURATION=60000
    assert parse_rate_limit("10/1s") == (10, 1.0)
    assert parse_rate_limit("5/250ms") == (5, 0.25)
    for bad in ("100", "0/min", "x/min", "10/0s"):
        with pytest.raises(InputError, match="--rate-limit"):
            parse_rate_limit(bad)


def test_limiter_in_the_fcfs_pool_by_hand() -> None:
    # 10 tasks at once, 4 slots, S = 0.1 s, at most 2 started per 1 s window: the windows open at
    # 0, 1, 2, 3, 4 with two starts each, whatever the free slots; the last finishes at 4.1 s
    starts = run_pool(np.zeros(10), np.full(10, 0.1), 4, RateLimit(2, 1.0))
    assert starts.tolist() == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]
    # a limit looser than the slots changes nothing
    assert (
        run_pool(np.zeros(10), np.full(10, 0.1), 4, RateLimit(100, 1.0)).tolist()
        == run_pool(np.zeros(10), np.full(10, 0.1), 4).tolist()
    )


def test_simulate_takes_the_limit() -> None:
    args = ["simulate", "--workers", "4", "--arrival", "burst", "--count", "10", "--service", "constant"]
    result = CliRunner().invoke(app, [*args, "--service-time", "100ms", "--rate-limit", "2/1s", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["drain_time_s"] == pytest.approx(4.1) and data["throughput_per_min"] == pytest.approx(10 / 4.1 * 60)
    assert data["model"].endswith("limiter 2 per 1 s")


def test_plan_says_when_the_limit_binds() -> None:
    # 10 slots of S = 2 s run 300 jobs/min; seed 002's 100/min limiter lets 100/min through:
    # the limiter binds, and ceil(100/60 x 2) = 4 slots are all it can use
    args = ["plan", "--arrival-rate", "80/min", "--service-time", "2s", "--workers", "10", "--rate-limit", "100/min"]
    result = CliRunner().invoke(app, [*args, "-f", "json"])
    data = json.loads(result.stdout)
    assert (data["binds"], data["useful_slots"]) == ("limiter", 4)
    assert data["throughput_cap_per_min"] == pytest.approx(100.0)
    assert data["rate_limit"] == {"max": 100, "duration_ms": 60000}
    unstable = CliRunner().invoke(app, [*args[:2], "150/min", *args[3:], "-f", "markdown"])
    assert "grows without bound whatever the slots" in unstable.stdout


def test_recommend_prints_the_workers_bullmq_options() -> None:
    runner = CliRunner()
    out = runner.invoke(
        app, ["recommend", "scale-out", "500", "--concurrency", "5", "--rate-limit", "100/min", "-f", "bullmq"]
    )
    assert json.loads(out.stdout) == {"concurrency": 5, "limiter": {"max": 100, "duration": 60000}}
    data = json.loads(
        runner.invoke(
            app, ["recommend", "--queue-depth", "500", "--concurrency", "5", "--rate-limit", "100/min", "-f", "json"]
        ).stdout
    )
    assert data["limiter_drain_time_s"] == pytest.approx(300.0)  # 500 jobs at 100/min
    photos = json.loads(
        runner.invoke(app, ["recommend", "photos", "5000", "--api-rate-limit", "60/min", "-f", "bullmq"]).stdout
    )
    assert photos["photo"]["limiter"] == {"max": 60, "duration": 60000} and "concurrency" in photos["face"]
    refused = runner.invoke(app, ["recommend", "topology", "--users", "10", "-f", "bullmq"])
    assert refused.exit_code == 2 and "not available" in refused.stderr


def test_matrix_note_names_the_limiter_when_x_plateaus_at_it() -> None:
    cell = CellSpec(1, "c", 1000, 8, ModeSpec(mode="burst", count=50))
    assert bottleneck(cell, {"throughput_per_min": 98.0}, None, "100/min").startswith(
        "rate-limited: X 98/min at the limiter's 100/min"
    )
    assert "rate-limited" not in bottleneck(cell, {"throughput_per_min": 40.0}, None, "100/min")
