"""``capacity usl``: fit the Universal Scalability Law to (concurrency, throughput) points."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from capacity.cli._common import FormatOption, OutputOption, emit, handle_errors
from capacity.render.model import Report, Table
from capacity.sizing.usl import TRUSTED_POINTS, fit, read_points

HELP = """Fit Gunther's Universal Scalability Law X(N) = lambda N / (1 + sigma (N-1) + kappa N (N-1))
to a CSV of concurrency,throughput (or a matrix run's results.csv: its burst cells) by bounded
least squares; report sigma (contention), kappa
(coherency), lambda, the peak concurrency N* = sqrt((1 - sigma) / kappa), the throughput there,
R^2, and predictions (--predict N, repeatable). Refuses fewer than 3 points; warns below 6."""


@handle_errors
def command(
    data: Annotated[Path, typer.Argument(help="CSV with columns concurrency,throughput.")],
    predict: Annotated[list[int] | None, typer.Option("--predict", help="Concurrency to predict (repeatable).")] = None,
    size: Annotated[
        str | None, typer.Option(help="Matrix results with several sizes: the one to fit (e.g. 1MB).")
    ] = None,
    fmt: FormatOption = "table",
    output: OutputOption = "-",
) -> None:
    n, x = read_points(data, size)
    result = fit(n, x)
    warnings = []
    if result.points < TRUSTED_POINTS:
        warnings.append(
            f"only {result.points} points: too few points to trust the fit (aim for {TRUSTED_POINTS}+, "
            "beyond the expected peak)"
        )
    targets = predict or sorted({int(v) for v in n})
    predictions = [{"concurrency": c, "throughput": float(result.throughput(c))} for c in targets]
    peak = result.peak_concurrency
    payload: dict[str, Any] = {
        "sigma": result.sigma,
        "kappa": result.kappa,
        "lambda": result.lambda_,
        "peak_concurrency": peak,
        "peak_throughput": result.peak_throughput,
        "r_squared": result.r_squared,
        "points": result.points,
        "predictions": predictions,
        "warnings": warnings,
    }
    summary = (
        ("sigma (contention)", f"{result.sigma:.6g}"),
        ("kappa (coherency)", f"{result.kappa:.6g}"),
        ("lambda (throughput of one)", f"{result.lambda_:.6g}"),
        ("Peak concurrency N*", "infinite (kappa = 0)" if math.isinf(peak) else f"{peak:.2f}"),
        ("Throughput at N*", f"{result.peak_throughput:.6g}"),
        ("R^2", f"{result.r_squared:.4f}"),
    )
    table = Table(
        "Predictions",
        ("Concurrency", "Throughput"),
        tuple((str(p["concurrency"]), f"{p['throughput']:.4g}") for p in predictions),
    )
    emit(Report("Universal Scalability Law", payload, summary, (table,), tuple(warnings)), fmt, output)
