"""``capacity matrix``: the test matrix of seed 003 (``plan`` prints its empty results table)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from capacity.cli._common import FormatOption, OutputOption, emit, handle_errors
from capacity.matrix import load_matrix, results_table
from capacity.report import Report

HELP = """The test matrix (seed 003: payload sizes x worker concurrency x burst/sustained), from
profiles/matrix.yaml or your own FILE."""

app = typer.Typer(help=HELP, no_args_is_help=True)


@app.command("plan", help="Print the matrix's empty results table in seed 003's shape.")
@handle_errors
def plan(
    file: Annotated[Path | None, typer.Argument(help="Matrix YAML [default: profiles/matrix.yaml].")] = None,
    fmt: FormatOption = "markdown",
    output: OutputOption = "-",
) -> None:
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
