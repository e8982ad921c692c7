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
