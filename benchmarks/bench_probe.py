"""The probe's overhead per task, measured in one run.

    .venv/bin/python benchmarks/bench_probe.py [--tasks 20000]

Runs a no-op Celery task through Celery's own tracer (``apply``, which fires task_prerun and
task_postrun as a worker does) with the probe imported but no sink, then with a directory sink
and with a Redis stream sink; the difference per task is the probe's cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from celery import Celery

import capacity.workerside.probe as probe
from tests.realbrokers import RedisServer

app = Celery("bench-probe", set_as_current=False)


@app.task(name="bench.noop")
def noop() -> None:
    return None


def per_task_us(n: int) -> float:
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            noop.apply()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20_000)
    n = parser.parse_args().tasks
    with tempfile.TemporaryDirectory() as name:
        os.environ.pop(probe.ENV_VAR, None)
        probe._state["pid"] = None
        bare = per_task_us(n)
        os.environ[probe.ENV_VAR] = name
        probe._state["pid"] = None
        directory = per_task_us(n)
        (Path(name) / "redis").mkdir()
        server = RedisServer(Path(name) / "redis").start()
        try:
            os.environ[probe.ENV_VAR] = server.url
            probe._state["pid"] = None
            stream = per_task_us(n)
        finally:
            server.stop()
    print(f"Celery apply() of a no-op task, median of 3 rounds of {n:,}:")
    print(f"  probe without a sink        {bare:8.1f} us per task")
    print(f"  probe, directory sink       {directory:8.1f} us per task (+{directory - bare:.1f} us)")
    print(f"  probe, Redis stream sink    {stream:8.1f} us per task (+{stream - bare:.1f} us)")


if __name__ == "__main__":
    main()
