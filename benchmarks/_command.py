"""A command timed as a user runs it: a new process, start-up included, with its own peak memory."""

from __future__ import annotations

import subprocess
import sys
import time

# the child runs under a fresh interpreter whose only child is the command: RUSAGE_CHILDREN's
# peak is the command's own (ru_maxrss in KiB on Linux)
_WRAPPER = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "sys.stdout.write(done.stdout); sys.stderr.write(done.stderr); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)"
)


def timed_command(argv: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak resident MB, stdout) of ``argv`` run as a new process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{argv[:3]} exited {done.returncode}: {done.stderr[-500:]}")
    *out, peak = done.stdout.rstrip("\n").split("\n")
    return wall, int(peak) / 1024, "\n".join(out)


def compare_as_commands(ours: list[str], duckdb: list[str], rounds: int, target: float) -> None:
    """#26: `capacity metrics` and DuckDB's query each as a user runs them (new processes,
    start-up and imports included), alternating rounds; the medians, the ratio and the peak."""
    results = [(timed_command(ours), timed_command(duckdb)) for _ in range(rounds)]
    mine = sorted(r[0][0] for r in results)[rounds // 2]
    theirs = sorted(r[1][0] for r in results)[rounds // 2]
    peak = max(r[0][1] for r in results)
    print(f"as commands (new processes, start-up included; median of {rounds} alternating rounds):")
    print(f"  capacity metrics  {mine:7.2f} s  peak {peak:7,.0f} MB")
    print(f"  DuckDB            {theirs:7.2f} s")
    print(f"  rounds (capacity/DuckDB s): {', '.join(f'{a[0]:.2f}/{b[0]:.2f}' for a, b in results)}")
    print(f"capacity metrics as a command vs DuckDB: {mine / theirs:.2f}x (target <= {target}x), "
          f"peak {peak / 1024:.2f} GB (target <= 2 GB)")  # fmt: skip
