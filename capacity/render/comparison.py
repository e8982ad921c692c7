"""A comparison (``capacity compare``, ``report --baseline``) as a Report: one row per figure and
cell, the verdicts, and for the HTML the two runs' distributions of S and R side by side (ECDFs)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from capacity.render.model import Report, Table

if TYPE_CHECKING:  # numpy and the comparison's types: the measure extra
    from capacity.measure.compare import Change, Comparison, Tasks

COLUMNS = ("Cell", "Figure", "Base", "New", "Change", "Tolerance", "Noise test (p)", "Verdict")


def _value(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def _row(cell: str, c: Change) -> tuple[str, ...]:
    change = "-" if c.change is None else ("inf" if math.isinf(c.change) else f"{c.change:+.1%}")
    test = "-" if c.test is None else f"{c.test} ({_p(c.p_value)})"
    return (cell, c.figure, _value(c.base), _value(c.new), change, f"{c.tolerance:.0%}", test, c.verdict)


def _p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "p n/a"
    return "p < 1e-6" if value < 1e-6 else f"p = {value:.2g}"


def comparison_table(comparison: Comparison) -> Table:
    rows = tuple(_row(cell.cell, c) for cell in comparison.cells for c in cell.changes)
    return Table("Comparison with the baseline", COLUMNS, rows)


def comparison_report(comparison: Comparison, base: Tasks | None = None, new: Tasks | None = None) -> Report:
    regressions = [(cell.cell, c) for cell in comparison.cells for c in cell.regressions]
    sizes = ", ".join(
        f"{cell.cell}: {cell.base_tasks} vs {cell.new_tasks}" for cell in comparison.cells if cell.base_tasks
    )
    runs = ", ".join(f"{cell.cell}: {cell.base_runs} vs {cell.new_runs}" for cell in comparison.cells)
    if comparison.regressions:
        verdict = f"{len(regressions)} regressions"
    elif comparison.inconclusive:
        verdict = f"inconclusive ({len(comparison.inconclusive)} cells cannot be judged)"
    else:
        verdict = "no regression"
    summary = (
        ("Base", comparison.base),
        ("New", comparison.new),
        ("Verdict", verdict),
        ("Method", comparison.method),
        ("Runs (base vs new)", runs),
        ("Tasks (base vs new)", sizes or "no per-task data"),
    )
    notes = [
        f"regression: {cell} {c.figure} {_row(cell, c)[4]} (tolerance {c.tolerance:.0%})" for cell, c in regressions
    ]
    notes += [f"inconclusive: {line}" for line in comparison.inconclusive]
    if comparison.unmatched:
        notes.append(f"cells in only one side, not compared: {', '.join(comparison.unmatched)}")
    images = _ecdfs(base, new) if base is not None and new is not None else ()
    return Report(
        "Comparison", comparison.to_json(), summary, (comparison_table(comparison),), tuple(notes), images=images
    )


def _ecdfs(base: Tasks, new: Tasks) -> tuple[tuple[str, bytes], ...]:
    """ECDFs of service and response time, base against new, side by side (PNG)."""
    import numpy as np

    from capacity.render.charts import png, pyplot

    figure, axes = pyplot().subplots(1, 2, figsize=(11, 4.2))
    for ax, (title, column) in zip(axes, (("Service time S", "service"), ("Response time R", "response")), strict=True):
        for label, tasks in (("base", base), ("new", new)):
            values = np.sort(getattr(tasks, column)[~np.isnan(getattr(tasks, column))])
            if len(values):
                ax.step(
                    values,
                    np.arange(1, len(values) + 1) / len(values),
                    where="post",
                    label=f"{label} (n={len(values)})",
                )
        ax.set_xlabel("seconds")
        ax.set_ylabel("share of tasks at most")
        ax.set_title(f"{title}: ECDF")
        ax.legend(fontsize=8)
    return (("compare_ecdf.png", png(figure, dpi=90, metadata={"Software": None})),)
