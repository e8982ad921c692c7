"""``capacity top``: a broker's queues and workers now, refreshing in place; read-only."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from capacity.brokers import resolve_broker_url
from capacity.cli._common import Interrupts, handle_errors
from capacity.errors import InputError
from capacity.units import parse_duration

HELP = """Watch a broker's queues and workers, read-only (it sends nothing, changes nothing: safe on a
production broker): per queue the tasks waiting, in flight, delayed and failed, its consumers, the
rates in and out, and for BullMQ the oldest waiting job's age; per Celery worker (its own inspect
broadcasts) the pool size, tasks running, reserved and processed; BullMQ's workers by their Redis
connections. Refreshes every --interval until Ctrl-C; --once prints one snapshot (-f json for
scripts). Exit codes: 0 done, 2 bad input, 3 broker unreachable, 130 interrupted."""

Opt = typer.Option


@handle_errors
def command(
    broker: Annotated[str | None, Opt(help="Broker URL [env: CAPACITY_BROKER_URL, CELERY_BROKER_URL].")] = None,
    queue: Annotated[list[str] | None, Opt(help="A queue to watch (repeatable) [default: celery].")] = None,
    protocol: Annotated[str, Opt(help="celery, or bullmq for BullMQ's Node workers on Redis.")] = "celery",
    bullmq_prefix: Annotated[str, Opt(help="BullMQ: the queues' key prefix.")] = "bull",
    interval: Annotated[str, Opt(help="Time between refreshes.")] = "2s",
    once: Annotated[bool, Opt("--once", help="One snapshot, then exit.")] = False,
    fmt: Annotated[str, Opt("--format", "-f", help="table or json.")] = "table",
    prometheus: Annotated[
        str | None,
        Opt(help="Also serve the queues' depth (and live timings) at http://HOST:PORT/metrics while watching."),
    ] = None,
) -> None:
    from capacity.measure.top import Top

    if fmt not in ("table", "json"):
        raise InputError(f"--format {fmt!r}: top prints a table or json")
    every = parse_duration(interval, "--interval")
    if every < 0.5:
        raise InputError("--interval: at least 0.5s (each refresh asks every worker)")
    if once and prometheus is not None:
        raise InputError("--prometheus serves while top watches: drop --once")
    url, env_queue = resolve_broker_url(broker)
    queues = list(queue or [env_queue or "celery"])
    top = Top(url, queues, protocol, bullmq_prefix if protocol == "bullmq" else None)
    exporter = None
    try:
        if once:
            _show(top.snapshot(), fmt)
            return
        if prometheus is not None:
            import os

            from capacity.load.exporter import Exporter, parse_address

            depths = {name: broker.depth for name, broker in top.brokers.items()}
            exporter = Exporter(parse_address(prometheus), depths, os.environ.get("CAPACITY_TIMINGS"))
        _live(top, every)
    finally:
        if exporter is not None:
            exporter.close()
        top.close()


def _show(snapshot: object, fmt: str) -> None:
    from capacity.measure.top import Snapshot

    assert isinstance(snapshot, Snapshot)
    if fmt == "json":
        typer.echo(json.dumps(snapshot.to_json(), indent=2))
        return
    from rich.console import Console

    Console().print(_tables(snapshot))


def _tables(snapshot: object) -> object:
    from rich.console import Group
    from rich.table import Table

    from capacity.measure.top import Snapshot

    assert isinstance(snapshot, Snapshot)

    def text(value: object, digits: int = 0) -> str:
        if value is None:
            return "-"
        return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"

    queues = Table(title=f"Queues on {snapshot.broker} (read-only)", title_justify="left")
    for column in (
        "Queue",
        "Waiting",
        "In flight",
        "Delayed",
        "Failed",
        "Consumers",
        "In/s",
        "Out/s",
        "Oldest wait (s)",
    ):
        queues.add_column(column, justify="left" if column == "Queue" else "right", min_width=_widest(column))
    for q in snapshot.queues:
        queues.add_row(
            q.queue, text(q.waiting), text(q.in_flight), text(q.delayed), text(q.failed), text(q.consumers),
            text(q.rate_in_per_s, 1), text(q.rate_out_per_s, 1), text(q.oldest_wait_s, 1),
        )  # fmt: skip
    workers = Table(title=f"Workers ({len(snapshot.workers)})", title_justify="left")
    for column in ("Worker", "Slots", "Running", "Reserved", "Processed"):
        workers.add_column(column, justify="left" if column == "Worker" else "right", min_width=_widest(column))
    for w in snapshot.workers:
        workers.add_row(w.name, text(w.concurrency), text(w.active), text(w.reserved), text(w.processed))
    notes = [f"note: {n}" for n in snapshot.notes]
    return Group(queues, workers, *notes)


def _widest(title: str) -> int:
    """A column is never narrower than its title's longest word (no "Waiti…" on 80 columns)."""
    return max(len(word) for word in title.split())


def _live(top: object, every: float) -> None:
    from rich.console import Console
    from rich.live import Live

    from capacity.measure.top import Top

    assert isinstance(top, Top)
    with Interrupts() as interrupts, Live(console=Console(), auto_refresh=False) as live:
        while not interrupts.stop.is_set():
            live.update(_tables(top.snapshot()), refresh=True)  # type: ignore[arg-type]
            interrupts.stop.wait(every)
