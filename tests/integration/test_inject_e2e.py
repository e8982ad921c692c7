"""`capacity inject` against real brokers and a real `celery worker`: every id in the task log is
executed exactly once, and the log and the broker agree across Ctrl-C, outages and partial failures.

One shared class of broker behaviour, subclassed per broker (kombu's t/integration/common.py)."""

from __future__ import annotations

import collections
import json
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.common import BrokerContract, only_log
from tests.realbrokers import (
    ROOT,
    LateDelivery,
    MotoSQS,
    RedisServer,
    base_env,
    read_log,
    run_cli,
    run_script,
    start_cli,
)


class TestRedis(BrokerContract):
    @pytest.fixture(autouse=True)
    def _server(self, redis_server: RedisServer) -> None:
        self.server = redis_server

    def url(self) -> str:
        return self.server.url

    def queued_ids(self) -> list[str]:
        return self.server.queued_task_ids(self.queue)

    def test_message_is_what_apply_async_puts_on_redis(self) -> None:
        from celery import Celery
        from kombu import Connection
        from kombu.utils.json import loads

        from capacity.brokers.messages import capture

        kwargs = {"file": "/data/x.bin", "size_bytes": 5, "user_id": "u"}
        with Connection(self.url()) as conn:
            template = capture(conn.default_channel, "capacity.worker.process_file", "celery", [], kwargs)
        from datetime import UTC, datetime

        mine = loads(template.render(["TASK-1"], [], kwargs, datetime.now(UTC))[0])
        app = Celery("other", broker=self.url(), set_as_current=False)
        app.send_task("capacity.worker.process_file", kwargs=kwargs, task_id="TASK-1")
        real = loads(self.server.client().rpop("celery"))
        for message in (mine, real):  # fields unique per message or per producing app
            assert message["properties"].pop("delivery_tag")
            message["properties"].pop("reply_to")
            message["headers"].pop("origin")
        assert mine["headers"] == real["headers"]
        assert mine == real

    def test_delivery_tags_and_ids_are_unique(self, tmp_path: Path) -> None:
        import json

        self.inject(tmp_path, "--count", "500", "--quiet")
        raw = [json.loads(m) for m in self.server.client().lrange("celery", 0, -1)]
        assert len({m["properties"]["delivery_tag"] for m in raw}) == 500
        assert len({m["headers"]["id"] for m in raw}) == 500

    def test_priority_goes_to_kombus_priority_list(self, tmp_path: Path) -> None:
        self.inject(tmp_path, "--count", "3", "--priority", "9", "--quiet")
        assert self.server.client().llen("celery\x06\x169") == 3

    def test_ctrl_c_leaves_log_and_broker_in_agreement(self, tmp_path: Path) -> None:
        log_dir = tmp_path / "results"
        proc = start_cli(
            [
                "inject",
                "--broker",
                self.url(),
                "--mode",
                "sustained",
                "--rate",
                "50/s",
                "--count",
                "1000",
                "--log-dir",
                str(log_dir),
                "--quiet",
            ],
            base_env(self.url()),
            tmp_path,
        )
        time.sleep(2.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        _, tasks, end = read_log(only_log(log_dir))
        assert end is not None and end["status"] == "interrupted"
        logged = [t["task_id"] for t in tasks]
        assert 0 < len(logged) < 1000
        assert collections.Counter(self.queued_ids()) == collections.Counter(logged)

    def test_broker_killed_mid_run(self, tmp_path: Path) -> None:
        directory = tmp_path / "durable"
        directory.mkdir()
        server = RedisServer(directory, durable=True).start()
        try:
            log_dir = tmp_path / "results"
            proc = start_cli(
                [
                    "inject",
                    "--broker",
                    server.url,
                    "--mode",
                    "sustained",
                    "--rate",
                    "100/s",
                    "--count",
                    "2000",
                    "--log-dir",
                    str(log_dir),
                    "--retry-for",
                    "2s",
                    "--quiet",
                ],
                base_env(server.url),
                tmp_path,
            )
            time.sleep(2)
            server.kill()
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 3, err
            assert err.startswith("error: broker redis://127.0.0.1") and err.count("\n") == 1
            _, tasks, end = read_log(only_log(log_dir))
            assert end is not None and end["status"] == "broker_unreachable"
            server.start()  # same directory: the append-only file brings back what Redis took
            on_broker = collections.Counter(server.queued_task_ids())
            logged = collections.Counter(t["task_id"] for t in tasks)
            assert 0 < sum(logged.values()) < 2000
            assert max(on_broker.values()) == 1 and max(logged.values()) == 1
            assert set(logged) <= set(on_broker)
            # anything on the broker but not in the log is named as in doubt in the end line
            assert set(on_broker) - set(logged) <= set(end["in_doubt"])
        finally:
            server.stop()

    def test_password_never_printed_or_logged(self, tmp_path: Path) -> None:
        directory = tmp_path / "secure"
        directory.mkdir()
        password = "s3cr3t-" + uuid.uuid4().hex[:8]
        server = RedisServer(directory, password=password).start()
        try:
            log_dir = tmp_path / "results"
            proc = run_cli(
                [
                    "inject",
                    "--broker",
                    server.url,
                    "--count",
                    "20",
                    "--mode",
                    "sustained",
                    "--rate",
                    "40/s",
                    "--monitor",
                    "--monitor-for",
                    "1s",
                    "--monitor-interval",
                    "100ms",
                    "--log-dir",
                    str(log_dir),
                ],
                base_env(server.url),
                tmp_path,
            )
            # no worker drains the queue: exit 1 once --monitor-for runs out (issue #12)
            assert proc.returncode == 1 and "did not drain" in proc.stderr, proc.stderr
            bad = run_cli(
                [
                    "inject",
                    "--broker",
                    server.url.replace(password, password + "x"),
                    "--count",
                    "1",
                    "--log-dir",
                    str(log_dir),
                ],
                base_env("redis://"),
                tmp_path,
            )
            assert bad.returncode == 3
            texts = [proc.stdout, proc.stderr, bad.stdout, bad.stderr]
            texts += [p.read_text() for p in log_dir.iterdir()]
            assert any(p.suffix == ".csv" for p in log_dir.iterdir())
            assert all(password not in text for text in texts)
            assert "redis://:***@127.0.0.1" in read_log(only_log(log_dir))[0]["broker"]
        finally:
            server.stop()


class TestSQS(BrokerContract):
    @pytest.fixture(autouse=True)
    def _server(self, moto_sqs: MotoSQS) -> None:
        self.server = moto_sqs
        self.queue = "q-" + uuid.uuid4().hex[:10]

    def url(self) -> str:
        return self.server.url

    def queued_ids(self) -> list[str]:
        return self.server.drain_task_ids(self.queue)

    def test_aws_keys_never_printed_or_logged(self, tmp_path: Path) -> None:
        log, proc = self.inject(tmp_path, "--count", "3", "--monitor", "--monitor-for", "1s")
        texts = [proc.stdout, proc.stderr, *(p.read_text() for p in log.parent.iterdir())]
        assert not any("testing-secret" in t or "testing-key" in t for t in texts)
        assert read_log(log)[0]["broker"] == f"sqs://***:***@127.0.0.1:{self.server.port}"

    def test_partial_batch_failures_retry_only_the_failed_entries(self, tmp_path: Path) -> None:
        from capacity.brokers import BrokerOptions
        from capacity.brokers.sqs import SQSBroker
        from capacity.load.inject import InjectConfig, inject
        from capacity.load.schedules import Burst

        calls: list[int] = []

        def factory(url: str, options: BrokerOptions) -> SQSBroker:
            broker = SQSBroker(url, options)
            real = broker._client.send_message_batch

            def flaky(QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
                calls.append(len(Entries))
                if len(calls) % 2:  # every other call: the real SQS takes only the even entries
                    keep = Entries[::2]
                    response = real(QueueUrl=QueueUrl, Entries=keep)
                    response["Failed"] = [
                        {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"}
                        for e in Entries[1::2]
                    ]
                    return response
                return real(QueueUrl=QueueUrl, Entries=Entries)

            broker._client.send_message_batch = flaky
            return broker

        config = InjectConfig(broker_url=self.url(), schedule=Burst(95), queue=self.queue, log_dir=tmp_path, threads=1)
        result = inject(config, broker_factory=factory)
        assert result.status == "completed" and result.sent == 95
        _, tasks, _ = read_log(result.log_path)
        logged = collections.Counter(t["task_id"] for t in tasks)
        assert collections.Counter(self.queued_ids()) == logged and len(logged) == 95
        assert any(n < 10 for n in calls[1::2])  # retries carried only the failed entries

    def test_api_calls_per_1000_tasks(self, tmp_path: Path) -> None:
        from capacity.brokers import BrokerOptions, open_broker

        with open_broker(self.url(), BrokerOptions(queue=self.queue, threads=4)) as broker:
            ids = [str(i) for i in range(1000)]
            broker.send_batch(ids, ["x" * 900] * 1000)
            assert broker.api_calls == 100  # the SendMessageBatch limit: 10 per call

    def test_oversized_message_is_refused_before_sending(self, tmp_path: Path) -> None:
        log_dir = tmp_path / "results"
        template = tmp_path / "big.json"
        # moto's queues default to AWS's 1 MiB MaximumMessageSize (2025); base64 makes 800 kB ~1.07 MB
        url = self.server.client().create_queue(QueueName=self.queue)["QueueUrl"]
        attributes = self.server.client().get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])
        limit = int(attributes["Attributes"]["MaximumMessageSize"])
        template.write_text('{"kwargs": {"file": "$file", "blob": "' + "x" * 800_000 + '"}}')
        proc = run_cli(
            [
                "inject",
                "--broker",
                self.url(),
                "--queue",
                self.queue,
                "--count",
                "3",
                "--log-dir",
                str(log_dir),
                "--task",
                "big.payloads",
                "--payload-template",
                str(template),
            ],
            base_env(self.url()),
            tmp_path,
        )
        assert proc.returncode == 2
        assert f"takes at most {limit:,}:" in proc.stderr and proc.stderr.count("\n") == 1
        assert not log_dir.exists() or not list(log_dir.glob("*.log"))
        assert self.queued_ids() == []


def test_seed_003_command_lines_work(tmp_path: Path, redis_server: RedisServer) -> None:
    env = base_env(redis_server.url)
    script = str(ROOT / "load_tests" / "inject_worker_tasks.py")
    burst = run_script(
        script,
        ["--count", "100", "--size", "50MB", "--mode", "burst", "--monitor", "--monitor-for", "1s"],
        env,
        tmp_path,
    )
    # no worker here: the queue does not drain, which --monitor now says and exits 1 for (issue #12)
    assert burst.returncode == 1 and "did not drain within 1 s: 100 messages" in burst.stderr, burst.stderr
    assert (tmp_path / "load_tests" / "uploads" / "capacity_payload_50000000.bin").stat().st_size == 50_000_000
    sustained = run_script(
        script,
        ["--count", "2", "--size", "50MB", "--mode", "sustained", "--rate", "120", "--user-id", "42", "--quiet"],
        env,
        tmp_path,
    )
    assert sustained.returncode == 0, sustained.stderr
    logs = sorted((tmp_path / "load_tests" / "results").glob("worker_tasks_*.log"))
    assert len(logs) == 2 and all(p.name[13:21].isdigit() for p in logs)
    run, tasks, _ = read_log(logs[-1])
    assert run["rate_per_s"] == 2.0 and run["user_id"] == "42" and len(tasks) == 2  # --rate 120 is 120/min
    existing = run_script(script, ["--count", "1", "--file", str(logs[0]), "--quiet"], env, tmp_path)
    assert existing.returncode == 0, existing.stderr
    assert redis_server.client().llen("celery") == 103


@pytest.mark.parametrize(
    ("broker", "code", "message"),
    [
        ("reddis://127.0.0.1:6379/0", 2, "did you mean redis://?"),
        ("kafka://guest:pw123@127.0.0.1/", 2, "unsupported broker URL 'kafka://guest:***@127.0.0.1/'"),
        ("amqp://guest:pw123@127.0.0.1:1/", 3, "cannot reach broker amqp://guest:***@127.0.0.1:1/"),
        ("redis://:hunter22@127.0.0.1:1/0", 3, "cannot reach broker redis://:***@127.0.0.1:1/0"),
    ],
)
def test_bad_broker_urls(tmp_path: Path, broker: str, code: int, message: str) -> None:
    proc = run_cli(
        ["inject", "--broker", broker, "--count", "1", "--log-dir", str(tmp_path)], base_env(broker), tmp_path
    )
    assert proc.returncode == code
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert "hunter22" not in proc.stderr + proc.stdout and "pw123" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ramp_mode_and_countdown_on_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    import json

    log_dir = tmp_path / "results"
    proc = run_cli(
        [
            "inject",
            "--broker",
            redis_server.url,
            "--mode",
            "ramp",
            "--rate",
            "10/s",
            "--ramp-to",
            "30/s",
            "--duration",
            "1s",
            "--countdown",
            "30s",
            "--log-dir",
            str(log_dir),
            "--quiet",
        ],
        base_env(redis_server.url),
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    run, tasks, _ = read_log(only_log(log_dir))
    assert run["mode"] == "ramp" and run["rate_per_s"] == [10.0, 30.0] and len(tasks) == 20
    messages = [json.loads(m) for m in redis_server.client().lrange("celery", 0, -1)]
    assert len(messages) == 20 and all(m["headers"]["eta"] for m in messages)


def test_payload_on_s3(tmp_path: Path, moto_sqs: MotoSQS, redis_server: RedisServer) -> None:
    env = {**base_env(redis_server.url), "AWS_ENDPOINT_URL": moto_sqs.endpoint}
    s3 = moto_sqs.client("s3")
    bucket = "b-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    log_dir = tmp_path / "results"
    proc = run_cli(
        [
            "inject",
            "--count",
            "2",
            "--size",
            "9MB",
            "--upload-dir",
            f"s3://{bucket}/uploads",
            "--log-dir",
            str(log_dir),
            "--quiet",
        ],
        env,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    key = "uploads/capacity_payload_9000000.bin"
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == 9_000_000
    run, _, _ = read_log(only_log(log_dir))
    assert run["file"] == f"s3://{bucket}/{key}"
    reuse = run_cli(
        ["inject", "--count", "1", "--file", f"s3://{bucket}/{key}", "--log-dir", str(tmp_path / "r2"), "--quiet"],
        env,
        tmp_path,
    )
    assert reuse.returncode == 0, reuse.stderr
    missing = run_cli(
        ["inject", "--count", "1", "--file", f"s3://{bucket}/nope.mp4", "--log-dir", str(tmp_path)], env, tmp_path
    )
    assert missing.returncode == 2 and "cannot find s3://" in missing.stderr and missing.stderr.count("\n") == 1


def test_a_stalled_redis_mid_burst_puts_no_batch_twice(tmp_path: Path, redis_server: RedisServer) -> None:
    # issue #11: redis-py retried a timed-out MULTI/EXEC by itself after the server came back, so a
    # batch landed twice while the log named it once; the marker check must be the only retry
    log_dir = tmp_path / "results"
    proc = start_cli(
        ["inject", "--broker", redis_server.url, "--count", "60000", "--log-dir", str(log_dir), "--quiet"],
        base_env(redis_server.url),
        tmp_path,
    )
    redis_server.stall_when("celery", 5000, 7)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    _, tasks, end = read_log(only_log(log_dir))
    logged = collections.Counter(t["task_id"] for t in tasks)
    queued = collections.Counter(redis_server.queued_task_ids())
    assert end is not None and end["status"] == "completed"
    assert max(queued.values()) == 1 and logged == queued and sum(logged.values()) == 60000


def test_a_transaction_delivered_late_lands_once(redis_server: RedisServer) -> None:
    # the race a stalled Redis made in CI (issue #12): a batch's MULTI/EXEC reached Redis only after
    # the client's read had timed out; a new connection, asked for the batch's marker, found none,
    # the batch was sent again, and then the first transaction applied too
    from capacity.brokers import BrokerOptions, open_broker

    ids = [f"task-{i}" for i in range(3)]
    with LateDelivery(redis_server.port) as proxy:
        with open_broker(f"redis://127.0.0.1:{proxy.port}/0", BrokerOptions(queue="late", run_id="r")) as broker:
            proxy.hold(b"EXEC", 7.0)  # beyond the broker's 5 s socket timeout
            broker.send_batch(ids, [json.dumps({"headers": {"id": task_id}}) for task_id in ids])
        assert proxy.settled()
    assert redis_server.queued_task_ids("late") == ["task-2", "task-1", "task-0"]


def test_a_batch_unanswered_within_the_retry_time_is_in_doubt_and_not_sent_again(redis_server: RedisServer) -> None:
    from capacity.brokers import BrokerOptions, SendFailed, open_broker

    ids = [f"task-{i}" for i in range(3)]
    with LateDelivery(redis_server.port) as proxy:
        options = BrokerOptions(queue="late", run_id="r", retry_for_s=1.5)
        with open_broker(f"redis://127.0.0.1:{proxy.port}/0", options) as broker:
            proxy.hold(b"EXEC", 4.0)
            with pytest.raises(SendFailed) as failure:
                broker.send_batch(ids, [json.dumps({"headers": {"id": task_id}}) for task_id in ids])
        assert failure.value.in_doubt == ids and "did not answer a batch of 3 within 1.5 s" in str(failure.value)
        assert proxy.settled()
    assert redis_server.queued_task_ids("late") == ["task-2", "task-1", "task-0"]  # it did land, once


def test_sqs_message_limit_is_the_queues_own(tmp_path: Path, moto_sqs: MotoSQS) -> None:
    # issue #12: the largest message is the queue's MaximumMessageSize, not a fixed 256 KiB
    client = moto_sqs.client()
    client.create_queue(QueueName="small", Attributes={"MaximumMessageSize": "4096"})
    blob = json.dumps({"blob": "x" * 3000})
    argv = [
        "inject",
        "--broker",
        moto_sqs.url,
        "--queue",
        "small",
        "--count",
        "2",
        "--kwargs",
        blob,
        "--task",
        "blobs.take",
    ]
    proc = run_cli([*argv, "--log-dir", str(tmp_path)], base_env(moto_sqs.url), tmp_path)
    assert proc.returncode == 2 and "takes at most 4,096" in proc.stderr, proc.stderr
    assert list(tmp_path.glob("worker_tasks_*.log")) == []  # refused before anything was sent
    small = json.dumps({"blob": "x" * 200})  # with Celery's ~1.2 kB of headers, base64: ~2 kB
    argv = [
        "inject",
        "--broker",
        moto_sqs.url,
        "--queue",
        "small",
        "--count",
        "2",
        "--kwargs",
        small,
        "--task",
        "blobs.take",
    ]
    proc = run_cli([*argv, "--log-dir", str(tmp_path), "--quiet"], base_env(moto_sqs.url), tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_abort_if_depth_stops_a_run_the_worker_cannot_keep_up_with(tmp_path: Path, redis_server: RedisServer) -> None:
    """Issue #25: 100 tasks/s for 30 s against one slot of 0.5 s tasks: the queue passes 200 within a
    few seconds; --abort-if "depth>200" stops sending well before the schedule ends, exit 1, the
    end line says why, and the log names exactly the tasks the broker holds or the worker ran."""
    from tests.realbrokers import celery_worker, executed_ids

    executed = tmp_path / "executed.jsonl"
    with celery_worker(redis_server.url, executed, concurrency=1, queues="slow"):
        proc = run_cli(
            ["inject", "--broker", redis_server.url, "--queue", "slow", "--mode", "sustained", "--rate", "100/s",
             "--duration", "30s", "--kwargs", '{"sleep_s": 0.5}', "--abort-if", "depth>200", "--quiet",
             "--log-dir", str(tmp_path / "results")],
            base_env(redis_server.url),
            tmp_path,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "aborted: --abort-if depth>200" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    _, tasks, end = read_log(only_log(tmp_path / "results"))
    assert end is not None and end["status"] == "aborted" and end["error"].startswith("--abort-if depth>200")
    assert 200 < len(tasks) < 3000  # stopped well before the 3,000 the 30 s schedule holds
    logged = {t["task_id"] for t in tasks}
    ran, queued = executed_ids(executed), redis_server.queued_task_ids("slow")
    unacked = [json.loads(v)[0]["headers"]["id"] for v in redis_server.client().hvals("unacked")]
    assert len(set(ran)) == len(ran) and logged == set(ran) | set(queued) | set(unacked)


def scrape_until(port: int, done: Callable[[str], bool], within_s: float) -> str:
    """/metrics on 127.0.0.1:PORT, read again every 0.3 s until ``done`` says so or the time is up;
    the last text read ("" when none could be)."""
    import urllib.request

    text = ""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except OSError:
            continue
        if done(text):
            break
    return text


def test_prometheus_endpoint_shows_what_redis_holds_mid_run(tmp_path: Path, redis_server: RedisServer) -> None:
    """Issue #25: with --prometheus, /metrics scraped mid-run (the run waits for the queue to drain,
    which nothing consumes) shows the depth Redis has and the tasks sent so far, in Prometheus'
    text format; the endpoint is gone when the run ends."""
    from prometheus_client.parser import text_string_to_metric_families

    from capacity.matrix.embedded import free_port

    port = free_port()
    proc = start_cli(
        ["inject", "--broker", redis_server.url, "--queue", "prom", "--count", "150", "--monitor", "--monitor-for",
         "6s", "--prometheus", f"127.0.0.1:{port}", "--quiet", "--log-dir", str(tmp_path / "results")],
        base_env(redis_server.url),
        tmp_path,
    )  # fmt: skip

    def samples(text: str) -> dict[str, float]:
        families = text_string_to_metric_families(text)
        return {s.name + str(sorted(s.labels.items())): s.value for f in families for s in f.samples}

    # up to the run's own 6 s of monitoring and its start-up (5 s missed it once on a loaded machine)
    text = scrape_until(port, lambda text: samples(text).get("capacity_queue_depth[('queue', 'prom')]") == 150, 15)
    found = samples(text)
    assert found["capacity_queue_depth[('queue', 'prom')]"] == redis_server.client().llen("prom") == 150
    assert found["capacity_tasks_sent_total[('queue', 'prom'), ('task', 'capacity.worker.process_file')]"] == 150
    assert "capacity_tasks_completed_total" not in text  # no live timings: not known, not shown as 0
    proc.communicate(timeout=30)
    assert proc.returncode == 1  # nothing consumed the queue
    import socket

    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_prometheus_counts_completions_from_the_probes_stream(redis_server: RedisServer) -> None:
    """The probe's Redis stream, read as it grows: done lines are completions or failures, and
    finished - started the service time."""
    from capacity.brokers import QueueDepth
    from capacity.load.exporter import Exporter
    from capacity.matrix.embedded import free_port

    client = redis_server.client()
    stream = redis_server.url.rsplit("/", 1)[0] + "/0"
    exporter = Exporter(("127.0.0.1", free_port()), {"q": lambda: QueueDepth(0, 0)}, stream, interval_s=0.1)
    try:
        lines = [
            {"task_id": "a", "event": "received", "t": 1.0},
            {"task_id": "a", "event": "done", "started": 1.0, "finished": 1.5, "state": "SUCCESS"},
            {"task_id": "b", "event": "done", "started": 2.0, "finished": 4.0, "state": "SUCCESS"},
            {"task_id": "c", "event": "done", "started": 2.0, "finished": 2.1, "state": "FAILURE"},
        ]
        for line in lines:
            client.xadd("capacity:timings", {"line": json.dumps(line)})
        deadline = time.monotonic() + 5
        while exporter.registry.get_sample_value("capacity_tasks_completed_total") != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        exporter.close()
    value = exporter.registry.get_sample_value
    assert value("capacity_tasks_completed_total") == 2 and value("capacity_tasks_failed_total") == 1
    assert value("capacity_service_time_seconds_sum") == 2.5 and value("capacity_service_time_seconds_count") == 2
    assert value("capacity_service_time_seconds_bucket", {"le": "0.5"}) == 1


def test_the_grafana_dashboard_reads_only_what_the_exporter_serves(redis_server: RedisServer) -> None:
    """contrib/grafana-capacity.json: every series its queries name is one the exporter serves (with
    live timings), so no panel stays empty for a name that does not exist."""
    import re

    from capacity.brokers import QueueDepth
    from capacity.load.exporter import Exporter
    from capacity.matrix.embedded import free_port

    dashboard = json.loads((ROOT / "contrib" / "grafana-capacity.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    named = {name for q in queries for name in re.findall(r"\bcapacity_[a-z_]+", q)}
    exporter = Exporter(("127.0.0.1", free_port()), {"q": lambda: QueueDepth(1, 0)}, redis_server.url)
    try:
        exporter.sent("q", "t", 1)
        served = {s.name for family in exporter.registry.collect() for s in family.samples}
    finally:
        exporter.close()
    assert named and named <= served, named - served


def test_top_once_names_the_running_worker_and_the_queue_depth(tmp_path: Path, redis_server: RedisServer) -> None:
    """Issue #25: `capacity top --once -f json` on a broker with a worker busy on a backlog: the
    worker by its name (Celery's inspect) with one task running, and the queue's depth as Redis
    holds it; nothing is sent or changed (read-only)."""
    from tests.realbrokers import celery_worker, wait_until_ready

    executed = tmp_path / "executed.jsonl"
    with celery_worker(redis_server.url, executed, concurrency=1, queues="topq"):
        wait_until_ready(executed.with_suffix(".worker.log"))
        sent = run_cli(
            ["inject", "--broker", redis_server.url, "--queue", "topq", "--count", "40", "--kwargs",
             '{"sleep_s": 2}', "--quiet", "--log-dir", str(tmp_path / "results")],
            base_env(redis_server.url),
            tmp_path,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        time.sleep(1)
        before = redis_server.client().llen("topq")
        proc = run_cli(
            ["top", "--broker", redis_server.url, "--queue", "topq", "--once", "-f", "json"], base_env(""), tmp_path
        )
        after = redis_server.client().llen("topq")
    assert proc.returncode == 0, proc.stderr
    snapshot = json.loads(proc.stdout)
    assert snapshot["read_only"] is True
    (queue,) = snapshot["queues"]
    assert queue["queue"] == "topq" and after <= queue["waiting"] <= before and before > 30
    (worker,) = snapshot["workers"]
    assert worker["name"].startswith("test-")  # the worker's own --hostname (tests.realbrokers.celery_worker)
    assert worker["active"] == 1 and worker["concurrency"] == 1


def test_top_reads_bullmq_queues_and_the_oldest_jobs_age(tmp_path: Path, redis_server: RedisServer) -> None:
    """BullMQ (no worker running): the waiting jobs, and the oldest one's age from its own hash."""
    sent = run_cli(
        ["inject", "--broker", redis_server.url, "--protocol", "bullmq", "--queue", "jobs", "--task", "resize",
         "--kwargs", "{}", "--count", "7", "--quiet", "--log-dir", str(tmp_path / "results")],
        base_env(redis_server.url),
        tmp_path,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    time.sleep(1.2)
    argv = ["top", "--broker", redis_server.url, "--protocol", "bullmq", "--queue", "jobs", "--once", "-f", "json"]
    proc = run_cli(argv, base_env(""), tmp_path)
    assert proc.returncode == 0, proc.stderr
    (queue,) = json.loads(proc.stdout)["queues"]
    assert (queue["waiting"], queue["in_flight"], queue["consumers"]) == (7, 0, 0)
    assert 1.0 <= queue["oldest_wait_s"] < 30
    assert json.loads(proc.stdout)["workers"] == []


def test_top_serves_prometheus_while_it_watches(tmp_path: Path, redis_server: RedisServer) -> None:
    """`capacity top --prometheus`: the queue's depth as Redis holds it, at /metrics, while top
    refreshes; Ctrl-C ends it (exit 0) and the endpoint with it."""
    from capacity.matrix.embedded import free_port

    for i in range(25):
        redis_server.client().lpush("watched", f"not-a-celery-message-{i}")  # top only counts them
    port = free_port()
    proc = start_cli(
        ["top", "--broker", redis_server.url, "--queue", "watched", "--prometheus", f"127.0.0.1:{port}",
         "--interval", "0.5s"],
        base_env(""),
        tmp_path,
    )  # fmt: skip
    text = scrape_until(port, lambda text: 'capacity_queue_depth{queue="watched"} 25.0' in text, 15)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert 'capacity_queue_depth{queue="watched"} 25.0' in text
    assert proc.returncode == 0
    assert redis_server.client().llen("watched") == 25  # read-only
