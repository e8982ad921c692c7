"""Where metrics joins task logs and timings: an in-process DuckDB database.

DuckDB parses the JSON Lines in parallel, hashes and joins 10 million ids in well under a second
each, and hands columns to numpy without copying; the benchmark compares this with DuckDB used
directly and with a per-line loop. Files DuckDB refuses are re-read line by line (timings.py)
only to name the bad line, or to skip it with --skip-bad.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from capacity.errors import InputError

_TIMING_COLUMNS = (
    "task_id VARCHAR, received DOUBLE, started DOUBLE, finished DOUBLE, record_start DOUBLE, "
    "state VARCHAR, host VARCHAR"
)

# Probe lines (received, done) and Celery events (received, started, succeeded, failed, revoked)
# as timing rows.
_EVENT_SELECT = """
    SELECT task_id,
           CASE WHEN event = 'received' THEN t END,
           coalesce(started, CASE WHEN event = 'started' THEN t END),
           coalesce(finished, CASE WHEN event IN ('succeeded', 'failed', 'revoked') THEN t END),
           NULL,
           coalesce(state, CASE event WHEN 'succeeded' THEN 'SUCCESS' WHEN 'failed' THEN 'FAILURE'
                                      WHEN 'revoked' THEN 'REVOKED' END),
           host
    FROM {source}
