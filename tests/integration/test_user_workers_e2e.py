"""Issue #12: a user's worker, not ours (tests/userapp/resize_app.py: positional arguments, its own
task names, a strict signature, a file per first argument), through inject, metrics, matrix run
and report, on a real redis-server and on moto's SQS server, with no adapter task."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.common import only_log
from tests.realbrokers import MotoSQS, RedisServer, base_env, run_cli

WORKER = (
    "{python} -m celery -A tests.userapp.resize_app -b {broker} worker --include capacity.probe -Q {queue} "
    "-c {concurrency} --pool threads --without-gossip --without-mingle --without-heartbeat --loglevel INFO"
)


@contextmanager
def user_worker(broker: str, queue: str, out: Path, timings: Path, log: Path) -> Iterator[None]:
    env = {**base_env(broker), "RESIZE_OUT": str(out), "CAPACITY_TIMINGS": str(timings)}
    argv = WORKER.format(python=sys.executable, broker=broker, queue=queue, concurrency=4).split()
    with log.open("wb") as handle:
        process = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            if b" ready." in log.read_bytes():
                break
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(params=["redis", "sqs"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "redis":
        directory = tmp_path / "redis"
        directory.mkdir()
        server = RedisServer(directory).start()
        yield server.url
        server.stop()
    else:
        moto = MotoSQS().start()
        yield moto.url
        moto.stop()


def test_positional_arguments_and_per_task_values_reach_a_users_worker(tmp_path: Path, broker: str) -> None:
    queue = "resize-" + uuid.uuid4().hex[:6]
    out, timings = tmp_path / "out", tmp_path / "timings"
    out.mkdir()
    env = {**base_env(broker), "RESIZE_OUT": str(out)}
    with user_worker(broker, queue, out, timings, tmp_path / "worker.log"):
        argv = ["inject", "--broker", broker, "--queue", queue, "--task", "resize.async_resize", "--count", "40"]
        argv += ["--args", '["$uuid", "img-$seq of $run_id, $$5"]', "--log-dir", str(tmp_path / "logs"), "--quiet"]
        argv += ["--monitor", "--monitor-interval", "0.2s", "--monitor-for", "60s"]
        proc = run_cli(argv, env, tmp_path)
        assert proc.returncode == 0, proc.stderr
        # the monitor ends when the queue holds nothing and nothing is unacknowledged; this worker
        # acknowledges a task when it starts (Celery's default), so the last ones may still run
        deadline = time.monotonic() + 60
        while len(list(out.iterdir())) < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
    log = only_log(tmp_path / "logs")
    run_id = json.loads(log.read_text().splitlines()[0])["run_id"]
    # every task got its own first argument (no collisions) and its own sequence number
    files = sorted(out.iterdir())
    assert len(files) == 40
    assert sorted(f.read_text() for f in files) == sorted(f"img-{i} of {run_id}, $5" for i in range(40))
    proc = run_cli(["metrics", "--tasks-log", str(log), "--timings", f"probe:{timings}", "-f", "json"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["sent"], data["completed"], data["failed"], data["missing"]) == (40, 40, 0, 0)


def write_matrix(path: Path, queue: str, task: str, payload: str) -> Path:
    # no sizes: a matrix of concurrency x mode (the app takes no payload file)
    path.write_text(
        f"task: {task}\nqueue: {queue}\n{payload}\nconcurrencies: [2]\nmodes: [{{mode: burst, count: 12}}]\n"
    )
    return path


def test_matrix_run_and_report_with_a_users_worker(tmp_path: Path, broker: str) -> None:
    queue = "resize-" + uuid.uuid4().hex[:6]
    out = tmp_path / "out"
    out.mkdir()
    env = {**base_env(broker), "RESIZE_OUT": str(out)}
    matrix = write_matrix(tmp_path / "m.yaml", queue, "resize.async_resize", 'args: ["$task_id", "img-$seq"]')
    run_dir = tmp_path / "run"
    argv = ["matrix", "run", str(matrix), "--broker", broker, "--run-dir", str(run_dir)]
    proc = run_cli(
        [*argv, "--worker-cmd", WORKER, "--upload-dir", str(tmp_path / "up"), "-f", "json"], env, tmp_path, 300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list(out.iterdir())) == 12
    assert not (tmp_path / "up").exists()  # no payload file the task would never read
    results = json.loads((run_dir / "results.json").read_text())["cells"]
    assert results[0]["cell"]["cell"] == "01-c2-burst"
    assert (results[0]["metrics"]["sent"], results[0]["metrics"]["completed"]) == (12, 12)
    report = run_cli(["report", str(run_dir), "-f", "json"], env, tmp_path, 120)
    assert report.returncode == 0, report.stderr[-2000:]


def test_a_run_where_every_task_fails_exits_1_and_shows_the_exception(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # issue #12: 200 of 200 tasks raised TypeError and matrix run and report exited 0
    queue = "resize-" + uuid.uuid4().hex[:6]
    out = tmp_path / "out"
    out.mkdir()
    env = {**base_env(redis_server.url), "RESIZE_OUT": str(out)}
    payload = 'kwargs: {file: "$file", size_bytes: "$size_bytes"}\nsizes: [1KB]'
    matrix = write_matrix(tmp_path / "m.yaml", queue, "resize.async_resize", payload)
    run_dir = tmp_path / "run"
    argv = ["matrix", "run", str(matrix), "--broker", redis_server.url, "--run-dir", str(run_dir)]
    proc = run_cli([*argv, "--worker-cmd", WORKER, "--upload-dir", str(tmp_path / "up")], env, tmp_path, 300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    failure = [line for line in proc.stderr.splitlines() if line.startswith("failed:")]
    assert len(failure) == 1 and "0 of 12 completed" in failure[0] and "TypeError" in failure[0], proc.stderr
    assert "unexpected keyword argument 'file'" in failure[0]
    report = run_cli(["report", str(run_dir)], env, tmp_path, 120)
    assert report.returncode == 1 and "TypeError" in report.stderr, report.stderr[-2000:]


def test_an_unregistered_task_is_named_with_what_the_worker_knows(tmp_path: Path, redis_server: RedisServer) -> None:
    # issue #12: a forgotten --task sent capacity.worker.process_file to the app's worker; the user
    # saw "timings source ... does not exist" instead of "the worker does not know that task"
    queue = "resize-" + uuid.uuid4().hex[:6]
    env = {**base_env(redis_server.url), "RESIZE_OUT": str(tmp_path)}
    matrix = write_matrix(tmp_path / "m.yaml", queue, "resize.sharpen", "args: [1]")
    argv = ["matrix", "run", str(matrix), "--broker", redis_server.url, "--run-dir", str(tmp_path / "run")]
    proc = run_cli([*argv, "--worker-cmd", WORKER, "--drain-timeout", "60s"], env, tmp_path, 300)
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "does not know task 'resize.sharpen'" in proc.stderr and "resize.async_resize" in proc.stderr


def test_monitor_says_when_no_worker_consumes_the_queue(tmp_path: Path, redis_server: RedisServer) -> None:
    argv = ["inject", "--broker", redis_server.url, "--queue", "videos", "--count", "5", "--monitor"]
    argv += ["--idle-after", "1s", "--monitor-for", "4s", "--monitor-interval", "0.2s", "--log-dir", str(tmp_path)]
    proc = run_cli(argv, base_env(redis_server.url), tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "no worker seems to consume that queue on that broker" in proc.stderr and "'videos'" in proc.stderr
    assert "did not drain within 4 s: 5 messages still waiting" in proc.stderr


def test_seed_003_env_names_the_queue(tmp_path: Path, redis_server: RedisServer) -> None:
    # seed 003's .env: SQS_QUEUE_NAME=videos beside the app's CELERY_BROKER_URL
    env = {**base_env(""), "CELERY_BROKER_URL": redis_server.url, "SQS_QUEUE_NAME": "videos"}
    env.pop("CAPACITY_BROKER_URL")
    script = Path(__file__).resolve().parents[2] / "load_tests" / "inject_worker_tasks.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--count", "7", "--size", "1KB", "--mode", "burst"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert redis_server.client().llen("videos") == 7 and redis_server.client().llen("celery") == 0


def test_a_3_to_1_mix_reaches_a_users_worker_and_metrics_splits_it(tmp_path: Path) -> None:
    """Issue #25: 400 tasks of a 3:1 mix are exactly 300 resize.async_resize (positional, their
    own $seq) and 100 resize.make_thumbnail (keyword-only), interleaved; the user's worker runs
    each once with its class's arguments; `metrics` gives by_task figures whose counts match."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory).start()
    queue = "mix-" + uuid.uuid4().hex[:6]
    out, timings = tmp_path / "out", tmp_path / "timings"
    out.mkdir()
    mix = tmp_path / "mix.yaml"
    mix.write_text(
        '- {task: resize.async_resize, weight: 3, args: ["$uuid", "img-$seq"]}\n'
        '- {task: resize.make_thumbnail, weight: 1, kwargs: {image_id: "$task_id", width: 64}}\n'
    )
    try:
        with user_worker(server.url, queue, out, timings, tmp_path / "worker.log"):
            argv = ["inject", "--broker", server.url, "--queue", queue, "--mix", str(mix), "--count", "400"]
            argv += ["--seed", "5", "--log-dir", str(tmp_path / "logs"), "--quiet"]
            proc = run_cli(argv, {**base_env(server.url), "RESIZE_OUT": str(out)}, tmp_path)
            assert proc.returncode == 0, proc.stderr
            deadline = time.monotonic() + 90
            while len(list(out.iterdir())) < 400 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1)
    finally:
        server.stop()
    log = only_log(tmp_path / "logs")
    lines = [json.loads(line) for line in log.read_text().splitlines()[1:] if '"task_id"' in line]
    by_class = {name: [t["task_id"] for t in lines if t["task"] == name] for name in {t["task"] for t in lines}}
    assert {k: len(v) for k, v in by_class.items()} == {"resize.async_resize": 300, "resize.make_thumbnail": 100}
    thumbs = sorted(p.name for p in out.iterdir() if p.name.startswith("thumb-"))
    assert thumbs == sorted(f"thumb-{i}.txt" for i in by_class["resize.make_thumbnail"])
    # each resize task got its own $seq, its place in the whole run; the thumbnails hold the other
    # 100 places, spread over the run (interleaved by --seed), not a block at its end
    places = sorted(int(p.read_text().removeprefix("img-")) for p in out.iterdir() if not p.name.startswith("thumb-"))
    assert len(places) == len(set(places)) == 300 and set(places) <= set(range(400))
    others = sorted(set(range(400)) - set(places))
    assert others[0] < 50 and others[-1] > 350
    proc = run_cli(
        ["metrics", "--tasks-log", str(log), "--timings", str(timings), "-f", "json"], base_env(""), tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["sent"], data["completed"]) == (400, 400)
    split = {name: (m["sent"], m["completed"], m["missing"]) for name, m in data["by_task"].items()}
    assert split == {"resize.async_resize": (300, 300, 0), "resize.make_thumbnail": (100, 100, 0)}
    assert set(data["by_task"]["resize.async_resize"]) == set(data) - {"by_task"}
    assert data["by_task"]["resize.make_thumbnail"]["service_time_mean_s"] >= 0.02
    table = run_cli(["metrics", "--tasks-log", str(log), "--timings", str(timings)], base_env(""), tmp_path)
    assert "By task" in table.stdout and "resize.make_thumbnail" in table.stdout


