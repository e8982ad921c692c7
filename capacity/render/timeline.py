"""The autoscaling timeline as a PNG (matplotlib): replicas asked for and ready, tasks waiting, and
the oldest task's wait, against time; one line per pool when there are several. Imported only
when an HTML report is written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def timeline_png(
    title: str, total: Sequence[dict[str, float]], pools: Sequence[tuple[str, Sequence[dict[str, float]]]] = ()
) -> bytes:
    from capacity.render.charts import png, pyplot

    figure, (top, middle, bottom) = pyplot().subplots(3, 1, figsize=(8, 7), sharex=True)
    series: list[tuple[str, Sequence[dict[str, float]]]] = list(pools) if len(pools) > 1 else [("", total)]

    def column(points: Sequence[dict[str, float]], key: str) -> list[float]:
        return [float(p.get(key, 0.0)) for p in points]

    for name, points in series:
        t = column(points, "t_s")
        label = f"{name}: " if name else ""
        line: Any = top.step(t, column(points, "replicas"), where="post", label=f"{label}asked for")[0]
        top.step(t, column(points, "ready_replicas"), where="post", linestyle="--", color=line.get_color(),
                 label=f"{label}ready")  # fmt: skip
        middle.plot(t, column(points, "queue_depth"), color=line.get_color(), label=name or None)
    t = column(total, "t_s")
    bottom.plot(t, column(total, "oldest_wait_s"), color="tab:red")
    top.set_ylabel("replicas")
    top.legend(fontsize=7)
    middle.set_ylabel("tasks waiting")
    if len(series) > 1:
        middle.legend(fontsize=7)
    bottom.set_ylabel("oldest task's wait (s)")
    bottom.set_xlabel("time (s)")
    top.set_title(title)
    return png(figure)
