"""Streamed fleet simulations (#26): a run whose tasks never all sit in memory gives the exact
mode's figures (counts, means, maxima, drain time, seed 002's threshold times, the timeline, the
pools' replica-hours), and its percentiles within 1% of the exact ones."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from typer.testing import CliRunner

from capacity.cli import app
from capacity.sizing import stream
from capacity.sizing.autoscale import Pool, TaskClass, simulate_pools
from capacity.sizing.policies import Fleet, Policy
from capacity.sizing.simulate import Workload
from capacity.sizing.stream import ArraySource, DrawnSource

PERCENTILES = ("wait_p95_s", "wait_p99_s", "response_p95_s")


def _streamed(classes: list[TaskClass]) -> list[TaskClass]:
    return [dataclasses.replace(c, source=ArraySource(c.arrivals, c.services)) for c in classes]


def _poisson(rng: np.random.Generator, rate: float, n: int, service_s: float) -> tuple[np.ndarray, np.ndarray]:
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    return arrivals - arrivals[0], rng.lognormal(np.log(service_s), 0.5, n)


def _assert_same_but_percentiles(exact: object, streamed: object) -> None:
    for field in dataclasses.fields(exact):  # type: ignore[arg-type]
        a, b = getattr(exact, field.name), getattr(streamed, field.name)
        if field.name == "classes":
            for x, y in zip(a, b, strict=True):
                _assert_same_but_percentiles(x, y)
        elif field.name in PERCENTILES:
            assert abs(b / a - 1) <= 0.0101, (field.name, a, b)
        elif field.name == "percentiles":
            assert (a, b) == ("exact", "sketch")
        elif isinstance(a, float):
            assert b == pytest.approx(a, rel=1e-9, abs=1e-9), field.name
        else:
            assert a == b, field.name


@pytest.mark.parametrize("layout", ["one queue", "two queues, one pool", "two pools"])
def test_a_streamed_run_equals_the_exact_one(layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "BLOCK", 1 << 12)  # many blocks: every fold and drop is exercised
    rng = np.random.default_rng(3)
    classes = [TaskClass("t", "celery", *_poisson(rng, 200, 60_000, 0.05))]
    fleet, policy = Fleet(4, 1, 40, 20.0), Policy("keda-redis", target=20)
    pools = [Pool("w", ("celery",), fleet, policy)]
    if layout != "one queue":
        classes.append(TaskClass("b", "bulk", *_poisson(rng, 30, 6_000, 0.3)))
        if layout == "two queues, one pool":
            pools = [Pool("w", ("celery", "bulk"), fleet, policy)]
        else:
            pools.append(Pool("x", ("bulk",), Fleet(2, 1, 10, 5.0), policy))
    exact = simulate_pools(classes, pools)
    streamed = simulate_pools(_streamed(classes), pools)
    assert exact.seconds_above_wait_target > 0 and exact.classes[0].seconds_queue_critical > 0  # not vacuous
    _assert_same_but_percentiles(exact, streamed)


def test_percentiles_of_ten_million_tasks_are_within_one_percent() -> None:
    """The issue's check: 10,000,000 tasks (a backlog that grows and drains under keda-redis), the
    streamed run's wait p95 and p99 and response p95 against the exact run's."""
    rng = np.random.default_rng(11)
    arrivals, services = _poisson(rng, 1000, 10_000_000, 0.016)
    classes = [TaskClass("t", "celery", arrivals, services)]
    pools = [Pool("w", ("celery",), Fleet(4, 1, 400, 30.0), Policy("keda-redis", target=20))]
    exact = simulate_pools(classes, pools)
    streamed = simulate_pools(_streamed(classes), pools)
    assert exact.wait_p95_s > 1  # waits worth measuring
    for name in PERCENTILES:
        assert abs(getattr(streamed, name) / getattr(exact, name) - 1) <= 0.0101, name
    assert streamed.tasks == exact.tasks and streamed.classes[0].wait_max_s == exact.classes[0].wait_max_s


def test_drawn_sources_hand_out_their_tasks_by_time_and_start_over() -> None:
    fixed = DrawnSource(Workload(1, "fixed", arrival_rate_per_s=10, count=25, service="constant", service_time_s=1), 1)
    first, _ = fixed.take(0.95)
    rest, services = fixed.take(100)
    assert list(first) == [i / 10 for i in range(10)] and len(rest) == 15 and fixed.exhausted
    assert set(services) == {1.0}
    poisson = Workload(1, "poisson", arrival_rate_per_s=100, count=50_000, service="exponential", service_time_s=1)
    source = DrawnSource(poisson, 7)
    a, _ = source.take(float("inf"))
    assert len(a) == 50_000 and a[0] == 0 and np.all(np.diff(a) >= 0)
    assert len(a) / a[-1] == pytest.approx(100, rel=0.03)
    again, _ = source.restarted().take(float("inf"))
    assert np.array_equal(a, again)


def test_the_cli_streams_above_its_threshold_or_when_asked() -> None:
    argv = ["autoscale", "--concurrency", "4", "--arrival", "poisson", "--arrival-rate", "50/s", "--count", "20000"]
    argv += ["--service-time", "0.1s", "--max-replicas", "20"]
    runner = CliRunner()
    streamed = runner.invoke(app, [*argv, "--percentiles", "sketch", "-f", "json"])
    assert streamed.exit_code == 0, streamed.output
    assert '"percentiles": "sketch"' in streamed.stdout
    shown = runner.invoke(app, [*argv, "--percentiles", "sketch", "-f", "markdown"]).stdout
    assert "DDSketch and are within 1% of the exact ones" in shown
    assert '"percentiles": "exact"' in runner.invoke(app, [*argv, "-f", "json"]).stdout  # auto: 20,000 fit
    bad = runner.invoke(app, [*argv, "--percentiles", "roughly"])
    assert bad.exit_code == 2 and "--percentiles 'roughly': one of auto, exact, sketch" in bad.stderr
