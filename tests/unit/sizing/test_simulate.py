"""The simulation against queueing theory, within tolerances justified by the replications."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from capacity.cli import app
from capacity.errors import InputError
from capacity.sizing.queueing import MMc
from capacity.sizing.simulate import Workload, replicate, run_pool

REPLICATIONS = 8


def check_against(analytic: float, result: dict) -> None:  # type: ignore[type-arg]
    """The replications' mean wait lies within 4 of its own standard errors of theory (the CI
    half-width is ~2 standard errors); a looser bound would hide a wrong model, a tighter one
    would fail on sampling noise."""
    half = (result.ci95_half_width or {})["wait_mean_s"]
    assert abs(result.wait_mean_s - analytic) <= 2 * half + 1e-9, (result.wait_mean_s, analytic, half)
    assert half < 0.1 * analytic  # and the check is sharp: the interval is narrow


def test_mm1_matches_erlang_c() -> None:
    # M/M/1, rho = 0.6: Wq = rho / (mu - lambda) = 0.6 / 0.4 = 1.5 s
    result = replicate(
        Workload(
            slots=1, arrival="poisson", arrival_rate_per_s=0.6, count=50_000, service="exponential", service_time_s=1.0
        ),
        seed=11,
        replications=REPLICATIONS,
    )
    check_against(MMc(0.6, 1.0, 1).mean_wait_s, result)


def test_mmc_matches_erlang_c() -> None:
    # M/M/4, a = 3 Erlangs (rho = 0.75)
    result = replicate(
        Workload(
            slots=4, arrival="poisson", arrival_rate_per_s=3.0, count=50_000, service="exponential", service_time_s=1.0
        ),
        seed=21,
        replications=REPLICATIONS,
    )
    check_against(MMc(3.0, 1.0, 4).mean_wait_s, result)


def test_md1_matches_pollaczek_khinchine() -> None:
    # M/D/1: Wq = rho S / (2 (1 - rho)); rho = 0.7, S = 1 s: 0.7 / 0.6 = 1.1667 s
    result = replicate(
        Workload(
            slots=1, arrival="poisson", arrival_rate_per_s=0.7, count=50_000, service="constant", service_time_s=1.0
        ),
        seed=31,
        replications=REPLICATIONS,
    )
    check_against(0.7 * 1.0 / (2 * (1 - 0.7)), result)


def test_burst_drain_time_is_exact() -> None:
    # 100 tasks of 10 s on 4 slots: 25 rounds, 250 s; task k of each round waits 10 x its round
    result = replicate(Workload(slots=4, arrival="burst", count=100, service="constant", service_time_s=10.0))
    assert result.drain_time_s == 250.0
    assert result.wait_mean_s == pytest.approx(120.0)
    assert result.throughput_per_min == pytest.approx(24.0)


def test_pool_fcfs_by_hand() -> None:
    starts = run_pool(np.array([0.0, 0.0, 0.5, 3.0]), np.array([2.0, 1.0, 1.0, 1.0]), 2)
    assert starts.tolist() == [0.0, 0.0, 1.0, 3.0]


def test_seeded_and_reproducible() -> None:
    workload = Workload(
        slots=2,
        arrival="poisson",
        arrival_rate_per_s=1.5,
        count=2000,
        service="lognormal",
        service_time_s=1.0,
        service_cv=0.5,
    )
    assert replicate(workload, seed=5) == replicate(workload, seed=5)
    assert replicate(workload, seed=5).wait_mean_s != replicate(workload, seed=6).wait_mean_s


def test_lognormal_has_the_requested_mean() -> None:
    workload = Workload(
        slots=100,
        arrival="fixed",
        arrival_rate_per_s=1.0,
        count=200_000,
        service="lognormal",
        service_time_s=4.0,
        service_cv=2.0,
    )
    assert replicate(workload, seed=3).service_time_mean_s == pytest.approx(4.0, rel=0.05)


def test_bad_workloads() -> None:
    with pytest.raises(InputError, match="needs --arrival-rate"):
        replicate(Workload(slots=1, arrival="poisson", service_time_s=1.0))
    with pytest.raises(InputError, match="needs --from-metrics"):
        replicate(Workload(slots=1, arrival="burst", service="empirical"))
    with pytest.raises(InputError, match="not one of"):
        replicate(Workload(slots=1, arrival="weekly", service_time_s=1.0))


def test_cli_json_keys_replay_and_empirical(tmp_path: Path) -> None:
    from tests.unit.measure.test_metrics_units import T0, write_log

    log = write_log(tmp_path / "l.log", {f"t{i}": T0 + i * 0.5 for i in range(40)})
    per_task = tmp_path / "per_task.csv"
    per_task.write_text("task_id,service_s\n" + "".join(f"t{i},{0.2 + 0.01 * i}\n" for i in range(40)))
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "simulate",
            "--workers",
            "2",
            "--arrival",
            "replay",
            "--tasks-log",
            str(log),
            "--service",
            "empirical",
            "--from-metrics",
            str(per_task),
            "-f",
            "json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("throughput_per_min", "wait_mean_s", "wait_p95_s", "response_time_mean_s", "drain_time_s"):
        assert key in data
    assert data["tasks"] == 40 and data["wait_mean_s"] == 0.0  # 2 slots, 0.5 s apart, <= 0.59 s each
    result = runner.invoke(app, ["simulate", "--workers", "0", "--arrival", "burst", "--service-time", "1s"])
    assert result.exit_code == 2 and "--workers must be at least 1" in result.stderr


def test_replications_round_trip_through_json() -> None:
    from capacity.sizing.simulate import Replications

    result = replicate(Workload(slots=2, arrival="burst", count=10, service="exponential", service_time_s=1.0), 1, 3)
    assert Replications.from_json(result.to_json()) == result
