"""Where metrics joins task logs and timings: one DuckDB query over the files themselves.

DuckDB parses the JSON Lines in parallel and streams them into a single hash aggregation per task
id (first send, earliest receive and start, latest finish), then into the figures (counts,
means, exact quantiles, the per-minute histogram): nothing is materialised but that aggregation,
which spills to disk beyond ``memory_limit``. The benchmark compares this with DuckDB used
directly and with a per-line loop. Files DuckDB refuses are re-read line by line (timings.py)
only to name the bad line, or to skip it with --skip-bad.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from capacity import files
from capacity.errors import WriteFailed

# A probe or events line, as an Arrow schema (lines parsed in Python) and as read_json's columns.
EVENT_SCHEMA = pa.schema(
    [
        ("task_id", pa.string()),
        ("event", pa.string()),
        ("t", pa.float64()),
        ("started", pa.float64()),
        ("finished", pa.float64()),
        ("state", pa.string()),
        ("host", pa.string()),
        ("error", pa.string()),  # a failed task's exception ("TypeError: ..."), probe and events
    ]
)
_SQL_TYPES = {pa.string(): "VARCHAR", pa.float64(): "DOUBLE"}
EVENT_COLUMNS = "{" + ", ".join(f"'{f.name}': '{_SQL_TYPES[f.type]}'" for f in EVENT_SCHEMA) + "}"
_LOG_COLUMNS = "{'type': 'VARCHAR', 'task_id': 'VARCHAR', 'sent_at': 'VARCHAR'}"
_QUANTILES = "[0.5, 0.9, 0.95, 0.99]"

# Probe lines (received, done) and Celery events (received, started, succeeded, failed, revoked)
# as timing rows.
_EVENT_SELECT = """
    SELECT task_id, CASE WHEN event = 'received' THEN t END AS received,
           coalesce(started, CASE WHEN event = 'started' THEN t END) AS started,
           coalesce(finished, CASE WHEN event IN ('succeeded', 'failed', 'revoked') THEN t END) AS finished,
           NULL::DOUBLE AS record_start,
           coalesce(state, CASE event WHEN 'succeeded' THEN 'SUCCESS' WHEN 'failed' THEN 'FAILURE'
                                      WHEN 'revoked' THEN 'REVOKED' END) AS state
    FROM {source}"""


def _files(paths: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


@dataclass
class Store:
    """The inputs of one metrics computation: files DuckDB reads itself, and tables already parsed."""

    log_files: list[Path] = field(default_factory=list)
    log_tables: list[pa.Table] = field(default_factory=list)  # task_id, sent
    event_files: list[Path] = field(default_factory=list)
    event_tables: list[pa.Table] = field(default_factory=list)  # probe/event line columns
    timing_tables: list[pa.Table] = field(default_factory=list)  # task_id, received, ..., state
    # DuckDB spills its hash aggregation to disk beyond this; $CAPACITY_MEMORY_LIMIT overrides.
    memory_limit: str = field(default_factory=lambda: os.environ.get("CAPACITY_MEMORY_LIMIT", "3.5GB"))

    def __post_init__(self) -> None:
        import duckdb

        self._window: tuple[str, str] | None = None  # of the logs as they were under _log_key
        self._log_key: tuple[Any, ...] | None = None
        self._timings_unique = False
        self._unique_key: tuple[Any, ...] | None = None
        self.error: type[Exception] = duckdb.Error
        self._spill = tempfile.TemporaryDirectory(prefix="capacity-duckdb-")
        self.con = duckdb.connect()
        for setting in (
            "TimeZone = 'UTC'",
            "enable_progress_bar = false",  # it would print to stdout
            f"memory_limit = '{self.memory_limit}'",
            f"temp_directory = '{self._spill.name}'",
            "preserve_insertion_order = false",
        ):
            self.con.execute(f"SET {setting}")

    def _register(self, prefix: str, tables: list[pa.Table]) -> list[str]:
        names = []
        for index, table in enumerate(tables):
            name = f"{prefix}_{index}"
            self.con.register(name, table)
            names.append(name)
        return names

    def log_rows(self) -> str:
        """SQL for the task lines of every log: task_id, sent (epoch s), bad. Timestamps without an
        offset are read as UTC (the session's zone); read_task_logs warns about them."""
        parts = []
        if self.log_files:
            parts.append(f"""
                SELECT task_id, epoch(TRY_CAST(sent_at AS TIMESTAMPTZ)) AS sent,
                       task_id IS NULL OR TRY_CAST(sent_at AS TIMESTAMPTZ) IS NULL AS bad,
                       NOT (sent_at LIKE '%+__:__' OR sent_at LIKE '%-__:__' OR sent_at LIKE '%Z') AS naive
                FROM read_json({_files(self.log_files)}, format = 'newline_delimited', columns = {_LOG_COLUMNS})
                WHERE type IS NULL""")
        parts += [
            f"SELECT task_id, sent, FALSE AS bad FROM {name}" for name in self._register("log_table", self.log_tables)
        ]
        return " UNION ALL ".join(parts)

    def _timing_rows(self) -> str:
        parts = []
        if self.event_files:
            source = f"read_json({_files(self.event_files)}, format = 'newline_delimited', columns = {EVENT_COLUMNS})"
            parts.append(_EVENT_SELECT.format(source=source))
        parts += [_EVENT_SELECT.format(source=name) for name in self._register("event_table", self.event_tables)]
        parts += [
            f"SELECT task_id, received, started, finished, record_start, state FROM {name}"
            for name in self._register("timing_table", self.timing_tables)
        ]
        if not parts:
            parts.append(
                "SELECT NULL::VARCHAR AS task_id, NULL::DOUBLE AS received, NULL::DOUBLE AS started, "
                "NULL::DOUBLE AS finished, NULL::DOUBLE AS record_start, NULL::VARCHAR AS state WHERE FALSE"
            )
        return " UNION ALL ".join(parts)

    def _bounds(self) -> tuple[str, str]:
        """The window a timing must fall in to be of this run: [first send - 1 h, min(last send +
        30 days, now + 1 h)], as SQL literals (NULL without sends). Computed once, apart: a
        window taken from the per-task rows inside the per-task query made DuckDB build those
        rows twice (5,000,000 tasks: 2.9 s instead of 1.3 s)."""
        key = (tuple(self.log_files), len(self.log_tables))
        if self._log_key != key:  # the line-by-line reader has run: read the window again
            self._window, self._log_key = None, key
        rows = self.log_rows()
        if self._window is None:
            lo, hi = self.con.execute(
                f"SELECT min(sent) - 3600, least(max(sent) + 30 * 86400, epoch(now()) + 3600) FROM ({rows})"
            ).fetchall()[0]
            self._window = tuple("NULL" if v is None else repr(float(v)) for v in (lo, hi))  # type: ignore[assignment]
        assert self._window is not None
        return self._window

    def _timings_per_task(self) -> str:
        """The CTE ``g``: one row per task id of the timing rows. Grouped when an id can appear
        twice (retries, several sources); when the ids are unique (a records table's primary key)
        the rows are already that, and the grouping (5,000,000 records: 2 s of the 3 s query) is
        skipped: the check costs a tenth of it."""
        if self._timings_unique is None:
            self._timings_unique = bool(
                self.con.execute(f"SELECT count(*) = count(DISTINCT task_id) FROM ({self._timing_rows()})").fetchall()[
                    0
                ][0]
            )
        if self._timings_unique:
            return """
            g AS (
                SELECT task_id, received, started, finished, record_start, state,
                       CASE WHEN finished IS NOT NULL AND (state IS NULL OR state = 'SUCCESS') THEN 1 ELSE 0 END
                           AS successes,
                       least(received, started, finished, record_start) AS earliest,
                       greatest(received, started, finished, record_start) AS latest
                FROM timingrows)"""
        return """
            -- a success anywhere counts (SUCCESS sorts above FAILURE, RETRY, REVOKED)
            g AS (
                SELECT task_id, min(received) AS received, min(started) AS started, max(finished) AS finished,
                       min(record_start) AS record_start, max(state) AS state,
                       count(finished) FILTER (WHERE state IS NULL OR state = 'SUCCESS') AS successes,
                       -- the earliest and latest instant of any timing of the task, for the window check
                       least(min(received), min(started), min(finished), min(record_start)) AS earliest,
                       greatest(max(received), max(started), max(finished), max(record_start)) AS latest
                FROM timingrows GROUP BY task_id)"""

    def _per_task(self) -> str:
        """One row per task id across every log and timing row, with its durations."""
        lo, hi = self._bounds()
        return f"""
            WITH logrows AS ({self.log_rows()}),
            timingrows AS ({self._timing_rows()}),
            l AS (
                SELECT task_id, min(sent) AS sent, count(sent) AS n, count(*) FILTER (WHERE bad) AS bad
                FROM logrows GROUP BY task_id),
            {self._timings_per_task()},
            -- a timing outside [first send - 1 h, min(last send + 30 days, now + 1 h)] is not of
            -- this run (a worker clock in 2036, a year 9999): reported, not joined, and it does not
            -- stretch the timeline
            bounds AS (SELECT {lo}::DOUBLE AS lo, {hi}::DOUBLE AS hi),
            per_id AS (
                SELECT coalesce(l.task_id, g.task_id) AS task_id, l.sent, coalesce(l.n, 0) AS n,
                       coalesce(l.bad, 0) AS bad,
                       g.task_id IS NULL AND l.task_id IS NULL AS timing_without_id,
                       coalesce(g.earliest < bounds.lo OR g.latest > bounds.hi
                                OR isnan(g.earliest) OR isnan(g.latest), FALSE) AS implausible,
                       coalesce(g.successes, 0) AS successes,
                       g.received, g.started, g.finished, g.record_start, g.state
                FROM l FULL OUTER JOIN g ON l.task_id = g.task_id, bounds),
            checked AS (
                SELECT * REPLACE (
                    CASE WHEN implausible THEN NULL ELSE received END AS received,
                    CASE WHEN implausible THEN NULL ELSE started END AS started,
                    CASE WHEN implausible THEN NULL ELSE finished END AS finished,
                    CASE WHEN implausible THEN NULL ELSE record_start END AS record_start)
                FROM per_id)
            SELECT *,
                   n > 0 AND finished IS NOT NULL AND (state IS NULL OR state = 'SUCCESS') AS ok,
                   n > 0 AND finished IS NOT NULL AND state IS NOT NULL AND state <> 'SUCCESS' AS failed,
                   -- durations are NULL where they do not apply; aggregates skip NULLs
                   CASE WHEN n > 0 AND finished IS NOT NULL AND (state IS NULL OR state = 'SUCCESS')
                        THEN finished - started END AS s,
                   started - sent AS w,
                   CASE WHEN n > 0 THEN started - received END AS wr,
                   CASE WHEN n > 0 AND finished IS NOT NULL AND (state IS NULL OR state = 'SUCCESS')
                        THEN finished - sent END AS r,
                   CASE WHEN n > 0 AND finished IS NOT NULL AND (state IS NULL OR state = 'SUCCESS')
                        THEN finished - record_start END AS ss
            FROM checked"""

    def figures(self) -> dict[str, Any]:
        """Every aggregate metrics needs, in one pass; raises ``self.error`` on unreadable JSON."""

        def stats(column: str) -> str:
            return (
                f"avg({column}) AS {column}_mean, quantile_cont({column}, {_QUANTILES}) AS {column}_q, "
                f"max({column}) AS {column}_max"
            )

        # records are the only source of a record start: without them seed S is simply absent
        record_stats = stats("ss") if self.timing_tables else "NULL AS ss_mean, NULL AS ss_q, NULL AS ss_max"
        query = f"""
            SELECT count(*) FILTER (WHERE n > 0) AS sent,
                   count(*) FILTER (WHERE ok) AS completed,
                   count(*) FILTER (WHERE failed) AS failed,
                   count(*) FILTER (WHERE n = 0 AND task_id IS NOT NULL AND bad = 0) AS unknown,
                   coalesce(sum(n - 1) FILTER (WHERE n > 0), 0) AS duplicates,
                   coalesce(sum(bad), 0) AS bad_log_lines,
                   count(*) FILTER (WHERE implausible) AS implausible,
                   list(task_id ORDER BY task_id) FILTER (WHERE implausible)[1:5] AS implausible_ids,
                   coalesce(sum(successes - 1) FILTER (WHERE n > 0 AND successes > 1), 0) AS duplicate_completions,
                   count(*) FILTER (WHERE n > 0 AND successes > 1) AS tasks_completed_twice,
                   coalesce(bool_or(timing_without_id), FALSE) AS timing_without_id,
                   min(sent) FILTER (WHERE n > 0) AS first_sent,
                   max(sent) FILTER (WHERE n > 0) AS last_sent,
                   max(finished) FILTER (WHERE ok) AS last_finished,
                   approx_quantile(finished, [0.1, 0.9]) FILTER (WHERE ok) AS finished_q,
                   histogram(floor(finished / 60)::BIGINT) FILTER (WHERE ok) AS per_minute,
                   count(*) FILTER (WHERE n > 0 AND (w < 0 OR r < 0)) AS skewed,
                   min(least(w, r)) FILTER (WHERE n > 0 AND (w < 0 OR r < 0)) AS most_skewed,
                   {stats("s")}, {stats("w")}, {stats("wr")}, {stats("r")}, {record_stats}
            FROM ({self._per_task()})"""
        cursor = self.con.execute(query)
        names = [d[0] for d in cursor.description]
        row = cursor.fetchall()[0]
        return dict(zip(names, row, strict=True))

    def failures(self, limit: int = 3) -> list[tuple[str, int]]:
        """The commonest exception texts of failed tasks (probe lines and Celery events), with counts."""
        parts = []
        if self.event_files:
            source = f"read_json({_files(self.event_files)}, format = 'newline_delimited', columns = {EVENT_COLUMNS})"
            parts.append(f"SELECT error FROM {source}")
        parts += [f"SELECT error FROM {name}" for name in self._register("failure_table", self.event_tables)]
        if not parts:
            return []
        rows = self.con.execute(f"""
            SELECT error, count(*) AS n FROM ({" UNION ALL ".join(parts)}) WHERE error IS NOT NULL
            GROUP BY error ORDER BY n DESC, error LIMIT {int(limit)}""").fetchall()
        return [(str(error), int(n)) for error, n in rows]

    def task_ids(self) -> list[str]:
        rows = self.con.execute(f"SELECT DISTINCT task_id FROM ({self.log_rows()}) WHERE task_id IS NOT NULL")
        return [r[0] for r in rows.fetchall()]

    def write_per_task(self, path: Path) -> None:
        """One CSV row per sent task, written by DuckDB (to a private name, then renamed)."""
        with files.staged(path) as staged:
            target = str(staged).replace("'", "''")
            try:
                self.con.execute(f"""
                    COPY (SELECT task_id, sent, received, started, finished, state, s AS service_s,
                                 w AS wait_s, r AS response_s
                          FROM ({self._per_task()}) WHERE n > 0 ORDER BY sent, task_id)
                    TO '{target}' (HEADER, DELIMITER ',')""")
            except Exception as exc:  # duckdb.IOException: a full disk, no permission
                if type(exc).__name__ != "IOException":
                    raise
                raise WriteFailed(f"cannot write {path}: {' '.join(str(exc).split())[:200]}") from None

    def close(self) -> None:
        self.con.close()
        self._spill.cleanup()
