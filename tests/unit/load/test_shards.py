"""Shards of one run: every schedule split so that the shards together send exactly the whole."""

from __future__ import annotations

import pytest

from capacity.brokers.messages import new_ids
from capacity.errors import InputError
from capacity.load.schedules import Burst, Ramp, Schedule, Shard, Stages, describe, fixed_rate, parse_shard
from capacity.units import parse_instant

SCHEDULES: list[Schedule] = [
    Burst(10),
    fixed_rate(400.0, count=1001),
    Ramp(10.0, 50.0, 20.0),
    Stages((Ramp(5.0, 5.0, 4.0), Ramp(5.0, 25.0, 4.0), Ramp(25.0, 25.0, 2.0))),
]


@pytest.mark.parametrize("whole", SCHEDULES, ids=lambda s: s.mode)
@pytest.mark.parametrize("total", [1, 3, 4])
def test_shards_together_are_the_whole_schedule(whole: Schedule, total: int) -> None:
    shards = [Shard(whole, i, total) for i in range(total)]
    assert sorted(o for s in shards for o in s.offsets()) == list(whole.offsets())
    assert sum(s.count for s in shards) == whole.count
    # each shard's share of the count differs by at most one task
    assert max(s.count for s in shards) - min(s.count for s in shards) <= 1
    for shard in shards:
        assert len(list(shard.offsets())) == shard.count


def test_a_shard_declares_its_share_of_the_rate() -> None:
    # 400/s over 4 shards: each logs 100/s, so the metrics of all shard logs add up to 400/s
    described = describe(Shard(fixed_rate(400.0, count=1000), 1, 4))
    assert described["rate_per_s"] == pytest.approx(100.0) and described["count"] == 250
    assert described["shard"] == [1, 4]
    ramp = describe(Shard(Ramp(10.0, 50.0, 20.0), 0, 2))
    assert ramp["rate_per_s"] == pytest.approx([5.0, 25.0])
    stages = describe(Shard(Stages((Ramp(4.0, 8.0, 1.0),)), 0, 4))
    assert stages["stages"] == [{"from_per_s": 1.0, "to_per_s": 2.0, "duration_s": 1.0}]


def test_shard_ids_cannot_collide_across_shards() -> None:
    a, b = new_ids(1000, shard=0), new_ids(1000, shard=1)
    assert not set(a) & set(b)
    assert all(i[20:23] == "000" for i in a) and all(i[20:23] == "001" for i in b)
    assert all(len(i) == 36 and i[14] == "4" for i in a)  # still UUID-4-shaped


@pytest.mark.parametrize(("text", "pair"), [("0/4", (0, 4)), ("3/4", (3, 4)), ("0/1", (0, 1))])
def test_parse_shard(text: str, pair: tuple[int, int]) -> None:
    assert parse_shard(text) == pair


@pytest.mark.parametrize("text", ["4/4", "-1/4", "1", "a/b", "0/0", "1/"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="--shard"):
        parse_shard(text)


def test_start_at_takes_iso_and_epoch() -> None:
    assert parse_instant("2026-12-01T10:00:00Z") == 1796119200.0
    assert parse_instant("2026-12-01T11:00:00+01:00") == 1796119200.0
    assert parse_instant("2026-12-01T10:00:00") == 1796119200.0  # no offset: UTC
    assert parse_instant("1796119200.5") == 1796119200.5
    for bad in ("tomorrow", "nan", "inf"):
        with pytest.raises(InputError, match="--start-at"):
            parse_instant(bad, "--start-at")


def test_shards_print_an_indexed_job_without_the_broker_password() -> None:
    import yaml
    from typer.testing import CliRunner

    from capacity.cli import app

    args = ["inject", "--broker", "redis://:hunter2@10.0.0.5:6379/0", "--mode", "sustained", "--rate", "400/s"]
    args += ["--count", "800", "--queue", "my q", "--shards", "4", "-f", "k8s", "--start-at", "2026-12-01T10:00:00Z"]
    result = CliRunner().invoke(app, [*args, "--log-dir", "s3://bucket/run1/", "--run-id", "launch-1"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    job = yaml.safe_load(result.stdout)
    spec = job["spec"]
    assert (job["kind"], spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Job", "Indexed", 4, 4)
    assert spec["backoffLimit"] == 0
    container = spec["template"]["spec"]["containers"][0]
    command = container["command"][2]
    assert "--shard $(JOB_COMPLETION_INDEX)/4 --run-id launch-1 --start-at 2026-12-01T10:00:00Z" in command
    assert "--queue 'my q'" in command and "--log-dir s3://bucket/run1/" in command and "--broker" not in command
    assert container["env"] == [
        {"name": "CAPACITY_BROKER_URL", "valueFrom": {"secretKeyRef": {"name": "capacity-broker", "key": "url"}}}
    ]
    # without an s3:// prefix, the logs go to a shared volume
    shared = yaml.safe_load(CliRunner().invoke(app, args).stdout)["spec"]["template"]["spec"]
    assert shared["volumes"][0]["persistentVolumeClaim"] == {"claimName": "capacity-results"}
    assert "--log-dir /results" in shared["containers"][0]["command"][2]
    refused = CliRunner().invoke(app, ["inject", "--broker", "redis://h/0", "--count", "5", "--shards", "2"])
    assert refused.exit_code == 2 and "go together" in refused.stderr
