"""The test matrix (seed 003): sizes x concurrencies x modes, as validated data, and its table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from capacity.errors import InputError
from capacity.load.payload import PayloadSpec
from capacity.profiles import DEFAULT_DIR, Bytes, _Frozen, load_file
from capacity.render.model import Table
from capacity.units import format_size, parse_rate

#: Celery's worker pools (celery worker --pool)
POOLS = ("prefork", "threads", "solo", "gevent", "eventlet")


class ModeSpec(_Frozen):
    mode: str
    count: int | None = Field(default=None, ge=1)
    rate: str | None = None
    duration: str | None = None

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, mode: str) -> str:
        if mode not in ("burst", "sustained", "ramp"):
            raise ValueError(f"mode must be burst, sustained or ramp, not {mode!r}")
        return mode

    @field_validator("rate")
    @classmethod
    def _valid_rate(cls, rate: str | None) -> str | None:
        if rate is not None:
            try:
                parse_rate(rate, "rate", bare_unit="min")
            except InputError as exc:  # as ValueError, so the profile error names the field
                raise ValueError(str(exc)) from None
        return rate

    @property
    def label(self) -> str:
        return self.mode.capitalize()

    @property
    def note(self) -> str:
        return f"rate={self.rate}" if self.rate else (f"count={self.count}" if self.count else "")


class Matrix(_Frozen):
    source: str = ""
    task: str = "capacity.worker.process_file"
    queue: str = "celery"
    #: the tasks' arguments, as ``inject`` takes them: ``args`` (a list) and ``kwargs`` (for the
    #: reference worker merged into its defaults, e.g. {sleep_s: 0.2}), or ``payload_template``
    #: (a JSON file), or ``payload_file`` (JSON Lines, taken in turn); placeholders whole or
    #: inside strings: $task_id, $seq, $uuid, $run_id, $file, $size_bytes, $user_id, $injected_at
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    payload_template: Path | None = None
    payload_file: Path | None = None
    #: environment variables for the worker of each cell, templated like --worker-cmd
    #: (``WORKER_CONCURRENCY: "{concurrency}"``): for apps that read their settings from the environment
    env: dict[str, str] = Field(default_factory=dict)
    #: a task mix, as ``inject --mix`` takes it: a list of {task, weight, args|kwargs|payload_file,
    #: queue}; every cell sends the mix (its classes apportioned by weight), and each cell's
    #: metrics split by task. Payload files are read from the folder the run starts in
    mix: list[dict[str, Any]] | None = None
    #: BullMQ: the job options your producer sets (attempts, removeOnComplete, backoff...), as
    #: ``inject --job-options`` takes them
    job_options: dict[str, Any] = Field(default_factory=dict)
    #: a BullMQ limiter the worker runs with (max jobs per duration, e.g. 100/min): given to the
    #: reference Node worker ({limiter}), and named in the notes when X plateaus at it
    rate_limit: str | None = None

    @field_validator("rate_limit")
    @classmethod
    def _valid_rate_limit(cls, rate_limit: str | None) -> str | None:
        if rate_limit is not None:
            from capacity.units import parse_rate_limit

            try:
                parse_rate_limit(rate_limit, "rate_limit")
            except InputError as exc:
                raise ValueError(str(exc)) from None
        return rate_limit

    #: payload sizes; optional (a matrix of concurrency x mode is valid): a payload file of each
    #: size is created only when the task's arguments mention $file
    sizes: tuple[Bytes, ...] = ()
    concurrencies: tuple[int, ...] = Field(min_length=1)
    modes: tuple[ModeSpec, ...] = Field(min_length=1)
    #: worker processes per cell, each with the cell's concurrency (seed 001: "2 containers x 4
    #: threads"); {replicas} in --worker-up templates (docker compose --scale, kubectl scale)
    replicas: tuple[int, ...] = (1,)
    #: Celery pools to compare (seed 004: prefork vs solo): prefork, threads, solo, gevent, eventlet;
    #: {pool} in templates. Empty: the worker command's own pool (the reference worker: prefork)
    pools: tuple[str, ...] = ()
    #: how many times each cell is run, interleaved (every cell once, then again, ...), so the
    #: machine's drift spreads over every cell; --repeats on matrix run and bench overrides it
    repeats: int = Field(default=1, ge=1, le=100)

    @field_validator("replicas")
    @classmethod
    def _positive_replicas(cls, replicas: tuple[int, ...]) -> tuple[int, ...]:
        if not replicas or any(r < 1 for r in replicas):
            raise ValueError("replicas must be one or more counts of at least 1")
        return replicas

    @field_validator("pools")
    @classmethod
    def _known_pools(cls, pools: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [p for p in pools if p not in POOLS]
        if unknown:
            raise ValueError(f"unknown pool {unknown[0]!r}; Celery's pools: {', '.join(POOLS)}")
        return pools

    def cells(self) -> list[tuple[int, int, ModeSpec]]:
        """Every (size, concurrency, mode), in the seed table's order: size, then mode, then concurrency."""
        return [(size, c, mode) for size, _, _, c, mode in self.grid()]

    def grid(self) -> list[tuple[int, str, int, int, ModeSpec]]:
        """Every (size, pool, replicas, concurrency, mode): size, then mode, pool, replicas, concurrency."""
        return [
            (size, pool, replicas, c, mode)
            for size in self.sizes or (0,)
            for mode in self.modes
            for pool in self.pools or ("",)
            for replicas in self.replicas
            for c in self.concurrencies
        ]

    def payload(self) -> PayloadSpec:
        return PayloadSpec(self.args, self.kwargs, self.payload_template, self.payload_file)

    def cell_ids(self) -> list[str]:
        """A stable name per cell, e.g. ``01-50MB-c1-burst`` (the number keeps two rates apart)."""
        replicated = self.replicas != (1,)
        return [
            f"{i:02d}-"
            + (f"{format_size(size).replace(' ', '')}-" if self.sizes else "")
            + (f"{pool}-" if pool else "")
            + (f"r{replicas}-" if replicated else "")
            + f"c{c}-{mode.mode}"
            for i, (size, pool, replicas, c, mode) in enumerate(self.grid(), start=1)
        ]


