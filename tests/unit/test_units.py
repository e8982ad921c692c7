from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capacity.errors import InputError
from capacity.units import parse_duration, parse_rate, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500MB", 500_000_000),
        ("4GiB", 4 * 2**30),
        ("4G", 4_000_000_000),
        ("512Mi", 512 * 2**20),
        ("0.5GiB", 2**29),
        ("50mb", 50_000_000),
        ("100 MB", 100_000_000),
        ("1024", 1024),
        ("2KiB", 2048),
    ],
)
def test_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["50XB", "-5MB", "MB", "", "1.2.3GB", "5 G B", "nan"])
def test_bad_sizes_name_the_value(text: str) -> None:
    with pytest.raises(InputError, match="is not a size"):
        parse_size(text, "--size")


@pytest.mark.parametrize(
    ("text", "seconds"), [("250ms", 0.25), ("12s", 12.0), ("3m", 180.0), ("1h", 3600.0), ("7", 7.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["12x", "-1s", "s", "1..2s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InputError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "per_s"), [("10/min", 10 / 60), ("2/s", 2.0), ("600/h", 600 / 3600), ("60/m", 1.0)])
def test_rates(text: str, per_s: float) -> None:
    assert parse_rate(text) == pytest.approx(per_s)


def test_bare_rate_needs_a_unit_unless_the_caller_gives_one() -> None:
    with pytest.raises(InputError, match="is not a rate"):
        parse_rate("10")
    # seed 003: `--rate 10` means ten per minute
    assert parse_rate("10", bare_unit="min") == pytest.approx(10 / 60)


@pytest.mark.parametrize("text", ["10/fortnight", "-1/s", "abc/s", "/s"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(InputError, match="is not a rate"):
        parse_rate(text)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["KiB", "MiB", "GiB"]))
def test_binary_units_are_powers_of_1024(n: int, unit: str) -> None:
    factor = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]
    assert parse_size(f"{n}{unit}") == n * factor
    assert parse_size(f"{n}{unit[:-1]}") == n * factor  # Kubernetes style "512Mi"


@pytest.mark.parametrize(
    ("n", "text"),
    [(4 * 2**30, "4 GiB"), (512 * 2**20, "512 MiB"), (100 * 10**6, "100 MB"), (1_600_000_000, "1.6 GB"), (12, "12 B")],
)
def test_format_size_keeps_the_unit_family(n: int, text: str) -> None:
    from capacity.units import format_size

    assert format_size(n) == text
