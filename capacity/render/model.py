"""The one shape every command's result is rendered from: exporters know nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Table:
    """A titled table: column names and rows of already-formatted cells."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Report:
    """A result ready to export.

    ``data`` is the public JSON (its keys are an interface), ``summary`` the human key/value
    lines, ``tables`` any tabular detail, ``notes`` what the user must know (which formula or
    table was used, contradictions in the seeds). ``env`` and ``manifests`` exist only for the
    modes that have them; ``csv_table`` is what the CSV format writes when it is not the first
    table; ``images`` are the PNG plots (name, bytes) the HTML format embeds.
    """

    title: str
    data: dict[str, Any]
    summary: tuple[tuple[str, str], ...] = ()
    tables: tuple[Table, ...] = ()
    notes: tuple[str, ...] = ()
    env: dict[str, str] | None = None
    manifests: tuple[dict[str, Any], ...] | None = field(default=None)
    csv_table: Table | None = None
    #: the BullMQ Worker options a Node user pastes ({concurrency, limiter}), where the result has them
    worker_options: dict[str, Any] | None = None
    images: tuple[tuple[str, bytes], ...] = ()
    #: a fleet file (capacity simulate/autoscale --fleet) of the topology, where the result has one
    fleet: dict[str, Any] | None = None


def scalars_table(data: dict[str, Any]) -> Table:
    """One header and one row of the scalar figures (the CSV a spreadsheet takes)."""
    scalars = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
    return Table("Figures", tuple(scalars), (tuple("" if v is None else str(v) for v in scalars.values()),))
