"""The percentile sketch of streamed simulations (#26): DDSketch's mapping and quantile rule
(Masson, Rim and Lee, VLDB 2019, section 2), checked on cases computed by hand from the paper."""

from __future__ import annotations

import math

import numpy as np
import pytest

from capacity.sizing.sketch import Sketch


def test_the_papers_mapping_by_hand() -> None:
    """alpha = 0.01: gamma = 1.01 / 0.99 = 1.0202020...; 100 falls in bucket ceil(ln 100 / ln gamma)
    = ceil(230.2508) = 231, whose estimate 2 gamma^231 / (gamma + 1) = 100.4946, within 1% of 100;
    50 in bucket ceil(195.5946) = 196, estimate 49.9030."""
    sketch = Sketch(0.01)
    assert sketch.gamma == pytest.approx(1.0202020202)
    assert sketch.key(100.0) == 231 and sketch.value(231) == pytest.approx(100.49457, abs=1e-5)
    assert sketch.key(50.0) == 196 and sketch.value(196) == pytest.approx(49.90296, abs=1e-5)


def test_the_quantile_rule_by_hand() -> None:
    """1, 2, ..., 100: the median is the value of rank q (n - 1) = 49.5 counted from 0, i.e. the
    bucket where the running count first exceeds 49.5: the 50th value's, 50 -> 49.9030 (above);
    the 0.95 quantile is rank 94.05, the 95th value's bucket."""
    sketch = Sketch(0.01)
    sketch.add(np.arange(1, 101, dtype=float))
    assert sketch.count == 100
    assert sketch.quantile(0.5) == pytest.approx(49.90296, abs=1e-5)
    assert sketch.quantile(0.95) == pytest.approx(sketch.value(sketch.key(95.0)))
    assert abs(sketch.quantile(0.95) / 95 - 1) <= 0.01


def test_zeros_merging_and_the_error_bound_on_a_million_values() -> None:
    rng = np.random.default_rng(4)
    values = np.concatenate([np.zeros(200_000), rng.lognormal(0, 2, 800_000)])
    one, two, whole = Sketch(), Sketch(), Sketch()
    one.add(values[:300_000])
    two.add(values[300_000:])
    one.merge(two)
    whole.add(values)
    assert one.zeros == whole.zeros == 200_000 and np.array_equal(one.counts, whole.counts)
    assert one.quantile(0.1) == 0.0  # within the zeros
    ordered = np.sort(values)
    for q in (0.25, 0.5, 0.9, 0.95, 0.99, 0.999):
        exact = ordered[math.floor(q * (len(values) - 1))]
        assert abs(one.quantile(q) / exact - 1) <= 0.01, q
    assert Sketch().quantile(0.5) is None
