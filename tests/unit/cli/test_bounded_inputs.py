"""Input files are read within a bound: a device that never ends (/dev/zero) or a file far larger
than any profile, fleet, matrix or CSV the tool reads is refused in one line, not read until the
OOM killer ends the process (the CLI fuzz found ``simulate --fleet /dev/full`` taking 24 GB)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from capacity import files
from capacity.cli import app
from capacity.errors import InputError

ZERO = "/dev/zero"


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--fleet", ZERO],
        ["autoscale", "--fleet", ZERO],
        ["matrix", "plan", ZERO],
        ["usl", ZERO],
        ["plan", "--arrival-rate", "1/s", "--from-metrics", ZERO],
        ["simulate", "--workers", "2", "--arrival", "burst", "--count", "5", "--from-metrics", ZERO],
        ["inject", "--broker", "redis://127.0.0.1:1/0", "--count", "1", "--task", "t", "--payload-template", ZERO],
        ["inject", "--broker", "redis://127.0.0.1:1/0", "--count", "1", "--task", "t", "--payload-file", ZERO],
        ["inject", "--broker", "redis://127.0.0.1:1/0", "--mode", "ramp", "--stages", ZERO],
    ],
)
def test_an_endless_input_is_one_line(argv: list[str]) -> None:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert "larger than 64 MiB" in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_the_bound_is_on_content_not_on_the_newline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(files, "MAX_INPUT_BYTES", 4)
    assert list(files.input_lines(io.StringIO("abcd\nefgh"), tmp_path)) == ["abcd\n", "efgh"]
    with pytest.raises(InputError, match="has a line that is larger than 0 MiB"):
        list(files.input_lines(io.StringIO("ab\nabcde\n"), tmp_path))
    whole = tmp_path / "f"
    whole.write_text("abcd")
    assert files.read_input(whole) == "abcd"
    whole.write_text("abcde")
    with pytest.raises(InputError, match="is larger than"):
        files.read_input(whole)
