"""Where metrics joins task logs and timings: DuckDB queries over the files themselves.

DuckDB parses the JSON Lines in parallel and streams them into hash aggregations per task id
(first send; earliest receive and start, latest finish), joins the two, then computes the
figures (counts, means, exact quantiles, the per-minute histogram): nothing is materialised but
those aggregations, which spill to disk beyond ``memory_limit``. Timing tables with one row per
task (records, result backends) skip their grouping and the separate read of the plausibility
window: one pass, checked afterwards (``Store.figures``). The benchmarks compare this with DuckDB
used directly and with a per-line loop. Files DuckDB refuses are re-read line by line
(inputs.py) only to name the bad line, or to skip it with --skip-bad."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb  # the measure extra: imported with the module, so a command without it says so first

from capacity import files
from capacity.errors import WriteFailed

if TYPE_CHECKING:
    import pyarrow as pa

# A probe or events line's columns and their SQL types: read_json's columns, and an Arrow schema
# (``event_schema``) for lines parsed in Python. pyarrow is imported where a table is at hand:
# DuckDB reads the files of a probe run itself, and pyarrow (with numpy) cost 0.15 s to import.
EVENT_FIELDS = (
    ("task_id", "VARCHAR"),
    ("event", "VARCHAR"),
    ("t", "DOUBLE"),
    ("started", "DOUBLE"),
    ("finished", "DOUBLE"),
    ("state", "VARCHAR"),
    ("host", "VARCHAR"),
    ("error", "VARCHAR"),  # a failed task's exception ("TypeError: ..."), probe and events
)
EVENT_COLUMNS = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in EVENT_FIELDS) + "}"


def event_schema() -> pa.Schema:
    """``EVENT_FIELDS`` as an Arrow schema."""
    import pyarrow as pa

    types = {"VARCHAR": pa.string(), "DOUBLE": pa.float64()}
    return pa.schema([(name, types[kind]) for name, kind in EVENT_FIELDS])


_LOG_COLUMNS = "{'type': 'VARCHAR', 'task_id': 'VARCHAR', 'sent_at': 'VARCHAR'}"
_LOG_COLUMNS_TASK = "{'type': 'VARCHAR', 'task_id': 'VARCHAR', 'sent_at': 'VARCHAR', 'task': 'VARCHAR'}"
_QUANTILES = (0.5, 0.9, 0.95, 0.99)  # the public percentiles (metrics.PERCENTILES)
_WITH_MINIMUM = ("w", "r")  # the durations whose minimum is the clock-skew check's (W < 0, R < 0)

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


def _window(first_sent: Any, last_sent: Any, now: Any) -> tuple[float, float] | None:
    """The window a timing must fall in to be of this run: [first send - 1 h, min(last send +
    30 days, now + 1 h)] (epoch seconds); None without sends."""
    if first_sent is None:
        return None
    return float(first_sent) - 3600, min(float(last_sent) + 30 * 86400, float(now) + 3600)


def _literals(window: tuple[float, float] | None) -> tuple[str, str]:
    return ("NULL", "NULL") if window is None else (repr(window[0]), repr(window[1]))


def _window_if_plausible(first_sent: Any, last_sent: Any, checks: dict[str, Any]) -> tuple[str, str] | None:
    """The window (``_window``) as SQL literals, when every timing (earliest ``check_earliest``,
    latest ``check_latest``, none NaN) is inside it; None when one is not (the figures must then
    be computed against the window). Without sends nothing is implausible."""
    if checks["check_nan"]:
        return None
    window = _window(first_sent, last_sent, checks["check_now"])
    earliest, latest = checks["check_earliest"], checks["check_latest"]
    if window is not None and (
        (earliest is not None and earliest < window[0]) or (latest is not None and latest > window[1])
    ):
        return None
    return _literals(window)


def _derived(found: dict[str, Any], checks: bool) -> dict[str, Any]:
    """The figures ``Store._figures`` reads off others: the duplicates from the log lines, each
    duration's maximum (and W's and R's minimum) from its quantiles, the last finish from the
    finishes' quantiles, the largest clock skew from those minimums, a NaN from the latest."""
    found["duplicates"] = int(found.pop("lines")) - int(found["sent"])
    lowest = []
    for column in ("s", "w", "wr", "r", "ss"):
        points = found[f"{column}_q"]  # [min (W and R only)], p50, p90, p95, p99, max
        found[f"{column}_max"] = points[-1] if points else None
        found[f"{column}_q"] = points[-5:-1] if points else None
        if column in _WITH_MINIMUM and points:
            lowest.append(points[0])
    if "finished_q" in found:
        spread = found["finished_q"]
        found["last_finished"] = spread[2] if spread else None
        found["finished_q"] = spread[:2] if spread else None
    else:
        found["finished_q"] = None
    found["most_skewed"] = min(lowest) if found["skewed"] and lowest else None
    if checks:
        latest = found["check_latest"]
        found["check_nan"] = latest is not None and math.isnan(latest)
    if found["per_minute"]:  # binned, every minute of the range is there, most with 0
        found["per_minute"] = {minute: n for minute, n in found["per_minute"].items() if n}
    return found


