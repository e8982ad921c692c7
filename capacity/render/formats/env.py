"""env: KEY=value lines for the results that set environment variables (WORKER_CONCURRENCY)."""

from __future__ import annotations

from typing import TextIO

from capacity.render.formats import Format
from capacity.render.model import Report


class EnvFormat(Format):
    name = "env"

    def supports(self, report: Report) -> bool:
        return report.env is not None

    def write(self, report: Report, stream: TextIO) -> None:
        stream.write("".join(f"{key}={value}\n" for key, value in (report.env or {}).items()))
