"""bullmq: the Worker options a Node user pastes into ``new Worker(queue, processor, {...})`` (seed
002's ``concurrency``, a ``limiter`` of max jobs per duration in ms), as JSON, which JavaScript reads
as an object literal. Only for the results that set them (concurrency from resources, photo counts,
workers for a backlog)."""

from __future__ import annotations

import json
from typing import TextIO

from capacity.render.formats import Format
from capacity.render.model import Report


class BullMQFormat(Format):
    name = "bullmq"

    def supports(self, report: Report) -> bool:
        return report.worker_options is not None

    def write(self, report: Report, stream: TextIO) -> None:
        stream.write(json.dumps(report.worker_options, indent=2) + "\n")
