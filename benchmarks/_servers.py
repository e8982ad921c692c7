"""Servers for the benchmarks: the same real components the tests use."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.realbrokers import MotoSQS, RedisServer  # re-exported for the benchmarks

__all__ = ["MotoSQS", "RedisServer"]
