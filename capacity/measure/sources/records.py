"""Records exported from the application (seed 003's method: ``uploaded_at``/``updated_at`` per
row): CSV, JSON Lines, Parquet, or an SQLite database with a query."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from capacity.errors import InputError
from capacity.measure.inputs import Problems, TaskLog, iso_times, scan
from capacity.measure.sources import RecordColumns, SourceSettings, TimingSource

SQLITE = "sqlite:///"


def timing_table(table: pa.Table, where: str, columns: RecordColumns, problems: Problems) -> pa.Table:
    """The records' id, start and end columns as timing rows: epoch seconds, or Arrow timestamps
    (the store's query turns them into seconds as DuckDB scans them; converted here, 5,000,000
    records took 0.2-0.4 s, mostly in fresh memory for the copies)."""
    named = _named(columns)
    missing = [c for c in named if c not in table.column_names]
    if missing:
        raise InputError(
            f"{where}: no column {', '.join(missing)} (columns: {', '.join(table.column_names)}); "
            "use --id-col, --start-col, --end-col"
        )

    def epoch(name: str) -> pa.Array | pa.ChunkedArray:
        column = table[name]
        if pa.types.is_timestamp(column.type):
            if column.type.tz is None:
                problems.warn(f"{where}: timestamps without a time zone were taken as UTC")
            return column
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            return pc.cast(column, pa.float64())
        return iso_times(pc.cast(column, pa.string()), where, problems)

    finished, record_start = epoch(columns.end_col), epoch(columns.start_col)
    # no receipt, start of execution or host: left out, the store reads them as NULL
    found = {
        "task_id": pc.cast(table[columns.id_col], pa.string()),
        "finished": finished,
        "record_start": record_start,
    }
    if columns.state_col:
        found["state"] = pc.cast(table[columns.state_col], pa.string())
    return pa.table(found)


def _sqlite(source: str, query: str | None) -> pa.Table:
    if not query:
        raise InputError(f"{source}: a database source needs --query")
    db_path = source[len(SQLITE) :]
    if not Path(db_path).is_file():
        raise InputError(f"{source}: no such database file")
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as connection:
        try:
            cursor = connection.execute(query)
        except sqlite3.Error as exc:
            raise InputError(f"{source}: query failed: {exc}") from None
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    return pa.table({name: pa.array([row[i] for row in rows]) for i, name in enumerate(names)})


def _named(columns: RecordColumns) -> list[str]:
    return [columns.id_col, columns.start_col, columns.end_col, *([columns.state_col] if columns.state_col else [])]


def _pool() -> pa.MemoryPool:
    """The memory the readers allocate a file's table from: jemalloc where this pyarrow has it.
    pyarrow's default, mimalloc (apache/arrow#43254), spent 0.6-1.9 s in the kernel reading
    5,000,000 records (0.96-1.70 s in all) in a new process here; jemalloc 0.3-0.4 s (0.58-0.69
    s in all). Windows wheels have no jemalloc: the default pool."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool()


def _csv(path: Path, wanted: list[str]) -> pa.Table:
    """The CSV's ``wanted`` columns, with the types pyarrow infers from its first block given to
    the whole read (inferring them on every row was two thirds of reading 5,000,000 records);
    a later row that does not fit them (an id that is not a number after all) sends the read
    back to inference on every row, pyarrow's default."""
    import pyarrow.csv as pa_csv

    with pa_csv.open_csv(path) as reader:
        schema = reader.schema
    if len(set(wanted)) != len(wanted) or not set(wanted) <= set(schema.names) or len(set(schema.names)) != len(schema):
        return pa_csv.read_csv(path, memory_pool=_pool())  # timing_table names what is missing
    types = {name: schema.field(name).type for name in wanted}
    try:
        options = pa_csv.ConvertOptions(column_types=types, include_columns=wanted)
        return pa_csv.read_csv(path, convert_options=options, memory_pool=_pool())
    except pa.ArrowInvalid:
        options = pa_csv.ConvertOptions(include_columns=wanted)
        return pa_csv.read_csv(path, convert_options=options, memory_pool=_pool())


def _file(path: Path, problems: Problems, skip_bad: bool, columns: RecordColumns) -> pa.Table:
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if path.suffix == ".csv":
            return _csv(path, _named(columns))
        try:
            return pa_json.read_json(path, memory_pool=_pool())
        except pa.ArrowInvalid:  # the line-by-line reader names the bad line (or skips it)
            return pa.Table.from_pylist(list(scan(path, lambda line: True, skip_bad, problems, "record")))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: cannot read records: {' '.join(str(exc).split())}") from None


def read_records(source: str, settings: SourceSettings, problems: Problems) -> pa.Table:
    """The records of SOURCE (a file, or ``sqlite:///PATH`` with ``settings.query``) as timing rows."""
    if source.startswith(SQLITE):
        return timing_table(_sqlite(source, settings.query), source, settings.columns, problems)
    path = Path(source)
    if not path.is_file():
        raise InputError(f"timings source {source} does not exist")
    table = _file(path, problems, settings.skip_bad, settings.columns)
    return timing_table(table, str(path), settings.columns, problems)


class Records(TimingSource):
    kind = "records"
    label = "records"

    @classmethod
    def accepts(cls, source: str) -> bool:
        return source.startswith(SQLITE) or Path(source).is_file()

    def load(self, source: str, log: TaskLog, settings: SourceSettings) -> None:
        log.store.timing_tables.append(read_records(source, settings, log.problems))
