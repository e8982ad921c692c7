"""The plots of ``capacity metrics -f html`` and the report's percentiles over time (matplotlib,
PNG bytes by file name): completions per bucket with the p50 and p95 of W and S, and a mix's
classes side by side; and the one way every plot of the tool is made and saved (``pyplot``,
``png``). Imported only when HTML is asked for (matplotlib: the matrix extra)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from capacity.measure.metrics import Bucket, Metrics


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(figure: Any, dpi: int = 96, metadata: dict[str, Any] | None = None) -> bytes:
    """The figure as PNG bytes, closed afterwards."""
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=dpi, metadata=metadata)
    pyplot().close(figure)
    return buffer.getvalue()


def _mids(buckets: Sequence[Bucket]) -> list[float]:
    return [(b.from_s + b.to_s) / 2 for b in buckets]


def percentile_lines(ax: Any, buckets: Sequence[Bucket], label: str = "") -> None:
    """The p50 (dashed) and p95 (solid) of W and S per bucket, at each bucket's middle; a bucket
    without a figure is a gap, not a zero (nothing invented)."""
    mids = _mids(buckets)
    prefix = f"{label} " if label else ""
    for name, p50, p95 in (
        ("W", [b.wait_p50_s for b in buckets], [b.wait_p95_s for b in buckets]),
        ("S", [b.service_p50_s for b in buckets], [b.service_p95_s for b in buckets]),
    ):
        if all(v is None for v in p95):
            continue
        nan = float("nan")
        line = ax.plot(mids, [nan if v is None else v for v in p95], "-", label=f"{prefix}{name} p95")[0]
        ax.plot(mids, [nan if v is None else v for v in p50], "--", color=line.get_color(), label=f"{prefix}{name} p50")


def timeline_png(buckets: Sequence[Bucket], bucket_s: float) -> bytes:
    """Completions per bucket (bars) over the p50 and p95 of W and S (lines), from the first send."""
    plt = pyplot()
    figure, (count_ax, time_ax) = plt.subplots(2, 1, figsize=(7.5, 5.5), sharex=True)
    count_ax.bar(_mids(buckets), [b.completed for b in buckets], width=bucket_s * 0.9)
    count_ax.set_ylabel("completed")
    count_ax.set_title(f"Completions and percentiles over time (buckets of {bucket_s:g} s)")
    percentile_lines(time_ax, buckets)
    time_ax.set_xlabel("seconds after the first send")
    time_ax.set_ylabel("seconds")
    time_ax.legend(fontsize=7)
    return png(figure)


def by_task_png(m: Metrics) -> bytes:
    """A mix's classes: throughput, and the p95 of W and S, side by side."""
    plt = pyplot()
    names = list(m.by_task)
    figure, (x_ax, t_ax) = plt.subplots(1, 2, figsize=(max(7.5, len(names) * 1.2), 4))
    x_ax.bar(names, [c.throughput_per_min or 0 for c in m.by_task.values()])
    x_ax.set_ylabel("X (tasks/min)")
    x_ax.set_title("Throughput by task")
    positions = range(len(names))
    t_ax.bar([p - 0.2 for p in positions], [c.wait.p95 or 0 for c in m.by_task.values()], 0.4, label="W p95")
    t_ax.bar([p + 0.2 for p in positions], [c.service.p95 or 0 for c in m.by_task.values()], 0.4, label="S p95")
    t_ax.set_xticks(list(positions), names)
    t_ax.set_ylabel("seconds")
    t_ax.set_title("Wait and service time p95 by task")
    t_ax.legend(fontsize=7)
    for ax in (x_ax, t_ax):
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    return png(figure)


def metrics_images(m: Metrics) -> tuple[tuple[str, bytes], ...]:
    """What ``metrics -f html`` embeds: the timeline with its percentiles (when --bucket gave one)
    and the mix's classes (when the log has several)."""
    images = []
    if m.timeline_buckets:
        images.append(("timeline.png", timeline_png(m.timeline_buckets, m.bucket_s)))
    if m.by_task:
        images.append(("by_task.png", by_task_png(m)))
    return tuple(images)
