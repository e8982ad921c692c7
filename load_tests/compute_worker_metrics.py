#!/usr/bin/env python
"""Seed 003's metrics script, command-line compatible: this is ``capacity metrics``.

    python load_tests/compute_worker_metrics.py --tasks-log load_tests/results/worker_tasks_YYYYMMDD_HHMMSS.log
    python load_tests/compute_worker_metrics.py --tasks-log LOG --csv per_task.csv --timings /shared/timings

Timings come from --timings or $CAPACITY_TIMINGS (where the probe writes).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capacity.cli import app


def main() -> None:
    app(["metrics", *sys.argv[1:]], prog_name="compute_worker_metrics.py")


if __name__ == "__main__":
    main()
