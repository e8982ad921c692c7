"""The probe's directory (``CAPACITY_TIMINGS=DIR`` on the workers): one JSON Lines file per process."""

from __future__ import annotations

from pathlib import Path

from capacity.measure.inputs import TaskLog
from capacity.measure.sources import SourceSettings, TimingSource
from capacity.workerside.probe import ENV_VAR


class ProbeFiles(TimingSource):
    kind = "probe"
    label = "probe"

    @classmethod
    def accepts(cls, source: str) -> bool:
        return Path(source).exists()

    @classmethod
    def claims(cls, source: str) -> bool:
        return Path(source).is_dir()

    def load(self, source: str, log: TaskLog, settings: SourceSettings) -> None:
        path = Path(source)
        if path.is_file():
            log.store.event_files.append(path)
            return
        files = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".json") and p.stat().st_size)
        if not files:
            log.problems.warn(f"{path}: no timings files (is the probe enabled? {ENV_VAR} on the workers)")
        log.store.event_files.extend(files)
