"""Reading what metrics join: task logs (from inject) and completion timings (probe, Celery events,
result backend, application records), into Arrow tables of epoch seconds.

Parsing is pyarrow's (multi-threaded, C++); a file it refuses is re-read line by line only to
name the bad line (or, with ``skip_bad``, to count and skip it).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from capacity.errors import BrokerError, InputError
from capacity.measure.store import EVENT_SCHEMA, Store

BLOCK = 1 << 26
PROBE_STREAM = "capacity:timings"

TIMING_SCHEMA = pa.schema(
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


@dataclass
class TaskLog:
    """One or more task logs, given to ``store`` (read when the figures are computed)."""

    store: Store
    runs: list[dict[str, Any]]
    ends: list[dict[str, Any]]
    paths: list[Path]
    skip_bad: bool = False


# --- line-by-line fallback -----------------------------------------------------------------------


def _scan(
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


def _iso_to_epoch(values: pa.Array, where: str, problems: Problems) -> pa.Array:
    """ISO 8601 strings (any offset; naive taken as UTC with a warning) to epoch seconds."""
    if values.null_count == len(values):
        return pa.nulls(len(values), pa.float64())
    try:
        stamps = pc.cast(values, pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        try:
            stamps = pc.cast(values, pa.timestamp("us"))
            problems.warn(f"{where}: timestamps without a time zone were taken as UTC")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _iso_to_epoch_slow(values, where, problems)
    return pc.divide(pc.cast(pc.cast(stamps, pa.timestamp("us")), pa.int64()), 1_000_000.0)


def _iso_to_epoch_slow(values: pa.Array, where: str, problems: Problems) -> pa.Array:
    """Mixed forms (some with offsets, some naive, some with a space): one value at a time."""
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


# --- task logs -------------------------------------------------------------------------------------


def _head_and_last_lines(path: Path) -> tuple[list[str], str]:
    """The first two lines (the run line and the first task line) and the last line."""
    with path.open("rb") as handle:
        head = [handle.readline().decode("utf-8", "replace") for _ in range(2)]
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        tail = handle.read().decode("utf-8", "replace").rstrip("\n").rsplit("\n", 1)[-1]
    return head, tail


def _run_and_end_lines(path: Path, problems: Problems) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The run and end lines of a log; warns when its first task line has a naive timestamp
    (DuckDB reads such times as UTC; checking every line would cost a string test per task)."""
    if not path.is_file():
        raise InputError(f"task log {path} does not exist")
    if path.stat().st_size == 0:
        raise InputError(f"task log {path} is empty")
    (first, second), last = _head_and_last_lines(path)
    runs: list[dict[str, Any]] = []
    ends: list[dict[str, Any]] = []
    for text, kind, found in ((first, "run", runs), (last, "end", ends)):
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("type") == kind:
            found.append(line)
    for text in (first, second):
        try:
            line = json.loads(text)
            naive = datetime.fromisoformat(line["sent_at"]).tzinfo is None
        except (ValueError, KeyError, TypeError):
            continue
        if naive:
            problems.warn(f"{path}: timestamps without a time zone were taken as UTC")
    return runs, ends


def _read_task_log_slowly(path: Path, problems: Problems, skip_bad: bool) -> pa.Table:
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

    rows = list(_scan(path, accept, skip_bad, problems, "task log"))
    if naive:
        problems.warn(f"{path}: timestamps without a time zone were taken as UTC")
    return pa.table(
        {
            "task_id": pa.array([r["task_id"] for r in rows], pa.string()),
            "sent": pa.array([r["sent"] for r in rows], pa.float64()),
        }
    )


def read_task_logs(
    paths: list[Path], problems: Problems, skip_bad: bool = False, store: Store | None = None
) -> TaskLog:
    """Several injectors' logs as one (seed 003 names, JSON Lines as written by ``capacity inject``)."""
    if not paths:
        raise InputError("give at least one --tasks-log")
    runs: list[dict[str, Any]] = []
    ends: list[dict[str, Any]] = []
    for path in paths:
        found_runs, found_ends = _run_and_end_lines(path, problems)
        runs += found_runs
        ends += found_ends
    store = store or Store()
    store.log_files.extend(paths)
    return TaskLog(store, runs, ends, list(paths), skip_bad)


def parse_slowly(log: TaskLog, problems: Problems) -> None:
    """Re-read every file DuckDB was to read, line by line: a bad line raises with file:line
    (or, with skip_bad, is counted and skipped); the good lines go to the store as tables."""
    store = log.store
    store.log_tables += [_read_task_log_slowly(p, problems, log.skip_bad) for p in store.log_files]
    store.event_tables += [_event_rows(p, problems, log.skip_bad) for p in store.event_files]
    store.log_files, store.event_files = [], []


