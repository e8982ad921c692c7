"""Shards of one run from several processes on one machine, against a real Redis: how close the
combined send rate is to the asked rate, and how close each shard's first send is to its due time
after --start-at. Also the compare gate's false-alarm and detection rates on synthetic runs.

    .venv/bin/python benchmarks/bench_shards.py [--shards 4] [--rate 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchmarks._servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent


def shards(n: int, rate: float, seconds: float) -> None:
    count = int(rate * seconds)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "redis").mkdir()
        server = RedisServer(directory / "redis").start()
        try:
            start_at = time.time() + 5
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "capacity",
                        "inject",
                        "--broker",
                        server.url,
                        "--mode",
                        "sustained",
                        "--rate",
                        f"{rate}/s",
                        "--count",
                        str(count),
                        "--shard",
                        f"{i}/{n}",
                        "--run-id",
                        "bench",
                        "--start-at",
                        repr(start_at),
                        "--log-dir",
                        str(directory / "logs"),
                        "--quiet",
                    ],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for i in range(n)
            ]
            for p in procs:
                _, err = p.communicate(timeout=seconds + 120)
                assert p.returncode == 0, err
            sent: list[float] = []
            first: list[float] = []
            for index, log in enumerate(sorted((directory / "logs").glob("*.log"))):
                lines = [json.loads(x) for x in log.read_text().splitlines()]
                times = [datetime.fromisoformat(t["sent_at"]).timestamp() for t in lines if "task_id" in t]
                sent += times
                first.append((times[0] - (start_at + index / rate)) * 1000)
            sent.sort()
            combined = (len(sent) - 1) / (sent[-1] - sent[0])
            queued = server.queued_task_ids("celery")
            print(
                f"{n} shards, {rate:g}/s asked, {len(sent)} tasks "
                f"({len(queued)} on the queue, {len(set(queued))} distinct)"
            )
            print(f"combined send rate {combined:,.1f}/s: {100 * (combined / rate - 1):+.2f}% of the asked rate")
            print(f"first send after its due time, per shard (ms): {', '.join(f'{f:.2f}' for f in first)}")
        finally:
            server.stop()


def gate(pairs: int) -> None:
    sys.path.insert(0, str(ROOT))
    from capacity.measure.compare import compare_files, parse_tolerances
    from tests.unit.measure.test_compare import write_tasks

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        false_alarms = sum(
            bool(
                compare_files(
                    write_tasks(d / "a.csv", 2 * k), write_tasks(d / "b.csv", 2 * k + 1), parse_tolerances([])
                ).regressions
            )
            for k in range(pairs)
        )
        caught = 0
        for k in range(pairs // 10):
            cell = compare_files(
                write_tasks(d / "a.csv", 10_000 + k),
                write_tasks(d / "b.csv", 20_000 + k, slower=1.2),
                parse_tolerances([]),
            ).cells[0]
            caught += {"S.mean", "S.p50"} <= {c.figure for c in cell.regressions}
    print(
        f"compare: {false_alarms} of {pairs} same-worker pairs flagged (400 tasks each); "
        f"{caught} of {pairs // 10} runs with S 20% slower caught"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pairs", type=int, default=500)
    options = parser.parse_args()
    shards(options.shards, options.rate, options.seconds)
    gate(options.pairs)
