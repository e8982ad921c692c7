"""``capacity assess``: observed figures graded against the thresholds profile."""

from __future__ import annotations

from typing import Annotated

import typer

from capacity.cli._common import FormatOption, OutputOption, ProfilesOption, emit, handle_errors, profiles
from capacity.errors import CheckFailed
from capacity.render.builders import assessment_report
from capacity.sizing.assess import assess
from capacity.units import parse_duration

HELP = """Grade observed figures (any subset) as target / ok / warning / critical against the
thresholds profile (seed 002), with horizontal vs vertical scaling advice. Exits 1 when any
figure is critical, so it can gate a pipeline."""

Opt = typer.Option


@handle_errors
def command(
    queue_depth: Annotated[float | None, Opt(help="Jobs waiting.")] = None,
    wait: Annotated[str | None, Opt(help="Job wait time, e.g. 12s.")] = None,
    cpu_util: Annotated[float | None, Opt(help="CPU utilisation, percent.")] = None,
    mem_util: Annotated[float | None, Opt(help="Memory utilisation, percent.")] = None,
    active_pct: Annotated[float | None, Opt(help="Active jobs as percent of global concurrency.")] = None,
    completion_rate: Annotated[float | None, Opt(help="Job completion rate, percent.")] = None,
    profiles_dir: ProfilesOption = None,
    fmt: FormatOption = "table",
    output: OutputOption = "-",
) -> None:
    observed = {
        "queue_depth": queue_depth,
        "wait": parse_duration(wait, "--wait") if wait is not None else None,
        "cpu_util": cpu_util,
        "mem_util": mem_util,
        "active_pct": active_pct,
        "completion_rate": completion_rate,
    }
    thresholds = profiles(profiles_dir).thresholds
    result = assess({k: v for k, v in observed.items() if v is not None}, thresholds)
    emit(assessment_report(result, thresholds.source), fmt, output)
    if result.critical:
        critical = ", ".join(g.metric for g in result.grades if g.grade == "critical")
        raise CheckFailed(f"critical: {critical}")
