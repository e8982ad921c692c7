"""capacity autoscale: how fast (a day at 1,000 tasks/s), how it scales, ciw as the baseline, and
the full-size comparison with real scaled runs.

    .venv/bin/python benchmarks/bench_autoscale.py speed      (pip install -e '.[bench]' for ciw)
    .venv/bin/python benchmarks/bench_autoscale.py validate   (real workers on the embedded Redis, ~6 min)
    .venv/bin/python benchmarks/bench_autoscale.py week [--days 7]   (streamed, bounded memory, ~5 min)

speed: 86,400,000 Poisson arrivals (a day at 1,000/s), exponential service of 1 s, 4 slots per
replica, keda-redis target 20, 1-400 replicas, 30 s start-up: target under a minute on this
machine. Then the time per task against the number of tasks (1, 10, 86.4 million) and against
the fleet's size (fixed fleets of 10, 100 and 1,000 replicas at 80% utilisation), and ciw (a
discrete-event library) on the same fixed M/M/c fleet, per task.

week: issue #26's: a week at 1,000 tasks/s (604,800,000 Poisson arrivals, the speed model) with
`capacity autoscale --percentiles sketch` run as a user runs it (a new process), its wall time and
peak memory (targets < 5 min, < 2 GB); then the same command on a day, exact and streamed, side by
side (the exact mode's memory is what the streamed mode saves).

validate: issue #14's real-run comparison at full size: a burst (600 tasks of 1 s) and a step in
rate (60 s at 2/s, then 60 s at 10/s) on replicas of 2 slots, keda-redis, sync 5 s, scale-down
window 30 s; the simulated drain time, p95 wait, peak replicas and replica-seconds against the
real run's, each within 15%.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from capacity.sizing.autoscale import simulate_fleet
from capacity.sizing.policies import Fleet, Policy


def poisson(rate: float, n: int, seed: int = 1) -> np.ndarray:
    arrivals = np.cumsum(np.random.default_rng(seed).exponential(1 / rate, n))
    return arrivals - arrivals[0]


def timed_day(n: int) -> tuple[float, float, object]:
    start = time.perf_counter()
    arrivals = poisson(1000.0, n)
    services = np.random.default_rng(2).exponential(1.0, n)
    drawn = time.perf_counter()
    result = simulate_fleet(arrivals, services, Fleet(4, 1, 400, 30.0), Policy("keda-redis", target=20))
    return drawn - start, time.perf_counter() - drawn, result


def speed() -> None:
    simulate_fleet(np.zeros(10), np.ones(10), Fleet(1), Policy("fixed"))  # compile (numba caches it)
    draw, day, result = timed_day(86_400_000)
    print("A day at 1,000 tasks/s (86,400,000 tasks), keda-redis target 20, 4 slots, 1-400 replicas, 30 s start-up:")
    print(
        f"  drawing the trace {draw:.1f} s, simulating {day:.1f} s ({day / 86.4e6 * 1e9:.0f} ns a task), "
        f"both {draw + day:.1f} s  target: < 60 s"
    )
    print(f"  peak replicas {result.max_replicas}, p95 wait {result.wait_p95_s:.1f} s, "  # type: ignore[attr-defined]
          f"replica-hours {result.replica_hours:,.0f}")  # type: ignore[attr-defined]  # fmt: skip
    print("Against the number of tasks (same model):")
    for n in (1_000_000, 10_000_000, 86_400_000):
        took = timed_day(n)[1] if n != 86_400_000 else day
        print(f"  {n:>12,} tasks  {took:7.2f} s  {took / n * 1e9:6.0f} ns a task")
    print("Against the fleet's size (10,000,000 tasks at 1,000/s, fixed fleets of 4 slots at 80% utilisation):")
    arrivals = poisson(1000.0, 10_000_000)
    for replicas in (10, 100, 1000):
        service = 0.8 * 4 * replicas / 1000
        services = np.random.default_rng(3).exponential(service, len(arrivals))
        start = time.perf_counter()
        simulate_fleet(arrivals, services, Fleet(4, 1, replicas, 0.0), Policy("fixed", replicas=replicas))
        took = time.perf_counter() - start
        per_task = took / len(arrivals) * 1e9
        print(f"  {replicas:>5} replicas ({4 * replicas:>5} slots)  {took:6.2f} s  {per_task:5.0f} ns a task")
    customers = 200_000
    try:
        from bench_simulate import with_ciw  # ciw: pip install -e '.[bench]'

        theirs = with_ciw(customers, 1, rate=1000.0, service_s=0.032, slots=40)[0]
    except ImportError:
        print("ciw is not installed (pip install -e '.[bench]'): no baseline")
        return
    arrivals = poisson(1000.0, customers)
    services = np.random.default_rng(4).exponential(0.032, customers)
    start = time.perf_counter()
    simulate_fleet(arrivals, services, Fleet(4, 1, 10, 0.0), Policy("fixed", replicas=10))
    ours = time.perf_counter() - start
    print(f"Baseline, ciw on the same fixed fleet (M/M/40, 80%, {customers:,} customers):")
    print(f"  ciw {theirs:.2f} s ({theirs / customers * 1e6:.1f} µs a task), capacity {ours:.3f} s "
          f"({ours / customers * 1e9:.0f} ns a task): {theirs / ours:,.0f}x")  # fmt: skip


def validate() -> None:
    from capacity.load.schedules import Burst, load_stages
    from capacity.matrix.embedded import EmbeddedRedis
    from capacity.matrix.scaledrun import ScaledRunConfig, run_scaled
    from capacity.matrix.scaledrun import validate as compare

    policy = Policy("keda-redis", target=20, sync_s=5, down_window_s=30)
    with tempfile.TemporaryDirectory() as tmp:
        step = Path(tmp) / "step.yaml"
        step.write_text("- {duration: 60s, rate: 2/s}\n- {duration: 60s, rate: 10/s}\n")
        scenarios = {
            "burst of 600 tasks of 1 s": ScaledRunConfig("", Path(tmp) / "burst", Burst(600), 2, policy, 1, 8),
            "step 2/s -> 10/s, tasks of 1 s": ScaledRunConfig(
                "", Path(tmp) / "step", load_stages(step), 2, Policy("keda-redis", target=5, sync_s=5,
                                                                     down_window_s=30), 1, 8
            ),
        }  # fmt: skip
        for name, config in scenarios.items():
            with EmbeddedRedis() as redis:
                from dataclasses import replace

                config = replace(config, broker_url=redis.url)
                started = time.monotonic()
                real = run_scaled(config, threading.Event())
                check = compare(config, real)
            print(f"{name} ({time.monotonic() - started:.0f} s; start-up measured {real.startup_mean_s:.2f} s, "
                  f"{len(real.startup_s)} replicas):")  # fmt: skip
            for f in check.figures:
                print(f"  {f.name:<16} real {f.real:9.2f}  simulated {f.simulated:9.2f}  {f.difference:+7.1%}  "
                      f"{'within 15%' if f.within else 'MISSED'}")  # fmt: skip


def week(days: float) -> None:
    import json
    import subprocess

    def run(tasks: int, percentiles: str) -> tuple[float, float, dict[str, object]]:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "result.json"
            argv = [str(Path(sys.executable).parent / "capacity"), "autoscale", "--concurrency", "4"]
            argv += ["--arrival", "poisson", "--arrival-rate", "1000/s", "--count", str(tasks)]
            argv += ["--service", "exponential", "--service-time", "1s", "--policy", "keda-redis", "--target", "20"]
            argv += ["--max-replicas", "400", "--startup", "30s", "--percentiles", percentiles, "-f", "json"]
            argv += ["-o", str(out)]
            # a process of its own, started by a fresh interpreter, so its peak is its own alone
            wrapper = (
                "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
            )
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", wrapper, *argv], capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
            peak_gb = int(done.stdout.split()[-1]) * 1024 / 1e9
            return wall, peak_gb, json.loads(out.read_text())

    tasks = int(days * 86_400 * 1000)
    print(f"{days:g} days at 1,000 tasks/s ({tasks:,} tasks), keda-redis target 20, 4 slots, 1-400 replicas, "
          "30 s start-up, `capacity autoscale --percentiles sketch` as a new process:")  # fmt: skip
    wall, peak, data = run(tasks, "sketch")
    print(f"  wall {wall:.1f} s (target < 300 s)  peak memory {peak:.2f} GB (target < 2 GB)  "
          f"wait p95 {data['wait_p95_s']:.2f} s  p99 {data['wait_p99_s']:.2f} s  peak replicas {data['max_replicas']}  "
          f"replica-hours {data['replica_hours']:,.1f}")  # fmt: skip
    day = 86_400_000
    print(f"A day ({day:,} tasks), the same command, exact and streamed:")
    for mode in ("exact", "sketch"):
        wall, peak, data = run(day, mode)
        print(f"  {mode:<6} wall {wall:6.1f} s  peak memory {peak:5.2f} GB  wait p95 {data['wait_p95_s']:.3f} s  "
              f"p99 {data['wait_p99_s']:.3f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["speed", "validate", "week"])
    parser.add_argument("--days", type=float, default=7.0, help="week: how many days of traffic")
    args = parser.parse_args()
    if args.part == "week":
        week(args.days)
    else:
        {"speed": speed, "validate": validate}[args.part]()


if __name__ == "__main__":
    main()
