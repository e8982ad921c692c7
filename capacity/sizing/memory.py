"""How much memory one computation may take: ``$CAPACITY_MEMORY_LIMIT`` when set (it is also
DuckDB's limit in ``metrics``), otherwise most of what the machine has available now.

A simulation that would not fit is refused with one line before its arrays exist: the kernel's
OOM killer gives no error message, and ``simulate --count 199999999``, inside the task bound,
needs about 25 GB.
"""

from __future__ import annotations

import os

from capacity.errors import InputError
from capacity.units import format_size, parse_size

ENV_VAR = "CAPACITY_MEMORY_LIMIT"
#: the share of the available memory a computation may take when no limit is set
SHARE = 0.8


def allowed_bytes() -> tuple[int | None, str]:
    """The limit in bytes (None: unknown, not checked) and where it comes from, for messages."""
    given = os.environ.get(ENV_VAR)
    if given:
        return parse_size(given, f"${ENV_VAR}"), f"${ENV_VAR}"
    available = _available_bytes()
    if available is None:
        return None, ""
    return int(available * SHARE), f"{SHARE:.0%} of the memory available now"


#: memory a simulated task takes, with the interpreter: 1.37 GB for 10,000,000 in ``simulate``'s
#: replications, 1.21 GB in the fleet simulation of ``autoscale`` (measured)
BYTES_PER_TASK = 128


def check_tasks_fit(tasks: int, what: str | None = None) -> None:
    """InputError when simulating ``tasks`` tasks needs more than the limit."""
    check_fits(tasks * BYTES_PER_TASK, what or f"simulating {tasks:,} tasks")


def check_fits(need_bytes: float, what: str) -> None:
    """InputError when ``what`` needs more than the limit."""
    allowed, source = allowed_bytes()
    if allowed is not None and need_bytes > allowed:
        raise InputError(
            f"{what} needs about {format_size(need_bytes)} of memory; {source} allows "
            f"{format_size(allowed)} (set {ENV_VAR} to allow more)"
        )


def _available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else the physical memory, else None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None
