"""Exact strings for the exporters, on one shared fixture report."""

from __future__ import annotations

from pathlib import Path

import pytest

from capacity.errors import InputError
from capacity.render.formats import render
from capacity.render.model import Report, Table

FIXTURE = Report(
    title="Fixture",
    data={"required_workers": 3, "ratio": float("inf"), "nested": {"a": [1, 2]}},
    summary=(("Workers", "3"), ("Pipe", "a|b")),
    tables=(Table("Rows", ("Name", "Value"), (("x", "1"), ("y", "2"))),),
    notes=("A note.",),
    env={"WORKER_CONCURRENCY": "3"},
)


def test_json() -> None:
    assert render(FIXTURE, "json") == (
        '{\n  "required_workers": 3,\n  "ratio": "inf",\n  "nested": {\n    "a": [\n      1,\n      2\n    ]\n  }\n}\n'
    )


def test_yaml() -> None:
    assert render(FIXTURE, "yaml") == "required_workers: 3\nratio: inf\nnested:\n  a:\n  - 1\n  - 2\n"


def test_markdown() -> None:
    assert render(FIXTURE, "markdown") == (
        "## Fixture\n"
        "| Figure | Value |\n|---|---|\n| Workers | 3 |\n| Pipe | a\\|b |\n"
        "\n### Rows\n\n| Name | Value |\n|---|---|\n| x | 1 |\n| y | 2 |\n"
        "\n- A note.\n"
    )


def test_csv_and_env() -> None:
    assert render(FIXTURE, "csv") == "Name,Value\nx,1\ny,2\n"
    assert render(FIXTURE, "env") == "WORKER_CONCURRENCY=3\n"


def test_k8s_needs_manifests() -> None:
    with pytest.raises(InputError, match="--format k8s is not available for fixture"):
        render(FIXTURE, "k8s")


def test_unknown_format_gets_a_did_you_mean() -> None:
    with pytest.raises(InputError, match="did you mean markdown"):
        render(FIXTURE, "markdwn")


def test_formats_write_to_a_stream() -> None:
    import io

    from capacity.render.formats import write

    out = io.StringIO()
    write(FIXTURE, "csv", out)
    assert out.getvalue() == "Name,Value\nx,1\ny,2\n"


def test_a_command_refuses_a_format_it_does_not_offer_before_running(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from capacity.cli import app

    # matrix run would need a broker and a worker: the format is refused before either is looked at
    result = CliRunner().invoke(app, ["matrix", "run", "--broker", "redis://127.0.0.1:1/0", "-f", "env"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --format 'env' is not offered here; use one of table, json, yaml, markdown, csv, html"
    ]
    assert "env" not in CliRunner().invoke(app, ["report", "--help"]).output.split("Output format:")[1].split(".")[0]
