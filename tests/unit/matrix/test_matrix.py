"""capacity matrix plan: seed 003's matrix and its results table, exactly."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from capacity.cli import app


def test_seed_003_results_table_in_markdown() -> None:
    result = CliRunner().invoke(app, ["matrix", "plan", "-f", "markdown"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "## Test matrix (12 cells)"
    assert "| Size | Concurrency | Mode | X (tasks/min) | S mean (s) | Notes |" in lines
    # seed 003's template rows: 50 MB burst at 1, 2, 4 and 100 MB sustained at 10/min
    assert "| 50 MB | 1 | Burst |  |  | count=100 |" in lines
    assert "| 100 MB | 4 | Sustained |  |  | rate=10/min |" in lines
    assert sum(line.startswith("| 50 MB") or line.startswith("| 100 MB") for line in lines) == 12


def test_own_matrix_file_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("sizes: [1MB]\nconcurrencies: [1, 8]\nmodes: [{mode: burst, count: 10}]\n")
    result = CliRunner().invoke(app, ["matrix", "plan", str(path), "-f", "csv"])
    assert result.stdout == (
        "Size,Concurrency,Mode,X (tasks/min),S mean (s),Notes\n1 MB,1,Burst,,,count=10\n1 MB,8,Burst,,,count=10\n"
    )
    path.write_text("sizes: [1MB]\nconcurrencies: [1]\nmodes: [{mode: sustained, rate: 10/fortnight}]\n")
    result = CliRunner().invoke(app, ["matrix", "plan", str(path)])
    assert result.exit_code == 2 and "modes.0.rate" in result.stderr and "is not a rate" in result.stderr
