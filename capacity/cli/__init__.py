"""The ``capacity`` command line: a thin shell over the core, one module per command."""

from __future__ import annotations

import typer

from capacity import __version__
from capacity.cli import assess, collect, cost, inject, matrix, metrics, plan, recommend, simulate, usl

app = typer.Typer(
    name="capacity",
    help="Capacity planning for background-job workers (Celery on SQS or Redis).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("recommend", help=recommend.HELP)(recommend.command)
app.command("assess", help=assess.HELP)(assess.command)
app.command("cost", help=cost.HELP)(cost.command)
app.command("inject", help=inject.HELP)(inject.command)
app.command("metrics", help=metrics.HELP)(metrics.command)
app.command("collect", help=collect.HELP)(collect.command)
app.command("plan", help=plan.HELP)(plan.command)
app.command("simulate", help=simulate.HELP)(simulate.command)
app.command("usl", help=usl.HELP)(usl.command)
app.add_typer(matrix.app, name="matrix", help=matrix.HELP)


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
