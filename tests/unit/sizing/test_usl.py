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
from capacity.sizing.usl import USLFit, assess, fit, point_recommendation

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


# --- uncertainty and verdicts (#21) ------------------------------------------------------------------


def test_specsdm91_standard_errors_match_the_r_package() -> None:
    # the same README's summary(usl(throughput ~ load, specsdm91)): Std. Error alpha 0.0091217,
    # beta 0.0000199, gamma 14.2134894; "Residual standard error: 82.8 on 4 degrees of freedom".
    # R's nls reports s^2 (J'J)^-1 at the solution, which is what fit() computes.
    result = fit(SPECSDM91_LOAD, SPECSDM91_THROUGHPUT)
    assert result.dof == 4
    errors = result.standard_errors
    assert errors is not None
    assert errors[0] == pytest.approx(0.0091217, rel=1e-4)
    assert errors[1] == pytest.approx(0.0000199, rel=5e-3)  # printed to 3 significant figures
    assert errors[2] == pytest.approx(14.2134894, rel=1e-5)
    # 95% interval: estimate +- t(0.975, 4) x SE, t = 2.776445 (R: qt(0.975, 4))
    low, high = result.interval(0) or (0, 0)
    assert (low, high) == pytest.approx((0.0277285 - 2.776445 * 0.0091217, 0.0277285 + 2.776445 * 0.0091217), rel=1e-4)
    # N*'s interval by the delta method: d N*/d sigma = -1 / (2 kappa N*), d N*/d kappa = -N* / (2 kappa)
    peak = result.peak_concurrency_ci95
    assert peak is not None and peak[1] is not None and peak[0] < result.peak_concurrency < peak[1]
    assert peak[1] - peak[0] == pytest.approx(49.9, abs=1.0)


def test_specsdm91_is_a_recommendation_with_its_range() -> None:
    verdict = assess(fit(SPECSDM91_LOAD, SPECSDM91_THROUGHPUT), [int(v) for v in SPECSDM91_LOAD])
    assert verdict.verdict == "recommended" and verdict.recommended_concurrency is not None
    assert verdict.recommended_range is not None
    low, high = verdict.recommended_range
    assert low <= verdict.recommended_concurrency <= high < 96  # below N* = 96.5: 95% of the peak comes earlier
    # by hand, the closed form at the estimates: T = 0.95 X(N*), smaller root of T k N^2 + (T s - T k - l) N + T(1-s)
    s, k, lam = 0.0277285, 0.0001044, 89.9952330
    n_star = math.sqrt((1 - s) / k)
    target = 0.95 * lam * n_star / (1 + s * (n_star - 1) + k * n_star * (n_star - 1))
    a, b, c = target * k, target * s - target * k - lam, target * (1 - s)
    assert verdict.recommended_concurrency == math.ceil((-b - math.sqrt(b * b - 4 * a * c)) / (2 * a))


# the noisy run: six levels on a shared 2-core machine, R^2 ~ 0.15
NOISY_LEVELS = np.array([1, 2, 4, 8, 12, 16])
NOISY_X = np.array([100.0, 130.0, 90.0, 160.0, 110.0, 95.0])


def test_a_noisy_run_is_inconclusive_with_no_number(tmp_path: Path) -> None:
    result = fit(NOISY_LEVELS, NOISY_X)
    assert result.r_squared < 0.2
    data = tmp_path / "noisy.csv"
    data.write_text(
        "concurrency,throughput\n" + "".join(f"{n},{x}\n" for n, x in zip(NOISY_LEVELS, NOISY_X, strict=True))
    )
    out = CliRunner().invoke(app, ["usl", str(data), "-f", "json"])
    assert out.exit_code == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["verdict"] == "inconclusive" and payload["recommended_concurrency"] is None
    assert payload["recommended_range"] is None and "poor fit (R^2 0.1" in payload["reason"]
    assert payload["next_levels"] and all(isinstance(n, int) for n in payload["next_levels"])
    assert set(payload) >= {"sigma_ci95", "kappa_ci95", "peak_concurrency_ci95", "points_used"}
    table = CliRunner().invoke(app, ["usl", str(data)])
    assert "inconclusive" in table.stdout


def test_verdicts_follow_what_the_points_can_carry() -> None:
    n = np.array([1, 2, 4, 8, 16, 32])
    exact = 100 * n / (1 + 0.05 * (n - 1) + 0.002 * n * (n - 1))
    noise = np.array([1.01, 0.98, 1.02, 0.99, 1.01, 0.985])
    clean = assess(fit(n, exact * noise), n.tolist())
    assert clean.verdict == "recommended" and clean.recommended_range is not None
    # the true curve's answer (smallest N reaching 95% of X(N*) = 100 x 21.8 / 2.87 ...) is in the range
    true_n = point_recommendation(USLFit(0.05, 0.002, 100.0, 1.0, 6))
    assert true_n is not None and clean.recommended_range[0] <= true_n <= clean.recommended_range[1]
    # linear: no saturation seen, test higher
    linear = assess(fit(n, 10.0 * n * noise), n.tolist())
    assert linear.verdict == "inconclusive" and "test higher" in linear.reason
    assert max(linear.next_levels) > 32
    # three points for three parameters: no interval
    three = assess(fit(n[:3], exact[:3]), n[:3].tolist())
    assert three.verdict == "inconclusive" and "no interval" in three.reason
    # points stopping short of the peak: N* cannot be pinned down from 1-4
    short = assess(fit(n[:4], exact[:4] * noise[:4]), n[:4].tolist())
    assert short.verdict == "inconclusive" and short.recommended_concurrency is None
    assert short.next_levels and max(short.next_levels) > 8  # where the curve turns
    none = assess(None, [1, 2], "not fitted: 2 concurrency levels (need 3)")
    assert none.verdict == "inconclusive" and none.next_levels == (4, 8)


def test_usl_reads_replicas_and_leaves_disturbed_rows_out(tmp_path: Path) -> None:
    data = tmp_path / "results.csv"
    lines = ["cell,concurrency,replicas,mode,throughput_per_min,disturbed"]
    for replicas in (1, 2):
        for c in (1, 2, 4):
            slots = c * replicas
            lines.append(f"c{c}r{replicas},{c},{replicas},burst,{100 * slots / (1 + 0.02 * slots * (slots - 1))},False")
    lines.append("noisy,8,1,burst,5,True")  # a disturbed cell: not a point
    data.write_text("\n".join(lines) + "\n")
    out = CliRunner().invoke(app, ["usl", str(data), "-f", "json"])
    assert out.exit_code == 0, out.stderr
    payload = json.loads(out.stdout)
    assert sorted({n for n, _ in payload["points_used"]}) == [1, 2, 4, 8]  # slots = concurrency x replicas
    assert payload["kappa"] == pytest.approx(0.02, rel=1e-6) and payload["points"] == 6
    assert any("1 disturbed rows left out" in w for w in payload["warnings"])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("1,0\n2,0\n4,0\n", "every throughput is zero"),
        ("1,nan\n2,3\n4,5\n", "finite numbers"),
        ("1,inf\n2,3\n4,5\n", "finite numbers"),
        ("0,1\n2,3\n4,5\n", "above zero"),
    ],
)
def test_bad_points_are_one_line(tmp_path: Path, rows: str, message: str) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("concurrency,throughput\n" + rows)
    out = CliRunner().invoke(app, ["usl", str(data)])
    assert out.exit_code == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1