def test_a_matrix_cell_sends_the_files_mix_and_splits_its_metrics(tmp_path: Path, redis_server: RedisServer) -> None:
    """Issue #25: `mix:` in the matrix file: each cell sends the mix (12 tasks at 3:1 are 9 + 3) to
    the user's worker, the cell's metrics split by task, and the report shows the split and plots
    the cell's percentiles over time; a bad mix is refused before any cell."""
    queue = "mixm-" + uuid.uuid4().hex[:6]
    out = tmp_path / "out"
    out.mkdir()
    env = {**base_env(redis_server.url), "RESIZE_OUT": str(out)}
    mix = (
        'mix:\n  - {task: resize.async_resize, weight: 3, args: ["$uuid", "img-$seq"]}\n'
        '  - {task: resize.make_thumbnail, weight: 1, kwargs: {image_id: "$task_id", width: 32}}'
    )
    matrix = write_matrix(tmp_path / "m.yaml", queue, "resize.async_resize", mix)
    run_dir = tmp_path / "run"
    argv = [
        "matrix",
        "run",
        str(matrix),
        "--broker",
        redis_server.url,
        "--run-dir",
        str(run_dir),
        "--worker-cmd",
        WORKER.replace(" --include capacity.probe", ""),  # #22: the probe is added for the user
    ]
    proc = run_cli([*argv, "-f", "json"], env, tmp_path, 300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "note: added --include capacity.probe to --worker-cmd" in proc.stderr
    (cell,) = json.loads((run_dir / "results.json").read_text())["cells"]
    assert (cell["metrics"]["sent"], cell["metrics"]["completed"]) == (12, 12)
    split = {name: (m["sent"], m["completed"]) for name, m in cell["metrics"]["by_task"].items()}
    assert split == {"resize.async_resize": (9, 9), "resize.make_thumbnail": (3, 3)}
    assert len([p for p in out.iterdir() if p.name.startswith("thumb-")]) == 3
    # the report shows each cell's classes and plots the cell's percentiles over time
    report = run_cli(["report", str(run_dir), "-f", "json"], env, tmp_path, 120)
    assert report.returncode == 0, report.stderr[-2000:]
    (shown,) = json.loads(report.stdout)["cells"]
    assert {name: m["completed"] for name, m in shown["by_task"].items()} == {
        "resize.async_resize": 9,
        "resize.make_thumbnail": 3,
    }
    assert sum(b["completed"] for b in shown["timeline"]) == 12
    html = (run_dir / "report" / "report.html").read_text()
    assert "By task (each cell&#x27;s mix)" in html and 'id="percentiles_over_time"' in html
    bad = write_matrix(tmp_path / "bad.yaml", queue, "resize.async_resize", "mix:\n  - {task: x, weight: -1}")
    refused = run_cli(
        ["matrix", "run", str(bad), "--broker", redis_server.url, "--run-dir", str(tmp_path / "r2")], env, tmp_path
    )
    assert refused.returncode == 2 and "weight must be a number above zero" in refused.stderr
    assert not (tmp_path / "r2").exists()


def test_a_wrapped_worker_without_the_probe_is_told_how_to_load_it(tmp_path: Path, redis_server: RedisServer) -> None:
    """#22: a --worker-cmd that is not a `celery ... worker` line (a wrapper) cannot get the probe
    added; its cell's tasks run but no timing comes back, and the one-line failure says why and how
    to load the probe, rather than only that the tasks did not finish."""
    queue = "wrapped-" + uuid.uuid4().hex[:6]
    out = tmp_path / "out"
    out.mkdir()
    env = {**base_env(redis_server.url), "RESIZE_OUT": str(out)}
    matrix = write_matrix(tmp_path / "m.yaml", queue, "resize.async_resize", 'args: ["$uuid", "img-$seq"]')
    wrapped = "bash -c " + shlex.quote("exec " + WORKER.replace(" --include capacity.probe", ""))
    argv = ["matrix", "run", str(matrix), "--broker", redis_server.url, "--run-dir", str(tmp_path / "run")]
    argv += ["--worker-cmd", wrapped, "--drain-timeout", "4s", "-q"]
    proc = run_cli(argv, env, tmp_path, 180)
    assert proc.returncode == 4, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert "0 of 12 tasks finished" in line and "is capacity.probe loaded in that worker" in line
    assert len(list(out.iterdir())) == 12  # the tasks ran: only their timings were missing
