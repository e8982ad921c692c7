"""The report of ``capacity metrics``: the summary, the by-task and timeline tables, the failures."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from capacity.render.model import Report, Table, scalars_table

if TYPE_CHECKING:  # the metrics result is built where DuckDB and pyarrow are installed
    from capacity.measure.metrics import Metrics


def _secs(value: float | None) -> str:
    return "missing" if value is None else f"{value:.3f} s"


def _minute(first_sent_at: float | None, minute: int) -> str:
    """A minute of the per-minute timeline with its wall-clock time: "2 (15:04 UTC)"."""
    if first_sent_at is None:
        return str(minute)
    at = time.gmtime((int(first_sent_at // 60) + minute) * 60)
    return f"{minute} ({at.tm_hour:02d}:{at.tm_min:02d} UTC)"


def metrics_report(m: Metrics) -> Report:
    """A Metrics result (capacity.metrics) as a Report."""
    data = m.to_json()
    rate = m.completion_rate
    summary: list[tuple[str, str]] = [
        ("Sources", ", ".join(m.sources) or "none"),
        ("Sent / completed / failed / missing", f"{m.sent} / {m.completed} / {m.failed} / {m.missing}"),
        ("Completion rate", "missing" if rate is None else f"{rate:.1%} (seed 002 target > 95%)"),
        ("Window (first send to last completion)", _secs(m.window_s)),
        ("X throughput", "missing" if m.throughput_per_min is None else f"{m.throughput_per_min:,.2f} tasks/min"),
    ]
    if m.throughput_steady_per_min is not None:
        summary.append(("X steady (middle 80% of completions)", f"{m.throughput_steady_per_min:,.2f} tasks/min"))
    s = m.service
    summary += [
        ("S service time mean (started to finished)", _secs(s.mean)),
        (
            "S p50 / p90 / p95 / p99 / max",
            " / ".join("-" if v is None else f"{v:.3f}" for v in (s.p50, s.p90, s.p95, s.p99, s.max)),
        ),
        ("W wait mean / p95 (sent to started)", f"{_secs(m.wait.mean)} / {_secs(m.wait.p95)}"),
        ("R response mean / p95 (sent to finished)", f"{_secs(m.response.mean)} / {_secs(m.response.p95)}"),
    ]
    notes = []
    if m.seed_s.mean is not None:
        summary.append(("Seed S (records: end - start) mean", _secs(m.seed_s.mean)))
        notes.append("Seed S is seed 003's updated_at - uploaded_at per record: a response time, wait included.")
    if m.utilization is not None:
        summary.append(("U utilisation (X x S / concurrency)", f"{m.utilization:.1%} of {m.concurrency} slots"))
    if m.littles_law.L_from_X_R is not None:
        observed = m.littles_law.L_observed
        summary.append(
            (
                "Little's law L = X x R",
                f"{m.littles_law.L_from_X_R:.2f} in system"
                + ("" if observed is None else f" (observed {observed:.2f}, {m.littles_law.observed_from})"),
            )
        )
    if m.trend is not None:
        slope = m.trend.slope_per_min
        summary.append(
            (
                "Queue trend (sustained phase)",
                f"{'n/a' if slope is None else f'{slope:+.2f}/min'}: {m.trend.verdict}",
            )
        )
    if m.service.mean is None and m.completed:
        notes.append("No start times in these sources: service time and wait are missing, not estimated.")
    notes += m.warnings
    if m.skipped_lines:
        notes.append(f"{m.skipped_lines} malformed lines skipped (--skip-bad).")
    per_minute = Table(
        "Completions per minute (wall-clock minutes, from the minute of the first send)",
        ("Minute", "Completed"),
        tuple((_minute(m.first_sent_at, minute), str(count)) for minute, count in m.timeline),
    )
    tables = [_timeline_table(m)] if m.timeline_buckets else ([per_minute] if m.timeline else [])
    if m.failure_types:
        rows = tuple((f.type, str(f.tasks), f.first_task_id, f.example[:120]) for f in m.failure_types)
        tables.append(Table("Failures by exception type", ("Type", "Tasks", "First task", "Example"), rows))
    if m.by_task:
        tables.insert(0, _by_task_table(m))
    return Report(
        "Worker metrics",
        data,
        tuple(summary),
        tuple(tables),
        tuple(notes),
        csv_table=scalars_table({k: v for k, v in data.items() if k not in ("by_task", "timeline", "failures")}),
    )


def _timeline_table(m: Metrics) -> Table:
    """Completions per bucket from the first send, with the p50 and p95 of W and S in each."""

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    def clock(offset: float) -> str:
        shown = f"{int(offset // 60)}:{offset % 60:04.1f}" if offset >= 60 else f"{offset:g} s"
        if m.first_sent_at is None:
            return shown
        at = time.gmtime(m.first_sent_at + offset)
        return f"{shown} ({at.tm_hour:02d}:{at.tm_min:02d}:{at.tm_sec:02d})"

    rows = tuple(
        (
            f"{clock(b.from_s)} - {clock(b.to_s)}",
            str(b.completed),
            seconds(b.wait_p50_s),
            seconds(b.wait_p95_s),
            seconds(b.service_p50_s),
            seconds(b.service_p95_s),
        )
        for b in m.timeline_buckets
    )
    columns = ("After the first send (UTC)", "Completed", "W p50 (s)", "W p95 (s)", "S p50 (s)", "S p95 (s)")
    return Table(f"Timeline (buckets of {m.bucket_s:g} s)", columns, rows)


def _by_task_table(m: Metrics) -> Table:
    """A mix's classes side by side: what each sent and completed, its throughput and times."""

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    rows = tuple(
        (
            name,
            str(c.sent),
            str(c.completed),
            str(c.failed),
            "-" if c.throughput_per_min is None else f"{c.throughput_per_min:,.1f}",
            seconds(c.service.mean),
            seconds(c.wait.p95),
            seconds(c.response.p95),
        )
        for name, c in m.by_task.items()
    )
    columns = ("Task", "Sent", "Completed", "Failed", "X (tasks/min)", "S mean (s)", "W p95 (s)", "R p95 (s)")
    return Table("By task (the mix's classes)", columns, rows)
