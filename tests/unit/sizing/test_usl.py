"""USL fits against published coefficients, naming the source."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from capacity.cli import app
from capacity.errors import InputError
from capacity.sizing.usl import fit

# The R package usl (smoeding/usl), dataset specsdm91: SPEC SDM 91 on a Sun SPARCcenter 2000
# (from Gunther, Guerrilla Capacity Planning). Its README's summary(usl(throughput ~ load)):
# alpha (sigma) 0.0277285, beta (kappa) 0.0001044, gamma (lambda) 89.9952330; efficiency
# min 0.0876 and max 0.7211 (1702.2 / (216 x 89.995) and 64.9 / 89.995) confirm the data below.
SPECSDM91_LOAD = np.array([1, 18, 36, 72, 108, 144, 216])
SPECSDM91_THROUGHPUT = np.array([64.9, 995.9, 1652.4, 1853.2, 1828.9, 1775.0, 1702.2])


def test_specsdm91_matches_the_r_package() -> None:
    result = fit(SPECSDM91_LOAD, SPECSDM91_THROUGHPUT)
    assert result.sigma == pytest.approx(0.0277285, abs=5e-7)
    assert result.kappa == pytest.approx(0.0001044, abs=5e-8)
    assert result.lambda_ == pytest.approx(89.9952330, abs=5e-4)
    # peak: sqrt((1 - 0.0277285) / 0.0001044) ~ 96.5 (the package's peak.scalability)
    assert result.peak_concurrency == pytest.approx(math.sqrt((1 - result.sigma) / result.kappa))
    assert 96 < result.peak_concurrency < 97
    assert result.r_squared > 0.95


def test_codahale_usl_readme_example() -> None:
    # github.com/codahale/usl README, "As A CLI Tool": the measurements 1,65 18,996 36,1652 72,1853
    # 108,1829 144,1775 216,1702 give sigma=0.0277299, kappa=0.000104343, lambda=89.9878, max
    # throughput 1883.76 at max concurrency 96, and predictions 10 -> 714.778987, 50 -> 1721.000603,
    # 100 -> 1883.278957, 300 -> 1447.463805 (its README: "within 0.02% of those listed in the book")
    result = fit(SPECSDM91_LOAD, np.array([65, 996, 1652, 1853, 1829, 1775, 1702]))
    assert result.sigma == pytest.approx(0.0277299, rel=2e-4)
    assert result.kappa == pytest.approx(0.000104343, rel=2e-4)
    assert result.lambda_ == pytest.approx(89.9878, rel=2e-4)
    assert result.peak_throughput == pytest.approx(1883.76, rel=2e-4)
    assert int(result.peak_concurrency) == 96
    for n, expected in ((10, 714.778987), (50, 1721.000603), (100, 1883.278957), (300, 1447.463805)):
        assert result.throughput(n) == pytest.approx(expected, rel=2e-4)


def test_exact_recovery_and_linear_scaling() -> None:
    n = np.array([1, 2, 4, 8, 16, 32])
    x = 100 * n / (1 + 0.05 * (n - 1) + 0.002 * n * (n - 1))
    result = fit(n, x)
    assert (result.sigma, result.kappa, result.lambda_) == pytest.approx((0.05, 0.002, 100), rel=1e-6)
    linear = fit(n, 10.0 * n)
    assert linear.kappa == pytest.approx(0, abs=1e-9) and linear.peak_concurrency == math.inf


def test_too_few_points() -> None:
    with pytest.raises(InputError, match="at least 3"):
        fit(np.array([1, 2]), np.array([1.0, 2.0]))


def test_cli(tmp_path: Path) -> None:
    data = tmp_path / "points.csv"
    data.write_text(
        "concurrency,throughput\n"
        + "".join(f"{n},{x}\n" for n, x in zip(SPECSDM91_LOAD, SPECSDM91_THROUGHPUT, strict=True))
    )
    runner = CliRunner()
    result = runner.invoke(app, ["usl", str(data), "--predict", "48", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) >= {"sigma", "kappa", "lambda", "peak_concurrency", "peak_throughput", "r_squared"}
    assert out["predictions"][0]["concurrency"] == 48
    few = tmp_path / "few.csv"
    few.write_text("concurrency,throughput\n1,10\n2,19\n4,35\n")
    result = runner.invoke(app, ["usl", str(few), "-f", "json"])
    assert result.exit_code == 0 and "few points" in " ".join(json.loads(result.stdout)["warnings"])
    result = runner.invoke(app, ["usl", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and "No such file" in result.stderr


def test_matrix_results_file_uses_burst_cells_of_one_size(tmp_path: Path) -> None:
    data = tmp_path / "results.csv"
    lines = ["cell,size,concurrency,mode,throughput_per_min"]
    for size in ("1 MB", "2 MB"):
        scale = 1.0 if size == "1 MB" else 0.5
        lines += [f"b{n},{size},{n},burst,{scale * 100 * n / (1 + 0.02 * n * (n - 1))}" for n in (1, 2, 4, 8)]
        lines += [f"s{n},{size},{n},sustained,120" for n in (1, 2, 4, 8)]  # the arrival rate: ignored
    data.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["usl", str(data), "-f", "json"])
    assert result.exit_code == 2 and "several sizes (1 MB, 2 MB)" in result.stderr
    result = runner.invoke(app, ["usl", str(data), "--size", "2MB", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["points"], out["lambda"], out["kappa"]) == (4, pytest.approx(50), pytest.approx(0.02))
