"""The probe's Redis stream (``CAPACITY_TIMINGS=redis://...`` on the workers)."""

from __future__ import annotations

import json
from typing import Any

from capacity.brokers import is_redis_url
from capacity.errors import InputError
from capacity.measure.inputs import Problems, TaskLog, event_table
from capacity.measure.sources import SourceSettings, TimingSource
from capacity.measure.sources._redis import connect, stream_entries
from capacity.workerside.probe import STREAM


def read_stream(client: Any, problems: Problems, skip_bad: bool) -> list[dict[str, Any]]:
    """The probe's event lines, read in pages of 10,000 entries."""
    rows = []
    for entry_id, fields in stream_entries(client, STREAM):
        try:
            rows.append(json.loads(fields[b"line"]))
        except (KeyError, ValueError):
            if not skip_bad:
                raise InputError(f"probe stream {STREAM} entry {entry_id.decode()}: malformed") from None
            problems.skipped_lines += 1
    return rows


class ProbeStream(TimingSource):
    kind = "probe"
    label = "probe (Redis stream)"

    @classmethod
    def accepts(cls, source: str) -> bool:
        return is_redis_url(source)

    @classmethod
    def claims(cls, source: str) -> bool:
        """A Redis URL whose server holds the probe's stream (otherwise: the result backend)."""
        return is_redis_url(source) and bool(connect(source).exists(STREAM))

    def load(self, source: str, log: TaskLog, settings: SourceSettings) -> None:
        rows = read_stream(connect(source), log.problems, settings.skip_bad)
        log.store.event_tables.append(event_table(rows))
