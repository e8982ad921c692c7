"""Issue #11's faults, each reproduced with the real component: a redis-server refusing writes
(``maxmemory``), a disk that fills (a 4 MiB tmpfs), TLS spoken to a plain Redis, Ctrl-C during
an outage (the server stopped with SIGSTOP), planted symlinks, and a worker that prints secrets.
Every case checks the task log against the broker: nothing lost, nothing twice, nothing invented."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from capacity.matrix.processes import WorkerControl, WorkerProcess
from tests.integration.common import only_log
from tests.realbrokers import RedisServer, base_env, read_log, run_cli, start_cli


def test_redis_refusing_writes_ends_the_celery_run_with_the_log_exact(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    client = redis_server.client()
    client.flushall()
    client.config_set("maxmemory", str(client.info("memory")["used_memory"] + 3_000_000))
    client.config_set("maxmemory-policy", "noeviction")
    try:
        log_dir = tmp_path / "results"
        proc = run_cli(
            ["inject", "--broker", redis_server.url, "--count", "50000", "--log-dir", str(log_dir), "--quiet"],
            base_env(redis_server.url),
            tmp_path,
        )
    finally:
        client.config_set("maxmemory", "0")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.count("\n") == 1 and "maxmemory" in proc.stderr and "Traceback" not in proc.stderr
    _, tasks, end = read_log(only_log(log_dir))
    assert end is not None and end["status"] == "broker_refused" and end["in_doubt"] == []
    logged = collections.Counter(t["task_id"] for t in tasks)
    queued = collections.Counter(redis_server.queued_task_ids())
    assert logged == queued and 0 < sum(logged.values()) < 50000 and max(queued.values()) == 1


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (the tests run as root, as CI does); unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_mid_inject_loses_no_task_the_broker_took(
    tmp_path: Path, small_disk: Path, redis_server: RedisServer
) -> None:
    # issue #11: a traceback, no end line, and 216 accepted ids missing from the log. Each line is
    # ~150 bytes: 4 MiB fills after ~27,000 of the 60,000 tasks.
    redis_server.client().flushall()
    log_dir = small_disk / "results"
    proc = run_cli(
        ["inject", "--broker", redis_server.url, "--count", "60000", "--log-dir", str(log_dir), "--quiet"],
        base_env(redis_server.url),
        tmp_path,
    )
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr.count("\n") == 1 and "full" in proc.stderr and "Traceback" not in proc.stderr
    _, tasks, end = read_log(only_log(log_dir))
    assert end is not None and end["status"] == "log_full"
    logged = collections.Counter(t["task_id"] for t in tasks)
    queued = collections.Counter(redis_server.queued_task_ids())
    assert logged == queued and 0 < sum(logged.values()) < 60000 and max(queued.values()) == 1
    assert end["sent"] == sum(logged.values())
    assert sorted(p.name for p in log_dir.iterdir() if p.suffix != ".log") == []  # no reserve file left


def test_a_payload_file_on_a_full_disk_leaves_nothing_behind(tmp_path: Path, small_disk: Path) -> None:
    from capacity.errors import WriteFailed
    from capacity.load.payload import synthetic_file

    with pytest.raises(WriteFailed, match="No space left"):
        synthetic_file(8 * 1024 * 1024, str(small_disk))
    assert list(small_disk.iterdir()) == []


def test_tls_spoken_to_a_plain_redis_fails_in_seconds(tmp_path: Path, redis_server: RedisServer) -> None:
    # issue #11: rediss:// to a plain Redis hung in the TLS handshake forever, deaf to Ctrl-C
    url = redis_server.url.replace("redis://", "rediss://")
    for args in (
        ["inject", "--broker", url, "--count", "5", "--log-dir", str(tmp_path / "r"), "--quiet"],
        ["inject", "--protocol", "bullmq", "--broker", url, "--count", "5", "--log-dir", str(tmp_path / "b")],
        ["collect", "--broker", url, "--for", "2s", "--out", str(tmp_path / "events.jsonl")],
    ):
        proc = run_cli(args, base_env(url), tmp_path, timeout=60)
        assert proc.returncode == 3, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_ctrl_c_during_an_outage_stops_at_once_with_130(tmp_path: Path, redis_server: RedisServer) -> None:
    # issue #11: Ctrl-C while the broker was unreachable was ignored for ~28 s, then exit 3
    redis_server.client().flushall()
    log_dir = tmp_path / "results"
    argv = ["inject", "--broker", redis_server.url, "--mode", "sustained", "--rate", "200/s", "--count", "4000"]
    proc = start_cli([*argv, "--log-dir", str(log_dir), "--retry-for", "120s", "--quiet"], base_env(""), tmp_path)
    assert redis_server.process is not None
    client = redis_server.client()
    deadline = time.monotonic() + 30
    while client.llen("celery") < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        time.sleep(6)  # the socket timeout (5 s) has passed: the injector is in its retry loop
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)  # not the 120 s of --retry-for
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    _, tasks, end = read_log(only_log(log_dir))
    assert end is not None and end["status"] == "interrupted"
    logged = collections.Counter(t["task_id"] for t in tasks)
    on_broker = collections.Counter(redis_server.queued_task_ids())
    assert max(on_broker.values()) == 1 and set(logged) <= set(on_broker)
    assert set(on_broker) - set(logged) <= set(end["in_doubt"])


def test_a_planted_symlink_is_never_written_through(tmp_path: Path, redis_server: RedisServer) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    # -o onto a symlink: the link is replaced by the report, the file it pointed to is untouched
    link = tmp_path / "report.json"
    link.symlink_to(victim)
    proc = run_cli(["recommend", "--instance", "medium", "-f", "json", "-o", str(link)], base_env(""), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious\n" and not link.is_symlink()
    assert json.loads(link.read_text())["global_concurrency"] >= 1
    assert proc.stderr.startswith("note: replaced the existing")
    # the monitor's samples file at its predictable name: refused, the log ends, nothing is sent
    from capacity.load.tasklog import log_path

    log_dir = tmp_path / "results"
    log_dir.mkdir()
    now = time.time()
    for offset in (0, 1, 2):  # the name the run will pick, whichever second it starts in
        planted = log_path(log_dir, now + offset).with_name(log_path(log_dir, now + offset).stem + "_monitor.csv")
        planted.symlink_to(victim)
    argv = ["inject", "--broker", redis_server.url, "--count", "5", "--monitor", "--log-dir", str(log_dir)]
    proc = run_cli([*argv, "--quiet"], base_env(redis_server.url), tmp_path)
    assert proc.returncode == 5 and "already exists" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize(
    ("output", "expected"),
    [("{tmp}", "is a directory"), ("{tmp}/no/such/dir/x.json", "No such file"), ("/dev/full", "No space")],
)
def test_output_that_cannot_be_written_is_one_line_exit_5(tmp_path: Path, output: str, expected: str) -> None:
    target = output.format(tmp=tmp_path)
    proc = run_cli(["recommend", "--instance", "medium", "-f", "json", "-o", target], base_env(""), tmp_path)
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr.count("\n") == 1 and expected in proc.stderr and "Traceback" not in proc.stderr


def test_what_a_worker_prints_is_stored_redacted(tmp_path: Path) -> None:
    # issue #11: Celery's banner put an AWS access key id in worker.log; a custom worker that
    # prints its argv put the Redis password there
    script = (
        "import sys, time; print('transport: sqs://AKIAIOSFODNN7EXAMPLE:wJalr%2FXUtn@localhost//', flush=True); "
        "print('argv', sys.argv[1:], flush=True); print('w1@host ready.', flush=True); time.sleep(30)"
    )
    command = f"{sys.executable} -c {json.dumps(script)} --broker {{broker}}"
    control = WorkerControl(command=command, ready_timeout_s=20)
    broker = "redis://:hunter2-secret@127.0.0.1:6379/0"
    log = tmp_path / "worker.log"
    worker = WorkerProcess(control, {"broker": broker, "queue": "q"}, log, broker, "probe:" + str(tmp_path / "t"))
    worker.start(threading.Event())
    worker.stop()
    text = log.read_text()
    assert "ready." in text and "argv" in text
    for secret in ("AKIAIOSFODNN7EXAMPLE", "wJalr", "hunter2-secret"):
        assert secret not in text, text


@pytest.mark.parametrize("device", ["/dev/full", "/dev/null"])
def test_a_device_is_written_in_place_never_replaced(tmp_path: Path, device: str) -> None:
    # a fuzz run as root once replaced /dev/full with a regular file: metrics --csv staged its
    # CSV under a temporary name and renamed it over the device node
    import stat

    from tests.fuzzcli import seed_files

    seeds = seed_files(tmp_path / "seeds")
    argv = ["metrics", "--tasks-log", seeds["tasklog"], "--timings", f"probe:{seeds['probe']}", "--csv", device]
    proc = run_cli(argv, base_env(""), tmp_path)
    assert stat.S_ISCHR(os.stat(device).st_mode), f"{device} is no longer a device"
    expected = 5 if device == "/dev/full" else 0
    assert proc.returncode == expected, proc.stderr
    assert "Traceback" not in proc.stderr
    for output in ("-o", "--output"):
        proc = run_cli(["recommend", "--instance", "medium", output, device], base_env(""), tmp_path)
        assert stat.S_ISCHR(os.stat(device).st_mode) and proc.returncode == expected, proc.stderr
