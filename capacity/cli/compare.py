"""``capacity compare``: a run against a baseline, as a regression gate for CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from capacity.cli._common import OutputOption, emit, format_option, handle_errors
from capacity.errors import CheckFailed

HELP = """Compare a run with a baseline and exit 1 on a regression (a CI gate). BASE and NEW are two
metrics results (capacity metrics -f json), two per-task files (capacity metrics --csv), or two
matrix run directories (cell by cell, matched by size, concurrency and mode). For X, S (mean, p50,
p95, p99), W, R and completion rate: base, new, change and a verdict. A change is a regression
when it is beyond the tolerance in the bad direction and, where per-task data exist, outside
sampling noise (a 99% bootstrap interval of the difference that excludes zero). Exit codes: 0 no
regression, 1 a regression, 2 bad input."""

CompareFormat = Annotated[str, format_option("json", "markdown", "csv", "html")]


@handle_errors
def command(
    base: Annotated[Path, typer.Argument(help="The baseline: metrics JSON, per-task CSV or run directory.")],
    new: Annotated[Path, typer.Argument(help="The run to judge, of the same kind.")],
    tolerance: Annotated[
        list[str] | None,
        typer.Option("--tolerance", help="Allowed change: 10% for every figure, or FIGURE=5% (e.g. S.p95=5%)."),
    ] = None,
    fmt: CompareFormat = "table",
    output: OutputOption = "-",
) -> None:
    from capacity.matrix.compare import compare_run_dirs  # numpy, the run directories
    from capacity.measure.compare import compare_files, parse_tolerances, read_tasks
    from capacity.render.comparison import comparison_report

    tolerances = parse_tolerances(tolerance or [])
    if base.is_dir() or new.is_dir():
        comparison, base_tasks, new_tasks = compare_run_dirs(base, new, tolerances)
        if fmt != "html":
            base_tasks = new_tasks = None  # the distributions are drawn for the HTML only
    else:
        comparison = compare_files(base, new, tolerances)
        per_task = fmt == "html" and base.suffix == new.suffix == ".csv"
        base_tasks, new_tasks = (read_tasks(base), read_tasks(new)) if per_task else (None, None)
    emit(comparison_report(comparison, base_tasks, new_tasks), fmt, output)
    if comparison.regressions:
        found = [f"{cell.cell} {c.figure}" for cell in comparison.cells for c in cell.regressions]
        raise CheckFailed(f"{comparison.regressions} regressions against {base}: {', '.join(found)}")
