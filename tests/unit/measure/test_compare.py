"""compare: no false alarm between two runs of the same worker, a 20% slower S always caught."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from capacity.cli import app
from capacity.errors import InputError
from capacity.measure.compare import compare_files, parse_tolerances

HEADER = "task_id,sent,received,started,finished,state,service_s,wait_s,response_s\n"


def write_tasks(path: Path, seed: int, n: int = 400, slower: float = 1.0, failed: int = 0) -> Path:
    """A per-task CSV as metrics --csv writes it: sends 0.1 s apart, lognormal S around 0.2 s,
    waits exponential around 50 ms; ``slower`` scales every service time."""
    rng = np.random.default_rng(seed)
    service = rng.lognormal(np.log(0.2), 0.3, n) * slower
    wait = rng.exponential(0.05, n)
    lines = [HEADER]
    for i in range(n):
        sent = 1_700_000_000 + i * 0.1
        started = sent + wait[i]
        finished = started + service[i]
        if i < failed:
            lines.append(f"t{i},{sent},,{started},{finished},FAILURE,,{wait[i]},\n")
        else:
            lines.append(f"t{i},{sent},,{started},{finished},SUCCESS,{service[i]},{wait[i]},{finished - sent}\n")
    path.write_text("".join(lines))
    return path


def test_two_runs_of_the_same_worker_are_never_flagged(tmp_path: Path) -> None:
    # 40 pairs of independent samples of one distribution: a gate must stay quiet on all of them
    tolerances = parse_tolerances(["10%"])
    for k in range(40):
        base = write_tasks(tmp_path / f"b{k}.csv", seed=2 * k)
        new = write_tasks(tmp_path / f"n{k}.csv", seed=2 * k + 1)
        comparison = compare_files(base, new, tolerances)
        assert comparison.regressions == 0, [c for c in comparison.cells[0].changes if c.verdict == "regression"]


def test_a_20_percent_slower_service_time_is_caught_every_time(tmp_path: Path) -> None:
    tolerances = parse_tolerances(["10%"])
    for k in range(5):
        base = write_tasks(tmp_path / f"b{k}.csv", seed=100 + 2 * k)
        new = write_tasks(tmp_path / f"n{k}.csv", seed=101 + 2 * k, slower=1.2)
        cell = compare_files(base, new, tolerances).cells[0]
        flagged = {c.figure for c in cell.regressions}
        assert {"S.mean", "S.p50"} <= flagged, cell.changes
        s_mean = next(c for c in cell.changes if c.figure == "S.mean")
        assert s_mean.test == "Welch t" and s_mean.p_value is not None and s_mean.p_value < 1e-6
        assert (cell.base_tasks, cell.new_tasks) == (400, 400)


def test_metrics_json_is_judged_by_the_tolerance_alone(tmp_path: Path) -> None:
    def result(path: Path, s_mean: float) -> Path:
        data = {"sent": 10, "completed": 10, "throughput_per_min": 60.0, "completion_rate": 1.0}
        data |= {"service_time_mean_s": s_mean, "wait_mean_s": 0.1, "response_time_mean_s": s_mean + 0.1}
        path.write_text(json.dumps(data))
        return path

    comparison = compare_files(
        result(tmp_path / "a.json", 1.0), result(tmp_path / "b.json", 1.15), parse_tolerances([])
    )
    assert comparison.method.startswith("tolerance only")
    verdicts = {c.figure: c.verdict for c in comparison.cells[0].changes}
    assert verdicts["S.mean"] == "regression" and verdicts["R.mean"] == "regression"
    assert verdicts["X"] == "ok" and verdicts["S.p95"] == "not measured"


def test_tolerances_per_figure() -> None:
    found = parse_tolerances(["20%", "S.p95=5%", "completion=0.01"])
    assert found["S.p95"] == 0.05 and found["X"] == 0.20 and found["completion"] == 0.01
    with pytest.raises(InputError, match=r"unknown figure 'S\.p96'"):
        parse_tolerances(["S.p96=5%"])
    with pytest.raises(InputError, match="expected a share"):
        parse_tolerances(["ten"])


def test_cli_gates_on_a_regression(tmp_path: Path) -> None:
    runner = CliRunner()
    base = write_tasks(tmp_path / "base.csv", seed=1)
    same = write_tasks(tmp_path / "same.csv", seed=2)
    slow = write_tasks(tmp_path / "slow.csv", seed=3, slower=1.2)
    ok = runner.invoke(app, ["compare", str(base), str(same), "-f", "json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["regressions"] == 0
    bad = runner.invoke(app, ["compare", str(base), str(slow), "-f", "json"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["regressions"] >= 2
    assert bad.stderr.strip().splitlines()[-1].startswith("failed: ") and "run S.mean" in bad.stderr
    html = tmp_path / "c.html"
    runner.invoke(app, ["compare", str(base), str(slow), "-f", "html", "-o", str(html)])
    page = html.read_text()
    assert 'id="compare_ecdf" src="data:image/png;base64,' in page and "regression" in page


def test_run_directories_are_compared_cell_by_cell(tmp_path: Path) -> None:
    def run_dir(name: str, slower: dict[str, float]) -> Path:
        for index, (concurrency, mode) in enumerate(((1, "burst"), (2, "burst"), (2, "sustained")), 1):
            cell = f"0{index}-1MB-c{concurrency}-{mode}"
            directory = tmp_path / name / "cells" / cell
            directory.mkdir(parents=True)
            info = {"cell": cell, "size_bytes": 1_000_000, "concurrency": concurrency, "mode": mode}
            (directory / "result.json").write_text(json.dumps({"cell": info, "metrics": {}}))
            write_tasks(directory / "tasks.csv", seed=len(name) * 10 + index, n=300, slower=slower.get(cell, 1.0))
        return tmp_path / name

    base = run_dir("base", {})
    new = run_dir("new-run", {"02-1MB-c2-burst": 1.25})
    result = CliRunner().invoke(app, ["compare", str(base), str(new), "-f", "json"])
    assert result.exit_code == 1, result.output
    cells = {c["cell"]: c for c in json.loads(result.stdout)["cells"]}
    assert set(cells) == {"01-1MB-c1-burst", "02-1MB-c2-burst", "03-1MB-c2-sustained"}
    flagged = {name for name, c in cells.items() for ch in c["changes"] if ch["verdict"] == "regression"}
    assert flagged == {"02-1MB-c2-burst"}


def test_bad_inputs_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    base = write_tasks(tmp_path / "base.csv", seed=1)
    for args, message in (
        ([str(base), str(tmp_path / "nope.csv")], "does not exist"),
        ([str(base), str(tmp_path)], "run directory"),
        ([str(base), str(base), "--tolerance", "Q=1%"], "unknown figure"),
    ):
        result = runner.invoke(app, ["compare", *args])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_report_with_a_baseline_adds_the_comparison_and_gates(tmp_path: Path) -> None:
    def run_dir(name: str, slower: float) -> Path:
        for index, concurrency in enumerate((1, 2), 1):
            cell = f"0{index}-1MB-c{concurrency}-burst"
            directory = tmp_path / name / "cells" / cell
            directory.mkdir(parents=True)
            info = {"cell": cell, "size_bytes": 1_000_000, "concurrency": concurrency, "mode": "burst"}
            metrics = {"sent": 200, "completed": 200, "throughput_per_min": 100.0 * concurrency / slower}
            (directory / "result.json").write_text(json.dumps({"cell": info, "metrics": metrics}))
            write_tasks(directory / "tasks.csv", seed=len(name) + index, n=200, slower=slower)
        return tmp_path / name

    base, same, slow = run_dir("base", 1.0), run_dir("same-worker", 1.0), run_dir("slower", 1.3)
    runner = CliRunner()
    ok = runner.invoke(app, ["report", str(same), "--baseline", str(base), "-f", "json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["comparison"]["regressions"] == 0
    bad = runner.invoke(app, ["report", str(slow), "--baseline", str(base), "-f", "json"])
    assert bad.exit_code == 1, bad.output
    assert json.loads(bad.stdout)["comparison"]["regressions"] >= 2
    page = (slow / "report" / "report.html").read_text()
    assert "Comparison with the baseline" in page and 'id="compare_ecdf"' in page
