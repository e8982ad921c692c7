"""Issue #12: the probe in a worker environment that has Celery and nothing of this package.

A fresh venv gets only ``celery[redis]`` (from the package index, as a worker image would);
``capacity probe write DIR`` gives it ``capacity_probe.py``; a user's app (a copy of
tests/userapp/resize_app.py, outside this repository) runs with ``--include capacity_probe``;
``capacity metrics`` joins the timings; the venv's packages are the same before and after."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.integration.common import only_log
from tests.realbrokers import ROOT, RedisServer, base_env, run_cli


def test_a_celery_only_venv_gets_timings_through_probe_write(tmp_path: Path, redis_server: RedisServer) -> None:
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", "celery[redis]>=5.4"], check=True, timeout=600)
    before = subprocess.run([*pip, "freeze"], capture_output=True, text=True, check=True).stdout
    assert "celery==" in before and "capacity" not in before.lower() and "duckdb" not in before

    probe_dir, app_dir, out, timings = (tmp_path / n for n in ("probe", "app", "out", "timings"))
    proc = run_cli(["probe", "write", str(probe_dir)], base_env(redis_server.url), tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == str(probe_dir / "capacity_probe.py"), proc.stderr
    app_dir.mkdir()
    out.mkdir()
    shutil.copy(ROOT / "tests" / "userapp" / "resize_app.py", app_dir / "resize_app.py")
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": f"{probe_dir}:{app_dir}",  # not this repository: capacity is not importable
        "CELERY_BROKER_URL": redis_server.url,
        "CAPACITY_TIMINGS": str(timings),
        "RESIZE_OUT": str(out),
    }
    python = str(venv / "bin" / "python")
    check = subprocess.run([python, "-c", "import capacity"], env=env, cwd=tmp_path, capture_output=True, check=False)
    assert check.returncode != 0  # the worker really has nothing of this package
    queue = "bare-" + uuid.uuid4().hex[:6]
    argv = [python, "-m", "celery", "-A", "resize_app", "worker", "--include", "capacity_probe", "-Q", queue]
    argv += ["-c", "2", "--pool", "threads", "--without-gossip", "--without-mingle", "--loglevel", "INFO"]
    log = tmp_path / "worker.log"
    with log.open("wb") as handle:
        worker = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        args = json.dumps(["$uuid", "img-$seq"])
        inject = ["inject", "--broker", redis_server.url, "--queue", queue, "--task", "resize.async_resize"]
        inject += ["--args", args, "--count", "10", "--log-dir", str(tmp_path / "logs"), "--quiet"]
        inject += ["--monitor", "--monitor-interval", "0.2s", "--monitor-for", "60s"]
        proc = run_cli(inject, base_env(redis_server.url), tmp_path)
        assert proc.returncode == 0, proc.stderr
    finally:
        worker.terminate()
        worker.wait(30)
    task_log = only_log(tmp_path / "logs")
    proc = run_cli(
        ["metrics", "--tasks-log", str(task_log), "--timings", f"probe:{timings}", "-f", "json"],
        base_env(redis_server.url),
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["sent"], data["completed"], data["missing"]) == (10, 10, 0)
    assert data["service_time_mean_s"] >= 0.05  # the task sleeps 50 ms
    after = subprocess.run([*pip, "freeze"], capture_output=True, text=True, check=True).stdout
    assert after == before
