"""Your own worker in the first hour (#22): `capacity broker redis` gives a broker, a user-shaped
Celery worker (tests/userapp: its own task name, positional arguments) runs against its URL, and
each mistake a new user makes is answered in one line with its exit code, before anything is sent.
`capacity broker sqs` gives moto's SQS with the environment a Celery app needs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from capacity.matrix.embedded import free_port
from tests.realbrokers import ROOT, base_env, run_cli, wait_until_ready


@contextmanager
def local_broker(kind: str, *extra: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`capacity broker KIND` in the foreground, as a user starts it; its stdout lines."""
    port = str(free_port())
    process = subprocess.Popen(
        [sys.executable, "-m", "capacity", "broker", kind, "--port", port, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    lines = [process.stdout.readline().strip()]
    if kind == "sqs":
        lines += [process.stdout.readline().strip() for _ in range(4)]
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(20)


def test_broker_redis_and_the_mistakes_a_new_user_makes(tmp_path: Path) -> None:
    with local_broker("redis") as (server, (url,)):
        assert url.startswith("redis://127.0.0.1:") and url.endswith("/0")
        out = tmp_path / "out"
        out.mkdir()
        env = {**base_env(url), "CELERY_BROKER_URL": url, "RESIZE_OUT": str(out)}
        worker_log = tmp_path / "worker.log"
        argv = [sys.executable, "-m", "celery", "-A", "tests.userapp.resize_app", "worker", "--pool", "threads"]
        argv += ["--concurrency", "2", "-l", "INFO", "--without-gossip", "--without-mingle", "-n", "resize@%h"]
        with worker_log.open("wb") as log:
            worker = subprocess.Popen(
                argv,
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_ready(worker_log)
            logs = tmp_path / "logs"

            def inject(*argv: str) -> subprocess.CompletedProcess[str]:
                return run_cli(["inject", "--count", "5", "--log-dir", str(logs), "--quiet", *argv], env, tmp_path)

            # arguments for the user's task without --task
            proc = inject("--args", '["$uuid", "img-$seq.png"]')
            assert proc.returncode == 2 and proc.stderr.strip().startswith("error: --args without --task")
            # a placeholder misspelt
            proc = inject("--task", "resize.async_resize", "--args", '["$uuid", "img-$sequence.png"]')
            assert proc.returncode == 2 and "unknown placeholder $sequence" in proc.stderr
            assert "did you mean $seq?" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
            # a task name the worker does not know: the worker answers inspect registered
            proc = inject("--task", "resize.async_resiz", "--args", '["$uuid", "x"]')
            assert proc.returncode == 2, proc.stderr
            assert "no worker on this broker knows task 'resize.async_resiz'" in proc.stderr
            assert "did you mean resize.async_resize?" in proc.stderr
            assert not logs.exists() or not list(logs.glob("worker_tasks_*.log"))  # nothing was sent
            # --no-check sends anyway (the worker drops them: "Received unregistered task")
            proc = inject("--task", "resize.async_resiz", "--args", '["$uuid", "x"]', "--no-check")
            assert proc.returncode == 0, proc.stderr
            # right: sent, run by the user's worker, each with its own arguments
            proc = inject("--task", "resize.async_resize", "--args", '["$uuid", "img-$seq.png"]')
            assert proc.returncode == 0, proc.stderr
            deadline = time.monotonic() + 30
            while len(list(out.glob("*.txt"))) < 5 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert sorted(p.read_text() for p in out.glob("*.txt")) == [f"img-{i}.png" for i in range(5)]
            # metrics without timings (the probe was not loaded): says why, not only "missing"
            task_log = max(logs.glob("worker_tasks_*.log"), key=lambda p: p.stat().st_mtime)
            proc = run_cli(
                ["metrics", "--tasks-log", str(task_log), "--timings", str(tmp_path / "timings"), "-f", "json"],
                env,
                tmp_path,
            )
            assert proc.returncode == 2 and "the probe creates it when a worker that loaded it" in proc.stderr
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
        assert server.stderr is not None and "redis-server stopped" in server.stderr.read()
    # a busy port is one line, exit 2
    with local_broker("redis") as (first, (url,)):
        port = url.rsplit(":", 1)[1].split("/")[0]
        busy = subprocess.run(
            [sys.executable, "-m", "capacity", "broker", "redis", "--port", port],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=30,
            check=False,
        )
        assert busy.returncode == 2 and busy.stderr.strip() == (
            f"error: port {port} is busy on 127.0.0.1 (another server?): give another --port"
        )
        assert first.poll() is None


def test_broker_redis_with_a_password_never_prints_it(tmp_path: Path) -> None:
    with local_broker("redis", "--password", "hunter2hunter2") as (_, (url,)):
        assert url.startswith("redis://:***@127.0.0.1:")
        real = url.replace("***", "hunter2hunter2")
        proc = run_cli(["inject", "--count", "3", "--log-dir", str(tmp_path), "--quiet"], base_env(real), tmp_path)
        assert proc.returncode == 0 and "hunter2" not in proc.stdout + proc.stderr


def test_broker_sqs_prints_the_url_and_the_environment(tmp_path: Path) -> None:
    with local_broker("sqs") as (_, lines):
        url, *exports = lines
        assert url.startswith("sqs://local-key:local-secret@127.0.0.1:")
        env = dict(line.removeprefix("export ").split("=", 1) for line in exports)
        assert env["CELERY_BROKER_URL"] == url and env["AWS_DEFAULT_REGION"] == "us-east-1"
        proc = run_cli(
            ["inject", "--broker", url, "--count", "3", "--log-dir", str(tmp_path), "--quiet"],
            {**base_env(url), **env},
            tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        (log,) = tmp_path.glob("worker_tasks_*.log")
        assert sum(1 for line in log.read_text().splitlines() if '"task_id"' in line) == 3


def test_a_monitored_run_ends_when_the_workers_that_start_late_do_not_know_the_task(tmp_path: Path) -> None:
    """#22: no worker is up when the run starts (nothing answers `inspect registered`, so it
    sends); the user's worker starts, drops each task ("Received unregistered task") and the queue
    drains: with --monitor the run does not end "drained", exit 0, but exit 1 naming the fix."""
    from tests.realbrokers import start_cli

    with local_broker("redis") as (_, (url,)):
        env = {**base_env(url), "CELERY_BROKER_URL": url, "RESIZE_OUT": str(tmp_path)}
        logs = tmp_path / "logs"
        argv = ["inject", "--task", "resize.async_resiz", "--args", '["$uuid", "x"]', "--count", "20"]
        argv += ["--log-dir", str(logs), "--quiet", "--monitor", "--monitor-interval", "0.2s", "--monitor-for", "120s"]
        injector = start_cli(argv, env, tmp_path)
        deadline = time.monotonic() + 60
        while not list(logs.glob("worker_tasks_*.log")) and time.monotonic() < deadline:
            time.sleep(0.1)
        worker_log = tmp_path / "worker.log"
        command = [sys.executable, "-m", "celery", "-A", "tests.userapp.resize_app", "worker", "--pool", "threads"]
        command += ["--concurrency", "2", "-l", "INFO", "--without-gossip", "--without-mingle"]
        with worker_log.open("wb") as log:
            worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            _, err = injector.communicate(timeout=120)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        assert injector.returncode == 1, err
        (line,) = err.strip().splitlines()[-1:]
        assert line.startswith("failed: aborted: the Celery workers on this broker (1 answered) do not know task")
        assert "'resize.async_resiz'" in line and "did you mean resize.async_resize?" in line
        assert "Received unregistered task" in worker_log.read_text()
        (task_log,) = logs.glob("worker_tasks_*.log")
        lines = task_log.read_text().splitlines()
        end = json.loads(lines[-1])
        assert (end["status"], end["sent"], len(lines) - 2) == ("aborted", 20, 20)


def test_a_monitored_bullmq_run_ends_when_no_worker_listens_on_its_queue(tmp_path: Path) -> None:
    """#22: BullMQ Workers take every job name of their queue, so "no worker for these jobs" is a
    queue name or prefix no Worker listens on: Redis lists none, jobs wait, none is active; after
    --idle-after the run ends, exit 1, in BullMQ's words."""
    with local_broker("redis") as (_, (url,)):
        logs = tmp_path / "logs"
        argv = ["inject", "--protocol", "bullmq", "--queue", "thumbnails", "--count", "10", "--log-dir", str(logs)]
        argv += ["--quiet", "--monitor", "--monitor-interval", "0.2s", "--idle-after", "2s", "--monitor-for", "120s"]
        proc = run_cli(argv, base_env(url), tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "no BullMQ Worker is connected to queue 'thumbnails' (prefix 'bull')" in proc.stderr
    assert "celery" not in proc.stderr.lower()
    (task_log,) = logs.glob("worker_tasks_*.log")
    assert json.loads(task_log.read_text().splitlines()[-1])["status"] == "aborted"