_MICROSECONDS = {"s": 1_000_000, "ms": 1_000, "us": 1}  # per unit of an Arrow timestamp (ns: // 1000)


def _as_seconds(value: int, unit: str) -> float:
    """An Arrow timestamp's integer in epoch seconds exactly as ``_seconds``'s SQL computes it
    (DuckDB's // truncates towards zero)."""
    if unit != "ns":
        return value * _MICROSECONDS[unit] / 1000000.0
    return (value // 1000 if value >= 0 else -(-value // 1000)) / 1000000.0


_TIMING_COLUMNS = ("received", "started", "finished", "record_start", "state")
_INSTANTS = ("received", "started", "record_start")  # a timing row's instants besides the finish


def _seconds(table: pa.Table, column: str) -> str:
    """SQL for a timing table's column: NULL where the table leaves it out, the state as it is,
    a time as epoch seconds: as it is, or from an Arrow timestamp of any unit (whole
    microseconds over 1e6; below a microsecond is dropped)."""
    import pyarrow as pa

    if column not in table.column_names:
        return "NULL::VARCHAR" if column == "state" else "NULL::DOUBLE"
    kind = table.schema.field(column).type
    if not pa.types.is_timestamp(kind):
        return column
    if kind.unit == "ns":
        return f"epoch_ns({column}) // 1000 / 1000000.0"
    return f"epoch_us({column}) / 1000000.0"


def _files(paths: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


@dataclass
class Store:
    """The inputs of one metrics computation: files DuckDB reads itself, and tables already parsed."""

    log_files: list[Path] = field(default_factory=list)
    log_tables: list[pa.Table] = field(default_factory=list)  # task_id, sent
    event_files: list[Path] = field(default_factory=list)
    event_tables: list[pa.Table] = field(default_factory=list)  # probe/event line columns
    # task_id, received, started, finished, record_start, state: a column a table has none of
    # may be left out (a records file has no receipt: 5,000,000 nulls cost 0.2 s of fresh memory)
    timing_tables: list[pa.Table] = field(default_factory=list)
    # DuckDB spills its hash aggregation to disk beyond this; $CAPACITY_MEMORY_LIMIT overrides.
    memory_limit: str = field(default_factory=lambda: os.environ.get("CAPACITY_MEMORY_LIMIT", "3.5GB"))
    #: the logs are a task mix's: each line names its task, and the figures are also split by it
    #: (read only then: the column costs a plain run's 5,000,000-line parse nothing)
    by_task: bool = False
    #: the 10th and 90th percentile of the finish times are wanted (the X of a steady phase: runs
    #: that send at a rate); a burst's figures leave that third exact quantile out
    spread: bool = True

    def __post_init__(self) -> None:
        self._window: tuple[str, str] | None = None  # of the logs as they were under _log_key
        self._log_key: tuple[Any, ...] | None = None
        self._timings_unique = False  # of the timing inputs as they were under _unique_key
        self._unique_key: tuple[Any, ...] | None = None
        #: how the last figures were computed: "one pass" (every timing inside the window: checked
        #: after the pass) or "window first", then "grouped" or "ungrouped" (unique timing ids)
        self.path = ""
        self._verified: tuple[tuple[Any, ...], bool, tuple[str, str]] | None = None  # inputs, unique, window
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
        self._ranges: dict[tuple[int, str], tuple[float | None, float | None, bool]] = {}

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
        columns = _LOG_COLUMNS_TASK if self.by_task else _LOG_COLUMNS
        task = ", task" if self.by_task else ""
        if self.log_files:
            parts.append(f"""
                SELECT task_id{task}, epoch(TRY_CAST(sent_at AS TIMESTAMPTZ)) AS sent,
                       task_id IS NULL OR sent IS NULL AS bad,
                       NOT (sent_at LIKE '%+__:__' OR sent_at LIKE '%-__:__' OR sent_at LIKE '%Z') AS naive
                FROM read_json({_files(self.log_files)}, format = 'newline_delimited', columns = {columns})
                WHERE type IS NULL""")
        tables = self._register("log_table", self.log_tables)
        task = ", task" if self.by_task else ""
        parts += [f"SELECT task_id{task}, sent, FALSE AS bad FROM {name}" for name in tables]
        return " UNION ALL ".join(parts)

    def _timing_rows(self) -> str:
        parts = []
        if self.event_files:
            source = f"read_json({_files(self.event_files)}, format = 'newline_delimited', columns = {EVENT_COLUMNS})"
            parts.append(_EVENT_SELECT.format(source=source))
        parts += [_EVENT_SELECT.format(source=name) for name in self._register("event_table", self.event_tables)]
        names = self._register("timing_table", self.timing_tables)
        parts += [
            "SELECT task_id, "
            + ", ".join(f"{_seconds(table, column)} AS {column}" for column in _TIMING_COLUMNS)
            + f" FROM {name}"
            for name, table in zip(names, self.timing_tables, strict=True)
        ]
        if not parts:
            parts.append(
                "SELECT NULL::VARCHAR AS task_id, NULL::DOUBLE AS received, NULL::DOUBLE AS started, "
                "NULL::DOUBLE AS finished, NULL::DOUBLE AS record_start, NULL::VARCHAR AS state WHERE FALSE"
            )
        return " UNION ALL ".join(parts)

    def _bounds(self) -> tuple[str, str]:
        """``_window`` as SQL literals (NULL without sends). Computed once, apart: a window taken
        from the per-task rows inside the per-task query made DuckDB build those rows twice
        (5,000,000 tasks: 2.9 s instead of 1.3 s)."""
        key = (tuple(self.log_files), len(self.log_tables))
        if self._log_key != key:  # the line-by-line reader has run: read the window again
            self._window, self._log_key = None, key
        rows = self.log_rows()
        if self._window is None:
            query = f"SELECT min(sent), max(sent), epoch(now()) FROM ({rows})"
            first, last, now = self.con.execute(query).fetchall()[0]
            self._window = _literals(_window(first, last, now))
        assert self._window is not None
        return self._window

    def _timing_ids_unique(self) -> bool:
        """Whether no task id appears twice among the timing rows (checked once per set of inputs):
        distinct hashes are distinct ids, so equal counts prove it; a collision (or a real
        repeat) only sends the figures down the grouped path, which is right either way."""
        key = (tuple(self.event_files), len(self.event_tables), len(self.timing_tables))
        if self._unique_key != key:
            rows = self._timing_rows()
            (unique,) = self.con.execute(f"SELECT count(*) = count(DISTINCT hash(task_id)) FROM ({rows})").fetchall()[0]
            self._timings_unique, self._unique_key = bool(unique), key
        return self._timings_unique

    def _lines(self) -> bool:
        """Whether probe or event lines are among the timing rows (several rows per task, whose
        instants are known only inside the pass); else the timing rows are tables only."""
        return bool(self.event_files or self.event_tables)

    def _carried(self) -> list[str]:
        """The instants the timing rows can hold besides the finish: probe and event lines a
        receipt and a start, a table the columns it has. One no source carries is not aggregated
        (5,000,000 probe lines: a record start that is always NULL cost 0.1-0.3 s of grouping)."""
        columns = {"received", "started"} if self._lines() else set()
        columns |= {c for table in self.timing_tables for c in _INSTANTS if c in table.column_names}
        return [c for c in _INSTANTS if c in columns]

    def _timings_per_task(self, unique: bool) -> str:
        """The CTE ``g``: one row per task id of the timing rows. Grouped when an id can appear
        twice (retries, several sources); when the ids are unique (a records table's primary key)
        the rows are already that, and the grouping (5,000,000 records: 0.8 s of a 2.3 s query) is
        skipped: the check costs a third of it. Only the instants some source carries are in it
        (``per_id`` reads the others as NULL, rather than carrying columns of NULLs through the
        join)."""
        carried = self._carried()
        if unique:
            return f"""
            g AS (SELECT task_id, {"".join(f"{c}, " for c in carried)}finished, state FROM timingrows)"""
        first = "".join(f"min({c}) AS {c}, " for c in carried)
        return f"""
            -- a success anywhere counts (SUCCESS sorts above FAILURE, RETRY, REVOKED)
            g AS (
                SELECT task_id, {first}max(finished) AS finished, max(state) AS state,
                       count(finished) FILTER (WHERE state IS NULL OR state = 'SUCCESS') AS successes
                FROM timingrows GROUP BY task_id)"""

    def _span(self) -> tuple[str, str]:
        """SQL for a task's earliest and latest instant among those its figures use (first receipt
        and start, record start, last finish), for the window check: per task, from ``g``'s
        columns (two aggregates per id over the raw rows cost 0.1-0.2 s of 5,000,000 probe lines).
        A NaN makes the latest NaN (greatest() and max() sort it above every number)."""
        instants = ", ".join(f"g.{c}" for c in [*self._carried(), "finished"])
        return f"least({instants})", f"greatest({instants})"

    def _unique_timings(self) -> bool:
        """Whether the timing rows need no grouping: rows from tables only (records, result
        backends, BullMQ: a row per task) with unique ids. Probe and event lines are several rows
        per task."""
        return not self._lines() and self._timing_ids_unique()

    def _plan(self) -> tuple[bool, tuple[str, str] | None]:
        """(timing ids unique, the plausibility window) for a per-task query that must be exact."""
        if self._verified is not None and self._verified[0] == self._inputs():
            return self._verified[1], self._verified[2]
        return self._unique_timings(), self._bounds()

    def _inputs(self) -> tuple[Any, ...]:
        return (
            tuple(self.log_files),
            len(self.log_tables),
            tuple(self.event_files),
            len(self.event_tables),
            len(self.timing_tables),
        )

    def _per_task(self, unique: bool, window: tuple[str, str] | None) -> str:
        """One row per task id across every log and timing row, with its durations. Without a
        window every timing is taken as plausible and each row carries ``earliest``/``latest``
        for the caller to check that it was so."""
        lo, hi = window or ("NULL", "NULL")
        earliest, latest = self._span()
        implausible = (
            f"coalesce({earliest} < bounds.lo OR {latest} > bounds.hi OR isnan({earliest}) OR isnan({latest}), FALSE)"
            if window
            else "FALSE"
        )
        task_of = ", any_value(task) AS task" if self.by_task else ""
        carried = self._carried()
        instants = ", ".join(f"g.{c}" if c in carried else f"NULL::DOUBLE AS {c}" for c in _INSTANTS)
        # unique timing ids: a row's own finish and state say whether it is a success
        successes = (
            "CASE WHEN g.finished IS NOT NULL AND (g.state IS NULL OR g.state = 'SUCCESS') THEN 1 ELSE 0 END"
            if unique
            else "coalesce(g.successes, 0)"
        )
        l_task = " l.task," if self.by_task else ""
        return f"""
            WITH logrows AS ({self.log_rows()}),
            timingrows AS ({self._timing_rows()}),
            l AS (
                SELECT task_id, min(sent) AS sent, count(sent) AS n, count(*) FILTER (WHERE bad) AS bad{task_of}
                FROM logrows GROUP BY task_id),
            {self._timings_per_task(unique)},
            -- a timing outside [first send - 1 h, min(last send + 30 days, now + 1 h)] is not of
            -- this run (a worker clock in 2036, a year 9999): reported, not joined, and it does not
            -- stretch the timeline
            bounds AS (SELECT {lo}::DOUBLE AS lo, {hi}::DOUBLE AS hi),
            per_id AS (
                SELECT coalesce(l.task_id, g.task_id) AS task_id, l.sent, coalesce(l.n, 0) AS n,{l_task}
                       coalesce(l.bad, 0) AS bad,
                       g.task_id IS NULL AND l.task_id IS NULL AS timing_without_id,
                       {implausible} AS implausible, {earliest} AS earliest, {latest} AS latest,
                       {successes} AS successes, {instants}, g.finished, g.state
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
                   -- S, W and R over one set of tasks, the completed ones (a failed task's wait
                   -- without its response made W's mean exceed R's: #21)
                   CASE WHEN n > 0 AND finished IS NOT NULL AND (state IS NULL OR state = 'SUCCESS')
                        THEN started - sent END AS w,
                   CASE WHEN n > 0 AND finished IS NOT NULL AND (state IS NULL OR state = 'SUCCESS')
                        THEN started - received END AS wr,
                   CASE WHEN n > 0 AND finished IS NOT NULL AND (state IS NULL OR state = 'SUCCESS')
                        THEN finished - sent END AS r,
                   CASE WHEN n > 0 AND finished IS NOT NULL AND (state IS NULL OR state = 'SUCCESS')
                        THEN finished - record_start END AS ss
            FROM checked"""

    def figures(self) -> dict[str, Any]:
        """Every aggregate metrics needs; raises ``self.error`` on unreadable JSON.

        The window a timing must fall in is not known before the pass, so the pass takes every
        timing as plausible and also returns the earliest and latest; when those fall inside the
        window its own first and last sends give, nothing was implausible and the figures stand
        (read apart first, the window cost a second parse of the logs: 0.4 s of 5,000,000 tasks,
        0.9 s of 10,000,000). Otherwise the window is read and the figures computed again
        against it. Timing rows with unique ids are joined without grouping them."""
        unique = self._unique_timings()
        grouping = "ungrouped" if unique else "grouped"
        found = self._figures(self._per_task(unique, None), unique, checks=True)
        checks = {name: found.pop(name) for name in list(found) if name.startswith("check_")}
        window = _window_if_plausible(found["first_sent"], found["last_sent"], checks)
        if window is not None:
            self._verified, self.path = (self._inputs(), unique, window), f"one pass, {grouping}"
            return found
        self.path = f"window first, {grouping}"
        return self._figures(self._per_task(unique, self._bounds()), unique, checks=False)

    def tasks(self) -> list[str]:
        """The task names of a mix's logs (``by_task``), in order."""
        rows = self.con.execute(f"SELECT DISTINCT task FROM ({self.log_rows()}) WHERE task IS NOT NULL ORDER BY task")
        return [str(row[0]) for row in rows.fetchall()]

    def figures_for(self, task: str) -> dict[str, Any]:
        """``figures`` of the tasks of one class of a mix (the run's window, its own tasks)."""
        unique = self._unique_timings()
        literal = "'" + task.replace("'", "''") + "'"
        per_task = f"SELECT * FROM ({self._per_task(unique, self._bounds())}) WHERE task = {literal}"
        return self._figures(per_task, unique, checks=False)

    def _figures(self, per_task: str, unique: bool, checks: bool) -> dict[str, Any]:
        # Each aggregate over 5,000,000 rows costs (0.05-0.1 s apiece; the eight aggregates and
        # four filters this pass left out, with the instants no source carries, were a tenth of a
        # probe run's query): a figure another one already gives is taken from it. The quantiles
        # are exact (quantile_cont costs less than approx_quantile's t-digest) and the one at 1.0
        # is the maximum, at 0.0 the minimum; NULL durations (a task that did not complete, a
        # log's repeat) are skipped by every aggregate, so no FILTER is needed.
        def stats(column: str) -> str:
            if column in ("s", "w", "wr") and not self._has_worker_times():
                return f"NULL AS {column}_mean, NULL AS {column}_q"
            points = [*([0.0] if column in _WITH_MINIMUM else []), *_QUANTILES, 1.0]
            return f"avg({column}) AS {column}_mean, quantile_cont({column}, {points}) AS {column}_q"

        # records are the only source of a record start: without them seed S is simply absent
        record_stats = stats("ss") if self.timing_tables else "NULL AS ss_mean, NULL AS ss_q"
        # with checks (nothing implausible, else the pass is done again) and unique ids (a success
        # per task at most), those figures are known without aggregating them
        implausible = (
            "0 AS implausible, NULL AS implausible_ids"
            if checks
            else """count(*) FILTER (WHERE implausible) AS implausible,
                   list(task_id ORDER BY task_id) FILTER (WHERE implausible)[1:5] AS implausible_ids"""
        )
        completions = (
            "0 AS duplicate_completions, 0 AS tasks_completed_twice"
            if unique
            else """coalesce(sum(successes - 1) FILTER (WHERE n > 0 AND successes > 1), 0) AS duplicate_completions,
                   count(*) FILTER (WHERE n > 0 AND successes > 1) AS tasks_completed_twice"""
        )
        # a NaN anywhere makes a task's greatest instant NaN, and max() sorts NaN above the rest;
        # tables alone are checked from their columns instead (``_table_span``)
        check_columns = ""
        if checks:
            check_columns = "epoch(now()) AS check_now, "
            if self._lines():
                check_columns = "min(earliest) AS check_earliest, max(latest) AS check_latest, " + check_columns
        # the 10th and 90th percentile of the finishes when a steady phase's X is wanted, and the
        # last finish with them; else the last finish alone
        finishes = (
            "quantile_cont(finished, [0.1, 0.9, 1.0]) FILTER (WHERE ok) AS finished_q"
            if self.spread
            else "max(finished) FILTER (WHERE ok) AS last_finished"
        )
        bins = self._minute_bins()
        # sent is NULL where no log line sent the task (n = 0); r is NULL unless it completed; a NaN
        # or infinite finish has no minute (TRY_CAST: NULL), so the pass ends and the window drops it
        query = f"""
            SELECT count(sent) AS sent,
                   count(r) AS completed,
                   count(*) FILTER (WHERE failed) AS failed,
                   count(*) FILTER (WHERE n = 0 AND task_id IS NOT NULL AND bad = 0) AS unknown,
                   coalesce(sum(n), 0) AS lines,
                   coalesce(sum(bad), 0) AS bad_log_lines,
                   {implausible},
                   {completions},
                   coalesce(bool_or(timing_without_id), FALSE) AS timing_without_id,
                   min(sent) AS first_sent,
                   max(sent) AS last_sent,
                   {finishes},
                   histogram(TRY_CAST(floor(finished / 60) AS BIGINT){bins}) FILTER (WHERE ok) AS per_minute,
                   count(*) FILTER (WHERE w < 0 OR r < 0) AS skewed,
                   {check_columns}
                   {stats("s")}, {stats("w")}, {stats("wr")}, {stats("r")}, {record_stats}
            FROM ({per_task})"""
        cursor = self.con.execute(query)
        names = [d[0] for d in cursor.description]
        found = dict(zip(names, cursor.fetchall()[0], strict=True))
        if not (checks and not self._lines()):
            return _derived(found, checks)
        found["check_earliest"], found["check_latest"], nan = self._table_span()
        derived = _derived(found, checks)
        derived["check_nan"] = nan  # min_max skips NaN: the latest alone cannot show one
        return derived

    def _table_span(self) -> tuple[float | None, float | None, bool]:
        """The earliest and latest instant of every timing table's rows (receipt, start, record
        start, finish), and whether one is NaN, read off the columns (Arrow's min_max:
        milliseconds) instead of two more aggregates and a least()/greatest() per task in the pass
        (with the join's narrower rows: 1.47 s of the join's operator time instead of 2.05 s in
        EXPLAIN ANALYZE on 5,000,000 records; the wall time moved less than its noise).

        Over rows, not tasks: a task's instants are among its rows, so rows inside the window are
        tasks inside it; a repeated id whose other start alone lies outside only sends the figures
        down the window-first path, exact either way."""
        spans = [self._table_range(column) for column in (*self._carried(), "finished")]
        lows = [low for low, _, _ in spans if low is not None]
        highs = [high for _, high, _ in spans if high is not None]
        return min(lows, default=None), max(highs, default=None), any(nan for _, _, nan in spans)

    def _table_range(self, column: str) -> tuple[float | None, float | None, bool]:
        """The smallest and largest value of ``column`` across the timing tables, in epoch seconds as
        the query reads them (``_seconds``), and whether one is NaN (min_max skips NaN); kept per
        set of tables (the minute bins and the checks both ask)."""
        key = (len(self.timing_tables), column)
        if key not in self._ranges:
            import pyarrow as pa
            import pyarrow.compute as pc

            lows, highs, nan = [], [], False
            for table in self.timing_tables:
                if column not in table.column_names or table[column].null_count == len(table):
                    continue
                values = table[column]
                if pa.types.is_timestamp(values.type):
                    bounds = pc.min_max(pc.cast(values, pa.int64())).as_py()
                    unit = values.type.unit
                    lows.append(_as_seconds(bounds["min"], unit))
                    highs.append(_as_seconds(bounds["max"], unit))
                    continue
                if pa.types.is_floating(values.type):
                    nan = nan or bool(pc.any(pc.is_nan(values)).as_py())
                bounds = pc.min_max(values).as_py()
                if bounds["min"] is not None:
                    lows.append(float(bounds["min"]))
                    highs.append(float(bounds["max"]))
            self._ranges[key] = (min(lows, default=None), max(highs, default=None), nan)
        return self._ranges[key]

    def _minute_bins(self) -> str:
        """``, range(first, last + 1)``: the minutes a completion can fall in, when the timing
        tables alone hold the completions (at most ~70 days of minutes). DuckDB rewrites a
        histogram without bins into a grouping over a materialised copy of every per-task row
        (0.25 s of 5,000,000 tasks); with its bins given it is one more aggregate."""
        if self._lines() or not self.timing_tables:
            return ""
        low, high, _ = self._table_range("finished")
        if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
            return ""
        first, last = math.floor(low / 60), math.floor(high / 60)
        return f", range({first}, {last + 1})" if last - first < 100_000 else ""

    def _has_worker_times(self) -> bool:
        """Whether any source can give a task's receipt or start (probe and event lines can; a
        records table or result backend may): without one, S, W and W from receipt are absent and
        not aggregated."""
        if self._lines():
            return True
        given = [t[c] for t in self.timing_tables for c in ("received", "started") if c in t.column_names]
        return any(column.null_count < len(column) for column in given)

    def failures(self, limit: int = 3) -> list[tuple[str, int]]:
        """The commonest exception texts of this run's failed tasks (probe lines, Celery events,
        BullMQ jobs), each with the number of tasks of the task logs that raised it: a timings
        folder shared with another run holds its errors too, and they are not this run's."""
        errors = self._error_rows()
        if errors is None:
            return []
        rows = self.con.execute(f"""
            SELECT error, count(DISTINCT task_id) AS n FROM ({errors})
            WHERE error IS NOT NULL AND task_id IN (SELECT task_id FROM ({self.log_rows()}))
            GROUP BY error ORDER BY n DESC, error LIMIT {int(limit)}""").fetchall()
        return [(str(error), int(n)) for error, n in rows]

    def _error_rows(self) -> str | None:
        """SQL for (task_id, error) of every probe line and Celery event; None without any."""
        parts = []
        if self.event_files:
            source = f"read_json({_files(self.event_files)}, format = 'newline_delimited', columns = {EVENT_COLUMNS})"
            parts.append(f"SELECT task_id, error FROM {source}")
        parts += [f"SELECT task_id, error FROM {name}" for name in self._register("error_table", self.event_tables)]
        return " UNION ALL ".join(parts) or None

    def timeline(self, bucket_s: float) -> list[tuple[int, int, Any, Any]]:
        """Completions per bucket of ``bucket_s`` from the first send: (bucket, count, [p50, p95]
        of W, [p50, p95] of S), by when each task finished."""
        unique = self._unique_timings()
        rows = self.con.execute(f"""
            WITH t AS ({self._per_task(unique, self._bounds())}),
            start AS (SELECT min(sent) FILTER (WHERE n > 0) AS first FROM t)
            SELECT floor((finished - start.first) / {float(bucket_s)!r})::BIGINT AS bucket, count(*) AS n,
                   quantile_cont(w, [0.5, 0.95]) AS w_q, quantile_cont(s, [0.5, 0.95]) AS s_q
            FROM t, start WHERE ok GROUP BY bucket ORDER BY bucket""").fetchall()
        return [(int(b), int(n), w, q) for b, n, w, q in rows]

    def failure_types(self) -> list[tuple[str, int, str, str]]:
        """This run's failed tasks by exception type: (type, tasks, the first task id by send time,
        one message), the commonest first; the counts are true counts, not a sample."""
        errors = self._error_rows()
        if errors is None:
            return []
        rows = self.con.execute(f"""
            WITH e AS (SELECT DISTINCT task_id, error FROM ({errors}) WHERE error IS NOT NULL),
            l AS (SELECT task_id, min(sent) AS sent FROM ({self.log_rows()}) GROUP BY task_id),
            typed AS (
                SELECT coalesce(nullif(regexp_extract(e.error, '^([A-Za-z_][A-Za-z0-9_.]*)', 1), ''), 'unknown')
                       AS kind, e.task_id, e.error, l.sent
                FROM e JOIN l ON e.task_id = l.task_id)
            SELECT kind, count(DISTINCT task_id) AS n, arg_min(task_id, sent) AS first, arg_min(error, sent) AS example
            FROM typed GROUP BY kind ORDER BY n DESC, kind""").fetchall()
        return [(str(k), int(n), str(first), str(example)) for k, n, first, example in rows]

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
                          FROM ({self._per_task(*self._plan())}) WHERE n > 0 ORDER BY sent, task_id)
                    TO '{target}' (HEADER, DELIMITER ',')""")
            except Exception as exc:  # duckdb.IOException: a full disk, no permission
                if type(exc).__name__ != "IOException":
                    raise
                raise WriteFailed(f"cannot write {path}: {' '.join(str(exc).split())[:200]}") from None

    def close(self) -> None:
        self.con.close()
        self._spill.cleanup()
