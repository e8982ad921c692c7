"""How often ``capacity compare`` raises a false alarm, and how often it catches a slower worker,
on generated runs of a host whose speed varies from run to run (#21).

    .venv/bin/python benchmarks/bench_compare.py [--seeds 500]

Each seed draws, for one worker on a noisy host, a base side and a same-worker side and a side 30%
slower, each of 1 or 3 runs of 300 tasks (per-task figures as ``metrics --csv`` gives them);
every run's durations are scaled by the host's mood, log-normal with sd 7% to 20%. Printed: the
share of same-worker comparisons with a regression (false alarms) and of 30%-slower ones caught,
for the run-level test ``compare`` uses and, as the baseline, for a per-task test (Welch's t on
the tasks pooled over each side's runs, at the same alpha), which is what treating tasks as
independent samples gives. Target (#21's done-when): at 7% noise and 3 runs a side, at most one
false alarm in eight comparisons (12.5%) and every 30% slower worker caught.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from scipy import stats

from capacity.measure.compare import ALPHA, Run, Tasks, compare_runs, figures_from_tasks, parse_tolerances

TASKS = 300


def run(rng: np.random.Generator, host: float, slower: float) -> Run:
    service = rng.lognormal(np.log(0.2), 0.3, TASKS) * host * slower
    wait = rng.exponential(0.05, TASKS) * host
    sent = 1_700_000_000 + np.arange(TASKS) * 0.1 * host
    finished = sent + wait + service
    tasks = Tasks(sent, finished, np.ones(TASKS, dtype=bool), service, wait, finished - sent)
    return Run("run", figures_from_tasks(tasks), tasks)


def side(rng: np.random.Generator, runs: int, noise: float, slower: float = 1.0) -> list[Run]:
    return [run(rng, float(h), slower) for h in np.exp(rng.normal(0.0, noise, runs))]


def per_task_regression(base: list[Run], new: list[Run]) -> bool:
    """The baseline: S.mean judged by Welch's t over the tasks, as if they were independent."""
    b = np.concatenate([r.tasks.service for r in base if r.tasks is not None])
    n = np.concatenate([r.tasks.service for r in new if r.tasks is not None])
    change = n.mean() / b.mean() - 1
    return bool(change > 0.10 and stats.ttest_ind(n, b, equal_var=False, alternative="greater").pvalue < ALPHA)


def scenario(seeds: int, runs: int, noise: float) -> tuple[float, float, float, float]:
    tolerances = parse_tolerances([])
    false_alarms = caught = naive_false = naive_caught = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        base, same = side(rng, runs, noise), side(rng, runs, noise)
        slow = side(rng, runs, noise, slower=1.3)
        false_alarms += bool(compare_runs("c", base, same, tolerances).regressions)
        caught += bool(compare_runs("c", base, slow, tolerances).regressions)
        naive_false += per_task_regression(base, same)
        naive_caught += per_task_regression(base, slow)
    return false_alarms / seeds, caught / seeds, naive_false / seeds, naive_caught / seeds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=500)
    args = parser.parse_args()
    print(f"{args.seeds} seeds a scenario, runs of {TASKS} tasks; a 30% slower worker against the same worker")
    print("runs a side  noise  | compare: false alarms  caught | per-task Welch: false alarms  caught")
    for runs, noise in ((3, 0.07), (1, 0.07), (3, 0.15), (1, 0.20)):
        fa, caught, naive_fa, naive_caught = scenario(args.seeds, runs, noise)
        print(f"{runs:>11}  {noise:>5.0%}  | {fa:>22.1%}  {caught:>6.1%} | {naive_fa:>29.1%}  {naive_caught:>6.1%}")
        if (runs, noise) == (3, 0.07):
            met = fa <= 0.125 and caught >= 0.95
            target = f"target at 3 runs, 7% (<= 12.5% false alarms, >= 95% caught): {'met' if met else 'NOT met'}"
    print(target)


if __name__ == "__main__":
    main()
