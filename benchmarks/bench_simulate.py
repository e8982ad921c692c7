"""capacity simulate against the ciw library on the same M/M/c model, in one run.

    .venv/bin/python benchmarks/bench_simulate.py [--customers 50000]   (pip install -e '.[bench]')

Both simulate c = 4 slots, Poisson arrivals at 3/s, exponential service of mean 1 s, FCFS, for
the same number of customers; the analytic Erlang C mean wait is printed beside both.
Target: capacity at least 50x faster, same answers within sampling error.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ciw

from capacity.sizing.queueing import MMc
from capacity.sizing.simulate import Workload, replicate

RATE, SERVICE_S, SLOTS = 3.0, 1.0, 4


def with_ciw(
    customers: int, seed: int, rate: float = RATE, service_s: float = SERVICE_S, slots: int = SLOTS
) -> tuple[float, float]:
    """ciw on M/M/c: (seconds, mean wait). benchmarks/bench_autoscale.py uses it as its baseline too."""
    ciw.seed(seed)
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=rate)],
        service_distributions=[ciw.dists.Exponential(rate=1 / service_s)],
        number_of_servers=[slots],
    )
    simulation = ciw.Simulation(network)
    start = time.perf_counter()
    simulation.simulate_until_max_customers(customers, method="Finish")
    elapsed = time.perf_counter() - start
    waits = [record.waiting_time for record in simulation.get_all_records()]
    return elapsed, statistics.fmean(waits)


def with_capacity(customers: int, seed: int) -> tuple[float, float]:
    workload = Workload(
        slots=SLOTS,
        arrival="poisson",
        arrival_rate_per_s=RATE,
        count=customers,
        service="exponential",
        service_time_s=SERVICE_S,
    )
    start = time.perf_counter()
    result = replicate(workload, seed=seed)
    return time.perf_counter() - start, result.wait_mean_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=50_000)
    customers = parser.parse_args().customers
    analytic = MMc(RATE, SERVICE_S, SLOTS).mean_wait_s
    with_capacity(1000, 99)  # warm both up (imports, first-call costs)
    with_ciw(1000, 99)
    seeds = range(1, 6)
    ours = [with_capacity(customers, seed) for seed in seeds]
    theirs = [with_ciw(customers, seed) for seed in seeds]
    million_time, million_wait = with_capacity(1_000_000, 1)

    def line(label: str, runs: list[tuple[float, float]]) -> str:
        total = sum(t for t, _ in runs)
        waits = [w for _, w in runs]
        half = 2.776 * statistics.stdev(waits) / len(waits) ** 0.5  # Student's t, 4 degrees of freedom
        return (
            f"  {label:<18} {customers:>9,} customers x {len(runs)} seeds  {total:8.3f} s  "
            f"mean wait {statistics.fmean(waits):.4f} s +- {half:.4f}"
        )

    print(f"M/M/{SLOTS}, arrivals {RATE:g}/s, service {SERVICE_S:g} s: Erlang C mean wait {analytic:.4f} s")
    print(line("capacity simulate", ours))
    print(line("ciw", theirs))
    print(
        f"  capacity simulate  {1_000_000:>9,} customers, one seed     {million_time:8.3f} s  "
        f"mean wait {million_wait:.4f} s"
    )
    ratio = sum(t for t, _ in theirs) / sum(t for t, _ in ours)
    print(f"capacity is {ratio:,.0f}x faster than ciw (target >= 50x)")


if __name__ == "__main__":
    main()
