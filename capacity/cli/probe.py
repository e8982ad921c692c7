"""``capacity probe write DIR``: the worker-side probe as one file for a worker image that has
Celery and nothing of this package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from capacity import files
from capacity.cli._common import handle_errors

HELP = """The timings probe for workers: `capacity probe write DIR` writes capacity_probe.py (standard
library and Celery only; a Redis sink when redis is importable), the same source as
capacity.probe. Load it with PYTHONPATH=DIR celery -A app worker --include capacity_probe and set
CAPACITY_TIMINGS to a directory or a Redis URL."""

NAME = "capacity_probe.py"

app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None)


@app.command("write", help="Write capacity_probe.py into DIR (created if missing) and print its path.")
@handle_errors
def write(
    directory: Annotated[
        Path, typer.Argument(help="Where to write capacity_probe.py, e.g. your worker's build context.")
    ],
) -> None:
    from capacity.workerside import probe

    source = Path(probe.__file__).read_text(encoding="utf-8")  # one source: what --include capacity.probe runs
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / NAME
    files.write_text(target, source)
    typer.echo(str(target))


__all__ = ["HELP", "app"]
