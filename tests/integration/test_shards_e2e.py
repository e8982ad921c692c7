"""One run sent from several processes (``inject --shard I/N --start-at``) against a real Redis, and
shard logs kept on moto's S3: together the shards are one run, every task once."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from pathlib import Path

from tests.realbrokers import (
    MotoSQS,
    RedisServer,
    base_env,
    celery_worker,
    read_log,
    run_cli,
    start_cli,
    wait_for_executed,
)

RATE_PER_S = 400
COUNT = 1200  # 3 s at 400/s


def test_four_shards_are_one_run(tmp_path: Path, redis_server: RedisServer) -> None:
    start_at = time.time() + 6  # the shards' interpreters start within this
    run_id = "shards-" + uuid.uuid4().hex[:6]
    log_dir = tmp_path / "results"
    env = base_env(redis_server.url)
    common = ["inject", "--mode", "sustained", "--rate", f"{RATE_PER_S}/s", "--count", str(COUNT), "--quiet"]
    shards = [
        start_cli(
            [*common, "--shard", f"{i}/4", "--run-id", run_id, "--start-at", repr(start_at), "--log-dir", str(log_dir)],
            env,
            tmp_path,
        )
        for i in range(4)
    ]
    for proc in shards:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    # by shard index: the names carry each shard's own start second, which may differ
    logs = sorted(log_dir.glob("worker_tasks_*_shard-*-of-4.log"), key=lambda p: p.name.rsplit("_shard-", 1)[1])
    assert len(logs) == 4
    sent: list[tuple[float, str]] = []
    for index, log in enumerate(logs):
        run, tasks, end = read_log(log)
        assert run["run_id"] == run_id and run["shard"] == [index, 4] and end is not None
        assert run["rate_per_s"] == RATE_PER_S / 4 and end["status"] == "completed"
        times = [datetime.fromisoformat(t["sent_at"]).timestamp() for t in tasks]
        # each shard's first task is task `index` of the whole schedule, due at index / rate
        assert 0 <= times[0] - (start_at + index / RATE_PER_S) <= 0.050, (index, times[0] - start_at)
        sent += [(t, task["task_id"]) for t, task in zip(times, tasks, strict=True)]
    ids = [task_id for _, task_id in sent]
    assert len(ids) == COUNT and len(set(ids)) == COUNT
    # the broker holds exactly the logged tasks, each once
    queued = redis_server.queued_task_ids("celery")
    assert sorted(queued) == sorted(ids)
    # the combined send rate: COUNT - 1 intervals between the first and the last send
    times = sorted(t for t, _ in sent)
    combined = (COUNT - 1) / (times[-1] - times[0])
    assert abs(combined / RATE_PER_S - 1) <= 0.01, combined


def test_shard_logs_on_s3_give_the_combined_metrics(
    tmp_path: Path, moto_sqs: MotoSQS, redis_server: RedisServer
) -> None:
    env = {**base_env(redis_server.url), "AWS_ENDPOINT_URL": moto_sqs.endpoint}
    s3 = moto_sqs.client("s3")
    bucket = "logs-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    prefix = f"s3://{bucket}/run-1/"
    timings = tmp_path / "timings"
    executed = tmp_path / "executed.jsonl"
    common = ["inject", "--mode", "burst", "--count", "30", "--run-id", "r1", "--log-dir", prefix, "--quiet"]
    for index in range(3):
        proc = start_cli([*common, "--shard", f"{index}/3"], env, tmp_path)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip().splitlines()[-1].startswith(f"{prefix}worker_tasks_")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="run-1/")["Contents"]]
    assert len(keys) == 3 and all(k.endswith(".log") for k in keys)
    with celery_worker(
        redis_server.url,
        executed,
        extra_env={"CAPACITY_TIMINGS": str(timings)},
        extra_args=("--include", "capacity.probe"),
    ):
        wait_for_executed(executed, 30)
        time.sleep(0.5)
    proc = start_cli(["metrics", "--tasks-log", prefix, "--timings", str(timings), "-f", "json"], env, tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    data = json.loads(out)
    assert (data["sent"], data["completed"], data["missing"]) == (30, 30, 0)
    assert data["service_time_p95_s"] is not None and not data["warnings"]
    # a shard missing is said, not hidden
    proc = start_cli(["metrics", "--tasks-log", f"s3://{bucket}/{keys[0]}", "-f", "json"], env, tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert any("1 of 3 shard logs given" in w for w in json.loads(out)["warnings"])


def _first_sent(log: Path) -> float:
    _, tasks, _ = read_log(log)
    return datetime.fromisoformat(tasks[0]["sent_at"]).timestamp()


def test_shards_agree_on_their_start_through_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    """Issue #27: no --start-at given; shard 0 starts, shard 1 ten seconds later: the first claims
    now + --start-delay through Redis (SET NX under the run id), the second reads it; they begin
    within 50 ms of each other."""
    run_id = "agree-" + uuid.uuid4().hex[:6]
    env = base_env(redis_server.url)
    common = ["inject", "--mode", "sustained", "--rate", "20/s", "--count", "40", "--quiet", "--run-id", run_id]
    common += ["--start-delay", "13s", "--log-dir", str(tmp_path / "results")]
    first = start_cli([*common, "--shard", "0/2"], env, tmp_path)
    time.sleep(10)
    second = start_cli([*common, "--shard", "1/2"], env, tmp_path)
    for proc in (first, second):
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    logs = sorted((tmp_path / "results").glob("worker_tasks_*_shard-*-of-2.log"), key=lambda p: p.name[-10:])
    assert len(logs) == 2
    runs = [read_log(log)[0] for log in logs]
    assert runs[0]["start_at"] == runs[1]["start_at"] and all(r["start_agreed"] for r in runs)
    starts = [_first_sent(log) for log in logs]
    # shard 1's first task is scheduled 1/20 s after shard 0's (every 2nd task of 20/s)
    assert abs(starts[1] - starts[0] - 0.05) < 0.05
    agreed = redis_server.client().get(f"capacity:start:{run_id}")
    assert agreed is not None and abs(float(agreed) - datetime.fromisoformat(runs[0]["start_at"]).timestamp()) < 1e-3


def test_a_shard_past_its_start_refuses_shifts_or_catches_up(tmp_path: Path, redis_server: RedisServer) -> None:
    """A start 30 s past (more than --late-grace 5 s): refused in one line (exit 2, no log); with
    --late shift the schedule starts now (the first task on time, none late); with --late
    catch-up what is due goes at once (today's behaviour, named)."""
    env = base_env(redis_server.url)
    past = repr(time.time() - 30)
    common = ["inject", "--mode", "sustained", "--rate", "10/s", "--count", "20", "--quiet", "--start-at", past]
    refused = run_cli([*common, "--log-dir", str(tmp_path / "refused")], env, tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "--late shift" in refused.stderr
    assert not (tmp_path / "refused").exists() or not list((tmp_path / "refused").glob("*.log"))
    for rule in ("shift", "catch-up"):
        proc = run_cli([*common, "--late", rule, "--log-dir", str(tmp_path / rule)], env, tmp_path)
        assert proc.returncode == 0, proc.stderr
        (log,) = (tmp_path / rule).glob("worker_tasks_*.log")
        _, tasks, end = read_log(log)
        assert end is not None and end["sent"] == 20
        spread = _first_sent(log) - datetime.fromisoformat(tasks[-1]["sent_at"]).timestamp()
        if rule == "shift":
            assert end["lateness"]["late_over_1s"] == 0 and abs(spread) > 1.5  # 2 s of schedule kept
        else:
            assert end["lateness"]["late_over_1s"] == 20 and abs(spread) < 1.0  # all due: sent at once