# --- timing sources --------------------------------------------------------------------------------


def _event_rows(path: Path, problems: Problems, skip_bad: bool) -> pa.Table:
    def accept(line: dict[str, Any]) -> bool:
        if not isinstance(line.get("task_id"), str) or not isinstance(line.get("event"), str):
            raise KeyError("needs task_id and event")
        return True

    rows = list(_scan(path, accept, skip_bad, problems, "timings"))
    return pa.Table.from_pylist([{n: r.get(n) for n in EVENT_SCHEMA.names} for r in rows], schema=EVENT_SCHEMA)


def read_event_files(paths: list[Path], store: Store) -> None:
    """Probe files, or ``capacity collect`` events files (the same line format)."""
    store.event_files.extend(paths)


def read_probe_directory(directory: Path, store: Store, problems: Problems) -> None:
    files = sorted(p for p in directory.iterdir() if p.suffix in (".jsonl", ".json") and p.stat().st_size)
    if not files:
        problems.warn(f"{directory}: no timings files (is the probe enabled? CAPACITY_TIMINGS on the workers)")
    read_event_files(files, store)


def _redis(url: str) -> Any:
    import redis

    from capacity.brokers.redis import redis_py_url
    from capacity.secrets import redact_url

    client = redis.Redis.from_url(redis_py_url(url), socket_timeout=10, socket_connect_timeout=5)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise BrokerError(f"cannot reach {redact_url(url)}: {exc}") from None
    return client


def read_probe_stream(client: Any, problems: Problems, skip_bad: bool) -> pa.Table:
    """Event lines from the probe's Redis stream."""
    rows = []
    last = "-"
    while True:
        batch = client.xrange(PROBE_STREAM, min=last, max="+", count=10_000)
        if last != "-":
            batch = batch[1:]
        if not batch:
            break
        for entry_id, fields in batch:
            try:
                rows.append(json.loads(fields[b"line"]))
            except (KeyError, ValueError):
                if not skip_bad:
                    raise InputError(f"probe stream {PROBE_STREAM} entry {entry_id.decode()}: malformed") from None
                problems.skipped_lines += 1
        last = batch[-1][0].decode()
    return pa.Table.from_pylist([{n: r.get(n) for n in EVENT_SCHEMA.names} for r in rows], schema=EVENT_SCHEMA)


def read_result_backend(client: Any, task_ids: list[str], problems: Problems) -> pa.Table:
    """Celery's Redis result backend: state and date_done per id (it stores no start time)."""
    problems.warn("result backend: Celery stores no start time there, so service time and wait are missing")
    ids = task_ids
    found_ids: list[str] = []
    finished: list[float | None] = []
    states: list[str | None] = []
    for i in range(0, len(ids), 1000):
        chunk = ids[i : i + 1000]
        for task_id, raw in zip(chunk, client.mget([f"celery-task-meta-{t}" for t in chunk]), strict=True):
            if raw is None:
                continue
            meta = json.loads(raw)
            done = meta.get("date_done")
            if done:
                moment = datetime.fromisoformat(str(done))
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                finished.append(moment.timestamp())
            else:
                finished.append(None)
            found_ids.append(task_id)
            states.append(meta.get("status"))
    n = len(found_ids)
    return pa.table(
        {
            "task_id": pa.array(found_ids, pa.string()),
            "received": pa.nulls(n, pa.float64()),
            "started": pa.nulls(n, pa.float64()),
            "finished": pa.array(finished, pa.float64()),
            "record_start": pa.nulls(n, pa.float64()),
            "state": pa.array(states, pa.string()),
            "host": pa.nulls(n, pa.string()),
        },
        schema=TIMING_SCHEMA,
    )


@dataclass(frozen=True)
class RecordColumns:
    id_col: str = "id"
    start_col: str = "uploaded_at"
    end_col: str = "updated_at"
    state_col: str | None = None


def _records_table(table: pa.Table, where: str, columns: RecordColumns, problems: Problems) -> pa.Table:
    missing = [c for c in (columns.id_col, columns.start_col, columns.end_col) if c not in table.column_names]
    if missing:
        raise InputError(
            f"{where}: no column {', '.join(missing)} (columns: {', '.join(table.column_names)}); "
            "use --id-col, --start-col, --end-col"
        )

    def epoch(name: str) -> pa.Array:
        column = table[name].combine_chunks()
        if pa.types.is_timestamp(column.type):
            if column.type.tz is None:
                problems.warn(f"{where}: timestamps without a time zone were taken as UTC")
            return pc.divide(pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64()), 1_000_000.0)
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            return pc.cast(column, pa.float64())
        return _iso_to_epoch(pc.cast(column, pa.string()), where, problems)

    n = table.num_rows
    return pa.table(
        {
            "task_id": pc.cast(table[columns.id_col], pa.string()),
            "received": pa.nulls(n, pa.float64()),
            "started": pa.nulls(n, pa.float64()),
            "finished": epoch(columns.end_col),
            "record_start": epoch(columns.start_col),
            "state": pc.cast(table[columns.state_col], pa.string()) if columns.state_col else pa.nulls(n, pa.string()),
            "host": pa.nulls(n, pa.string()),
        },
        schema=TIMING_SCHEMA,
    )


