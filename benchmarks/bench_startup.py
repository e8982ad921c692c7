"""Start-up, as a user meets it (issue #26): each command run as a new process, several times,
median; against the interpreter's own start-up measured in the same run.

    .venv/bin/python benchmarks/bench_startup.py [--runs 15]

Target: `capacity --help` and `capacity recommend --instance medium` under 0.35 s wall.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

CAPACITY = str(Path(sys.executable).with_name("capacity"))
TARGET_S = 0.35
CASES = {
    "python -c pass (the interpreter alone)": [sys.executable, "-c", "pass"],
    "capacity --help": [CAPACITY, "--help"],
    "capacity recommend --instance medium": [CAPACITY, "recommend", "--instance", "medium"],
    "capacity plan --arrival-rate 120/min --service-time 12s --workers 30": [
        CAPACITY,
        "plan",
        "--arrival-rate",
        "120/min",
        "--service-time",
        "12s",
        "--workers",
        "30",
    ],
    "capacity autoscale --concurrency 4 --count 1000 (numba)": [
        CAPACITY,
        "autoscale",
        "--concurrency",
        "4",
        "--count",
        "1000",
    ],
}


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for argv in CASES.values():
        wall(argv)  # the first run warms the file cache (and numba's on-disk cache)
    for _ in range(options.runs):  # interleaved: a noisy moment spreads over every case
        for name, argv in CASES.items():
            times[name].append(wall(argv))
    base = statistics.median(times[next(iter(CASES))])
    print(f"start-up, median of {options.runs} runs each (interleaved), wall seconds:")
    for name, values in times.items():
        median = statistics.median(values)
        verdict = ""
        if name in ("capacity --help", "capacity recommend --instance medium"):
            verdict = f"  target < {TARGET_S} s: {'met' if median < TARGET_S else 'NOT met'}"
        print(
            f"  {name:<70} {median:6.3f}  ({min(values):.3f}-{max(values):.3f}; {median / base:4.1f}x python){verdict}"
        )


if __name__ == "__main__":
    main()
