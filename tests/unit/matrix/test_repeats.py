"""Repeats, intervals and interference (#21), without brokers: the order cells run in, the run
directory across a change of repeats, each cell's 95% interval, the notes of a disturbed or
over-utilised cell, the USL leaving them out, and compare matching cells on every dimension."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from capacity.cli import app
from capacity.errors import InputError
from capacity.matrix.analysis import build, usl_fits
from capacity.matrix.cells import Cell
from capacity.matrix.intervals import cell_summaries, pooled_noise
from capacity.matrix.results import CellResult, Interference, ResourceSummary, prepare_run_dir
from capacity.matrix.sampler import bottleneck
from capacity.matrix.spec import CellSpec, Matrix, ModeSpec, cells


def test_repeats_run_interleaved_with_their_own_directories() -> None:
    matrix = Matrix(sizes=(1000,), concurrencies=(1, 2), modes=(ModeSpec(mode="burst", count=5),), repeats=3)
    order = [(c.cell_id, c.repeat) for c in cells(matrix)]
    # every cell once, then again: drift of the machine lands on every cell, not on the last ones
    assert order == [
        ("01-1kB-c1-burst", 1),
        ("02-1kB-c2-burst", 1),
        ("01-1kB-c1-burst-rep2", 2),
        ("02-1kB-c2-burst-rep2", 2),
        ("01-1kB-c1-burst-rep3", 3),
        ("02-1kB-c2-burst-rep3", 3),
    ]
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        Matrix(concurrencies=(1,), modes=(ModeSpec(mode="burst"),), repeats=0)


def test_more_repeats_extend_a_run_directory(tmp_path: Path) -> None:
    one = Matrix(sizes=(1000,), concurrencies=(1, 2), modes=(ModeSpec(mode="burst", count=5),))
    prepare_run_dir(tmp_path / "run", one, fresh=False)
    prepare_run_dir(tmp_path / "run", one.model_copy(update={"repeats": 3}), fresh=False)  # extends
    assert "repeats: 3" in (tmp_path / "run" / "matrix.yaml").read_text()
    with pytest.raises(InputError, match="different matrix"):
        prepare_run_dir(tmp_path / "run", one.model_copy(update={"concurrencies": (1, 4)}), fresh=False)


def result(cell_id: str, concurrency: int, x: float, s: float, **extra: Any) -> CellResult:
    repeat = int(cell_id.rsplit("-rep", 1)[1]) if "-rep" in cell_id else 1
    info = {"cell": cell_id, "size_bytes": 1000, "concurrency": concurrency, "mode": "burst", "repeat": repeat}
    info |= extra.pop("info", {})
    metrics = {"throughput_per_min": x, "service_time_mean_s": s, "completed": 100, "sent": 100}
    metrics |= extra.pop("metrics", {})
    return CellResult.from_json({"cell": info, "metrics": metrics, "task": "t", **extra})


def test_intervals_across_repeats_by_hand(tmp_path: Path) -> None:
    a = [Cell(result("01-c1", 1, 100.0, 0.5), tmp_path), Cell(result("01-c1-rep2", 1, 110.0, 0.5), tmp_path)]
    b = [Cell(result("02-c2", 2, 200.0, 0.5), tmp_path), Cell(result("02-c2-rep2", 2, 180.0, 0.5), tmp_path)]
    # pooled sd of the logs: ((ln 110 - ln 100)^2 / 2 + (ln 200 - ln 180)^2 / 2) / 2 degrees of freedom
    squares = math.log(1.1) ** 2 / 2 + math.log(200 / 180) ** 2 / 2
    noise = pooled_noise([[100.0, 110.0], [200.0, 180.0]])
    assert noise == (pytest.approx(math.sqrt(squares / 2)), 2)
    summaries = cell_summaries(a + b)
    first = next(v for v in summaries.values() if v.label == "01-c1")
    # mean 105 x exp(+- t(0.975, 2) x sd / sqrt 2), t = 4.302653
    factor = math.exp(4.302653 * math.sqrt(squares / 2) / math.sqrt(2))
    assert first.throughput_per_min == 105.0 and first.repeats == 2
    assert first.throughput_per_min_ci95 == pytest.approx((105 / factor, 105 * factor), rel=1e-6)
    assert first.service_time_mean_s_ci95 == pytest.approx((0.5, 0.5))  # equal repeats: no spread
    assert "2 repeats" in first.ci95_basis


def test_one_run_intervals_come_from_its_tasks(tmp_path: Path) -> None:
    # 100 completed at 60/min: window 100/60 min; the exact Poisson interval of the count, scaled
    # (chi-square quantiles by hand: chi2.ppf(0.025, 200) / 2 = 81.36, chi2.ppf(0.975, 202) / 2 = 121.63)
    (only,) = cell_summaries([Cell(result("01-c1", 1, 60.0, 0.5), tmp_path)]).values()
    assert only.throughput_per_min_ci95 == pytest.approx((81.36 * 0.6, 121.63 * 0.6), rel=1e-3)
    assert only.service_time_mean_s_ci95 is None and "run-to-run noise not included" in only.ci95_basis


def test_disturbed_and_over_utilised_cells_are_named_and_left_out(tmp_path: Path) -> None:
    spec = CellSpec(1, "c", 1000, 1, ModeSpec(mode="burst", count=5))
    busy = Interference.of(40.0, 2.0)
    assert busy.disturbed and not Interference.of(10.0, 0.0).disturbed
    note = bottleneck(
        spec, {"utilization": 0.9}, ResourceSummary(cores=2, worker_cpu_mean_percent=50.0), None, "", busy
    )
    assert note == "other processes took 40% of the CPU: this cell is not representative"
    over = bottleneck(spec, {"utilization": 3.97}, ResourceSummary(cores=2))
    assert over.startswith("the worker does not run at the concurrency asked (U = 397%)")
    curve = {n: 100 * n / (1 + 0.05 * (n - 1) + 0.01 * n * (n - 1)) for n in (1, 2, 4, 8, 16)}
    found = [Cell(result(f"0{i}-c{n}", n, x, 0.5), tmp_path) for i, (n, x) in enumerate(curve.items(), 1)]
    found.append(Cell(result("09-c32", 32, 5.0, 0.5, interference={"disturbed": True}), tmp_path))
    found.append(Cell(result("10-c1", 1, 400.0, 0.5, metrics={"utilization": 3.97}), tmp_path))
    (group,) = usl_fits(found)
    assert group.left_out == ("09-c32 (disturbed)", "10-c1 (U = 397%)")
    assert {n for n, _ in group.points} == {1, 2, 4, 8, 16}
    assert group.fit is not None and group.fit.kappa == pytest.approx(0.01, rel=1e-6)


def test_all_disturbed_is_inconclusive_not_a_number(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for i, n in enumerate((1, 2, 4), 1):
        directory = run / "cells" / f"0{i}-c{n}-burst"
        directory.mkdir(parents=True)
        data = result(f"0{i}-c{n}-burst", n, 100.0 * n, 0.5, interference={"other_cpu_percent": 80, "disturbed": True})
        (directory / "result.json").write_text(json.dumps(data.to_json()))
    report = build([run])[0]
    (usl,) = report.data["usl"]
    assert usl["verdict"] == "inconclusive" and usl["recommended_concurrency"] is None
    assert "disturbed or over-utilised cells left out" in usl["reason"]
    assert report.data["cells"][0]["interference"]["disturbed"] is True
    assert dict(report.summary)["Disturbed cells (left out of the fits)"] == "3 of 3"


def write_run(root: Path, name: str, cells_: list[tuple[int, int, float]], disturbed: bool = False) -> Path:
    """A run directory: (concurrency, replicas, slower) per cell, each with a per-task file."""
    from tests.unit.measure.test_compare import write_tasks

    for i, (concurrency, replicas, slower) in enumerate(cells_, 1):
        cell_id = f"0{i}-r{replicas}-c{concurrency}-burst"
        directory = root / name / "cells" / cell_id
        directory.mkdir(parents=True)
        data = result(cell_id, concurrency, 100.0, 0.2, info={"replicas": replicas})
        if disturbed:
            data = CellResult.from_json(
                {**data.to_json(), "interference": {"other_cpu_percent": 60, "disturbed": True}}
            )
        (directory / "result.json").write_text(json.dumps(data.to_json()))
        write_tasks(directory / "tasks.csv", seed=i + len(name), n=200, slower=slower)
    return root / name


def test_compare_matches_cells_on_replicas_and_is_inconclusive_when_disturbed(tmp_path: Path) -> None:
    runner = CliRunner()
    base = write_run(tmp_path, "base", [(2, 1, 1.0), (2, 2, 1.0)])
    # the new run has no 1-replica cell: its 2-replica cell is compared with the base's, the
    # base's 1-replica cell is listed as unmatched
    new = write_run(tmp_path, "new", [(2, 2, 1.0), (4, 1, 1.0)])
    out = runner.invoke(app, ["compare", str(base), str(new), "-f", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [c["cell"] for c in data["cells"]] == ["01-r2-c2-burst"]
    assert data["unmatched"] == ["01-r1-c2-burst (base only)", "02-r1-c4-burst (new only)"]
    noisy = write_run(tmp_path, "noisy", [(2, 1, 2.0), (2, 2, 2.0)], disturbed=True)
    out = runner.invoke(app, ["compare", str(base), str(noisy), "-f", "json"])
    assert out.exit_code == 6, out.output  # inconclusive, not 1: a disturbed run cannot convict the worker
    data = json.loads(out.stdout)
    assert data["verdict"] == "inconclusive" and data["regressions"] == 0
    assert {c["verdict"] for cell in data["cells"] for c in cell["changes"]} >= {"inconclusive"}
    assert out.stderr.strip().startswith("inconclusive: 2 cells cannot be judged")


def test_repeats_count_as_runs_of_a_cell(tmp_path: Path) -> None:
    from capacity.matrix.compare import read_cells

    run = write_run(tmp_path, "run", [(1, 1, 1.0)])
    again = run / "cells" / "01-r1-c1-burst-rep2"
    again.mkdir()
    (again / "result.json").write_text(json.dumps(result("01-r1-c1-burst-rep2", 1, 90.0, 0.2).to_json()))
    (runs,) = read_cells(run).values()
    assert [r.label for r in runs] == ["01-r1-c1-burst", "01-r1-c1-burst"]
    # the first from its per-task file, the repeat (no tasks.csv) from its metrics
    assert runs[0].tasks is not None and runs[1].figures["throughput_per_min"] == 90.0
