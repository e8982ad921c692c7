"""Issue #11's fuzz: every command with generated and mutated arguments and hostile input files.

Property: the exit code is a documented one (never 70, an untranslated exception), no traceback,
exactly one error line (no usage box). Few examples here (``CAPACITY_FUZZ_EXAMPLES``, 400 by
default); ``benchmarks/soak_fuzz.py`` runs thousands and reports its counts. A sample also runs
through subprocesses under a 3 GB address-space limit: memory stays bounded there too."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzzcli import (
    Outcome,
    argv_strategy,
    command_tree,
    environment,
    hostile_files,
    mutated_strategy,
    problems,
    run_in_process,
    seed_files,
)

EXAMPLES = int(os.environ.get("CAPACITY_FUZZ_EXAMPLES", "400"))
TREE = command_tree()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_the_tree_covers_every_command() -> None:
    names = {" ".join(path) for path in TREE}
    for expected in (
        "inject", "metrics", "matrix run", "recommend photos", "usl", "compare", "bench", "collect", "scaled-run",
    ):  # fmt: skip
        assert expected in names


def test_generated_and_mutated_command_lines(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    for key in [k for k in os.environ if k.startswith(("CAPACITY_", "CELERY_", "SQS_", "AWS_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CAPACITY_MEMORY_LIMIT", environment(workdir)["CAPACITY_MEMORY_LIMIT"])
    files = hostile_files(workdir / "inputs")
    seeds = seed_files(workdir / "seeds")
    found: list[str] = []

    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=False
    )
    @given(mutated_strategy(TREE, files, seeds) | argv_strategy(TREE, files))
    def case(argv: list[str]) -> None:
        found.extend(problems(argv, run_in_process(argv)))

    # a case that runs away with memory ends in MemoryError (exit 2, one line: the CLI's
    # handling) instead of taking this worker and the machine's other tests down through the OOM
    # killer, as `simulate --fleet /dev/full` did three times in CI (24 GB; now a bounded read)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_address_space_bytes() + (6 << 30), hard))
    try:
        case()
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert found == []


def _address_space_bytes() -> int:
    """This process's virtual memory now (VmSize)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


#: long-running commands, and inputs that once used gigabytes or hung, with bad values
SUBPROCESS_CASES = [
    ["bench", "--broker", "redis://[::1"],
    ["bench", "--matrix", "{inputs}/latin1.yaml"],
    ["matrix", "run", "{inputs}/deep.json", "--broker", "redis://127.0.0.1:1/0"],
    ["matrix", "run", "{inputs}/yamltag.yaml"],
    ["matrix", "run", "--broker", "redis://127.0.0.1:1/0", "--run-dir", "{inputs}/binary.bin", "--fresh"],
    ["collect", "--for", "", "--out", "{dir}/events.jsonl", "--broker", "redis://127.0.0.1:1/0"],
    ["collect", "--for", "1e309s", "--out", "{dir}/events.jsonl"],
    ["simulate", "--workers", "4", "--arrival", "burst", "--count", "100000000000", "--service-time", "1s"],
    ["metrics", "--tasks-log", "{inputs}/tasklog.log", "--timings", "probe:{inputs}"],
    ["metrics", "--tasks-log", "{inputs}/deep.jsonl"],
    ["inject", "--countdown", "99999999999999h", "--broker", "redis://127.0.0.1:1/0", "--count", "1"],
    ["inject", "--broker", "sqs://", "--queue-url", "http://127.0.0.1:1/123/nope", "--count", "1"],
    ["inject", "--log-dir", "{inputs}/empty.txt", "--broker", "redis://127.0.0.1:1/0", "--count", "1"],
    ["usl", "{inputs}/zero.csv"],
    ["usl", "{inputs}/nan.csv"],
    ["recommend", "--memory", ""],
    ["metrics", "--tasks-log", "{inputs}/tasklog.log", "--fail-if", "completion<%"],
    ["recommend", "--instance", "medium", "-o", "/dev/full"],
    ["scaled-run", "--count", "5", "--broker", "redis://127.0.0.1:1/0"],
    ["scaled-run", "--stages", "{inputs}/latin1.yaml"],
    ["scaled-run", "--count", "5", "--min-replicas", "0"],
    ["autoscale", "--concurrency", "999999999", "--count", "10"],
    ["autoscale", "--fleet", "{inputs}/deep.json"],
    ["broker", "redis", "--port", "0"],
    ["broker", "redis", "--port", "99999"],
    ["broker", "redis", "--port", "-1"],
    ["broker", "sqs", "--port", "70000"],
]


@pytest.mark.parametrize("argv", SUBPROCESS_CASES, ids=lambda a: " ".join(a)[:60])
def test_hostile_command_lines_in_a_subprocess(argv: list[str], workdir: Path) -> None:
    inputs = hostile_files(workdir / "inputs")
    del inputs
    args = [a.format(inputs=workdir / "inputs", dir=workdir) for a in argv]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    proc = subprocess.run(
        [sys.executable, "-m", "capacity", *args],
        env=environment(workdir),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        check=False,
    )
    assert problems(args, Outcome(proc.returncode, proc.stdout, proc.stderr)) == []
    assert proc.returncode != 0
