"""``capacity compare``: a run against a baseline, as a regression gate for CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from capacity.cli._common import OutputOption, emit, format_option, handle_errors
from capacity.errors import CheckFailed, Inconclusive, InputError

HELP = """Compare runs with a baseline and exit 1 on a regression (a CI gate). BASE and NEW are
metrics results (capacity metrics -f json), per-task files (capacity metrics --csv), or matrix run
directories (cell by cell, matched on size, concurrency, replicas, pool, mode, rate and task; cells
in one side only are listed). Several runs a side: --base A --base B --new C --new D (a run
directory's repeats count as runs of each cell). For X, S (mean, p50, p95, p99), W, R and
completion rate: base, new, change and a verdict. A change is a regression when it is beyond the
tolerance in the bad direction and beyond run-to-run noise: a one-sided t-test on the log of each
run's figure, the variance pooled over the runs of both sides and shrunk toward a 5% prior (4
degrees of freedom); with one run a side the noise is unknown and a 10% noise floor stands in for
it (only large changes are caught: give 3 runs a side). Each figure at a one-sided 1%, Bonferroni
over the cells (a cell's figures move together with the host: one piece of evidence). A cell where a run was
disturbed (other processes took the CPU) or a side measured nothing is inconclusive. Exit codes:
0 no regression, 1 a regression, 2 bad input, 6 inconclusive."""

CompareFormat = Annotated[str, format_option("json", "markdown", "csv", "html")]


@handle_errors
def command(
    base: Annotated[
        Path | None, typer.Argument(help="The baseline: metrics JSON, per-task CSV or run directory.")
    ] = None,
    new: Annotated[Path | None, typer.Argument(help="The run to judge, of the same kind.")] = None,
    bases: Annotated[
        list[Path] | None, typer.Option("--base", help="A baseline run (repeatable: several runs a side).")
    ] = None,
    news: Annotated[list[Path] | None, typer.Option("--new", help="A run to judge (repeatable).")] = None,
    tolerance: Annotated[
        list[str] | None,
        typer.Option("--tolerance", help="Allowed change: 10% for every figure, or FIGURE=5% (e.g. S.p95=5%)."),
    ] = None,
    fmt: CompareFormat = "table",
    output: OutputOption = "-",
) -> None:
    from capacity.matrix.compare import compare_run_dirs  # numpy, the run directories
    from capacity.measure.compare import compare_files, parse_tolerances, pooled, read_tasks
    from capacity.render.comparison import comparison_report

    base_side = [*([base] if base is not None else []), *(bases or [])]
    new_side = [*([new] if new is not None else []), *(news or [])]
    if not base_side or not new_side:
        raise InputError("give BASE and NEW, or --base RUN ... --new RUN ... (one or more runs a side)")
    tolerances = parse_tolerances(tolerance or [])
    everything = base_side + new_side
    if any(p.is_dir() for p in everything):
        comparison, base_tasks, new_tasks = compare_run_dirs(base_side, new_side, tolerances)
        if fmt != "html":
            base_tasks = new_tasks = None  # the distributions are drawn for the HTML only
    else:
        comparison = compare_files(base_side, new_side, tolerances)
        per_task = fmt == "html" and all(p.suffix == ".csv" for p in everything)
        base_tasks = pooled([read_tasks(p) for p in base_side]) if per_task else None
        new_tasks = pooled([read_tasks(p) for p in new_side]) if per_task else None
    emit(comparison_report(comparison, base_tasks, new_tasks), fmt, output)
    if comparison.regressions:
        found = [f"{cell.cell} {c.figure}" for cell in comparison.cells for c in cell.regressions]
        raise CheckFailed(f"{comparison.regressions} regressions against {comparison.base}: {', '.join(found)}")
    if comparison.inconclusive:
        raise Inconclusive(
            f"inconclusive: {len(comparison.inconclusive)} cells cannot be judged: {comparison.inconclusive[0]}"
        )
