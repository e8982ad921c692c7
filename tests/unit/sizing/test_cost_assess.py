from __future__ import annotations

import pytest

from capacity.errors import InputError, ProfileError
from capacity.profiles import Profiles
from capacity.sizing.assess import assess, grade
from capacity.sizing.cost import cheapest_for_throughput, monthly_cost


def test_seed_002_cost_table_at_720_hours(shipped: Profiles) -> None:
    # seed 002 Cost Estimate: $360, $360, $432, $576 with 10, 5, 3, 2 workers
    rows = [monthly_cost(i, i.seed_workers, 720) for i in shipped.instances.instances]
    assert [(r.instance, r.workers, r.monthly_usd) for r in rows] == [
        ("small", 10, 360.0),
        ("medium", 5, 360.0),
        ("large", 3, 432.0),
        ("xlarge", 2, 576.0),
    ]


def test_default_month_is_730_hours(shipped: Profiles) -> None:
    assert monthly_cost(shipped.instance("medium"), 5).monthly_usd == 365.0


def test_cheapest_for_throughput_ranks_by_cost(shipped: Profiles) -> None:
    # 300/min x 12 s = 60 busy slots; at 80%: 75 slots. Policy table: small 2/worker -> 38 (over max 10),
    # medium 5 -> 15, large 10 -> 8, xlarge 20 -> 4.
    rows = cheapest_for_throughput(shipped.instances.instances, 5.0, 12.0, 0.8, use_policy=True)
    by_name = {r.instance: r for r in rows}
    assert {n: r.workers for n, r in by_name.items()} == {"small": 38, "medium": 15, "large": 8, "xlarge": 4}
    assert not by_name["small"].within_max_workers
    assert rows[-1].instance == "small"  # over its max workers: last
    monthly = [r.monthly_usd for r in rows if r.within_max_workers]
    assert monthly == sorted(monthly)


def test_cost_rejects_negative_workers(shipped: Profiles) -> None:
    with pytest.raises(InputError):
        monthly_cost(shipped.instance("small"), -1)


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        # seed 002 Monitoring Metrics
        ("queue_depth", 10, "target"),
        ("queue_depth", 50, "warning"),
        ("queue_depth", 101, "critical"),
        ("wait", 5, "target"),
        ("wait", 45, "warning"),
        ("wait", 61, "critical"),
        ("cpu_util", 70, "target"),
        ("cpu_util", 85, "ok"),
        ("cpu_util", 92, "warning"),
        ("cpu_util", 96, "critical"),
        ("mem_util", 95.5, "critical"),
        ("active_pct", 100, "critical"),
        ("active_pct", 75, "target"),
        ("completion_rate", 99, "target"),
        ("completion_rate", 95, "warning"),
        ("completion_rate", 80, "critical"),
    ],
)
def test_seed_002_grades(shipped: Profiles, metric: str, value: float, expected: str) -> None:
    t = shipped.thresholds.metrics[metric]
    assert grade(value, t.target, t.warning, t.critical) == expected


def test_assess_scaling_advice(shipped: Profiles) -> None:
    a = assess({"queue_depth": 150, "cpu_util": 40}, shipped.thresholds)
    assert a.critical
    assert a.horizontal == ("queue_depth 150 > 100", "cpu_util 40 < 50")
    a = assess({"cpu_util": 93, "mem_util": 50}, shipped.thresholds)
    assert (a.worst, a.vertical) == ("warning", ("cpu_util 93 > 90",))


def test_bad_threshold_text_is_a_profile_error() -> None:
    with pytest.raises(ProfileError, match="not a comparison"):
        grade(1, "about 5", "> 1", "> 2")
