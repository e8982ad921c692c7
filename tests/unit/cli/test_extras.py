"""The planning commands run where only the core dependencies are installed; the others name the
extra they need (pyproject.toml's brokers, measure, matrix) in one line instead of a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from capacity.cli._common import EXTRAS

# A fresh interpreter where every optional package is absent: sys.modules[name] = None makes
# "import name" raise ModuleNotFoundError, as on a machine without the extra.
RUN_WITHOUT_EXTRAS = (
    "import sys\n"
    f"for name in {sorted(EXTRAS)!r}: sys.modules[name] = None\n"
    "sys.argv = ['capacity', *sys.argv[1:]]\n"
    "from capacity.cli import main\n"
    "main()\n"
)


def capacity_without_extras(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_EXTRAS, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "args",
    [
        ["recommend", "--instance", "medium", "-f", "json"],
        ["recommend", "photos", "5000", "-f", "json"],
        ["plan", "--arrival-rate", "2/s", "--service-time", "1s", "--workers", "3", "-f", "json"],
        ["cost", "-f", "json"],
        ["simulate", "--workers", "2", "--arrival", "burst", "--count", "10", "--service-time", "1s", "-f", "json"],
    ],
)
def test_planning_commands_need_no_extra(args: list[str]) -> None:
    proc = capacity_without_extras(*args)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)


def test_a_command_without_its_extra_names_it() -> None:
    proc = capacity_without_extras("metrics", "--tasks-log", "nothing.log")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: this command needs duckdb, which is not installed: pip install 'worker-capacity[measure]'"
    ]
