"""What metrics reads before any source: the task logs, the problems noticed on the way, and the
line-by-line reader that names a bad line when DuckDB's fast path refuses a file.

The fallback lives here once: ``TaskLog.query`` runs a query on DuckDB's fast path and, when a
file is malformed, re-reads every file line by line (naming the bad line, or skipping it with
``--skip-bad``) and runs the query again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from capacity.errors import InputError
from capacity.load.tasklog import read_run_and_end_lines
from capacity.measure.store import Store, event_schema

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")


def timing_schema() -> pa.Schema:
    """The timing rows of a source that builds them row by row (result backend, BullMQ)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("task_id", pa.string()),
            ("received", pa.float64()),
            ("started", pa.float64()),
            ("finished", pa.float64()),
            ("record_start", pa.float64()),
            ("state", pa.string()),
            ("host", pa.string()),
        ]
    )


@dataclass
class Problems:
    """What the readers noticed: skipped lines, naive timestamps, and so on (never silent)."""

    skipped_lines: int = 0
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def scan(
    path: Path, accept: Callable[[dict[str, Any]], bool], skip_bad: bool, problems: Problems, what: str
) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of ``path`` that ``accept`` keeps; a bad line raises (file:line)
    unless ``skip_bad``, when it is counted."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
                if accept(value):
                    yield value
            except (ValueError, KeyError, TypeError) as exc:
                if not skip_bad:
                    raise InputError(
                        f"{path}:{number}: malformed {what} line ({exc}); --skip-bad skips such lines"
                    ) from None
                problems.skipped_lines += 1