"""
EVENT_COLUMNS = (
    "{'task_id': 'VARCHAR', 'event': 'VARCHAR', 't': 'DOUBLE', 'started': 'DOUBLE', "
    "'finished': 'DOUBLE', 'state': 'VARCHAR', 'host': 'VARCHAR'}"
)
_LOG_COLUMNS = "{'task_id': 'VARCHAR', 'sent_at': 'VARCHAR'}"


def _files(paths: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


class Store:
    """The ``log`` (task_id, sent) and ``timings`` tables of one metrics computation."""

    def __init__(self) -> None:
        import duckdb

        self._duckdb = duckdb
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET enable_progress_bar = false")  # it would print to stdout
        self.con.execute("CREATE TABLE log (task_id VARCHAR, sent DOUBLE, naive BOOLEAN)")
        self.con.execute(f"CREATE TABLE timings ({_TIMING_COLUMNS})")

    # --- task logs ---------------------------------------------------------------------------------

    def load_task_logs_fast(self, paths: Sequence[Path]) -> tuple[int, int] | None:
        """(tasks, naive timestamps) read by DuckDB, or None when a line needs the slow path."""
        try:
            self.con.execute(f"""
                INSERT INTO log
                SELECT task_id, epoch(TRY_CAST(sent_at AS TIMESTAMPTZ)),
                       NOT (sent_at LIKE '%+__:__' OR sent_at LIKE '%-__:__' OR sent_at LIKE '%Z')
                FROM read_json({_files(paths)}, format = 'newline_delimited', columns = {_LOG_COLUMNS})
                WHERE task_id IS NOT NULL""")
        except self._duckdb.Error:
            self.con.execute("DELETE FROM log")
            return None
        bad, naive, count = self._one(
            "SELECT count(*) FILTER (WHERE sent IS NULL), count(*) FILTER (WHERE naive), count(*) FROM log"
        )
        if bad:
            self.con.execute("DELETE FROM log")
            return None
        return int(count), int(naive)

    def add_log_rows(self, task_ids: list[str], sent: pa.Array) -> None:
        rows = pa.table({"task_id": pa.array(task_ids, pa.string()), "sent": sent})
        self.con.register("incoming", rows)
        self.con.execute("INSERT INTO log SELECT task_id, sent, FALSE FROM incoming")
        self.con.unregister("incoming")

    def task_ids(self) -> list[str]:
        return [row[0] for row in self.con.execute("SELECT DISTINCT task_id FROM log").fetchall()]

    # --- timings ------------------------------------------------------------------------------------

    def load_event_files_fast(self, paths: Sequence[Path]) -> bool:
        """Probe or events files straight into ``timings``; False when a line needs the slow path."""
        source = f"read_json({_files(paths)}, format = 'newline_delimited', columns = {EVENT_COLUMNS})"
        before = self._one("SELECT count(*) FROM timings")[0]
        try:
            self.con.execute(f"INSERT INTO timings {_EVENT_SELECT.format(source=source)}")
        except self._duckdb.Error:
            return False
        if self._one("SELECT count(*) FROM timings WHERE task_id IS NULL")[0]:
            # undo this load: rows from before carry ids, the new bad ones do not
            self.con.execute(f"DELETE FROM timings WHERE rowid >= {before}")
            return False
        return True

    def add_events(self, events: pa.Table) -> None:
        """Event lines (already parsed) into ``timings``."""
        self.con.register("incoming", events)
        self.con.execute(f"INSERT INTO timings {_EVENT_SELECT.format(source='incoming')}")
        self.con.unregister("incoming")

    def add_timings(self, table: pa.Table) -> None:
        """Rows already in timing form (result backend, records)."""
        self.con.register("incoming", table)
        self.con.execute(
            "INSERT INTO timings SELECT task_id, received, started, finished, record_start, state, host FROM incoming"
        )
        self.con.unregister("incoming")

    # --- the join -------------------------------------------------------------------------------------

    def join(self, with_ids: bool = False) -> tuple[dict[str, np.ndarray], int, int]:
        """One row per sent task, columns as numpy arrays; and (ids with timings but no log line,
        duplicate log lines). One query: DuckDB pipelines the two aggregations and the join."""
        ids = ", task_id, state" if with_ids else ""
        # One hash aggregation over log and timing rows together (cheaper than two and a join):
        # per id the first send and how many log lines sent it, the earliest receive and start,
        # the latest finish; a success anywhere counts (SUCCESS sorts above FAILURE, RETRY, REVOKED).
        columns: dict[str, Any] = self.con.execute(f"""
            WITH rows AS (
                SELECT task_id, sent, NULL::DOUBLE AS received, NULL::DOUBLE AS started, NULL::DOUBLE AS finished,
                       NULL::DOUBLE AS record_start, NULL::VARCHAR AS state FROM log
                UNION ALL
                SELECT task_id, NULL, received, started, finished, record_start, state FROM timings),
            per_id AS (
                SELECT task_id, min(sent) AS sent, count(sent) AS n, min(received) AS received,
                       min(started) AS started, max(finished) AS finished, min(record_start) AS record_start,
                       max(state) AS state
                FROM rows GROUP BY task_id)
            SELECT sent, n, received, started, finished, record_start,
                   coalesce(state = 'SUCCESS', FALSE) AS is_success, state IS NOT NULL AS has_state,
                   n = 0 AS unknown{ids}
            FROM per_id""").fetchnumpy()
        unknown = as_bool(columns["unknown"])
        count_unknown = int(unknown.sum())
        if count_unknown:
            columns = {k: v[~unknown] for k, v in columns.items()}
        duplicates = int((np.asarray(columns["n"], dtype=np.int64) - 1).sum())
        return columns, count_unknown, duplicates

    def _one(self, sql: str) -> tuple[Any, ...]:
        """The single row of ``sql`` (fetched to the end: DuckDB 2 keeps a half-read result open)."""
        rows = self.con.execute(sql).fetchall()
        return tuple(rows[0])

    def close(self) -> None:
        self.con.close()


def as_float(values: Any) -> np.ndarray:
    """A numpy float array with NaN for SQL NULL (DuckDB hands nullable columns as masked arrays)."""
    if isinstance(values, np.ma.MaskedArray):
        return np.asarray(np.ma.filled(values.astype(float), np.nan))
    return np.asarray(values, dtype=float)


def as_bool(values: Any) -> np.ndarray:
    if isinstance(values, np.ma.MaskedArray):
        return np.asarray(np.ma.filled(values, False), dtype=bool)
    return np.asarray(values, dtype=bool)


def require_rows(count: int, paths: Sequence[Path]) -> None:
    if count == 0:
        raise InputError(f"no task lines in {', '.join(str(p) for p in paths)}: nothing was sent")
