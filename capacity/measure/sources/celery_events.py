"""Celery task events recorded by ``capacity collect`` (the probe's line format)."""

from __future__ import annotations

import json
from pathlib import Path

from capacity.measure.inputs import TaskLog
from capacity.measure.sources import SourceSettings, TimingSource


class CeleryEvents(TimingSource):
    kind = "events"
    label = "events"

    @classmethod
    def accepts(cls, source: str) -> bool:
        return Path(source).is_file()

    @classmethod
    def claims(cls, source: str) -> bool:
        """A JSON Lines file whose first line is an event line (task_id and event)."""
        path = Path(source)
        if not path.is_file() or path.suffix in (".csv", ".parquet"):
            return False
        with path.open("rb") as handle:
            first = handle.readline()
        try:
            head = json.loads(first)
        except ValueError:
            return False
        return isinstance(head, dict) and "event" in head and "task_id" in head

    def load(self, source: str, log: TaskLog, settings: SourceSettings) -> None:
        log.store.event_files.append(Path(source))
