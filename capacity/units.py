"""Parsing of sizes, durations and rates as users write them ("500MB", "4GiB", "12s", "10/min").

Hand-written on purpose: the grammar is tiny, must reject anything else with a message that names
the value, and must accept both SI and Kubernetes-style binary suffixes ("512Mi"); humanfriendly
and pint each cover only part of that and neither gives the strict one-line errors we need.
"""

from __future__ import annotations

import math
import re

from capacity.errors import InputError

_SIZE_FACTORS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
}

_DURATION_FACTORS: dict[str, float] = {
    "": 1.0,
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "d": 86400.0,
}

_RATE_UNITS: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
}

_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")

SIZE_HELP = "SI (kB, MB, GB, or K, M, G = powers of 1000) or binary (KiB, MiB, GiB, or Ki, Mi, Gi)"
DURATION_HELP = "250ms, 12s, 3m, 1h (a bare number is seconds)"
RATE_HELP = "10/min, 2/s, 600/h"


def parse_size(text: str | int | float, what: str = "size") -> int:
    """Bytes in a size such as "500MB", "4GiB", "4G" or "512Mi"; InputError otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0 or not math.isfinite(text):
            raise InputError(f"{what} must be a non-negative size, got {text!r}")
        return int(text)
    match = _NUMBER_UNIT.match(str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_FACTORS:
        raise InputError(f"{what}: {str(text)!r} is not a size; use a number with a unit: {SIZE_HELP}")
    return round(float(match.group(1)) * _SIZE_FACTORS[unit])


def parse_duration(text: str | int | float, what: str = "duration") -> float:
    """Seconds in a duration such as "250ms", "12s", "3m"; InputError otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0 or not math.isfinite(text):
            raise InputError(f"{what} must be a non-negative duration, got {text!r}")
        return float(text)
    match = _NUMBER_UNIT.match(str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _DURATION_FACTORS:
        raise InputError(f"{what}: {str(text)!r} is not a duration; use {DURATION_HELP}")
    return float(match.group(1)) * _DURATION_FACTORS[unit]


def parse_rate(text: str | int | float, what: str = "rate", bare_unit: str | None = None) -> float:
    """Events per second in a rate such as "10/min", "2/s", "600/h".

    A bare number is accepted only when ``bare_unit`` says what it means (seed 003's
    ``--rate 10`` is ten per minute).
    """
    raw = str(text).strip()
    if "/" in raw:
        number, _, unit = raw.partition("/")
        unit = unit.strip().lower()
    else:
        number, unit = raw, (bare_unit or "")
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if unit not in _RATE_UNITS or not math.isfinite(value) or value < 0:
        raise InputError(f"{what}: {raw!r} is not a rate; use {RATE_HELP}")
    return value / _RATE_UNITS[unit]


def parse_rate_limit(text: str, what: str = "--rate-limit") -> tuple[int, float]:
    """BullMQ's limiter as written by users: ``100/min``, ``100/60s``, ``5/250ms`` (max jobs per
    duration); (max, duration in seconds)."""
    count, sep, window = text.strip().partition("/")
    try:
        jobs = int(count)
    except ValueError:
        raise InputError(f"{what}: {text!r} is not N/DURATION, e.g. 100/min or 10/1s") from None
    if not sep or jobs < 1:
        raise InputError(f"{what}: {text!r} is not N/DURATION with N >= 1, e.g. 100/min")
    units = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}
    duration = units[window] if window in units else parse_duration(window, what)
    if not duration > 0:
        raise InputError(f"{what}: {text!r} needs a duration above zero")
    return jobs, duration


def parse_instant(text: str, what: str = "time") -> float:
    """An instant as epoch seconds: ISO 8601 (an offset, or UTC when none) or epoch seconds."""
    from datetime import UTC, datetime

    try:
        epoch = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(epoch):
            raise InputError(f"{what}: {text!r} is not a time")
        return epoch
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{what}: {text!r} is not an ISO 8601 time or epoch seconds") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _scaled(value: float, base: int, units: tuple[str, ...]) -> str:
    for unit in units:
        if abs(value) < base or unit == units[-1]:
            return f"{f'{value:.2f}'.rstrip('0').rstrip('.')} {unit}"
        value /= base
    raise AssertionError("unreachable")


def format_size(n_bytes: float) -> str:
    """A short human size in whichever family states it more exactly: 4 GiB, 100 MB, 1.6 GB."""
    si = _scaled(float(n_bytes), 1000, ("B", "kB", "MB", "GB", "TB"))
    binary = _scaled(float(n_bytes), 1024, ("B", "KiB", "MiB", "GiB", "TiB"))
    return binary if len(binary.split()[0]) < len(si.split()[0]) else si


def format_duration(seconds: float) -> str:
    """A short human duration."""
    if not math.isfinite(seconds):
        return "inf"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"