def load_matrix(path: Path | None = None) -> Matrix:
    return load_file(path or DEFAULT_DIR / "matrix.yaml", Matrix)


def results_table(matrix: Matrix) -> Table:
    """Seed 003's results table, empty: Size | Concurrency | Mode | X | S mean | Notes."""
    return Table(
        "Results",
        ("Size", "Concurrency", "Mode", "X (tasks/min)", "S mean (s)", "Notes"),
        tuple(
            (format_size(size) if matrix.sizes else "-", slots_label(c, replicas, pool), mode.label, "", "", mode.note)
            for size, pool, replicas, c, mode in matrix.grid()
        ),
    )


def slots_label(concurrency: int, replicas: int | None = 1, pool: str | None = "") -> str:
    """ "4", or "2 x 4" for two worker processes of 4, with the pool when the matrix names one."""
    text = f"{replicas} x {concurrency}" if replicas and replicas > 1 else str(concurrency)
    return f"{text} {pool}" if pool else text


@dataclass(frozen=True)
class CellSpec:
    index: int
    cell_id: str
    size_bytes: int
    concurrency: int
    mode: ModeSpec
    replicas: int = 1
    pool: str = ""
    repeat: int = 1

    @property
    def total_concurrency(self) -> int:
        """Slots across the cell's worker processes: replicas x concurrency."""
        return self.replicas * self.concurrency

    def describe(self) -> dict[str, Any]:
        return {
            "cell": self.cell_id,
            "size": format_size(self.size_bytes),
            "size_bytes": self.size_bytes,
            "concurrency": self.concurrency,
            "mode": self.mode.mode,
            "rate": self.mode.rate,
            "count": self.mode.count,
            "duration": self.mode.duration,
            "replicas": self.replicas,
            "pool": self.pool or None,
            "repeat": self.repeat,
        }


def repeat_id(cell_id: str, repeat: int) -> str:
    """A repeat's directory name: the cell's own for the first (run directories from before
    repeats stay valid), ``<cell>-rep2`` and on for the others."""
    return cell_id if repeat == 1 else f"{cell_id}-rep{repeat}"


def cells(matrix: Matrix) -> list[CellSpec]:
    """Every cell to run, in the order they run: each cell once in the matrix's order, then each
    again for the next repeat (interleaved: slow drift of the machine is spread over every cell)."""
    return [
        CellSpec(i, repeat_id(cell_id, repeat), size, c, mode, replicas, pool, repeat)
        for repeat in range(1, matrix.repeats + 1)
        for i, (cell_id, (size, pool, replicas, c, mode)) in enumerate(
            zip(matrix.cell_ids(), matrix.grid(), strict=True)
        )
    ]
