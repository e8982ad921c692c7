"""The fuzz soak (issue #11): thousands of generated and mutated command lines over every command.

    .venv/bin/python benchmarks/soak_fuzz.py [--examples 5000] [--seed 0]

The same strategies and property as tests/unit/test_fuzz_cli.py (tests/fuzzcli.py), run in
process: prints the cases run, the exit codes seen, tracebacks, undocumented codes, lines that
are not one error, and the slowest case; exits 1 if any case broke the property.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, given, seed, settings

from tests.fuzzcli import (
    argv_strategy,
    command_tree,
    environment,
    hostile_files,
    mutated_strategy,
    problems,
    run_in_process,
    seed_files,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trace", type=Path, help="append each command line here before it runs (to find a crash)")
    options = parser.parse_args()
    trace = options.trace.resolve().open("a", buffering=1) if options.trace else None
    work = Path(tempfile.mkdtemp(prefix="capacity-soak-"))
    os.chdir(work)
    os.environ.clear()
    os.environ.update(environment(work))
    files = hostile_files(work / "inputs")
    seeds = seed_files(work / "seeds")
    tree = command_tree()
    codes: collections.Counter[int] = collections.Counter()
    broken: list[str] = []
    slowest = (0.0, "")
    hungry: list[str] = []

    @seed(options.seed)
    @settings(
        max_examples=options.examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
        database=None,
    )
    @given(mutated_strategy(tree, files, seeds) | argv_strategy(tree, files))
    def case(argv: list[str]) -> None:
        nonlocal slowest
        if trace is not None:
            trace.write(" ".join(argv) + "\n")
        started = time.monotonic()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        outcome = run_in_process(argv)
        elapsed = time.monotonic() - started
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak  # KiB
        if grown > 256 << 10:
            hungry.append(f"{grown >> 10} MB more at peak (exit {outcome.code}): {' '.join(argv)[:300]}")
        codes[outcome.code] += 1
        broken.extend(problems(argv, outcome))
        if elapsed > slowest[0]:
            slowest = (elapsed, " ".join(argv)[:120])

    started = time.monotonic()
    case()
    total = sum(codes.values())
    tracebacks = sum("traceback" in b for b in broken)
    print(f"cases run: {total} in {time.monotonic() - started:.0f} s over {len(tree)} commands")
    print(f"exit codes seen: {dict(sorted(codes.items()))}")
    print(f"tracebacks: {tracebacks}; undocumented exit codes: {sum(1 for b in broken if ': exit ' in b)}")
    print(f"property broken: {len(broken)}")
    print(f"slowest case: {slowest[0]:.2f} s ({slowest[1]})")
    for line in hungry:
        print(f"raised the peak memory: {line}")
    for line in broken[:20]:
        print("  " + line[:300])
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
