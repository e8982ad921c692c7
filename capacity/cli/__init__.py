"""The ``capacity`` command line: a thin shell over the core, one module per command."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import typer

from capacity import __version__
from capacity.cli import (
    assess,
    autoscale,
    bench,
    broker,
    collect,
    compare,
    cost,
    inject,
    matrix,
    metrics,
    plan,
    probe,
    recommend,
    report,
    scaledrun,
    simulate,
    usl,
)
from capacity.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK
from capacity.secrets import mask


def _short(text: str) -> str:
    """The first sentence of a command's help, on one line, for the command list."""
    return " ".join(text.split()).split(". ")[0].rstrip(".") + "."


app = typer.Typer(
    name="capacity",
    help="Capacity planning for background-job workers (Celery on SQS or Redis).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # help texts are plain: "[env: CAPACITY_BROKER_URL]" is text, not rich markup to strip (it
    # left "Broker URL as your Celery app has it .")
    rich_markup_mode=None,
)
app.add_typer(recommend.app, name="recommend", help=recommend.HELP, short_help=_short(recommend.HELP))
app.command("assess", help=assess.HELP, short_help=_short(assess.HELP))(assess.command)
app.command("cost", help=cost.HELP, short_help=_short(cost.HELP))(cost.command)
app.command("inject", help=inject.HELP, short_help=_short(inject.HELP))(inject.command)
app.command("metrics", help=metrics.HELP, short_help=_short(metrics.HELP))(metrics.command)
app.command("collect", help=collect.HELP, short_help=_short(collect.HELP))(collect.command)
app.command("plan", help=plan.HELP, short_help=_short(plan.HELP))(plan.command)
app.command("simulate", help=simulate.HELP, short_help=_short(simulate.HELP))(simulate.command)
app.command("autoscale", help=autoscale.HELP, short_help=_short(autoscale.HELP))(autoscale.command)
app.command("scaled-run", help=scaledrun.HELP, short_help=_short(scaledrun.HELP))(scaledrun.command)
app.command("usl", help=usl.HELP, short_help=_short(usl.HELP))(usl.command)
app.add_typer(matrix.app, name="matrix", help=matrix.HELP, short_help=_short(matrix.HELP))
app.command("report", help=report.HELP, short_help=_short(report.HELP))(report.command)
app.command("bench", help=bench.HELP, short_help=_short(bench.HELP))(bench.command)
app.command("compare", help=compare.HELP, short_help=_short(compare.HELP))(compare.command)
app.add_typer(probe.app, name="probe", help=probe.HELP, short_help=_short(probe.HELP))
app.add_typer(broker.app, name="broker", help=broker.HELP, short_help=_short(broker.HELP))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"capacity {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Capacity planning for background-job workers (Celery on SQS or Redis)."""
    from capacity.secrets import register_environment

    register_environment()  # every secret the environment holds is masked by value wherever shown


def _click_class(name: str) -> type[Exception]:
    """One of click's exception classes as typer raises them (typer 0.2x carries its own copy of
    click, so ``click.UsageError`` from the click package would not catch them)."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


_UsageError = _click_class("UsageError")
_ClickException = _click_class("ClickException")


def _usage_line(error: Any) -> str:
    """A usage error as one line: the message and where the command's help is (click prints a box)."""
    message = mask(" ".join(error.format_message().split()))
    command = error.ctx.command_path if getattr(error, "ctx", None) is not None else "capacity"
    return f"error: {message} (see '{command} --help')"


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting: every outcome is one of the codes
    in ``capacity.errors`` and every error one line on stderr. An exception nothing translated is
    a bug: one line naming it, exit 70 (EX_SOFTWARE), the traceback only with CAPACITY_DEBUG=1."""
    try:
        code = app(args=argv, prog_name="capacity", standalone_mode=False)
    except _UsageError as error:
        if error.format_message():  # type: ignore[attr-defined]  # empty: the help was printed (no arguments)
            _stderr(_usage_line(error))
        return EXIT_BAD_INPUT
    except _ClickException as error:  # e.g. a FileError from a file argument
        _stderr(f"error: {mask(' '.join(error.format_message().split()))}")  # type: ignore[attr-defined]
        return EXIT_BAD_INPUT
    except (typer.Abort, KeyboardInterrupt):
        _stderr("error: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `capacity ... | head`: the reader left, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:
        if os.environ.get("CAPACITY_DEBUG"):
            raise
        text = mask(" ".join(str(error).split()))[:300]
        _stderr(f"error: internal error, please report it: {type(error).__name__}: {text}")
        return EXIT_INTERNAL
    return code if isinstance(code, int) else EXIT_OK


def _stderr(line: str) -> None:
    with contextlib.suppress(BrokenPipeError, ValueError):
        print(line, file=sys.stderr, flush=True)


def main() -> None:
    sys.exit(run())
