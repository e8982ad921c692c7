"""``capacity usl``: fit the Universal Scalability Law to (concurrency, throughput) points."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from capacity.cli._common import FormatOption, OutputOption, emit, handle_errors
from capacity.render.model import Report, Table
from capacity.sizing.usl import TRUSTED_POINTS, fit, publish, read_points

HELP = """Fit Gunther's Universal Scalability Law X(N) = lambda N / (1 + sigma (N-1) + kappa N (N-1))
to a CSV of concurrency,throughput (or a matrix run's results.csv: its burst cells, slots =
concurrency x replicas, disturbed cells left out, every repeat a point) by bounded least squares;
report sigma (contention), kappa (coherency), lambda, the peak concurrency N* = sqrt((1 - sigma) /
kappa), each with its 95% interval (standard errors as R's nls reports them, Student's t with n-3
degrees of freedom; N* by the delta method), R^2, predictions (--predict N, repeatable), and a
verdict: the recommended concurrency with its 95% range, or "inconclusive" with the reason and
the levels to test next. Refuses fewer than 3 points; warns below 6."""


def interval_text(value: float, interval: tuple[float, float | None] | None, digits: str = ".4g") -> str:
    if interval is None:
        return f"{value:{digits}}"
    high = "inf" if interval[1] is None else f"{interval[1]:{digits}}"
    return f"{value:{digits}} (95%: {interval[0]:{digits}} to {high})"


@handle_errors
def command(
    data: Annotated[Path, typer.Argument(help="CSV with columns concurrency,throughput (and optionally replicas).")],
    predict: Annotated[list[int] | None, typer.Option("--predict", help="Concurrency to predict (repeatable).")] = None,
    size: Annotated[
        str | None, typer.Option(help="Matrix results with several sizes: the one to fit (e.g. 1MB).")
    ] = None,
    fmt: FormatOption = "table",
    output: OutputOption = "-",
) -> None:
    n, x, notes = read_points(data, size)
    result = fit(n, x)
    warnings = list(notes)
    if result.points < TRUSTED_POINTS:
        warnings.append(
            f"only {result.points} points: too few points to trust the fit (aim for {TRUSTED_POINTS}+, "
            "beyond the expected peak)"
        )
    tested = sorted({int(v) for v in n})
    targets = predict or tested
    predictions = [{"concurrency": c, "throughput": float(result.throughput(c))} for c in targets]
    published = publish(result, sorted(zip(n.tolist(), x.tolist(), strict=True)), tested)
    payload: dict[str, Any] = {
        **published,
        "points": result.points,
        "predictions": predictions,
        "warnings": warnings,
    }
    peak = result.peak_concurrency
    verdict = published["verdict"]
    answer = (
        f"{published['recommended_concurrency']} (95% range {published['recommended_range'][0]}-"
        f"{published['recommended_range'][1]})"
        if verdict == "recommended"
        else f"inconclusive: {published['reason']}; test next: {', '.join(map(str, published['next_levels']))}"
    )
    summary = (
        ("sigma (contention)", interval_text(result.sigma, result.interval(0))),
        ("kappa (coherency)", interval_text(result.kappa, result.interval(1))),
        ("lambda (throughput of one)", interval_text(result.lambda_, result.interval(2))),
        (
            "Peak concurrency N*",
            "infinite (kappa = 0)" if math.isinf(peak) else interval_text(peak, result.peak_concurrency_ci95, ".1f"),
        ),
        ("Throughput at N*", f"{result.peak_throughput:.6g}"),
        ("R^2", f"{result.r_squared:.4f}"),
        ("Recommended concurrency", answer),
    )
    table = Table(
        "Predictions",
        ("Concurrency", "Throughput"),
        tuple((str(p["concurrency"]), f"{p['throughput']:.4g}") for p in predictions),
    )
    emit(Report("Universal Scalability Law", payload, summary, (table,), tuple(warnings)), fmt, output)