def read_records(
    source: str, columns: RecordColumns, query: str | None, problems: Problems, skip_bad: bool
) -> pa.Table:
    """Records exported from the application (seed 003's method): CSV, JSON Lines, Parquet, or
    an SQLite database with a query."""
    if source.startswith("sqlite:///"):
        if not query:
            raise InputError(f"{source}: a database source needs --query")
        db_path = source[len("sqlite:///") :]
        if not Path(db_path).is_file():
            raise InputError(f"{source}: no such database file")
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as connection:
            try:
                cursor = connection.execute(query)
            except sqlite3.Error as exc:
                raise InputError(f"{source}: query failed: {exc}") from None
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        table = pa.table({name: pa.array([row[i] for row in rows]) for i, name in enumerate(names)})
        return _records_table(table, source, columns, problems)
    path = Path(source)
    if not path.is_file():
        raise InputError(f"timings source {source} does not exist")
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif path.suffix == ".csv":
            import pyarrow.csv as pa_csv

            table = pa_csv.read_csv(path)
        else:
            try:
                table = pa_json.read_json(path)
            except pa.ArrowInvalid:
                rows = list(_scan(Path(path), lambda line: True, skip_bad, problems, "record"))
                table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{source}: cannot read records: {' '.join(str(exc).split())}") from None
    return _records_table(table, str(path), columns, problems)


def load_source(
    source: str, log: TaskLog, columns: RecordColumns, query: str | None, problems: Problems, skip_bad: bool = False
) -> str:
    """Load one ``--timings`` SOURCE into the log's store; its kind, detected or given as a prefix
    (probe:, events:, backend:, records:)."""
    store = log.store
    kind, _, rest = source.partition(":")
    if kind in ("probe", "events", "backend", "records") and rest:
        source = rest
    else:
        kind = ""
    if source.startswith(("redis://", "rediss://", "redis+socket://", "unix://")):
        client = _redis(source)
        if kind == "backend" or (not kind and not client.exists(PROBE_STREAM)):
            try:
                task_ids = store.task_ids()
            except store.error:
                parse_slowly(log, problems)
                task_ids = store.task_ids()
            store.timing_tables.append(read_result_backend(client, task_ids, problems))
            return "result backend"
        store.event_tables.append(read_probe_stream(client, problems, skip_bad))
        return "probe (Redis stream)"
    if source.startswith("sqlite:///") or kind == "records":
        store.timing_tables.append(read_records(source, columns, query, problems, skip_bad))
        return "records"
    path = Path(source)
    if path.is_dir():
        read_probe_directory(path, store, problems)
        return "probe"
    if not path.is_file():
        raise InputError(f"timings source {source} does not exist")
    if kind in ("probe", "events"):
        read_event_files([path], store)
        return kind
    if path.suffix not in (".csv", ".parquet"):
        with path.open("rb") as handle:
            first = handle.readline()
        try:
            head = json.loads(first)
        except ValueError:
            head = {}
        if isinstance(head, dict) and "event" in head and "task_id" in head:
            read_event_files([path], store)
            return "events"
    store.timing_tables.append(read_records(source, columns, query, problems, skip_bad))
    return "records"


def sent_offsets(paths: list[Path]) -> Any:
    """Send times of the task logs as a sorted numpy array from 0 (what a replay replays)."""
    import numpy as np

    problems = Problems()
    log = read_task_logs(paths, problems)
    store = log.store

    def sent_rows() -> list[tuple[float]]:  # log_rows() changes once parse_slowly has run
        result: list[tuple[float]] = store.con.execute(
            f"SELECT sent FROM ({store.log_rows()}) WHERE sent IS NOT NULL"
        ).fetchall()
        return result

    try:
        try:
            rows = sent_rows()
        except store.error:  # a malformed line: the slow reader names it
            parse_slowly(log, problems)
            rows = sent_rows()
    finally:
        store.close()
    sent = np.array([r[0] for r in rows], dtype=float)
    if not len(sent):
        raise InputError("the task logs hold no sent tasks to replay")
    return np.sort(sent - sent.min())
