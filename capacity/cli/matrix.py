"""``capacity matrix``: the test matrix of seed 003 (``plan`` prints its empty results table,
``run`` fills it against a real worker)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from capacity.brokers import broker_class, resolve_broker_url
from capacity.cli._common import (
    FormatOption,
    Interrupts,
    OutputOption,
    RunFormat,
    emit,
    handle_errors,
    json_object_option,
    note,
)
from capacity.errors import CheckFailed, InputError, Interrupted
from capacity.load.tasklog import RESULTS_DIR
from capacity.matrix.spec import CellSpec, Matrix, cells, load_matrix, results_table
from capacity.render.model import Report
from capacity.secrets import mask
from capacity.units import parse_duration

if TYPE_CHECKING:  # imported where used: the command line loads without the heavy extras
    from capacity.matrix.run import RunConfig

HELP = """The test matrix (seed 003: payload sizes x worker concurrency x burst/sustained), from
profiles/matrix.yaml or your own FILE."""

RUN_HELP = """Run every cell of the matrix against a real worker and fill the results table.

Per cell: start the worker with that concurrency (--worker-cmd, or your --worker-up/--worker-down
templates), inject, wait for the queue to drain and every task to finish, stop the worker, and
compute the metrics from the probe's timings, with the worker's CPU and memory. Templates take
{concurrency}, {queue}, {broker}, {cell}, {timings} and {python}. The run directory holds
results.csv/results.json and one folder per cell; a rerun skips finished cells. Exit codes:
0 done, 2 bad input, 3 broker unreachable, 4 a cell failed (worker would not start, tasks never
finished), 130 interrupted (finished cells are kept)."""

app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None)
Opt = typer.Option
MatrixFile = Annotated[Path | None, typer.Argument(help="Matrix YAML [default: profiles/matrix.yaml].")]
# options `matrix run` and `bench` share
WorkerCmd = Annotated[
    str | None, Opt(help="Worker command template, started per cell [default: the reference worker].")
]
DrainTimeout = Annotated[str, Opt(help="How long a cell may take to finish after the last send.")]
TransportOptions = Annotated[str | None, Opt(help="JSON broker_transport_options for the injector.")]
Purge = Annotated[bool, Opt("--purge", help="Empty the queue before a cell when it holds messages.")]
Quiet = Annotated[bool, Opt("--quiet", "-q", help="No progress display.")]
Protocol = Annotated[
    str,
    Opt(help="celery, or bullmq: BullMQ jobs for a Node worker (default: the project's), timed by BullMQ itself."),
]
BullMQPrefix = Annotated[str, Opt(help="BullMQ: the queues' key prefix.")]
Repeats = Annotated[
    int | None,
    Opt(
        min=1,
        max=100,
        help="Run every cell N times, interleaved (all cells once, then again): each cell's figures get "
        "a 95% interval across repeats [default: the matrix file's repeats, else 1].",
    ),
]


@app.command("plan", help="Print the matrix's empty results table in seed 003's shape.")
@handle_errors
def plan(file: MatrixFile = None, fmt: FormatOption = "markdown", output: OutputOption = "-") -> None:
    matrix = load_matrix(file)
    table = results_table(matrix)
    data = {
        "task": matrix.task,
        "queue": matrix.queue,
        "cells": [
            dict(zip(("size", "concurrency", "mode", "x_per_min", "s_mean_s", "notes"), row, strict=True))
            for row in table.rows
        ],
    }
    emit(
        Report(f"Test matrix ({len(table.rows)} cells)", data, (), (table,), (matrix.source,) if matrix.source else ()),
        fmt,
        output,
    )


def execute(config: RunConfig, fresh: bool, quiet: bool) -> None:
    from capacity.matrix.results import prepare_run_dir, read_results
    from capacity.matrix.run import run_matrix

    """Run the matrix with a progress display across cells; Ctrl-C stops it (exit 130)."""
    prepare_run_dir(config.run_dir, config.matrix, fresh)
    console = Console(stderr=True)
    total = len(cells(config.matrix))
    bar = Progress(
        TextColumn("[bold]matrix[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[cell]}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    )
    task = bar.add_task("cells", total=total, cell="")

    def on_progress(cell: CellSpec, phase: str) -> None:
        if phase in ("done", "skipped"):
            bar.advance(task)
            if phase == "skipped":
                bar.console.print(f"{cell.cell_id}: finished earlier, skipped", highlight=False)
        bar.update(task, cell=f"{cell.cell_id}: {phase}")

    with Interrupts() as interrupts, bar:
        try:
            run_matrix(config, interrupts.stop, on_progress)
        except Interrupted:
            done = len(read_results(config.run_dir))
            raise Interrupted(
                f"interrupted; {done} finished cell(s) kept in {config.run_dir}: "
                f"rerun with --run-dir {config.run_dir} to go on"
            ) from None


def show(run_dir: Path, fmt: str, output: str) -> None:
    from capacity.matrix.analysis import build

    report = build([run_dir])[0]
    emit(Report(report.title, report.data, report.summary, report.tables[:1], ()), fmt, output)
    Console(stderr=True).print(f"run directory: {run_dir}", highlight=False)


def default_run_dir(matrix_file: Path | None) -> Path:
    return RESULTS_DIR / f"matrix-{(matrix_file.stem if matrix_file else 'matrix')}"


@app.command("run", help=RUN_HELP, short_help="Run every cell against a real worker and fill the results table.")
@handle_errors
def run(
    file: MatrixFile = None,
    broker: Annotated[str | None, Opt(help="Broker URL [env: CAPACITY_BROKER_URL, CELERY_BROKER_URL].")] = None,
    worker_cmd: WorkerCmd = None,
    worker_up: Annotated[str | None, Opt(help="Shell template that starts or scales the worker per cell.")] = None,
    worker_down: Annotated[str | None, Opt(help="Shell template that stops it after the cell.")] = None,
    timings: Annotated[
        str | None,
        Opt(
            help="Timings: a probe directory or Redis URL your workers write (needed with --worker-up), 'events' "
            "(Celery events per cell; workers need -E), or backend:URL [default: a probe directory per cell]."
        ),
    ] = None,
    run_dir: Annotated[Path | None, Opt(help=f"Run directory [default: {RESULTS_DIR}/matrix-<FILE stem>].")] = None,
    fresh: Annotated[bool, Opt("--fresh", help="Start over: delete the run directory's earlier cells.")] = False,
    purge: Purge = False,
    drain_timeout: DrainTimeout = "5m",
    ready_timeout: Annotated[str, Opt(help="How long the worker may take to log 'ready.'.")] = "60s",
    settle: Annotated[str, Opt(help="Wait after --worker-up before injecting.")] = "5s",
    cooldown: Annotated[
        str | None, Opt(help="Pause between cells [default: 11s on SQS, where a stopped worker's long poll lingers; 0]")
    ] = None,
    transport_options: TransportOptions = None,
    upload_dir: Annotated[str, Opt(help="Where payload files are created.")] = "load_tests/uploads",
    quiet: Quiet = False,
    protocol: Protocol = "celery",
    bullmq_prefix: BullMQPrefix = "bull",
    repeats: Repeats = None,
    prometheus: Annotated[
        str | None, Opt(help="Serve each cell's live figures at http://HOST:PORT/metrics while it runs (as inject).")
    ] = None,
    fmt: RunFormat = "table",
    output: OutputOption = "-",
) -> None:
    from capacity.load.exporter import parse_address
    from capacity.matrix.processes import WorkerControl, reference_worker
    from capacity.matrix.run import EVENTS, RunConfig

    matrix: Matrix = with_repeats(load_matrix(file), repeats)
    from capacity.load.inject import check_job_options

    check_job_options(matrix.job_options, protocol, "the matrix file's job_options")
    if matrix.mix:  # refused in one line before any worker starts, not at the first cell
        from capacity.load.mix import mix_from

        mix_from(matrix.mix, "the matrix file's mix", Path.cwd())
    url, _ = resolve_broker_url(broker)
    if worker_cmd and (worker_up or worker_down):
        raise InputError("--worker-cmd and --worker-up/--worker-down exclude each other")
    if bool(worker_up) != bool(worker_down):
        raise InputError("--worker-up and --worker-down go together")
    if worker_up and not timings:
        raise InputError("--worker-up needs --timings: the probe sink your workers write to (a directory or Redis URL)")
    if timings == EVENTS and not broker_class(url, protocol).supports_events:
        where = broker_class(url, protocol).name
        raise InputError(f"--timings events: Celery has no events on {where}; use the default")
    control = WorkerControl(
        command=None if worker_up else (worker_cmd or reference_worker(protocol)),
        up=worker_up,
        down=worker_down,
        ready_timeout_s=parse_duration(ready_timeout, "--ready-timeout"),
        settle_s=parse_duration(settle, "--settle"),
        probe=protocol == "celery" and timings != EVENTS,
    )
    # said once the run went through: a run that fails says one line, its error
    said = probe_note(worker_cmd) if control.probe and worker_cmd else None
    config = RunConfig(
        matrix=matrix,
        broker_url=url,
        run_dir=run_dir or default_run_dir(file),
        worker=control,
        timings=timings,
        transport_options=json_object_option(transport_options, "--transport-options"),
        upload_dir=upload_dir,
        drain_timeout_s=parse_duration(drain_timeout, "--drain-timeout"),
        purge=purge,
        cooldown_s=parse_duration(cooldown, "--cooldown") if cooldown is not None else None,
        protocol=protocol,
        prefix=bullmq_prefix if protocol == "bullmq" else None,
        prometheus=parse_address(prometheus) if prometheus is not None else None,
    )
    execute(config, fresh, quiet)
    if said:
        note(said)
    show(config.run_dir, fmt, output)
    fail_on_failed_cells([config.run_dir])


def probe_note(worker_cmd: str) -> str | None:
    """What the run did about the probe in the user's Celery worker command (#22), or None."""
    import shlex

    from capacity.matrix.processes import with_probe

    try:
        words = shlex.split(worker_cmd)
    except ValueError as exc:
        raise InputError(f"--worker-cmd: {exc}") from None
    added = with_probe(words)
    if added is None:
        return (
            "--worker-cmd is not a `celery ... worker` command: the probe was not added; if no timings came "
            "from it, load it in that worker (celery worker --include capacity.probe, or the file `capacity "
            "probe write` makes), or give --timings events"
        )
    if added != words:
        return "added --include capacity.probe to --worker-cmd: the timings came from the probe"
    return None


def with_repeats(matrix: Matrix, repeats: int | None) -> Matrix:
    """The matrix with --repeats applied (the flag wins over the file)."""
    return matrix if repeats is None else matrix.model_copy(update={"repeats": repeats})


def fail_on_failed_cells(run_dirs: list[Path]) -> None:
    """Exit 1 when a cell's tasks failed or never ran (completion critical): a failed run is not 0.
    Every such cell is named on stderr with its first errors; the failure itself is one line."""
    from capacity.matrix.analysis import failing_cells

    cells = failing_cells(run_dirs)
    if not cells:
        return
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for line in cells:
        console.print(f"  {mask(line)}", markup=False)
    raise CheckFailed(f"{len(cells)} cells below the critical completion rate: {cells[0]}")


__all__ = ["app", "default_run_dir", "execute", "fail_on_failed_cells", "show", "with_repeats"]
