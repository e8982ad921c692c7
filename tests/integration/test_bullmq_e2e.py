"""BullMQ end to end with real components: a real redis-server, jobs added through the official
bullmq package's Lua scripts, processed by Node workers running BullMQ from npm (the project's
reference worker, and a minimal worker written here as a user would), measured from BullMQ's own
job hashes and checked against what the workers themselves recorded."""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from capacity.brokers import BrokerOptions
from capacity.brokers.bullmq import BullMQBroker
from tests.realbrokers import ROOT, LateDelivery, RedisServer, base_env, read_log, run_cli, stop_process

NODE_DIR = ROOT / "capacity" / "workerside" / "node"
REFERENCE = NODE_DIR / "worker.js"

# A worker as a user writes one (seed 002's shape: concurrency and a limiter from the environment),
# recording its own start and end of each job.
USER_WORKER = """
const fs = require('fs');
const { Worker } = require('bullmq');
const url = new URL(process.env.REDIS_URL);
const worker = new Worker(process.env.QUEUE_NAME, async (job) => {
  const started = Date.now();
  await new Promise((resolve) => setTimeout(resolve, job.data.sleep_ms));
  const line = { id: job.id, started_ms: started, finished_ms: Date.now() };
  fs.appendFileSync(process.env.RECORD, JSON.stringify(line) + '\\n');
  return { ok: true };
}, {
  connection: { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null },
  concurrency: Number(process.env.WORKER_CONCURRENCY),
});
process.on('SIGTERM', async () => { await worker.close(); process.exit(0); });
"""


def node_available() -> None:
    # a real-component test must not skip: a machine without Node fails here, loudly
    assert shutil.which("node"), "node is not installed (the README's commands install Node's packages with npm)"
    assert (NODE_DIR / "node_modules" / "bullmq").is_dir(), "run scripts/setup.sh: npm ci for capacity/workerside/node"


