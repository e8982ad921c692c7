#!/usr/bin/env python
"""Seed 003's load injector, command-line compatible: this is ``capacity inject``.

    python load_tests/inject_worker_tasks.py --count 100 --size 50MB --mode burst --monitor
    python load_tests/inject_worker_tasks.py --count 50 --size 100MB --mode sustained --rate 10 --monitor

The broker comes from --broker, $CAPACITY_BROKER_URL, $CELERY_BROKER_URL, or seed 003's
$SQS_QUEUE_NAME / $AWS_REGION (meaning sqs://).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capacity.cli import app


def main() -> None:
    app(["inject", *sys.argv[1:]], prog_name="inject_worker_tasks.py")


if __name__ == "__main__":
    main()
