"""The ``capacity`` command line: a thin shell over the core, one module per command."""

from __future__ import annotations

import typer

from capacity import __version__
from capacity.cli import (
    assess,
    bench,
    collect,
    compare,
    cost,
    inject,
    matrix,
    metrics,
    plan,
    recommend,
    report,
    simulate,
    usl,
)


def _short(text: str) -> str:
    """The first sentence of a command's help, on one line, for the command list."""
    return " ".join(text.split()).split(". ")[0].rstrip(".") + "."


app = typer.Typer(
    name="capacity",
    help="Capacity planning for background-job workers (Celery on SQS or Redis).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(recommend.app, name="recommend", help=recommend.HELP, short_help=_short(recommend.HELP))
app.command("assess", help=assess.HELP, short_help=_short(assess.HELP))(assess.command)
app.command("cost", help=cost.HELP, short_help=_short(cost.HELP))(cost.command)
app.command("inject", help=inject.HELP, short_help=_short(inject.HELP))(inject.command)
app.command("metrics", help=metrics.HELP, short_help=_short(metrics.HELP))(metrics.command)
app.command("collect", help=collect.HELP, short_help=_short(collect.HELP))(collect.command)
app.command("plan", help=plan.HELP, short_help=_short(plan.HELP))(plan.command)
app.command("simulate", help=simulate.HELP, short_help=_short(simulate.HELP))(simulate.command)
app.command("usl", help=usl.HELP, short_help=_short(usl.HELP))(usl.command)
app.add_typer(matrix.app, name="matrix", help=matrix.HELP, short_help=_short(matrix.HELP))
app.command("report", help=report.HELP, short_help=_short(report.HELP))(report.command)
app.command("bench", help=bench.HELP, short_help=_short(bench.HELP))(bench.command)
app.command("compare", help=compare.HELP, short_help=_short(compare.HELP))(compare.command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"capacity {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Capacity planning for background-job workers (Celery on SQS or Redis)."""


def main() -> None:
    app()
