"""The memory a simulation may take (capacity/sizing/memory.py): refused in one line before it starts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from capacity.cli import app
from capacity.errors import InputError
from capacity.sizing.memory import ENV_VAR, allowed_bytes, check_fits


def test_the_limit_comes_from_the_environment_or_the_memory_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "1.5GB")
    assert allowed_bytes() == (1_500_000_000, f"${ENV_VAR}")
    check_fits(1_500_000_000, "exactly the limit")  # at the limit: allowed
    with pytest.raises(InputError, match=r"needs about 1.6 GB of memory; \$CAPACITY_MEMORY_LIMIT allows 1.5 GB"):
        check_fits(1_600_000_000, "one more")
    monkeypatch.delenv(ENV_VAR)
    allowed, source = allowed_bytes()
    with open("/proc/meminfo") as meminfo:  # Linux: 80% of MemAvailable, read when asked
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    assert allowed is not None and 0 < allowed <= 0.8 * total_kb * 1024
    assert source == "80% of the memory available now"


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--workers", "4", "--arrival", "burst", "--count", "1000000", "--service-time", "1s"],
        ["autoscale", "--concurrency", "4", "--count", "1000000"],
    ],
)
def test_a_simulation_that_would_not_fit_is_refused_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    # 1,000,000 tasks at 128 bytes a task need 128 MB: refused under a 100 MB limit, run under 1 GB
    monkeypatch.setenv(ENV_VAR, "100MB")
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: simulating 1,000,000 tasks needs about 128 MB of memory; $CAPACITY_MEMORY_LIMIT allows 100 MB "
        "(set CAPACITY_MEMORY_LIMIT to allow more)"
    ]
    monkeypatch.setenv(ENV_VAR, "1GB")
    assert CliRunner().invoke(app, [*argv, "-f", "json"]).exit_code == 0
