"""``assess``: grade observed figures against the thresholds profile (seed 002)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from capacity.errors import InputError, ProfileError
from capacity.profiles import ThresholdProfile

GRADES = ("target", "ok", "warning", "critical")

_CONDITION = re.compile(
    r"^\s*(?:(?P<op><=|>=|<|>|==?)\s*(?P<value>-?[0-9.]+)|(?P<low>-?[0-9.]+)\s*\.\.\s*(?P<high>-?[0-9.]+))\s*$"
)


@dataclass(frozen=True)
class Condition:
    """A comparison from a thresholds profile: "> 100", ">= 50", "70..80"."""

    text: str

    def __post_init__(self) -> None:
        if _CONDITION.match(self.text) is None:
            raise ProfileError(f"threshold {self.text!r} is not a comparison like '> 100', '>= 50' or '70..80'")

    def holds(self, value: float) -> bool:
        match = _CONDITION.match(self.text)
        assert match is not None
        if match.group("low") is not None:
            return float(match.group("low")) <= value <= float(match.group("high"))
        bound = float(match.group("value"))
        op = match.group("op")
        return {
            "<": value < bound,
            "<=": value <= bound,
            ">": value > bound,
            ">=": value >= bound,
        }.get(op, value == bound)


@dataclass(frozen=True)
class Grade:
    metric: str
    label: str
    value: float
    unit: str
    grade: str
    target: str
    warning: str
    critical: str


@dataclass(frozen=True)
class Assessment:
    grades: tuple[Grade, ...]
    horizontal: tuple[str, ...]
    vertical: tuple[str, ...]

    @property
    def worst(self) -> str:
        return max((g.grade for g in self.grades), key=GRADES.index, default="target")

    @property
    def critical(self) -> bool:
        return self.worst == "critical"


def grade(value: float, target: str, warning: str, critical: str) -> str:
    """critical, else warning, else target, else ok (outside the target band, not yet a warning)."""
    if Condition(critical).holds(value):
        return "critical"
    if Condition(warning).holds(value):
        return "warning"
    if Condition(target).holds(value):
        return "target"
    return "ok"


def assess(observed: dict[str, float], thresholds: ThresholdProfile) -> Assessment:
    """Grade each observed figure and give seed 002's horizontal/vertical scaling advice."""
    if not observed:
        raise InputError("nothing to assess: give at least one observed figure")
    grades = []
    for metric, value in observed.items():
        if metric not in thresholds.metrics:
            known = ", ".join(thresholds.metrics)
            raise InputError(f"no threshold for {metric!r} in the profile (known: {known})")
        if not math.isfinite(value) or value < 0:
            raise InputError(f"{metric} must be zero or more, got {value:g}")
        t = thresholds.metrics[metric]
        grades.append(
            Grade(
                metric,
                t.label,
                value,
                t.unit,
                grade(value, t.target, t.warning, t.critical),
                t.target,
                t.warning,
                t.critical,
            )
        )

    def reasons(rule: str) -> tuple[str, ...]:
        conditions = thresholds.scaling.get(rule, {})
        return tuple(
            f"{metric} {observed[metric]:g} {cond.strip()}"
            for metric, cond in conditions.items()
            if metric in observed and Condition(cond).holds(observed[metric])
        )

    return Assessment(tuple(grades), reasons("horizontal_when"), reasons("vertical_when"))
