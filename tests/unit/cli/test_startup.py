"""Commands import only what they use (issue #26): `capacity --help` loads no command's module,
and `capacity recommend` none of the heavy libraries (numba, DuckDB, pyarrow, kombu, scipy,
numpy, matplotlib, boto3). Checked by what a fresh interpreter has loaded, not by a clock (the
times are measured in benchmarks/bench_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numba", "duckdb", "pyarrow", "kombu", "celery", "scipy", "numpy", "matplotlib", "boto3", "redis")


def loaded_after(argv: list[str]) -> list[str]:
    """The modules a fresh interpreter holds after running ``capacity ARGV`` in it."""
    code = (
        "import contextlib, io, json, sys\n"
        "from capacity.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = run({argv!r})\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    exit_code, modules = json.loads(out)
    assert exit_code == 0
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
