"""Commands import only what they use (issue #26): `capacity --help` loads no command's module,
and `capacity recommend` none of the heavy libraries (numba, DuckDB, pyarrow, kombu, scipy,
numpy, matplotlib, boto3). Checked by what a fresh interpreter has loaded, not by a clock (the
times are measured in benchmarks/bench_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("numba", "duckdb", "pyarrow", "kombu", "celery", "scipy", "numpy", "matplotlib", "boto3", "redis")


def loaded_after(argv: list[str], expect: int = 0) -> list[str]:
    """The modules a fresh interpreter holds after running ``capacity ARGV`` in it (which exits
    ``expect``)."""
    code = (
        "import contextlib, io, json, sys\n"
        "from capacity.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = run({argv!r})\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    exit_code, modules = json.loads(out)
    assert exit_code == expect
    return list(modules)


def test_the_command_list_loads_no_command() -> None:
    modules = loaded_after(["--help"])
    commands = [m for m in modules if m.startswith("capacity.cli.") and m != "capacity.cli._common"]
    assert commands == []
    assert not [m for m in HEAVY if m in modules]


def test_recommend_loads_none_of_the_heavy_libraries() -> None:
    modules = loaded_after(["recommend", "--instance", "medium"])
    assert "capacity.cli.recommend" in modules
    assert [m for m in HEAVY if m in modules] == []
    assert "capacity.cli.autoscale" not in modules and "capacity.cli.inject" not in modules


def test_every_command_is_listed_and_loads() -> None:
    import typer.main

    from capacity.cli import COMMANDS, app, load_command

    root = typer.main.get_command(app)
    assert root.list_commands(None) == list(COMMANDS)  # type: ignore[attr-defined]
    for name in COMMANDS:
        command = load_command(name)
        assert command.name == name and command.help


def test_the_measuring_commands_load_no_profile_models() -> None:
    """`capacity metrics` reads no profile: the profiles' models (~0.1 s to build) stay unloaded,
    and the --profiles option's variable is the profiles module's own."""
    from capacity.cli._common import PROFILES_ENV_VAR
    from capacity.profiles import ENV_VAR

    assert PROFILES_ENV_VAR == ENV_VAR
    modules = loaded_after(["metrics", "--help"])
    assert "capacity.cli.metrics" in modules and "capacity.profiles" not in modules


def test_metrics_of_a_probe_run_loads_neither_pyarrow_nor_numpy(tmp_path: Path) -> None:
    """DuckDB reads a probe run's files itself: pyarrow (and the numpy it imports, 0.15 s) is for
    tables (records, result backends, BullMQ, a file DuckDB refused). A records run needs it."""
    from tests.unit.measure.test_metrics_units import T0, done, write_log, write_probe

    log = write_log(tmp_path / "worker_tasks_1.log", {"a": T0, "b": T0 + 1})
    probe = write_probe(tmp_path / "timings", [done("a", T0 + 1, T0 + 2), done("b", T0 + 2, T0 + 4)])
    modules = loaded_after(["metrics", "--tasks-log", str(log), "--timings", f"probe:{probe}", "-f", "json"])
    assert "duckdb" in modules and "capacity.measure.store" in modules  # the figures were computed
    assert [m for m in ("pyarrow", "numpy") if m in modules] == []
    records = tmp_path / "records.csv"
    records.write_text(f"id,uploaded_at,updated_at\na,{T0},{T0 + 2}\nb,{T0},{T0 + 4}\n")
    modules = loaded_after(["metrics", "--tasks-log", str(log), "--timings", f"records:{records}", "-f", "json"])
    assert "pyarrow" in modules
