"""matrix run, report and bench against real components: an embedded redis-server, moto's SQS
server, real `celery worker` processes (the reference worker, prefork), and the HTML report in
a real headless Chromium."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.realbrokers import ROOT, MotoSQS, RabbitServer, RedisServer, base_env, run_cli, start_cli

SLEEP_S = 0.1


def write_matrix(path: Path, queue: str, concurrencies: str = "[1, 2, 3]", modes: str | None = None) -> Path:
    modes = modes or "[{mode: burst, count: 12}, {mode: sustained, rate: 5/s, count: 10}]"
    path.write_text(
        f"task: capacity.worker.process_file\nqueue: {queue}\nkwargs: {{sleep_s: {SLEEP_S}}}\n"
        f"sizes: [100KB]\nconcurrencies: {concurrencies}\nmodes: {modes}\n"
    )
    return path


def rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "results.csv").open() as handle:
        return list(csv.DictReader(handle))


def workers_left(queue: str) -> list[int]:
    """Worker processes still consuming the test's own queue (none may outlive a cell)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if queue in " ".join(process.info["cmdline"] or []) and "celery" in " ".join(process.info["cmdline"] or []):
            found.append(process.info["pid"])
    return found


def test_bench_on_embedded_redis_fills_the_table_and_resumes(tmp_path: Path) -> None:
    queue = "bench-" + uuid.uuid4().hex[:8]
    matrix = write_matrix(tmp_path / "tiny.yaml", queue)
    run_dir = tmp_path / "run"
    env = base_env("")
    env.pop("CAPACITY_BROKER_URL")
    proc = run_cli(["bench", "--matrix", str(matrix), "--run-dir", str(run_dir), "-f", "json"], env, tmp_path, 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    results = rows(run_dir)
    assert [r["cell"] for r in results] == [
        "01-100kB-c1-burst",
        "02-100kB-c2-burst",
        "03-100kB-c3-burst",
        "04-100kB-c1-sustained",
        "05-100kB-c2-sustained",
        "06-100kB-c3-sustained",
    ]
    for row in results:
        count = 12 if row["mode"] == "burst" else 10
        # every task the injector logged ran to completion on the real worker, none missing
        assert (int(row["sent"]), int(row["completed"]), int(row["missing"])) == (count, count, 0), row
        s = float(row["service_time_mean_s"])
        assert SLEEP_S <= s < SLEEP_S * 1.3, row  # the task sleeps 100 ms and reads a 100 kB file
        assert row["worker_cpu_mean_percent"] and int(row["worker_rss_peak_bytes"]) > 10_000_000
        if row["mode"] == "burst":
            c = int(row["concurrency"])
            # a burst keeps every slot busy: X close to c / S, less the start and end of the window
            assert float(row["throughput_per_min"]) == pytest.approx(c / s * 60, rel=0.25), row
    assert not workers_left(queue)
    for cell in json.loads((run_dir / "results.json").read_text())["cells"]:
        samples = cell["resource_samples"]  # the raw psutil samples travel with the metrics
        assert len(samples) >= 2 and {"t", "worker_cpu_percent", "worker_rss_bytes"} <= set(samples[0])
    # the report: seed 003's table, a USL fit on the burst cells, the model per cell, the files
    burst = next(u for u in report["usl"] if "burst" in u["group"])
    assert burst["sigma"] is not None and burst["r_squared"] > 0.8
    assert len(report["validation"]) == 6
    for check in report["validation"]:
        assert check["throughput_per_min"]["measured"] == pytest.approx(
            next(float(r["throughput_per_min"]) for r in results if r["cell"] == check["cell"])
        )
    report_dir = run_dir / "report"
    for name in ("report.md", "report.csv", "report.json", "report.html", "throughput_usl.png", "queue_depth.png"):
        assert (report_dir / name).stat().st_size > 100, name
    markdown = (report_dir / "report.md").read_text()
    assert "| Size | Concurrency | Mode | X (tasks/min) | S mean (s) | Notes |" in markdown
    assert "| 100 kB | 3 | Burst |" in markdown
    rendered_in_chromium(report_dir / "report.html", tmp_path)

    # a rerun of the same command skips the finished cells and reports the same figures
    again = run_cli(["bench", "--matrix", str(matrix), "--run-dir", str(run_dir), "-f", "json"], env, tmp_path, 120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("finished earlier, skipped") == 6
    assert rows(run_dir) == results


def rendered_in_chromium(page: Path, tmp_path: Path) -> None:
    """Open the report in headless Chromium (Debian's chromium + chromium-driver, installed by
    scripts/browser.sh) with the network off, and check that every plot decoded."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium/chromedriver not installed and scripts/browser.sh could not install them")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not try to download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(dir=tmp_path)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
        driver.get(page.as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.id, i.complete, i.naturalWidth, i.naturalHeight])"
        )
        headings = driver.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    finally:
        driver.quit()
    ids = {image[0] for image in images}
    assert {"throughput_usl", "service_times", "queue_depth", "worker_resources", "model_vs_measured"} <= ids
    for name, complete, width, height in images:
        assert complete and width > 300 and height > 200, name  # decoded, not a broken-image icon
    assert "Results" in headings and "Scalability (USL)" in headings


def test_matrix_run_on_sqs_with_a_worker_command(tmp_path: Path, moto_sqs: MotoSQS) -> None:
    queue = "msqs-" + uuid.uuid4().hex[:8]
    matrix = write_matrix(tmp_path / "m.yaml", queue, "[1, 2]", "[{mode: burst, count: 8}]")
    run_dir = tmp_path / "run"
    # a short long-poll for the worker, so the pause between cells can be short too (--cooldown)
    options = '{"polling_interval": 0.05, "wait_time_seconds": 1}'
    env = {**base_env(moto_sqs.url), "CAPACITY_WORKER_TRANSPORT_OPTIONS": options}
    worker = (
        "{python} -m celery -A capacity.worker worker --pool threads --concurrency {concurrency} -Q {queue} "
        "--without-gossip --without-mingle --without-heartbeat -l INFO --hostname {cell}@%h"
    )
    proc = run_cli(
        [
            *("matrix", "run", str(matrix), "--worker-cmd", worker, "--run-dir", str(run_dir), "-q", "-f", "csv"),
            *("--cooldown", "2s", "--drain-timeout", "60s"),
        ],
        env,
        tmp_path,
        240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = rows(run_dir)
    assert [(r["concurrency"], r["sent"], r["completed"], r["missing"]) for r in results] == [
        ("1", "8", "8", "0"),
        ("2", "8", "8", "0"),
    ]
    for row in results:
        assert SLEEP_S <= float(row["service_time_mean_s"]) < SLEEP_S * 1.3, row
    assert "testing-secret" not in proc.stdout + proc.stderr + (run_dir / "results.json").read_text()
    assert proc.stdout.startswith("Size,Concurrency,Mode,X (tasks/min),S mean (s),Notes\n100 kB,1,Burst,")
    assert not workers_left(queue)


def test_matrix_run_on_rabbitmq_with_the_probe_and_with_events(tmp_path: Path, rabbitmq: RabbitServer) -> None:
    """Issue #24: `matrix run --broker amqp://...` on a real RabbitMQ, the reference worker per cell:
    every cell's tasks completed, S near the known sleep, from the probe and from Celery's events."""
    queue = "mrmq-" + uuid.uuid4().hex[:8]
    matrix = write_matrix(tmp_path / "m.yaml", queue, "[1, 2]", "[{mode: burst, count: 8}]")
    env = {**base_env(rabbitmq.url), **rabbitmq.env}
    for timings in ("probe", "events"):
        run_dir = tmp_path / f"run-{timings}"
        args = ["matrix", "run", str(matrix), "--broker", rabbitmq.url]
        args += ["--timings", "events"] if timings == "events" else []  # the default: a probe directory per cell
        proc = run_cli([*args, "--run-dir", str(run_dir), "-q", "-f", "csv", "--cooldown", "1s"], env, tmp_path, 240)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = rows(run_dir)
        assert [(r["concurrency"], r["sent"], r["completed"], r["missing"]) for r in results] == [
            ("1", "8", "8", "0"),
            ("2", "8", "8", "0"),
        ], timings
        for row in results:
            assert SLEEP_S <= float(row["service_time_mean_s"]) < SLEEP_S * 1.3, (timings, row)
    assert not workers_left(queue)


def test_worker_up_and_down_templates(tmp_path: Path, redis_server: RedisServer) -> None:
    queue = "mud-" + uuid.uuid4().hex[:8]
    matrix = write_matrix(tmp_path / "m.yaml", queue, "[2]", "[{mode: burst, count: 6}]")
    timings = tmp_path / "timings"
    pidfile = tmp_path / "worker.pid"
    up = (
        "CAPACITY_TIMINGS={timings} {python} -m celery -A capacity.worker worker --pool threads "
        "--concurrency {concurrency} -Q {queue} -l INFO > "
        + str(tmp_path / "w.log")
        + " 2>&1 & echo $! > "
        + str(pidfile)
    )
    down = "kill -TERM $(cat " + str(pidfile) + ")"
    run_dir = tmp_path / "run"
    args = ["matrix", "run", str(matrix), "--worker-up", up, "--worker-down", down, "--timings", str(timings)]
    proc = run_cli([*args, "--settle", "3s", "--run-dir", str(run_dir), "-q"], base_env(redis_server.url), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = rows(run_dir)
    assert (row["sent"], row["completed"], row["concurrency"]) == ("6", "6", "2")
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 30
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "--worker-down did not stop the worker"
        time.sleep(0.2)


def test_interrupted_run_keeps_finished_cells_and_resumes(tmp_path: Path, redis_server: RedisServer) -> None:
    queue = "mint-" + uuid.uuid4().hex[:8]
    matrix = write_matrix(tmp_path / "m.yaml", queue, "[1, 2]", "[{mode: burst, count: 30}]")
    run_dir = tmp_path / "run"
    env = base_env(redis_server.url)
    running = start_cli(["matrix", "run", str(matrix), "--run-dir", str(run_dir), "-q"], env, tmp_path)
    first = run_dir / "cells" / "01-100kB-c1-burst" / "result.json"
    second = run_dir / "cells" / "02-100kB-c2-burst"
    deadline = time.monotonic() + 120
    while not (first.exists() and any(second.glob("worker_tasks_*.log"))):
        assert running.poll() is None and time.monotonic() < deadline, running.communicate()[1][-2000:]
        time.sleep(0.05)
    running.send_signal(signal.SIGINT)  # Ctrl-C while the second cell runs
    _, err = running.communicate(timeout=60)
    assert running.returncode == 130, err[-2000:]
    assert f"interrupted; 1 finished cell(s) kept in {run_dir}" in err and "Traceback" not in err
    assert [r["cell"] for r in rows(run_dir)] == ["01-100kB-c1-burst"]
    assert not (second / "result.json").exists()
    assert not workers_left(queue)
    # the interrupted cell's tasks may still be queued: a rerun says so, --purge empties the queue
    depth = redis_server.client().llen(queue)
    resumed = run_cli(["matrix", "run", str(matrix), "--run-dir", str(run_dir), "-q"], env, tmp_path)
    if depth:
        assert resumed.returncode == 2 and f"holds {depth} messages" in resumed.stderr
        resumed = run_cli(["matrix", "run", str(matrix), "--run-dir", str(run_dir), "-q", "--purge"], env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "01-100kB-c1-burst: finished earlier, skipped" in resumed.stderr
    results = rows(run_dir)
    assert [(r["cell"], r["sent"], r["completed"]) for r in results] == [
        ("01-100kB-c1-burst", "30", "30"),
        ("02-100kB-c2-burst", "30", "30"),
    ]


def test_bad_worker_commands_fail_in_one_line(tmp_path: Path, redis_server: RedisServer) -> None:
    matrix = write_matrix(tmp_path / "m.yaml", "bad-" + uuid.uuid4().hex[:8], "[1]", "[{mode: burst, count: 2}]")
    env = base_env(redis_server.url)
    cases = [
        (["--worker-cmd", "no-such-program-xyz {concurrency}"], 2, "cannot start 'no-such-program-xyz'"),
        (["--worker-cmd", f"{sys.executable} -c 'import sys; sys.exit(5)'"], 4, "the worker exited with code 5"),
        (["--worker-cmd", "celery worker -c {concurrenc}"], 2, "bad template"),
        (["--worker-up", "true"], 2, "--worker-up and --worker-down go together"),
        (["--worker-up", "true", "--worker-down", "true"], 2, "--worker-up needs --timings"),
    ]
    for extra, code, message in cases:
        proc = run_cli(["matrix", "run", str(matrix), "--run-dir", str(tmp_path / "r"), "-q", *extra], env, ROOT)
        assert proc.returncode == code, (extra, proc.stderr)
        assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    proc = run_cli(["report", str(tmp_path / "nothing")], env, ROOT)
    assert proc.returncode == 2 and "no such run directory" in proc.stderr
    unreachable = {**env, "CAPACITY_BROKER_URL": "redis://:hunter2@127.0.0.1:1/0"}
    proc = run_cli(["matrix", "run", str(matrix), "--run-dir", str(tmp_path / "r2"), "-q"], unreachable, ROOT)
    assert proc.returncode == 3 and "hunter2" not in proc.stderr, proc.stderr


def test_matrix_run_with_celery_events_as_timings(tmp_path: Path, redis_server: RedisServer) -> None:
    queue = "mev-" + uuid.uuid4().hex[:8]
    matrix = write_matrix(tmp_path / "m.yaml", queue, "[2]", "[{mode: burst, count: 8}]")
    run_dir = tmp_path / "run"
    args = ["matrix", "run", str(matrix), "--timings", "events", "--run-dir", str(run_dir), "-q"]
    proc = run_cli(args, base_env(redis_server.url), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (cell,) = json.loads((run_dir / "results.json").read_text())["cells"]
    metrics = cell["metrics"]
    assert metrics["sources"] == ["events"]
    assert (metrics["sent"], metrics["completed"]) == (8, 8)
    assert SLEEP_S <= metrics["service_time_mean_s"] < SLEEP_S * 1.3
    assert not (run_dir / "cells" / cell["cell"]["cell"] / "timings").exists()  # no probe files: events only
    sqs = run_cli([*args[:-3], "--broker", "sqs://k:s@127.0.0.1:9/"], base_env(redis_server.url), tmp_path)
    assert sqs.returncode == 2 and "no events on SQS" in sqs.stderr


def test_replicas_and_pools_vary_per_cell(tmp_path: Path) -> None:
    # issue #12: seed 001 runs "2 containers x 4 threads"; seed 004 compares prefork with solo
    queue = "rep-" + uuid.uuid4().hex[:8]
    matrix = tmp_path / "replicas.yaml"
    matrix.write_text(
        f"task: capacity.worker.process_file\nqueue: {queue}\nkwargs: {{sleep_s: {SLEEP_S}}}\n"
        "concurrencies: [2]\nreplicas: [1, 2]\npools: [threads, solo]\nmodes: [{mode: burst, count: 12}]\n"
    )
    run_dir = tmp_path / "run"
    env = base_env("")
    env.pop("CAPACITY_BROKER_URL")
    proc = run_cli(["bench", "--matrix", str(matrix), "--run-dir", str(run_dir), "-f", "json"], env, tmp_path, 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = {c["cell"]["cell"]: c for c in json.loads((run_dir / "results.json").read_text())["cells"]}
    assert sorted(cells) == [
        "01-threads-r1-c2-burst",
        "02-threads-r2-c2-burst",
        "03-solo-r1-c2-burst",
        "04-solo-r2-c2-burst",
    ]
    for name, cell in cells.items():
        assert (cell["metrics"]["sent"], cell["metrics"]["completed"]) == (12, 12), name
        replicas = cell["cell"]["replicas"]
        log = (run_dir / "cells" / name / "worker.log").read_text()
        assert log.count(" ready.") == replicas  # one worker process per replica
        # Celery's banner names the pool it runs: "concurrency: 2 (thread)", "(solo)"
        assert {"threads": "(thread)", "solo": "(solo)"}[cell["cell"]["pool"]] in log
    # utilisation and the USL use every slot: 2 replicas x 2 threads = 4; solo runs one task at a time
    x = {name: c["metrics"]["throughput_per_min"] for name, c in cells.items()}
    assert x["02-threads-r2-c2-burst"] > 1.5 * x["01-threads-r1-c2-burst"]
    assert x["04-solo-r2-c2-burst"] > 1.5 * x["03-solo-r1-c2-burst"]
    assert x["03-solo-r1-c2-burst"] < 0.7 * x["01-threads-r1-c2-burst"]  # solo: one slot whatever -c says
    markdown = (run_dir / "report" / "report.md").read_text()
    assert "| 2 x 2 threads |" in markdown and "| 1 solo |" not in markdown and "| 2 solo |" in markdown
    assert "(replicas vs threads)" not in markdown  # no two splits of the same total here
