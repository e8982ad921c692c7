"""A cell's typed result and the run directory's files: ``cells/<id>/result.json`` (one per
finished cell, written whole or not at all), ``results.json``/``results.csv`` (rebuilt from the
cells after each one) and ``matrix.yaml`` (the matrix the directory belongs to)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from capacity import files
from capacity.errors import InputError
from capacity.matrix.spec import Matrix
from capacity.measure.metrics import PUBLIC_KEYS

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
RESULT_JSON = "result.json"
MATRIX_COPY = "matrix.yaml"
#: the marker a run directory gets when matrix run creates it: --fresh deletes only such a directory
RUN_MARKER = ".capacity-run"

T = TypeVar("T")


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """A dataclass from a JSON object: unknown keys ignored, absent ones None (old run directories)."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{name: data.get(name) for name in names})


@dataclass(frozen=True)
class CellInfo:
    """Which cell: its id and the matrix values it ran with."""

    cell: str
    size: str | None = None
    size_bytes: int | None = None
    concurrency: int | None = None
    mode: str | None = None
    rate: str | None = None
    count: int | None = None
    duration: str | None = None
    replicas: int | None = None
    pool: str | None = None

    #: which repeat of the cell this is (1, 2, ...); None in run directories from before repeats
    repeat: int | None = None
    task: str | None = None

    @property
    def total_concurrency(self) -> int:
        """Slots across the cell's worker processes (replicas x concurrency)."""
        return int(self.replicas or 1) * int(self.concurrency or 0)

    @property
    def key(self) -> tuple[object, ...]:
        """The cell's identity across repeats and runs: every dimension of the matrix."""
        return (
            self.size_bytes or 0,
            self.concurrency,
            int(self.replicas or 1),
            self.pool or "",
            self.mode,
            self.rate or "",
            self.count,
            self.duration or "",
            self.task or "",
        )


@dataclass(frozen=True)
class ResourceSummary:
    """The worker's process tree and the host over the busy part of a cell (psutil samples)."""

    samples: int | None = None
    worker_cpu_mean_percent: float | None = None
    worker_cpu_max_percent: float | None = None
    worker_rss_peak_bytes: int | None = None
    worker_read_mb_per_s: float | None = None
    host_cpu_mean_percent: float | None = None
    cores: int | None = None
    host_memory_bytes: int | None = None


#: a cell is disturbed when other processes (and steal) took this share of the host's CPU on
#: average while it ran: half a core on a 2-core machine; CAPACITY_DISTURBED_PERCENT changes it
DISTURBED_PERCENT = 25.0
DISTURBED_ENV = "CAPACITY_DISTURBED_PERCENT"


def disturbed_percent() -> float:
    """The threshold in force: CAPACITY_DISTURBED_PERCENT (above 0, at most 100; 100 turns the
    mark off), else 25."""
    text = os.environ.get(DISTURBED_ENV, "").strip()
    if not text:
        return DISTURBED_PERCENT
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        value = math.nan
    if not 0 < value <= 100:
        raise InputError(f"{DISTURBED_ENV}={text!r}: expected a share of the CPU above 0 and at most 100, like 25")
    return value


#: utilisation X*S/c above this means the worker ran more tasks at once than the cell's slots
OVER_UTILIZATION = 1.05


@dataclass(frozen=True)
class Interference:
    """What other processes took while a cell ran: their share of the host's CPU (percent of every
    core, steal included), the steal alone, and whether that makes the cell unrepresentative."""

    other_cpu_percent: float | None = None
    steal_percent: float | None = None
    disturbed: bool | None = None

    @classmethod
    def of(cls, other_cpu_percent: float | None, steal_percent: float | None) -> Interference:
        threshold = disturbed_percent()
        disturbed = None if other_cpu_percent is None else other_cpu_percent >= threshold and threshold < 100
        return cls(other_cpu_percent, steal_percent, disturbed)


