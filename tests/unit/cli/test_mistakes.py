"""The first hour's mistakes answered in one line before anything is sent (#22)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

from capacity.cli import app
from capacity.load.payload import REFERENCE_PARAMETERS, substitute

BROKER = ["inject", "--broker", "redis://127.0.0.1:1/0", "--count", "1"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--args", '["a.png"]'], "--args without --task: give --task NAME"),
        (["--kwargs", '{"width": 100}'], "--kwargs width without --task: the reference task takes file"),
        (["--payload-file", "{d}/p.jsonl"], "--payload-file without --task"),
        (["--task", "resize", "--args", '["img-$sequence.jpg"]'], "unknown placeholder $sequence"),
        (["--task", "resize", "--args", '["$uuidd"]'], "did you mean $uuid?"),
        (["--task", "resize", "--payload-file", "{d}/p.jsonl"], "unknown placeholder $tenant"),
    ],
)
def test_a_mistake_is_one_line_before_anything_is_sent(tmp_path: Path, extra: list[str], message: str) -> None:
    (tmp_path / "p.jsonl").write_text('{"args": ["$tenant"]}\n')
    argv = [*BROKER, "--log-dir", str(tmp_path / "logs"), *[a.replace("{d}", str(tmp_path)) for a in extra]]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert message in line
    assert not (tmp_path / "logs").exists()  # nothing sent, no log begun (the broker is not even reached)


def test_the_reference_tasks_own_settings_need_no_task() -> None:
    # sleep_s and the job types are the reference worker's: --kwargs with them alone is not a mistake
    # (the broker is unreachable here: exit 3 means the arguments passed)
    result = CliRunner().invoke(app, [*BROKER, "--kwargs", '{"sleep_s": 0.2, "job_type": "Texture Blend"}'])
    assert result.exit_code == 3, result.output


def test_reference_parameters_are_the_reference_tasks() -> None:
    from capacity.workerside.reference import process_file

    named = [p for p in inspect.signature(process_file).parameters if p != "extra"]
    assert tuple(named) == REFERENCE_PARAMETERS


def test_placeholders_end_at_a_word_boundary() -> None:
    # "$seq" inside "$sequence" is not $seq: that is refused above, never half-substituted
    assert substitute("img-$seq.png", {"$seq": 3}) == "img-3.png"
    assert substitute("$seq_2", {"$seq": 3}) == "$seq_2"
    assert substitute("$$seq costs $5", {"$seq": 3}) == "$seq costs $5"


def test_a_table_on_an_80_column_terminal_keeps_every_word() -> None:
    # #22: the compare table truncated verdicts at 80 columns ("regress…"); too wide, it is stacked
    import io

    from rich.console import Console

    from capacity.cli._common import rich_report
    from capacity.render.model import Report, Table

    columns = ("Cell", "Figure", "Base", "New", "Change", "Tolerance", "Noise test (p)", "Verdict")
    row = ("01-1MB-c4-burst", "S.mean", "0.2", "0.8", "+300.0%", "10%", "noise floor 10% (p < 1e-6)", "regression")
    for width, stacked in ((80, True), (200, False)):
        out = io.StringIO()
        rich_report(Report("R", {}, (), (Table("Comparison", columns, (row,)),), ()), Console(file=out, width=width))
        text = out.getvalue()
        assert "regression" in text and "…" not in text and max(len(line) for line in text.splitlines()) <= width
        assert ("Verdict: regression" in text) == stacked


def test_broker_rabbitmq_without_rabbitmq_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: CliRunner
) -> None:
    import capacity.matrix.embedded as embedded

    monkeypatch.setattr(embedded, "RABBITMQ_SCRIPT", str(tmp_path / "absent"))
    monkeypatch.setenv("PATH", str(tmp_path))
    result = runner.invoke(app, ["broker", "rabbitmq", "--port", "1"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "apt-get install rabbitmq-server" in lines[0], result.output