def event_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Probe or events lines as an Arrow table of the event schema."""
    import pyarrow as pa

    schema = event_schema()
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)


def iso_times(values: pa.Array | pa.ChunkedArray, where: str, problems: Problems) -> pa.Array | pa.ChunkedArray:
    """ISO 8601 strings (any offset; naive taken as UTC with a warning) as Arrow timestamps, which
    the store turns into epoch seconds as DuckDB scans them; mixed forms as epoch seconds."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if values.null_count == len(values):
        return pa.nulls(len(values), pa.float64())
    try:
        return pc.cast(values, pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        try:
            stamps = pc.cast(values, pa.timestamp("us"))
            problems.warn(f"{where}: timestamps without a time zone were taken as UTC")
            return stamps
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _iso_to_epoch_slow(values, where, problems)


def _iso_to_epoch_slow(values: pa.Array | pa.ChunkedArray, where: str, problems: Problems) -> pa.Array:
    """Mixed forms (some with offsets, some naive, some with a space): one value at a time."""
    import pyarrow as pa

    out: list[float | None] = []
    for value in values.to_pylist():
        if value is None:
            out.append(None)
            continue
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise InputError(f"{where}: {value!r} is not an ISO 8601 timestamp") from None
        if moment.tzinfo is None:
            problems.warn(f"{where}: timestamps without a time zone were taken as UTC")
            moment = moment.replace(tzinfo=UTC)
        out.append(moment.timestamp())
    return pa.array(out, pa.float64())


def _read_task_log_slowly(path: Path, problems: Problems, skip_bad: bool) -> pa.Table:
    import pyarrow as pa

    naive = False

    def accept(line: dict[str, Any]) -> bool:
        nonlocal naive
        if line.get("type") in ("run", "end"):
            return False
        if not isinstance(line.get("task_id"), str) or not isinstance(line.get("sent_at"), str):
            raise KeyError("needs task_id and sent_at")
        moment = datetime.fromisoformat(line["sent_at"])  # ValueError: a bad line
        naive = naive or moment.tzinfo is None
        line["sent"] = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        return True

    rows = list(scan(path, accept, skip_bad, problems, "task log"))
    if naive:
        problems.warn(f"{path}: timestamps without a time zone were taken as UTC")
    return pa.table(
        {
            "task_id": pa.array([r["task_id"] for r in rows], pa.string()),
            "sent": pa.array([r["sent"] for r in rows], pa.float64()),
        }
    )


def _event_rows(path: Path, problems: Problems, skip_bad: bool) -> pa.Table:
    def accept(line: dict[str, Any]) -> bool:
        if not isinstance(line.get("task_id"), str) or not isinstance(line.get("event"), str):
            raise KeyError("needs task_id and event")
        return True

    return event_table(list(scan(path, accept, skip_bad, problems, "timings")))


@dataclass
class TaskLog:
    """One or more task logs, given to ``store`` (read when the figures are computed)."""

    store: Store
    runs: list[dict[str, Any]]
    ends: list[dict[str, Any]]
    paths: list[Path]
    problems: Problems
    skip_bad: bool = False

    def parse_slowly(self) -> None:
        """Re-read every file DuckDB was to read, line by line: a bad line raises with file:line
        (or, with skip_bad, is counted and skipped); the good lines go to the store as tables."""
        store = self.store
        store.log_tables += [_read_task_log_slowly(p, self.problems, self.skip_bad) for p in store.log_files]
        store.event_tables += [_event_rows(p, self.problems, self.skip_bad) for p in store.event_files]
        store.log_files, store.event_files = [], []

    def query(self, run: Callable[[Store], T], retry_if: Callable[[T], bool] = lambda _: False) -> T:
        """``run(store)`` on DuckDB's fast path; when DuckDB refuses a file (or ``retry_if`` says the
        answer saw bad lines), the files are re-read line by line and ``run`` is called again."""
        try:
            answer = run(self.store)
        except self.store.error:
            self.parse_slowly()
            return run(self.store)
        if retry_if(answer) and (self.store.log_files or self.store.event_files):
            self.parse_slowly()
            return run(self.store)
        return answer


def read_task_logs(
    paths: list[Path], problems: Problems, skip_bad: bool = False, store: Store | None = None
) -> TaskLog:
    """Several injectors' logs as one (seed 003 names, JSON Lines as written by ``capacity inject``)."""
    if not paths:
        raise InputError("give at least one --tasks-log")
    runs: list[dict[str, Any]] = []
    ends: list[dict[str, Any]] = []
    for path in paths:
        found_runs, found_ends, naive = read_run_and_end_lines(path)
        if naive:
            problems.warn(f"{path}: timestamps without a time zone were taken as UTC")
        runs += found_runs
        ends += found_ends
    _check_shards(runs, problems)
    store = store or Store()
    store.log_files.extend(paths)
    store.by_task = store.by_task or any("mix" in run for run in runs)  # capacity inject --mix
    return TaskLog(store, runs, ends, list(paths), problems, skip_bad)


def _check_shards(runs: list[dict[str, Any]], problems: Problems) -> None:
    """The shards of a sharded run (``inject --shard I/N``) should all be given: say which are not."""
    found: dict[str, tuple[int, set[int]]] = {}
    for run in runs:
        shard = run.get("shard")
        if isinstance(shard, list) and len(shard) == 2:
            total, seen = found.setdefault(str(run.get("run_id")), (int(shard[1]), set()))
            seen.add(int(shard[0]))
    for run_id, (total, seen) in found.items():
        missing = sorted(set(range(total)) - seen)
        if missing:
            problems.warn(
                f"run {run_id}: {len(seen)} of {total} shard logs given; missing shard "
                f"{', '.join(map(str, missing))}: the figures are for the shards given only"
            )


def sent_offsets(paths: list[Path]) -> Any:
    """Send times of the task logs as a sorted numpy array from 0 (what a replay replays)."""
    import numpy as np

    log = read_task_logs(paths, Problems())

    def sent_rows(store: Store) -> list[tuple[float]]:  # log_rows() changes once parse_slowly has run
        rows: list[tuple[float]] = store.con.execute(
            f"SELECT sent FROM ({store.log_rows()}) WHERE sent IS NOT NULL"
        ).fetchall()
        return rows

    try:
        rows = log.query(sent_rows)
    finally:
        log.store.close()
    sent = np.array([r[0] for r in rows], dtype=float)
    if not len(sent):
        raise InputError("the task logs hold no sent tasks to replay")
    return np.sort(sent - sent.min())
