"""metrics end to end: a real `celery worker` whose task sleeps a known time, timings from the probe
(Redis directory and stream, SQS), Celery events (capacity collect) and the result backend."""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.realbrokers import (
    ROOT,
    MotoSQS,
    RabbitServer,
    RedisServer,
    base_env,
    celery_worker,
    run_cli,
    run_script,
    start_cli,
    wait_for_executed,
    wait_until_ready,
)

SLEEP_S = 0.2
CONCURRENCY = 2
COUNT = 100


def inject(url: str, tmp_path: Path, *extra: str) -> Path:
    log_dir = tmp_path / "results"
    proc = run_cli(
        [
            "inject",
            "--broker",
            url,
            "--count",
            str(COUNT),
            "--kwargs",
            json.dumps({"sleep_s": SLEEP_S}),
            "--log-dir",
            str(log_dir),
            "--quiet",
            *extra,
        ],
        base_env(url),
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    return next(log_dir.glob("worker_tasks_*.log"))


def metrics(url: str, tmp_path: Path, log: Path, *sources: str) -> dict:  # type: ignore[type-arg]
    args = ["metrics", "--tasks-log", str(log), "--concurrency", str(CONCURRENCY), "-f", "json"]
    for source in sources:
        args += ["--timings", source]
    proc = run_cli(args, base_env(url), tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_known_sleep(data: dict, steady: bool = False) -> None:  # type: ignore[type-arg]
    assert (data["sent"], data["completed"], data["missing"]) == (COUNT, COUNT, 0)
    assert data["service_time_mean_s"] == pytest.approx(SLEEP_S, rel=0.05)
    expected_x = CONCURRENCY / SLEEP_S * 60  # 600 tasks/min
    assert data["throughput_per_min"] == pytest.approx(expected_x, rel=0.10)


def test_probe_on_redis_prefork(tmp_path: Path, redis_server: RedisServer) -> None:
    timings = tmp_path / "timings"
    executed = tmp_path / "executed.jsonl"
    with celery_worker(
        redis_server.url,
        executed,
        concurrency=CONCURRENCY,
        pool="prefork",
        extra_env={"CAPACITY_TIMINGS": str(timings)},
        extra_args=("--include", "capacity.probe"),
    ):
        wait_until_ready(executed.with_suffix(".worker.log"))
        log = inject(redis_server.url, tmp_path)
        wait_for_executed(executed, COUNT)
    assert len(list(timings.glob("timings-*.jsonl"))) >= 2  # the main process and each child write their own
    data = metrics(redis_server.url, tmp_path, log, str(timings))
    assert data["sources"] == ["probe"]
    assert_known_sleep(data)
    assert data["utilization"] == pytest.approx(1.0, rel=0.12)
    assert data["wait_from_received_mean_s"] is not None


def test_probe_stream_and_events_and_backend_on_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    stream_url = redis_server.url.rsplit("/", 1)[0] + "/3"
    backend_url = redis_server.url.rsplit("/", 1)[0] + "/4"
    events_file = tmp_path / "events.jsonl"
    executed = tmp_path / "executed.jsonl"
    env = {"CAPACITY_TIMINGS": stream_url, "CAPACITY_RESULT_BACKEND": backend_url}
    with celery_worker(
        redis_server.url,
        executed,
        concurrency=CONCURRENCY,
        extra_env=env,
        extra_args=("--include", "capacity.probe", "-E"),
    ):
        wait_until_ready(executed.with_suffix(".worker.log"))
        collector = start_cli(
            ["collect", "--broker", redis_server.url, "--out", str(events_file), "--for", "120s"],
            base_env(redis_server.url),
            tmp_path,
        )
        time.sleep(3)  # the collector's event queue must exist before the first task event
        log = inject(redis_server.url, tmp_path)
        wait_for_executed(executed, COUNT)
        time.sleep(1)
        collector.send_signal(signal.SIGINT)
        out, err = collector.communicate(timeout=30)
    assert collector.returncode == 0, err
    assert f"task events written to {events_file}" in out
    from_events = metrics(redis_server.url, tmp_path, log, str(events_file))
    assert from_events["sources"] == ["events"]
    assert_known_sleep(from_events)
    from_stream = metrics(redis_server.url, tmp_path, log, stream_url)
    assert from_stream["sources"] == ["probe (Redis stream)"]
    assert_known_sleep(from_stream)
    from_backend = metrics(redis_server.url, tmp_path, log, f"backend:{backend_url}")
    assert from_backend["sources"] == ["result backend"] and from_backend["completed"] == COUNT
    assert from_backend["service_time_mean_s"] is None  # no start time there: missing, not guessed
    assert any("no start time" in w for w in from_backend["warnings"])


def test_probe_and_events_on_rabbitmq(tmp_path: Path, rabbitmq: RabbitServer) -> None:
    """RabbitMQ (issue #24): a prefork worker with the probe and -E; `collect` records Celery's
    events over AMQP; metrics from the probe and from the events both find the known sleep, and
    agree with each other within 5%."""
    queue = "m-" + uuid.uuid4().hex[:8]
    timings = tmp_path / "timings"
    events_file = tmp_path / "events.jsonl"
    executed = tmp_path / "executed.jsonl"
    with celery_worker(
        rabbitmq.url,
        executed,
        concurrency=CONCURRENCY,
        queues=queue,
        pool="prefork",
        extra_env={"CAPACITY_TIMINGS": str(timings)},
        extra_args=("--include", "capacity.probe", "-E"),
    ):
        wait_until_ready(executed.with_suffix(".worker.log"))
        collector = start_cli(
            ["collect", "--broker", rabbitmq.url, "--out", str(events_file), "--for", "120s"],
            base_env(rabbitmq.url),
            tmp_path,
        )
        time.sleep(3)  # the collector's event queue must exist before the first task event
        log = inject(rabbitmq.url, tmp_path, "--queue", queue)
        wait_for_executed(executed, COUNT)
        time.sleep(1)
        collector.send_signal(signal.SIGINT)
        _, err = collector.communicate(timeout=30)
    assert collector.returncode == 0, err
    from_probe = metrics(rabbitmq.url, tmp_path, log, str(timings))
    assert from_probe["sources"] == ["probe"]
    assert_known_sleep(from_probe)
    from_events = metrics(rabbitmq.url, tmp_path, log, str(events_file))
    assert from_events["sources"] == ["events"]
    assert_known_sleep(from_events)
    assert from_probe["service_time_mean_s"] == pytest.approx(from_events["service_time_mean_s"], rel=0.05)
    assert from_probe["throughput_per_min"] == pytest.approx(from_events["throughput_per_min"], rel=0.05)


def test_probe_on_sqs(tmp_path: Path, moto_sqs: MotoSQS) -> None:
    queue = "m-" + uuid.uuid4().hex[:8]
    timings = tmp_path / "timings"
    executed = tmp_path / "executed.jsonl"
    with celery_worker(
        moto_sqs.url,
        executed,
        concurrency=CONCURRENCY,
        queues=queue,
        extra_env={"CAPACITY_TIMINGS": str(timings), "CAPACITY_WORKER_TRANSPORT_OPTIONS": '{"polling_interval": 0.05}'},
        extra_args=("--include", "capacity.probe"),
    ):
        wait_until_ready(executed.with_suffix(".worker.log"))
        log = inject(moto_sqs.url, tmp_path, "--queue", queue, "--mode", "sustained", "--rate", "9/s")
        wait_for_executed(executed, COUNT, timeout_s=120)
    data = metrics(moto_sqs.url, tmp_path, log, str(timings))
    assert (data["sent"], data["completed"], data["missing"]) == (COUNT, COUNT, 0)
    assert data["service_time_mean_s"] == pytest.approx(SLEEP_S, rel=0.05)
    # sustained at 9/s, below the pool's 10/s: the steady throughput follows the arrival rate
    assert data["throughput_steady_per_min"] == pytest.approx(9 * 60, rel=0.10)


def test_killed_worker_tasks_are_missing_never_completed(tmp_path: Path, redis_server: RedisServer) -> None:
    timings = tmp_path / "timings"
    executed = tmp_path / "executed.jsonl"
    log_dir = tmp_path / "results"
    with celery_worker(
        redis_server.url,
        executed,
        concurrency=2,
        extra_env={"CAPACITY_TIMINGS": str(timings)},
        extra_args=("--include", "capacity.probe"),
    ) as worker:
        wait_until_ready(executed.with_suffix(".worker.log"))
        proc = run_cli(
            [
                "inject",
                "--broker",
                redis_server.url,
                "--count",
                "10",
                "--kwargs",
                '{"sleep_s": 1.0}',
                "--log-dir",
                str(log_dir),
                "--quiet",
            ],
            base_env(redis_server.url),
            tmp_path,
        )
        assert proc.returncode == 0
        time.sleep(1.6)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    log = next(log_dir.glob("worker_tasks_*.log"))
    lines = [json.loads(line) for f in timings.glob("*.jsonl") for line in f.read_text().splitlines()]
    finished = {line["task_id"] for line in lines if line["event"] == "done"}
    received_only = {line["task_id"] for line in lines if line["event"] == "received"} - finished
    assert received_only, "the kill should catch tasks in progress"
    data = metrics(redis_server.url, tmp_path, log, str(timings))
    assert data["completed"] == len(finished) < 10
    assert data["missing"] == 10 - len(finished)


def test_seed_003_metrics_script(tmp_path: Path, redis_server: RedisServer) -> None:
    timings = tmp_path / "timings"
    executed = tmp_path / "executed.jsonl"
    with celery_worker(
        redis_server.url,
        executed,
        concurrency=4,
        extra_env={"CAPACITY_TIMINGS": str(timings)},
        extra_args=("--include", "capacity.probe"),
    ):
        wait_until_ready(executed.with_suffix(".worker.log"))
        log = inject(redis_server.url, tmp_path)
        wait_for_executed(executed, COUNT)
    env = {**base_env(redis_server.url), "CAPACITY_TIMINGS": str(timings)}
    proc = run_script(
        str(ROOT / "load_tests" / "compute_worker_metrics.py"),
        ["--tasks-log", str(log), "--csv", str(tmp_path / "per_task.csv")],
        env,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "X throughput" in proc.stdout and "S service time mean" in proc.stdout
    assert (tmp_path / "per_task.csv").read_text().count("\n") == COUNT + 1
