"""The ``capacity`` command line: a thin shell over the core, one module per command."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any

import typer

from capacity import __version__
from capacity.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, InterruptSignal
from capacity.secrets import mask

TyperGroup = typer.core.TyperGroup


#: every command: its module under capacity.cli, whether it is one command or a group of them, and
#: its line in `capacity --help` (its own --help shows the module's HELP in full).
#: A command's module, and what it imports (numba, DuckDB, kombu...), is loaded only when that
#: command runs or its own help is asked for: `capacity --help` and `capacity recommend` start in
#: a fraction of the time it took to import every command (issue #26).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "recommend": ("recommend", "group", "How many workers, with what concurrency, on which instances (seeds 000-004)."),
    "assess": ("assess", "command", "Grade observed figures against seed 002's thresholds, with scaling advice."),
    "cost": ("cost", "command", "Monthly cost of a worker fleet."),
    "inject": ("inject", "command", "Put real tasks on the broker and log every id it accepted."),
    "metrics": ("metrics", "command", "X, S, W, R and more from task logs joined with their timings."),
    "collect": ("collect", "command", "Record Celery task events from the broker to a JSON Lines file."),
    "plan": ("plan", "command", "Predict before you load-test (M/M/c, Erlang C): waits, slots, cost."),
    "simulate": (
        "simulate",
        "command",
        "Simulate worker slots (FCFS) under a burst, a rate, Poisson or replayed arrivals.",
    ),
    "autoscale": (
        "autoscale",
        "command",
        "Simulate a worker fleet under a scaling policy (KEDA and the HPA, AWS, seed 002).",
    ),
    "scaled-run": (
        "scaledrun",
        "command",
        "Validate the autoscaling simulation against real workers it starts and stops.",
    ),
    "usl": ("usl", "command", "Fit the Universal Scalability Law to throughput vs concurrency, with its uncertainty."),
    "matrix": ("matrix", "group", "The test matrix (seed 003): plan it, run it against a real worker."),
    "report": ("report", "command", "Report on matrix runs: results, USL fit, model vs measured, plots."),
    "bench": ("bench", "command", "The main job: seed 003's matrix end to end on an embedded default."),
    "compare": ("compare", "command", "Compare runs with a baseline; exit 1 on a regression (a CI gate)."),
    "probe": ("probe", "group", "The timings probe for workers: write capacity_probe.py."),
    "broker": ("broker", "group", "Start a local broker (Redis, SQS, RabbitMQ) for trying your own worker."),
    "top": ("top", "command", "Watch a broker's queues and workers, read-only."),
}


def load_command(name: str) -> Any:
    """The click command (or group) ``name``, its module imported now."""
    import importlib

    module_name, kind, short = COMMANDS[name]
    module = importlib.import_module(f"capacity.cli.{module_name}")
    if kind == "group":
        group = typer.main.get_group(module.app)
        group.name, group.help, group.short_help = name, module.HELP, short
        return group
    one = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False, add_completion=False)
    one.command(name, help=module.HELP, short_help=short)(module.command)
    return typer.main.get_command(one)


class LazyGroup(TyperGroup):
    """The root command: lists every command from ``COMMANDS`` and loads one when it is used."""

    @property  # type: ignore[override]
    def commands(self) -> dict[str, Any]:
        """Every command, loaded (for whoever walks the whole tree: the tests, the fuzz)."""
        for name in COMMANDS:
            self.get_command(None, name)
        return self._loaded

    @commands.setter
    def commands(self, value: dict[str, Any]) -> None:
        self._loaded = dict(value)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self._loaded and cmd_name in COMMANDS:
            self._loaded[cmd_name] = load_command(cmd_name)
        return self._loaded.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list from ``COMMANDS``: `capacity --help` loads no command's module."""
        rows = [(name, short) for name, (_, _, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="capacity",
    cls=LazyGroup,
    help="Capacity planning for background-job workers (Celery on SQS or Redis).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # help texts are plain: "[env: CAPACITY_BROKER_URL]" is text, not rich markup to strip (it
    # left "Broker URL as your Celery app has it .")
    rich_markup_mode=None,
)


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
    given = sys.argv[1:] if argv is None else argv
    for position, argument in enumerate(given, 1):
        # no path, URL or value can hold a NUL (a shell cannot even pass one; a program calling
        # run() can): said here once, rather than as each reader's "embedded null byte"
        if "\x00" in argument:
            _stderr(f"error: argument {position} contains a NUL byte (see 'capacity --help')")
            return EXIT_BAD_INPUT
    previous = _say_interrupts()
    try:
        code = app(args=argv, prog_name="capacity", standalone_mode=False)
    except InterruptSignal:  # while typer parses or a command's module loads
        _stderr("error: interrupted")
        return EXIT_INTERRUPTED
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
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return code if isinstance(code, int) else EXIT_OK


def _say_interrupts() -> Any:
    """Ctrl-C raises InterruptSignal until a command installs its own handling (typer turns a
    KeyboardInterrupt into exit 130 without a word); the handler it replaces, or None where
    handlers cannot be set (not the main thread)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise InterruptSignal()

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, interrupt)


def _stderr(line: str) -> None:
    with contextlib.suppress(BrokenPipeError, ValueError):
        print(line, file=sys.stderr, flush=True)


def main() -> None:
    sys.exit(run())
