"""``capacity collect``: record Celery task events to a file for ``capacity metrics``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from capacity.brokers import resolve_broker_url
from capacity.cli._common import Interrupts, handle_errors
from capacity.measure.collect import collect
from capacity.units import parse_duration

HELP = """Record Celery task events (received, started, succeeded, failed, revoked) from the broker
to a JSON Lines file, until Ctrl-C or --for. Workers must send events (celery worker -E). Not for
SQS, which carries no events: use the probe there."""


@handle_errors
def command(
    out: Annotated[Path, typer.Option("--out", help="Events file to append to.")],
    broker: Annotated[
        str | None, typer.Option(help="Broker URL [env: CAPACITY_BROKER_URL, CELERY_BROKER_URL].")
    ] = None,
    for_: Annotated[str | None, typer.Option("--for", help="Stop after this long, e.g. 10m.")] = None,
) -> None:
    url, _ = resolve_broker_url(broker)
    with Interrupts() as interrupts:
        written = collect(url, out, parse_duration(for_, "--for") if for_ is not None else None, interrupts.stop)
    typer.echo(f"{written} task events written to {out}")
