"""``capacity report``: the report of matrix runs, as Markdown, CSV, JSON and HTML with plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from capacity.cli._common import OutputOption, RunFormat, emit, handle_errors
from capacity.errors import CheckFailed, Inconclusive

HELP = """Report on one or more matrix run directories: seed 003's results table, the USL fit and
recommended concurrency per size and mode, the queueing model's predictions against the
measurement, and plots (throughput vs concurrency with the USL curve and N*, service times per
cell, queue depth of sustained cells, worker CPU and memory). Writes report.md, report.csv,
report.json, report.html (plots embedded; opens offline) and the PNG files to --out. With
--baseline, exit 1 on a regression and 6 when the comparison is inconclusive (a disturbed side)."""


@handle_errors
def command(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories from capacity matrix run or bench.")],
    out: Annotated[Path | None, typer.Option(help="Report directory [default: FIRST_RUN_DIR/report].")] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(help="An earlier run directory: compare the first run with it (exit 1 on a regression)."),
    ] = None,
    fmt: RunFormat = "table",
    output: OutputOption = "-",
) -> None:
    from capacity.cli.matrix import fail_on_failed_cells
    from capacity.matrix.analysis import for_terminal, write  # the matrix extra

    report, written, regressions, inconclusive = write(run_dirs, out or run_dirs[0] / "report", baseline)
    emit(for_terminal(report) if fmt == "table" else report, fmt, output)
    Console(stderr=True).print(f"report: {written['report.html']}", highlight=False)
    fail_on_failed_cells(run_dirs)
    if regressions:
        raise CheckFailed(f"{regressions} regressions against the baseline {baseline} (see the comparison table)")
    if inconclusive:
        raise Inconclusive(f"inconclusive: the comparison with {baseline} cannot be judged: {inconclusive[0]}")