@contextmanager
def node_worker(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["node", *argv],
            env={**env, "NODE_PATH": str(NODE_DIR / "node_modules")},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            stop_process(process, 20)


def wait_records(record: Path, count: int, timeout_s: float = 60) -> list[dict[str, int]]:
    deadline = time.monotonic() + timeout_s
    lines: list[dict[str, int]] = []
    while time.monotonic() < deadline:
        if record.exists():
            lines = [json.loads(x) for x in record.read_text().splitlines() if x.strip()]
            if len(lines) >= count:
                return lines
        time.sleep(0.2)
    raise AssertionError(f"{len(lines)} of {count} jobs recorded within {timeout_s} s")


def inject(tmp_path: Path, url: str, queue: str, *args: str) -> tuple[Path, list[str]]:
    log_dir = tmp_path / "results"
    proc = run_cli(
        [
            "inject",
            "--protocol",
            "bullmq",
            "--broker",
            url,
            "--queue",
            queue,
            "--log-dir",
            str(log_dir),
            "--quiet",
            *args,
        ],
        base_env(url),
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    log = sorted(log_dir.glob("worker_tasks_*.log"))[-1]
    _, tasks, end = read_log(log)
    assert end is not None and end["status"] == "completed"
    return log, [t["task_id"] for t in tasks]


def metrics(tmp_path: Path, url: str, log: Path) -> dict[str, object]:
    proc = run_cli(["metrics", "--tasks-log", str(log), "--timings", url, "-f", "json"], base_env(url), tmp_path)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def test_reference_worker_every_job_once_and_bullmq_timestamps_match_the_workers(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    node_available()
    record = tmp_path / "record.jsonl"
    log, ids = inject(tmp_path, redis_server.url, "photos", "--count", "120", "--kwargs", '{"sleep_s": 0.2}')
    argv = [
        str(REFERENCE),
        "--queue",
        "photos",
        "--concurrency",
        "8",
        "--redis",
        redis_server.url,
        "--record",
        str(record),
    ]
    with node_worker(argv, os.environ.copy(), tmp_path / "worker.log"):
        done = wait_records(record, 120)
    assert collections.Counter(d["id"] for d in done) == collections.Counter(ids)  # each logged job once
    data = metrics(tmp_path, redis_server.url, log)
    assert (data["sent"], data["completed"], data["failed"], data["missing"]) == (120, 120, 0, 0)
    assert data["sources"] == ["BullMQ job hashes"]
    assert "BullMQ timestamps have millisecond resolution" in data["warnings"]  # type: ignore[operator]
    own_s = sum(d["finished_ms"] - d["started_ms"] for d in done) / len(done) / 1000
    assert abs(float(data["service_time_mean_s"]) / own_s - 1) <= 0.05, (data["service_time_mean_s"], own_s)  # type: ignore[arg-type]
    _, tasks, _ = read_log(log)
    first_sent = min(datetime.fromisoformat(t["sent_at"]).timestamp() for t in tasks)
    own_x = len(done) / (max(d["finished_ms"] for d in done) / 1000 - first_sent) * 60
    assert abs(float(data["throughput_per_min"]) / own_x - 1) <= 0.05, (data["throughput_per_min"], own_x)  # type: ignore[arg-type]


def test_a_users_own_worker_processes_a_sustained_run_once(tmp_path: Path, redis_server: RedisServer) -> None:
    node_available()
    script = tmp_path / "my-worker.js"
    script.write_text(USER_WORKER)
    record = tmp_path / "mine.jsonl"
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "QUEUE_NAME": "renders",
        "WORKER_CONCURRENCY": "4",
        "RECORD": str(record),
    }
    with node_worker([str(script)], env, tmp_path / "mine.log"):
        log, ids = inject(
            tmp_path,
            redis_server.url,
            "renders",
            "--mode",
            "sustained",
            "--rate",
            "40/s",
            "--count",
            "80",
            "--task",
            "render",
            "--kwargs",
            '{"sleep_ms": 50}',
            "--monitor",
            "--monitor-interval",
            "200ms",
        )
        done = wait_records(record, 80)
    assert collections.Counter(d["id"] for d in done) == collections.Counter(ids)
    run, _, end = read_log(log)
    assert run["protocol"] == "bullmq" and run["prefix"] == "bull" and end is not None
    assert end["lateness"]["late_over_1s"] == 0
    samples = (log.with_name(log.stem + "_monitor.csv")).read_text().splitlines()
    assert samples[0] == "timestamp,visible,in_flight,sent_so_far,delayed,failed"
    assert samples[-1].split(",")[1:3] == ["0", "0"]  # drained: nothing waiting, nothing active
    data = metrics(tmp_path, redis_server.url, log)
    assert data["completed"] == 80 and data["trend"] is not None


def test_removed_jobs_are_timed_from_the_events_stream(tmp_path: Path, redis_server: RedisServer) -> None:
    node_available()
    record = tmp_path / "record.jsonl"
    log, ids = inject(tmp_path, redis_server.url, "thumbs", "--count", "30", "--kwargs", '{"sleep_s": 0.05}')
    argv = [str(REFERENCE), "--queue", "thumbs", "--concurrency", "4", "--redis", redis_server.url]
    argv += ["--record", str(record), "--remove-on-complete"]
    with node_worker(argv, os.environ.copy(), tmp_path / "worker.log"):
        wait_records(record, 30)
        time.sleep(0.5)
    import redis

    client = redis.Redis.from_url(redis_server.url)
    assert not any(client.exists(f"bull:thumbs:{i}") for i in ids)  # removeOnComplete took the hashes
    data = metrics(tmp_path, redis_server.url, log)
    assert (data["sent"], data["completed"], data["missing"]) == (30, 30, 0)
    assert any("timed from the queue's events stream" in w for w in data["warnings"])  # type: ignore[union-attr]


def test_failed_jobs_and_job_options(tmp_path: Path, redis_server: RedisServer) -> None:
    node_available()
    # an unknown job type makes the reference worker throw: BullMQ records failedReason; 2 attempts
    log, _ = inject(
        tmp_path,
        redis_server.url,
        "broken",
        "--count",
        "5",
        "--kwargs",
        '{"job_type": "nope"}',
        "--job-options",
        '{"attempts": 2}',
    )
    argv = [str(REFERENCE), "--queue", "broken", "--concurrency", "2", "--redis", redis_server.url]
    with node_worker(argv, os.environ.copy(), tmp_path / "worker.log"):
        import redis

        client = redis.Redis.from_url(redis_server.url)
        deadline = time.monotonic() + 30
        while client.zcard("bull:broken:failed") < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
    data = metrics(tmp_path, redis_server.url, log)
    assert (data["sent"], data["completed"], data["failed"]) == (5, 0, 5)
    warnings = " ".join(data["warnings"])  # type: ignore[arg-type]
    assert "5 jobs took more than one attempt" in warnings and "unknown job type nope" in warnings
    # delayed jobs are counted apart by the monitor
    with BullMQBroker(
        redis_server.url, BrokerOptions(queue="later", protocol="bullmq", job_options={"delay": 60_000})
    ) as broker:
        broker.template("job", "later", [], {}, None, None)
        broker.send_batch(["d" * 36], ['{"a":1}'])
        depth = broker.depth()
    assert (depth.visible, depth.delayed, depth.failed) == (0, 1, 0)


def late_events(redis_server: RedisServer) -> list[bytes]:
    return [fields[b"event"] for _, fields in redis_server.client().xrange("bull:late:events")]


def test_jobs_delivered_late_are_added_once(redis_server: RedisServer) -> None:
    # the race of a stalled Redis (issue #12): the batch's commands reach Redis only after the
    # client's read timed out; a new connection, asked what landed, saw nothing and the jobs were
    # sent again. BullMQ ignored the second adds by id (its "duplicated" events are the trace), but
    # a job a worker had completed and removed meanwhile would have run twice.
    ids = [f"{i:036d}" for i in range(3)]
    with LateDelivery(redis_server.port) as proxy:
        options = BrokerOptions(queue="late", protocol="bullmq")
        with BullMQBroker(f"redis://127.0.0.1:{proxy.port}/0", options) as broker:
            broker.template("job", "late", [], {}, None, None)
            proxy.hold(b"EVALSHA", 7.0)  # beyond the broker's 5 s socket timeout
            broker.send_batch(ids, ['{"n":1}'] * 3)
        assert proxy.settled()
    events = late_events(redis_server)
    assert events.count(b"added") == 3 and b"duplicated" not in events, events
    assert sorted(redis_server.client().lrange("bull:late:wait", 0, -1)) == [i.encode() for i in ids]


def test_jobs_unanswered_within_the_retry_time_are_in_doubt_and_not_sent_again(redis_server: RedisServer) -> None:
    from capacity.brokers import SendFailed

    ids = [f"{i:036d}" for i in range(3)]
    with LateDelivery(redis_server.port) as proxy:
        options = BrokerOptions(queue="late", protocol="bullmq", retry_for_s=1.5)
        with BullMQBroker(f"redis://127.0.0.1:{proxy.port}/0", options) as broker:
            broker.template("job", "late", [], {}, None, None)
            proxy.hold(b"EVALSHA", 4.0)
            with pytest.raises(SendFailed) as failure:
                broker.send_batch(ids, ['{"n":1}'] * 3)
        assert failure.value.in_doubt == ids and failure.value.accepted == []
        assert "did not answer 3 jobs within 1.5 s" in str(failure.value)
        assert proxy.settled()
    events = late_events(redis_server)
    assert events.count(b"added") == 3 and b"duplicated" not in events, events  # they did land, once


def test_jobs_are_packed_exactly_as_bullmqs_addjobargs(redis_server: RedisServer) -> None:
    from bullmq.job import Job
    from bullmq.queue_keys import QueueKeys
    from bullmq.scripts import Scripts

    options = BrokerOptions(queue="exact", protocol="bullmq", prefix="myapp", job_options={"attempts": 3})
    with BullMQBroker(redis_server.url, options) as broker:
        broker.template("resize", "exact", [], {}, None, None)
        data = '{"file":"/x.jpg","n":1}'
        packed, id_at, stamp_at, opts = broker._splicer()
        job_id, stamp = "1c4c2a4e-0e3b-4f4e-9c1d-00000000002a", 1_795_963_860_454
        spliced = bytearray(packed)
        spliced[id_at : id_at + 36] = job_id.encode()
        spliced[stamp_at + 1 : stamp_at + 9] = stamp.to_bytes(8, "big")
    # the official client's own packing of the same job
    scripts = Scripts.__new__(Scripts)
    scripts.keys = QueueKeys("myapp").getKeys("exact")
    queue = type("Queue", (), {"backend": None, "qualifiedName": "myapp:exact"})()
    job = Job(queue, "resize", json.loads(data), {"attempts": 3}, job_id)
    job.timestamp = stamp
    official = scripts.addJobArgs(job)
    assert bytes(spliced) == official[0] and opts == official[2]


def test_bench_with_bullmq_runs_the_matrix_and_reports(tmp_path: Path) -> None:
    node_available()
    matrix = tmp_path / "m.yaml"
    matrix.write_text(
        "task: process_file\nqueue: bench-bullmq\nkwargs: {sleep_s: 0.05}\nsizes: [10kB]\n"
        "concurrencies: [1, 2, 4]\nmodes:\n  - {mode: burst, count: 12}\n"
    )
    run_dir = tmp_path / "run"
    proc = run_cli(
        ["bench", "--protocol", "bullmq", "--matrix", str(matrix), "--run-dir", str(run_dir), "-q", "-f", "json"],
        base_env("redis://unused"),
        tmp_path,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [c["completed"] for c in report["cells"]] == [12, 12, 12]
    assert all(c["service_time_mean_s"] >= 0.05 for c in report["cells"])
    assert (run_dir / "report" / "report.html").is_file()
    assert "BullMQ job hashes" in (run_dir / "report" / "report.md").read_text()


def test_a_stalled_redis_mid_burst_leaves_log_and_queue_in_agreement(tmp_path: Path, redis_server: RedisServer) -> None:
    # SIGSTOP for longer than the 5 s socket timeout, mid-burst: the pipeline in flight breaks
    # with part of it run; the log must still name exactly the jobs on the queue, each once
    from tests.realbrokers import start_cli

    log_dir = tmp_path / "results"
    proc = start_cli(
        [
            "inject",
            "--protocol",
            "bullmq",
            "--broker",
            redis_server.url,
            "--queue",
            "stall",
            "--count",
            "60000",
            "--log-dir",
            str(log_dir),
            "--quiet",
        ],
        base_env(redis_server.url),
        tmp_path,
    )
    client = redis_server.client()
    redis_server.stall_when("bull:stall:wait", 5000, 7)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    _, tasks, end = read_log(sorted(log_dir.glob("*.log"))[0])
    logged = collections.Counter(t["task_id"] for t in tasks)
    queued = collections.Counter(x.decode() for x in client.lrange("bull:stall:wait", 0, -1))
    assert end is not None and end["status"] == "completed" and end["in_doubt"] == []
    assert max(logged.values()) == 1 and max(queued.values()) == 1
    assert logged == queued and sum(logged.values()) == 60000


def test_redis_refusing_jobs_ends_the_run_with_the_log_exact(tmp_path: Path, redis_server: RedisServer) -> None:
    client = redis_server.client()
    client.config_set("maxmemory", str(client.info("memory")["used_memory"] + 2_000_000))
    client.config_set("maxmemory-policy", "noeviction")
    log_dir = tmp_path / "results"
    proc = run_cli(
        [
            "inject",
            "--protocol",
            "bullmq",
            "--broker",
            redis_server.url,
            "--queue",
            "full",
            "--count",
            "50000",
            "--task",
            "blobs",
            "--kwargs",
            json.dumps({"blob": "x" * 200}),
            "--log-dir",
            str(log_dir),
            "--quiet",
        ],
        base_env(redis_server.url),
        tmp_path,
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.count("\n") == 1 and "OOM" in proc.stderr and "Traceback" not in proc.stderr
    _, tasks, end = read_log(sorted(log_dir.glob("*.log"))[0])
    assert end is not None and end["status"] == "broker_refused"
    logged = {t["task_id"] for t in tasks}
    queued = {x.decode() for x in client.lrange("bull:full:wait", 0, -1)}
    assert logged == queued and 0 < len(logged) < 50000


def test_a_limiter_caps_throughput_as_the_model_says(tmp_path: Path, redis_server: RedisServer) -> None:
    node_available()
    record = tmp_path / "record.jsonl"
    argv = [str(REFERENCE), "--queue", "limited", "--concurrency", "8", "--redis", redis_server.url]
    argv += ["--record", str(record), "--limiter-max", "10", "--limiter-duration", "1000"]
    with node_worker(argv, os.environ.copy(), tmp_path / "worker.log"):
        options = BrokerOptions(queue="limited", protocol="bullmq")
        with BullMQBroker(redis_server.url, options) as broker:
            deadline = time.monotonic() + 30
            while not broker.consumers() and time.monotonic() < deadline:
                time.sleep(0.1)
        log, _ = inject(tmp_path, redis_server.url, "limited", "--count", "40", "--kwargs", '{"sleep_s": 0.01}')
        wait_records(record, 40)
    data = metrics(tmp_path, redis_server.url, log)
    # by hand (capacity simulate's limiter): 40 jobs, 10 started per 1 s window, 8 slots, S = 10 ms:
    # windows open at 0, 1, 2, 3 s; the last job ends at 3.01 s: X = 40 / 3.01 x 60 = 797/min
    model = 40 / 3.01 * 60
    assert abs(float(data["throughput_per_min"]) / model - 1) <= 0.10, data["throughput_per_min"]  # type: ignore[arg-type]
