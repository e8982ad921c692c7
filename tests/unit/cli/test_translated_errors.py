"""Inputs that ended in exit 70 ("internal error") in #23's fuzz rerun, each now one line naming
what was wrong, exit 2, at the place that knows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from capacity.cli import app


@pytest.fixture()
def inputs(tmp_path: Path) -> Path:
    (tmp_path / "list.json").write_text('["x"]')
    (tmp_path / "strings.json").write_text(json.dumps({"sent": "a", "throughput_per_min": "b"}))
    (tmp_path / "t.log").write_text('{"type":"run"}\n{"task_id":"a","sent_at":"2026-01-01T00:00:00+00:00"}\n')
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["collect", "--broker", "redis://:pw1@127.0.0.1:1/0?password=pw2", "--for", "1s", "--out", "{d}/e.jsonl"],
            "has two passwords",
        ),
        (["collect", "--broker", "redis://[::1/0", "--for", "1s", "--out", "{d}/e.jsonl"], "is malformed"),
        (["compare", "{d}/strings.json", "{d}/strings.json"], "throughput_per_min is str 'b', not a number"),
        (["plan", "--arrival-rate", "1/s", "--from-metrics", "{d}/list.json"], "a JSON list, not an object"),
        (["metrics", "--tasks-log", "{d}/t.log", "--fail-if", "completion<%"], "'' is not a number"),
        (["bench", "--broker", ""], "an empty broker URL"),
        (
            ["inject", "--protocol", "bullmq", "--broker", "redis://127.0.0.1:1/0", "--job-options", '{"jobId": "x"}'],
            "each job's id is the injector's",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v)[:50],
)
def test_once_an_internal_error_now_one_line(inputs: Path, argv: list[str], message: str) -> None:
    result = CliRunner().invoke(app, [a.replace("{d}", str(inputs)) for a in argv])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "pw1" not in result.stderr and "pw2" not in result.stderr  # secrets by value, query too


def test_a_start_more_than_a_day_ahead_is_refused_unless_asked() -> None:
    # #23: `inject --start-at` in 2099 waited silently
    argv = ["inject", "--broker", "redis://127.0.0.1:1/0", "--count", "1", "--start-at", "2099-01-01T00:00:00Z"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and "days ahead: a typo? give --wait-long" in result.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--scale-up-pods", "0", "--scale-up-pods must be at least 1, got 0"),
        ("--scale-up-percent", "-5", "--scale-up-percent must be above zero, got -5"),
        ("--tolerance", "-1", "--tolerance must be zero or more and below 1, got -1"),
        ("--activation", "-1", "--activation must be zero or more, got -1"),
        ("--service-cv", "-1", "--service-cv must be zero or more, got -1"),
        ("--scale-down-percent", "1000", "--scale-down-percent must be above zero and at most 100, got 1000"),
    ],
)
def test_autoscale_flags_are_held_to_the_fleet_files_rules(flag: str, value: str, message: str) -> None:
    # #23: each was refused in a fleet file and accepted (exit 0) as a flag; Policy.check and
    # Workload.check now hold both to one rule
    argv = ["autoscale", "--concurrency", "2", "--count", "10", "--service-time", "1s", flag, value]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and result.stderr.strip() == f"error: {message}"


def test_secrets_the_run_knows_are_masked_by_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # #23: a worker printing a bare AWS secret key (no "password=" around it) had it stored in
    # worker.log: every secret the environment, the URLs and the transport options hold is
    # registered by value when the command starts, and the worker's output goes through mask()
    import subprocess
    import sys
    import threading

    from capacity.matrix.processes import _RedactingPump

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SuperSecretAwsKey/abc+def")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://:backendpw9@127.0.0.1:1/1")
    options = '{"sasl_token": "tok-123456", "sentinel_kwargs": {"password": "sentinelpw"}}'
    CliRunner().invoke(app, ["matrix", "plan"])  # any command: the root callback registers the environment
    from capacity.cli._common import json_object_option

    json_object_option(options, "--transport-options")
    script = (
        "import os; print('SECRET', os.environ['AWS_SECRET_ACCESS_KEY']); print('tok-123456 sentinelpw backendpw9')"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert worker.stdout is not None
    log = tmp_path / "worker.log"
    pump = _RedactingPump(worker.stdout, log, threading.Lock())
    worker.wait()
    pump.join()
    assert log.read_text() == "SECRET ***\n*** *** ***\n"


@pytest.mark.parametrize("after_s", [0.3, 2.5])
def test_ctrl_c_is_acted_on_within_a_second_start_up_included(tmp_path: Path, after_s: float) -> None:
    # #23: rediss:// to a server that never answers TLS: Ctrl-C between 2 and 7 s was not acted on,
    # and at start-up it printed a KeyboardInterrupt traceback
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        argv = [sys.executable, "-m", "capacity", "inject", "--broker", f"rediss://127.0.0.1:{port}/0", "--count", "1"]
        process = subprocess.Popen(
            [*argv, "--log-dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(after_s)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        took = time.monotonic() - sent
    assert process.returncode == 130, err
    assert (
        err.strip().startswith("error: interrupted") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    )
    assert took < 1.5, took  # a bound on responsiveness, not a speed target: the hang was 5 s


@pytest.mark.parametrize(
    "argv",
    [["metrics", "--tasks-log", "a\x00b"], ["plan", "--output", "\x00"], ["probe", "write", "\x00"]],
    ids=["metrics", "plan", "probe"],
)
def test_a_nul_byte_in_an_argument_is_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # the fuzz run's 'ValueError: embedded null byte' (exit 70) from whichever reader met it first
    # (typer 0.28 passes the argument as it is): refused before any command runs, exit 2
    from capacity.cli import run

    assert run(argv) == 2
    position = argv.index(next(a for a in argv if "\x00" in a)) + 1
    assert capsys.readouterr().err == f"error: argument {position} contains a NUL byte (see 'capacity --help')\n"
