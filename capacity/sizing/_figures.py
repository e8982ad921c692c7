"""Seed 002's thresholds over a simulation's tasks: how long a wait, or a queue's depth, was above
them. numpy over the arrays the event loop filled (FCFS within a queue: starts never decrease)."""

from __future__ import annotations

import math

import numpy as np

#: seed 002's critical queue depth ("Queue depth: critical > 100", profiles/thresholds.yaml)
QUEUE_CRITICAL = 100


def union_length(lo: np.ndarray, hi: np.ndarray) -> float:
    """The length of the union of the intervals [lo_i, hi_i), ``lo`` sorted."""
    if not len(lo):
        return 0.0
    reach = np.maximum.accumulate(hi)
    before = np.concatenate(([-math.inf], reach[:-1]))
    return float(np.clip(hi - np.maximum(lo, before), 0, None).sum())


def time_above(arrivals: np.ndarray, starts: np.ndarray, threshold: float) -> float:
    """How long some waiting task had waited more than ``threshold``: the union of the intervals
    (arrival + threshold, start), in arrival order."""
    return union_length(arrivals + threshold, starts)


def time_deeper(arrivals: np.ndarray, starts: np.ndarray, depth: int) -> float:
    """How long more than ``depth`` tasks waited in one FCFS queue: task j + depth has arrived and
    task j has not started (tasks start in order), the union of [a_(j + depth), start_j)."""
    if len(arrivals) <= depth:
        return 0.0
    return union_length(arrivals[depth:], starts[: len(starts) - depth])
