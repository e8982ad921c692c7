"""``capacity metrics``: task logs joined with worker timings; X, S, W, R, stability."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from capacity.cli._common import OutputOption, emit, format_option, handle_errors, note
from capacity.render.measured import metrics_report
from capacity.units import parse_duration
from capacity.workerside.probe import ENV_VAR as PROBE_ENV_VAR

HELP = f"""Throughput X, service time S, wait W and response time R (mean and percentiles),
completion rate, per-minute timeline, utilisation, Little's law and the queue's trend, from
task logs (capacity inject) joined by task id with timings.

--timings SOURCE (repeatable; default ${PROBE_ENV_VAR}): a probe directory or Redis URL
(capacity.probe), an events file (capacity collect), a Redis result backend URL, or records
(CSV, JSON Lines, Parquet, sqlite:///file.db with --query). Prefix probe:, events:, backend: or
records: to say which. --fail-if "X<10/min", "p95>30s", "completion<0.95" exits 1 when broken."""

Opt = typer.Option


MetricsFormat = Annotated[str, format_option("json", "csv", "markdown", "html")]


@handle_errors
def command(
    tasks_log: Annotated[
        list[str], Opt("--tasks-log", help="Task log from capacity inject, or an s3://bucket/prefix/ (repeatable).")
    ],
    timings: Annotated[list[str] | None, Opt("--timings", help="Timings source (repeatable).")] = None,
    concurrency: Annotated[int | None, Opt(help="Worker slots, for utilisation U = X x S / concurrency.")] = None,
    query: Annotated[str | None, Opt(help="SQL for a database records source.")] = None,
    id_col: Annotated[str, Opt(help="Records: task id column.")] = "id",
    start_col: Annotated[str, Opt(help="Records: start column.")] = "uploaded_at",
    end_col: Annotated[str, Opt(help="Records: end column.")] = "updated_at",
    state_col: Annotated[str | None, Opt(help="Records: state column (SUCCESS means completed).")] = None,
    skip_bad: Annotated[bool, Opt("--skip-bad", help="Skip and count malformed lines instead of stopping.")] = False,
    fail_if: Annotated[list[str] | None, Opt("--fail-if", help='Threshold that fails the run, e.g. "p95>30s".')] = None,
    csv: Annotated[Path | None, Opt("--csv", help="Also write one row per task (joined timings) to this CSV.")] = None,
    bucket: Annotated[
        str | None,
        Opt(
            help="Add a timeline of completions with the p50/p95 of W and S per bucket, e.g. 1m, or auto (at "
            "most 40 round buckets over the run; a second pass over the tasks). -f html plots it."
        ),
    ] = None,
    fmt: MetricsFormat = "table",
    output: OutputOption = "-",
) -> None:
    from capacity.measure.metrics import AUTO_BUCKET, enforce, run_metrics  # DuckDB: the measure extra
    from capacity.measure.sources import RecordColumns

    replaced = csv is not None and csv.is_file()
    result = run_metrics(
        tasks_log,
        timings or [],
        concurrency,
        query,
        RecordColumns(id_col, start_col, end_col, state_col),
        skip_bad,
        per_task_csv=csv,
        # -f html plots the timeline: a bucket chosen from the run's window unless given
        bucket_s=(AUTO_BUCKET if fmt == "html" else None)
        if bucket is None
        else AUTO_BUCKET
        if bucket == "auto"
        else parse_duration(bucket, "--bucket"),
    )
    if replaced:
        note(f"replaced the existing {csv}")
    report = metrics_report(result)
    if fmt == "html":  # the timeline and the mix's classes plotted (matplotlib: the matrix extra)
        from capacity.render.charts import metrics_images

        report = replace(report, images=metrics_images(result))
    emit(report, fmt, output)
    enforce(fail_if or [], report.data)
