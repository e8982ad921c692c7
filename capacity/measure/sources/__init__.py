"""Timing sources: where the completion timings that metrics joins with the task logs come from.

One small interface (``TimingSource``: can it read this SOURCE, and load it into the store with
its problems reported), one module per source, one registry of kinds with a did-you-mean, as for
brokers. A SOURCE is detected from its shape or named with a prefix: ``probe:``, ``events:``,
``backend:``, ``records:``, ``bullmq:``.

| kind    | module          | what it reads                                                  |
|---------|-----------------|----------------------------------------------------------------|
| probe   | probe_files     | the probe's directory (or one of its files)                    |
| probe   | probe_stream    | the probe's Redis stream                                       |
| backend | result_backend  | Celery's Redis result backend (state and date_done per id)     |
| events  | celery_events   | a ``capacity collect`` events file                             |
| records | records         | application records: CSV, JSON Lines, Parquet, SQLite + query  |
| bullmq  | bullmq_jobs     | BullMQ's job hashes (and events stream) for a BullMQ run's log |
"""

from __future__ import annotations

import difflib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from capacity.errors import InputError
from capacity.measure.inputs import Problems, TaskLog


@dataclass(frozen=True)
class RecordColumns:
    """Which columns of an application's records hold the id, the start and the end (seed 003)."""

    id_col: str = "id"
    start_col: str = "uploaded_at"
    end_col: str = "updated_at"
    state_col: str | None = None


@dataclass(frozen=True)
class SourceSettings:
    """What some sources need beyond the SOURCE text."""

    columns: RecordColumns = field(default_factory=RecordColumns)
    query: str | None = None
    skip_bad: bool = False


class TimingSource(ABC):
    """One kind of timings input."""

    kind: str = ""
    #: what the metrics result says was used
    label: str = ""

    @classmethod
    @abstractmethod
    def accepts(cls, source: str) -> bool:
        """Whether this source can read SOURCE when its kind is given (a shape test, no I/O)."""

    @classmethod
    def claims(cls, source: str) -> bool:
        """Whether SOURCE, given with no kind, is this source's (may look inside it)."""
        return cls.accepts(source)

    @classmethod
    def claims_for(cls, source: str, log: TaskLog | None) -> bool:
        """``claims``, knowing the task logs the timings are for (a source can depend on them)."""
        return cls.claims(source)

    @abstractmethod
    def load(self, source: str, log: TaskLog, settings: SourceSettings) -> None:
        """Put SOURCE's timings into the log's store; what it notices goes to ``log.problems``."""


# In detection order: the first source that claims a SOURCE reads it. "module:Class", imported
# lazily so reading a probe directory never imports redis.
REGISTRY: tuple[str, ...] = (
    "capacity.measure.sources.bullmq_jobs:BullMQJobs",
    "capacity.measure.sources.probe_stream:ProbeStream",
    "capacity.measure.sources.result_backend:ResultBackend",
    "capacity.measure.sources.probe_files:ProbeFiles",
    "capacity.measure.sources.celery_events:CeleryEvents",
    "capacity.measure.sources.records:Records",
)
KINDS = ("probe", "events", "backend", "records", "bullmq")


def _classes() -> Iterator[type[TimingSource]]:
    """The sources in detection order, each imported only when the ones before it did not claim the
    SOURCE (records' module imports pyarrow: 0.15 s a probe run does not need)."""
    for entry in REGISTRY:
        module_name, _, class_name = entry.partition(":")
        yield getattr(importlib.import_module(module_name), class_name)


def split_kind(source: str) -> tuple[str, str]:
    """``kind:rest`` into (kind, rest); ("", source) when SOURCE has no kind prefix. A prefix that
    is close to a kind (``prob:DIR``) is refused with a did-you-mean rather than read as a path."""
    kind, sep, rest = source.partition(":")
    if not sep or not rest or rest.startswith("//"):
        return "", source
    if kind in KINDS:
        return kind, rest
    close = difflib.get_close_matches(kind, KINDS, n=1, cutoff=0.75)
    if close and not Path(source).exists():
        raise InputError(f"unknown timings source kind {kind!r} in {source!r}; did you mean {close[0]}:?")
    return "", source


def find(source: str, log: TaskLog | None = None) -> tuple[type[TimingSource], str]:
    """The source class for SOURCE (named by its prefix, or detected) and SOURCE without prefix."""
    kind, rest = split_kind(source)
    for cls in _classes():
        if kind and cls.kind == kind and cls.accepts(rest):
            return cls, rest
        if not kind and cls.claims_for(rest, log):
            return cls, rest
    if kind:
        raise InputError(f"timings source {rest} does not exist or is not a {kind} source")
    if "://" not in source:
        # a folder the probe never created: no worker ran a task with the probe writing there (#22)
        raise InputError(
            f"timings source {source} does not exist: the probe creates it when a worker that loaded it "
            "(--include capacity.probe) with CAPACITY_TIMINGS set to that folder runs a task; check both"
        )
    raise InputError(f"timings source {source} does not exist")


def load_source(source: str, log: TaskLog, settings: SourceSettings) -> str:
    """Load one ``--timings`` SOURCE into the log's store; the label of the source used."""
    cls, rest = find(source, log)
    cls().load(rest, log, settings)
    return cls.label


__all__ = ["Problems", "RecordColumns", "SourceSettings", "TaskLog", "TimingSource", "find", "load_source"]
