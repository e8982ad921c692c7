"""Exact strings for the exporters, on one shared fixture report."""

from __future__ import annotations

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
