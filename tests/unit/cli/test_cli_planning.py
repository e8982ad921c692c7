"""The planning commands as a user runs them: typer's CliRunner, plus one real subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from capacity.cli import app

ROOT = Path(__file__).resolve().parents[3]


def run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_resources_json_keys(runner: CliRunner) -> None:
    code, out, _ = run(runner, "recommend", "--cpu", "2", "--memory", "4GiB", "-f", "json")
    assert code == 0
    data = json.loads(out)
    assert (data["global_concurrency"], data["per_tenant_concurrency"], data["limited_by"]) == (2, 1, "cpu")


def test_instance_shows_formula_and_policy_table(runner: CliRunner) -> None:
    code, out, _ = run(runner, "recommend", "--instance", "medium", "-f", "json")
    data = json.loads(out)
    assert code == 0
    assert data["global_concurrency"] == 2 and data["policy_global_concurrency"] == 5
    assert data["policy_differs"] is True and data["source"].startswith("formula")
    code, out, _ = run(runner, "recommend", "--instance", "medium", "--cpu-per-job", "0.4", "-f", "json")
    assert json.loads(out)["global_concurrency"] == 5


def test_job_type_takes_per_job_resources(runner: CliRunner) -> None:
    code, out, _ = run(runner, "recommend", "--job-type", "2D Render", "--cpu", "2", "--memory", "4GiB", "-f", "json")
    data = json.loads(out)
    # 2 CPU / 0.5 = 4; 4 GiB / 500 MB = 8
    assert (code, data["global_concurrency"], data["limited_by"], data["job_type"]) == (0, 4, "cpu", "2D Render")


def test_env_format_prints_the_seed_variables(runner: CliRunner) -> None:
    code, out, _ = run(runner, "recommend", "--cpu", "4", "--memory", "8GiB", "--cpu-per-job", "0.4", "-f", "env")
    assert (code, out) == (0, "WORKER_CONCURRENCY=10\nDEFAULT_TENANT_CONCURRENCY=3\n")
    code, out, _ = run(runner, "recommend", "--photos", "5000", "-f", "env")
    assert (code, out) == (0, "WORKER_CONCURRENCY=1\nFACE_WORKER_CONCURRENCY=1\n")


def test_scale_out_every_format(runner: CliRunner, tmp_path: Path) -> None:
    base = ["recommend", "--queue-depth", "500", "--concurrency", "5"]
    code, out, _ = run(runner, *base, "-f", "json")
    assert json.loads(out)["required_workers"] == 150
    code, out, _ = run(runner, *base, "-f", "yaml")
    assert yaml.safe_load(out)["required_workers"] == 150
    code, out, _ = run(runner, *base, "-f", "markdown")
    assert "| Required workers (seed 002) | 150 |" in out
    code, out, _ = run(runner, *base, "-f", "csv")
    assert "Required workers (seed 002),150\n" in out
    code, out, _ = run(runner, *base, "-f", "table")
    assert code == 0 and re.search(r"Required workers \(seed 002\)\s*│\s*150", out)
    code, out, _ = run(runner, *base, "-f", "k8s", "--scaler", "redis", "--queue", "photos")
    deployment, scaled = yaml.safe_load_all(out)
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 150
    assert scaled["kind"] == "ScaledObject"
    assert scaled["spec"]["triggers"][0] == {
        "type": "redis",
        # no broker given: KEDA reads the address from the worker's environment, no placeholder to edit
        "metadata": {"addressFromEnv": "REDIS_ADDRESS", "listName": "photos", "listLength": "3"},
    }
    target = tmp_path / "out.json"
    code, out, _ = run(runner, *base, "-f", "json", "-o", str(target))
    assert code == 0 and out == "" and json.loads(target.read_text())["required_workers"] == 150


def test_topology_modes(runner: CliRunner) -> None:
    code, out, _ = run(runner, "recommend", "--users", "120", "-f", "json")
    data = json.loads(out)
    assert (code, data["scenario"], data["workers"], data["total_concurrency"]) == (0, "Medium Usage", 2, 6)
    assert data["task_routes"]["*.send_*_email_task"] == {"queue": "emails"}
    code, out, _ = run(runner, "recommend", "--task-type", "Email", "--concurrency", "2-4", "-f", "json")
    assert json.loads(out)["tasks_per_hour"] == [2400, 14400]
    code, out, _ = run(runner, "recommend", "--replicas", "2", "-f", "env")
    assert out == "CELERY_WORKER_CONCURRENCY=4\nCELERY_WORKER_POOL=threads\nCELERY_WORKER_REPLICAS=2\n"


def test_photos_with_limits(runner: CliRunner) -> None:
    args = ["recommend", "--photos", "10", "--api-rate-limit", "60/min", "--service-time", "2s", "-f", "json"]
    code, out, _ = run(runner, *args)
    data = json.loads(out)
    assert (code, data["worker_concurrency"], data["api_limited"], data["duration_s"]) == (0, 4, True, 10.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recommend", "--cpu", "2", "--memory", "50XB"], "--memory: '50XB' is not a size"),
        (["recommend", "--queue-depth", "-5", "--concurrency", "2"], "queue depth must be zero or more, got -5"),
        (["recommend", "--photos", "-3"], "photos must be a positive count, got -3"),
        (["recommend", "--photos", "10", "--users", "5"], "conflicting modes: photos and topology"),
        (["recommend", "--cpu", "2"], "resources mode needs --cpu and --memory"),
        (["recommend"], "say what to size"),
        (["recommend", "--instance", "mediun"], "did you mean 'medium'"),
        (["recommend", "--queue-depth", "5", "--concurrency", "2", "--tenant-share", "0.3"], "does not apply"),
        (["recommend", "--photos", "5", "--service-time", "fast"], "'fast' is not a duration"),
        (["recommend", "--photos", "5", "--api-rate-limit", "60/fortnight"], "is not a rate"),
        (["recommend", "--cpu", "2", "--memory", "4GiB", "-f", "xml"], "--format 'xml' is an unknown format"),
        (["recommend", "--users", "5", "-f", "k8s"], "--format k8s is not available"),
        (["cost", "--workers", "-1"], "workers must be zero or more"),
        (["cost", "--throughput", "3/min"], "needs --service-time or --job-type"),
        (["assess"], "nothing to assess"),
        (["assess", "--wait", "soon"], "'soon' is not a duration"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(runner: CliRunner, args: list[str], message: str) -> None:
    code, out, err = run(runner, *args)
    assert code == 2, (out, err)
    assert message in err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "Traceback" not in out + err


def test_bad_profiles_directory(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "thresholds.yaml").write_text("metrics: 5\n")
    code, _, err = run(runner, "assess", "--queue-depth", "1", "--profiles", str(tmp_path))
    assert code == 2 and "thresholds.yaml: metrics: Input should be a valid dictionary" in err


def test_assess_exits_1_when_critical(runner: CliRunner) -> None:
    code, out, err = run(runner, "assess", "--queue-depth", "150", "--cpu-util", "40", "-f", "json")
    assert code == 1
    assert json.loads(out)["scale_horizontally"] == ["queue_depth 150 > 100", "cpu_util 40 < 50"]
    assert err == "failed: critical: queue_depth\n"
    code, out, _ = run(runner, "assess", "--queue-depth", "20", "--wait", "5s", "--completion-rate", "99")
    assert code == 0 and "target" in out


def test_cost_table_and_ranking(runner: CliRunner) -> None:
    code, out, _ = run(runner, "cost", "--hours-per-month", "720", "-f", "csv")
    assert out.splitlines()[1:] == [
        "small,10,0.50,360.00",
        "medium,5,0.50,360.00",
        "large,3,0.60,432.00",
        "xlarge,2,0.80,576.00",
    ]
    code, out, _ = run(runner, "cost", "--throughput", "300/min", "--service-time", "12s", "--policy", "-f", "json")
    rows = json.loads(out)["rows"]
    assert code == 0 and {"instance", "workers", "hourly_usd", "monthly_usd"} <= set(rows[0])
    assert rows[0]["instance"] == "medium" and rows[0]["workers"] == 15  # 15 x $0.10 < 4 x $0.40


def _command_paths() -> list[str]:
    """Every registered command and sub-command, as typed after ``capacity``."""
    import typer.main

    def walk(command: Any, prefix: str) -> list[str]:
        paths = [prefix] if prefix else []
        if hasattr(command, "commands"):  # a group (typer ships its own click)
            for name, sub in command.commands.items():
                paths += walk(sub, f"{prefix} {name}".strip())
        return paths

    return walk(typer.main.get_command(app), "")


COMMANDS = _command_paths()


def test_the_command_tree_is_found() -> None:
    assert {"recommend", "recommend photos", "inject", "metrics", "matrix run", "report", "bench"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_is_in_the_docs(runner: CliRunner, command: str) -> None:
    code, out, _ = run(runner, *command.split(), "--help")
    assert code == 0 and len(out) > 200
    docs = "\n".join(page.read_text() for page in sorted((ROOT / "docs").rglob("*.md")))
    assert f"capacity {command}" in docs


def test_python_dash_m_runs_in_a_real_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "capacity", "recommend", "--cpu", "1", "--memory", "2GiB", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["global_concurrency"] == 1
    proc = subprocess.run(
        [sys.executable, "-m", "capacity", "recommend", "--cpu", "1", "--memory", "2XB"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("sub", "flags"),
    [
        (["resources", "--instance", "medium"], ["--instance", "medium"]),
        (["photos", "5000", "--service-time", "8s"], ["--photos", "5000", "--service-time", "8s"]),
        (["topology", "--users", "120"], ["--users", "120"]),
        (["scale-out", "500", "--concurrency", "5"], ["--queue-depth", "500", "--concurrency", "5"]),
    ],
)
def test_recommend_sub_commands_answer_as_the_flags_do(runner: CliRunner, sub: list[str], flags: list[str]) -> None:
    by_sub = runner.invoke(app, ["recommend", *sub, "-f", "json"])
    by_flags = runner.invoke(app, ["recommend", *flags, "-f", "json"])
    assert by_sub.exit_code == 0 and by_flags.exit_code == 0, (by_sub.output, by_flags.output)
    assert json.loads(by_sub.stdout) == json.loads(by_flags.stdout)


def test_recommend_flags_before_a_sub_command_are_refused(runner: CliRunner) -> None:
    code, _, err = run(runner, "recommend", "--cpu", "2", "photos", "4")
    assert code == 2 and err.strip() == "error: give --cpu after photos"