@dataclass(frozen=True)
class CellResult:
    """One finished cell. ``metrics`` is the metrics result's public JSON (its keys are an interface)."""

    cell: CellInfo
    task: str | None = None
    queue: str | None = None
    broker: str | None = None
    worker: dict[str, str] | None = None
    started_at: float | None = None
    ended_at: float | None = None
    task_log: str | None = None
    monitor_csv: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    resources: ResourceSummary | None = None
    interference: Interference | None = None
    #: every sample, as resources.csv has them: t, worker CPU %, RSS, bytes read, host CPU %
    resource_samples: tuple[dict[str, Any], ...] = ()
    bottleneck: str = ""

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["resources"] = data["resources"] or {}
        data["interference"] = data["interference"] or {}
        data["resource_samples"] = list(self.resource_samples)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellResult:
        resources = data.get("resources")
        interference = data.get("interference")
        info = _from_dict(CellInfo, data.get("cell") or {})
        if info.task is None and data.get("task"):
            info = dataclasses.replace(info, task=data.get("task"))
        return cls(
            cell=info,
            metrics=dict(data.get("metrics") or {}),
            bottleneck=data.get("bottleneck") or "",
            task=data.get("task"),
            queue=data.get("queue"),
            broker=data.get("broker"),
            worker=data.get("worker"),
            started_at=data.get("started_at"),
            ended_at=data.get("ended_at"),
            task_log=data.get("task_log"),
            monitor_csv=data.get("monitor_csv"),
            resources=_from_dict(ResourceSummary, resources) if resources else None,
            interference=_from_dict(Interference, interference) if interference else None,
            resource_samples=tuple(data.get("resource_samples") or ()),
        )

    def csv_row(self) -> list[Any]:
        resources = self.resources or ResourceSummary()
        values = [
            *(getattr(self.cell, f.name) for f in fields(CellInfo)),
            *(self.metrics.get(key) for key in PUBLIC_KEYS),
            *(getattr(resources, f.name) for f in fields(ResourceSummary)),
            *(getattr(self.interference or Interference(), f.name) for f in fields(Interference)),
            self.bottleneck,
        ]
        return ["" if v is None else v for v in values]


#: results.csv's columns, from the types: the cell, the metrics' public keys, the resources
CSV_COLUMNS = (
    *(f.name for f in fields(CellInfo)),
    *PUBLIC_KEYS,
    *(f.name for f in fields(ResourceSummary)),
    *(f.name for f in fields(Interference)),
    "bottleneck",
)


def write_result(cell_dir: Path, result: CellResult) -> None:
    """``result.json``, written whole or not at all: it is what marks the cell finished."""
    files.write_text(cell_dir / RESULT_JSON, json.dumps(result.to_json(), indent=2, default=str))


def is_finished(cell_dir: Path) -> bool:
    return (cell_dir / RESULT_JSON).is_file()


def read_results(run_dir: Path) -> list[CellResult]:
    """Every finished cell's result, in cell order (by number: 100 comes after 99)."""

    def number(path: Path) -> tuple[int, str]:
        head = path.parent.name.split("-", 1)[0]
        return (int(head) if head.isdigit() else 0, path.parent.name)

    found = sorted((run_dir / "cells").glob(f"*/{RESULT_JSON}"), key=number)
    return [CellResult.from_json(json.loads(path.read_text(encoding="utf-8"))) for path in found]


def write_results(run_dir: Path) -> list[CellResult]:
    """Rebuild results.json and results.csv from the finished cells."""
    results = read_results(run_dir)
    cells = [r.to_json() for r in results]
    files.write_text(run_dir / RESULTS_JSON, json.dumps({"cells": cells}, indent=2))
    with files.replace(run_dir / RESULTS_CSV) as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(r.csv_row() for r in results)
    return results


def prepare_run_dir(run_dir: Path, matrix: Matrix, fresh: bool) -> None:
    """Create the run directory, or check that an existing one holds the same matrix. The number
    of repeats may change between runs of one directory: more repeats extend it, and the cells
    already finished are kept."""
    copy = run_dir / MATRIX_COPY
    wanted = matrix.model_dump(mode="json")
    if fresh and run_dir.exists():
        if not is_own_run_dir(run_dir):
            raise InputError(
                f"--fresh: {run_dir} was not created by capacity matrix run (no {RUN_MARKER} marker naming its "
                "run); it is left as it is: give a new --run-dir, or remove it yourself"
            )
        shutil.rmtree(run_dir)
    if copy.is_file():
        held = yaml.safe_load(copy.read_text(encoding="utf-8"))
        same = isinstance(held, dict) and {k: v for k, v in held.items() if k != "repeats"} == {
            k: v for k, v in wanted.items() if k != "repeats"
        }
        if not same:
            raise InputError(
                f"{run_dir} holds the results of a different matrix; give another --run-dir, or --fresh to start over"
            )
        if held.get("repeats", 1) != wanted["repeats"]:
            files.write_text(copy, yaml.safe_dump(wanted, sort_keys=False))
        return
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    if created or not any(run_dir.iterdir()):
        # only a directory this run made (or found empty) is marked as its own: --fresh may
        # delete it later, and nothing else (a project folder holding a matrix.yaml of its own)
        _write_marker(run_dir)
    files.write_text(copy, yaml.safe_dump(wanted, sort_keys=False))


def _write_marker(run_dir: Path) -> None:
    import uuid

    marker = run_dir / RUN_MARKER
    with marker.open("x", encoding="utf-8") as handle:  # "x": never through a link someone left there
        json.dump({"run_id": uuid.uuid4().hex, "created_by": "capacity matrix run"}, handle)


def is_own_run_dir(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a run directory ``matrix run`` created: a regular file (not a link)
    named RUN_MARKER holding the run's id."""
    marker = run_dir / RUN_MARKER
    if run_dir.is_symlink() or marker.is_symlink() or not marker.is_file():
        return False
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("run_id"), str) and bool(data["run_id"])
