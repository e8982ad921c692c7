"""Gunther's Universal Scalability Law: X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)).

Fitted by bounded nonlinear least squares (scipy.optimize.least_squares; sigma and kappa in
[0, 1], lambda >= 0), so the table of measured throughputs answers "what concurrency should we
run?", and with its uncertainty: the parameters' standard errors are the ones R's ``nls`` reports
for the same fit (residual variance times the inverse of J'J at the solution, J the Jacobian), their
95% intervals use Student's t with n - 3 degrees of freedom, and N* gets its interval by the delta
method. A recommendation is given only when the data can carry it (:func:`assess`); otherwise the
verdict is "inconclusive", with the concurrency levels that would narrow the answer most.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capacity.errors import InputError
from capacity.files import input_lines

MIN_POINTS = 3
TRUSTED_POINTS = 6
#: the recommended concurrency reaches this share of the fitted peak throughput
PEAK_SHARE = 0.95
#: below this R^2 the curve does not describe the points: no recommendation
MIN_R_SQUARED = 0.8
#: parameter draws for the recommended range (a parametric bootstrap from the fit's covariance)
RANGE_DRAWS = 4000
RECOMMENDED = "recommended"
INCONCLUSIVE = "inconclusive"

Interval = tuple[float, float | None]  # [low, high]; high None where it is unbounded


@dataclass(frozen=True)
class USLFit:
    sigma: float
    kappa: float
    lambda_: float
    r_squared: float
    points: int
    #: covariance of (sigma, kappa, lambda) as R's nls reports it; None with no residual degree of freedom
    covariance: tuple[tuple[float, ...], ...] | None = None
    #: the concurrency of every point fitted (the Jacobian's rows, for the levels to test next)
    concurrency: tuple[float, ...] = ()

    def throughput(self, n: float | np.ndarray) -> float | np.ndarray:
        return self.lambda_ * n / (1 + self.sigma * (n - 1) + self.kappa * n * (n - 1))

    @property
    def peak_concurrency(self) -> float:
        """N* = sqrt((1 - sigma) / kappa), unrounded; infinite when kappa is 0."""
        return math.inf if self.kappa == 0 else math.sqrt((1 - self.sigma) / self.kappa)

    @property
    def peak_throughput(self) -> float:
        n = self.peak_concurrency
        if math.isinf(n):
            return self.lambda_ / self.sigma if self.sigma > 0 else math.inf  # the asymptote
        return float(self.throughput(n))

    @property
    def dof(self) -> int:
        return self.points - 3

    @property
    def standard_errors(self) -> tuple[float, float, float] | None:
        if self.covariance is None:
            return None
        s, k, lam = (math.sqrt(max(self.covariance[i][i], 0.0)) for i in range(3))
        return s, k, lam

    def _t(self) -> float:
        from scipy.stats import t

        return float(t.ppf(0.975, self.dof))

    def interval(self, index: int) -> tuple[float, float] | None:
        """The 95% interval of sigma (0), kappa (1) or lambda (2): estimate +- t(0.975, n-3) x SE,
        clipped to the parameter's bounds (sigma and kappa in [0, 1], lambda >= 0)."""
        errors = self.standard_errors
        if errors is None:
            return None
        value = (self.sigma, self.kappa, self.lambda_)[index]
        half = self._t() * errors[index]
        top = 1.0 if index < 2 else math.inf
        return max(0.0, value - half), min(top, value + half)

    @property
    def peak_concurrency_ci95(self) -> Interval | None:
        """N*'s 95% interval by the delta method; unbounded above when kappa's interval reaches 0
        (the points cannot rule out a curve that never turns down)."""
        if self.covariance is None or self.kappa <= 0:
            return None if self.covariance is None else (self.peak_concurrency_floor(), None)
        n_star = self.peak_concurrency
        gradient = np.array([-1 / (2 * self.kappa * n_star), -n_star / (2 * self.kappa), 0.0])
        se = math.sqrt(max(float(gradient @ np.array(self.covariance) @ gradient), 0.0))
        kappa_low = (self.interval(1) or (0.0, 0.0))[0]
        low = max(1.0, n_star - self._t() * se)
        return low, None if kappa_low <= 0 else n_star + self._t() * se

    def peak_concurrency_floor(self) -> float:
        """With kappa 0 at the estimate: the lowest N* its interval allows (kappa at its upper bound)."""
        high = (self.interval(1) or (0.0, 0.0))[1]
        return math.sqrt((1 - self.sigma) / high) if high > 0 else math.inf


def _jacobian(n: np.ndarray, sigma: float, kappa: float, lam: float) -> np.ndarray:
    """d X / d (sigma, kappa, lambda) at each n."""
    d = 1 + sigma * (n - 1) + kappa * n * (n - 1)
    return np.column_stack([-lam * n * (n - 1) / d**2, -lam * n * n * (n - 1) / d**2, n / d])


def fit(concurrency: np.ndarray, throughput: np.ndarray) -> USLFit:
    from scipy.optimize import least_squares

    n = np.asarray(concurrency, dtype=float)
    x = np.asarray(throughput, dtype=float)
    if len(n) < MIN_POINTS:
        raise InputError(f"a USL fit needs at least {MIN_POINTS} (concurrency, throughput) points, got {len(n)}")
    if not np.all(np.isfinite(n)) or not np.all(np.isfinite(x)) or np.any(n <= 0) or np.any(x < 0):
        raise InputError("concurrency must be above zero and throughput zero or more (finite numbers)")
    if len(np.unique(n)) < MIN_POINTS:
        raise InputError(f"a USL fit needs at least {MIN_POINTS} different concurrency levels")
    lam0 = float(np.max(x / n))
    if lam0 <= 0:
        raise InputError("every throughput is zero: nothing completed, no curve to fit")

    def residuals(params: np.ndarray) -> np.ndarray:
        sigma, kappa, lam = params
        fitted: np.ndarray = lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1)) - x
        return fitted

    solution = least_squares(
        residuals,
        x0=[0.01, 0.0001, lam0],
        bounds=([0, 0, 0], [1, 1, np.inf]),
        x_scale=[0.01, 0.0001, lam0],
        xtol=1e-14,
        ftol=1e-14,
        gtol=1e-14,
        max_nfev=10_000,
    )
    # values below the solver's resolution are zero: a perfectly linear system has no peak
    sigma, kappa, lam = (0.0 if abs(v) < 1e-12 else float(v) for v in solution.x)
    ss_res = float(np.sum(solution.fun**2))
    ss_tot = float(np.sum((x - x.mean()) ** 2))
    covariance = None
    if len(n) > 3:
        # as R's nls: s^2 (J'J)^-1 with s^2 = SSR / (n - p); pinv where a bound makes J'J singular
        jacobian = _jacobian(n, sigma, kappa, lam)
        s2 = ss_res / (len(n) - 3)
        matrix = s2 * np.linalg.pinv(jacobian.T @ jacobian)
        covariance = tuple(tuple(float(v) for v in row) for row in matrix)
    r_squared = 1 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return USLFit(sigma, kappa, lam, r_squared, len(n), covariance, tuple(float(v) for v in n))


# --- what the fit can carry ---------------------------------------------------------------------------


def recommended_n(sigma: np.ndarray, kappa: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The smallest N (continuous) whose X reaches 95% of the peak: the peak X(N*), or without
    coherency cost the asymptote lambda/sigma; infinite when the curve is linear. Closed form:
    X(N) = T is T kappa N^2 + (T sigma - T kappa - lambda) N + T (1 - sigma) = 0, its smaller root."""
    sigma, kappa, lam = (np.asarray(v, dtype=float) for v in (sigma, kappa, lam))
    out = np.full(np.broadcast(sigma, kappa, lam).shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_star = np.sqrt((1 - sigma) / kappa)
        peak = np.where(
            kappa > 0,
            lam * n_star / (1 + sigma * (n_star - 1) + kappa * n_star * (n_star - 1)),
            lam / sigma,
        )
        target = PEAK_SHARE * peak
        a, b, c = target * kappa, target * sigma - target * kappa - lam, target * (1 - sigma)
        quadratic = (-b - np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))) / (2 * a)
        linear = c / (lam - target * sigma)
    out = np.where((kappa > 0) & np.isfinite(quadratic), quadratic, out)
    out = np.where((kappa <= 0) & (sigma > 0) & np.isfinite(linear), linear, out)
    result: np.ndarray = np.maximum(out, 1.0)
    return result


def point_recommendation(model: USLFit) -> int | None:
    """The smallest integer N reaching 95% of the fitted peak; None for a linear fit."""
    value = float(recommended_n(np.array(model.sigma), np.array(model.kappa), np.array(model.lambda_)))
    # a hair below an integer is that integer (the target is reached there up to rounding)
    return None if math.isinf(value) else max(1, math.ceil(value - 1e-9))


@dataclass(frozen=True)
class Recommendation:
    """What a fit says about concurrency, and how sure: ``verdict`` is "recommended" (with a number
    and its 95% range) or "inconclusive" (no number; ``reason`` says why, ``next_levels`` what to
    run to narrow it)."""

    verdict: str
    recommended_concurrency: int | None
    recommended_range: tuple[int, int] | None
    reason: str
    next_levels: tuple[int, ...] = ()


def _recommended_range(model: USLFit) -> tuple[float, float] | None:
    if model.covariance is None:
        return None
    rng = np.random.default_rng(20261203)
    mean = np.array([model.sigma, model.kappa, model.lambda_])
    draws = rng.multivariate_normal(mean, np.array(model.covariance), size=RANGE_DRAWS, check_valid="ignore")
    sigma = np.clip(draws[:, 0], 0.0, 1.0 - 1e-9)
    kappa = np.clip(draws[:, 1], 0.0, 1.0)
    lam = np.clip(draws[:, 2], 1e-12, None)
    values = np.ceil(recommended_n(sigma, kappa, lam) - 1e-9)
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def next_levels(model: USLFit | None, tested: list[int], count: int = 2) -> tuple[int, ...]:
    """The concurrency levels whose cells would narrow the recommendation most: greedily, the level
    whose one extra point most reduces the variance of the recommended N (delta method on the fit's
    J'J). Without a usable fit: levels that widen the tested range (twice and four times the top)."""
    top = max(tested) if tested else 1
    if model is not None and model.covariance is not None and (model.sigma > 0 or model.kappa > 0):
        base = _jacobian(np.array(model.concurrency), model.sigma, model.kappa, model.lambda_)
        params = np.array([model.sigma, model.kappa, model.lambda_])
        steps = np.maximum(np.abs(params) * 1e-4, 1e-10)
        gradient = np.zeros(3)
        for i in range(3):
            up, down = params.copy(), params.copy()
            up[i] += steps[i]
            down[i] = max(down[i] - steps[i], 0.0)
            gradient[i] = (recommended_n(*up) - recommended_n(*down)) / (up[i] - down[i])
        if np.all(np.isfinite(gradient)):
            candidates = np.arange(1, max(4 * top, 8) + 1, dtype=float)
            information = base.T @ base
            chosen: list[int] = []
            for _ in range(count):
                rows = _jacobian(candidates, model.sigma, model.kappa, model.lambda_)
                variances = [float(gradient @ np.linalg.pinv(information + np.outer(r, r)) @ gradient) for r in rows]
                best = int(np.argmin(variances))
                chosen.append(int(candidates[best]))
                information = information + np.outer(rows[best], rows[best])
            return tuple(sorted(set(chosen)))
    return tuple(sorted({2 * top, 4 * top}))


def assess(model: USLFit | None, tested: list[int], why_not_fitted: str = "") -> Recommendation:
    """The verdict on a fit: a recommendation only when the points carry one.

    Inconclusive when there is no fit (too few levels, or disturbed cells left out), when no
    interval can be computed (as many points as parameters), when R^2 is below 0.8, when the curve
    is still linear (no saturation seen), when N*'s 95% interval is wider than the tested range,
    or when the recommended N's 95% range is wider than the tested range or reaches beyond twice
    its top. The recommended range comes from 4,000 draws of the parameters from the fit's
    covariance (a parametric bootstrap)."""
    if model is None:
        return Recommendation(INCONCLUSIVE, None, None, why_not_fitted or "no fit", next_levels(None, tested))
    top, span = max(tested), max(tested) - min(tested)
    point = point_recommendation(model)
    levels = next_levels(model, tested)

    def inconclusive(reason: str) -> Recommendation:
        return Recommendation(INCONCLUSIVE, None, None, reason, levels)

    if (model.sigma == 0 and model.kappa == 0) or point is None:
        return inconclusive(f"throughput still grows linearly up to {top}: no saturation seen; test higher")
    if model.covariance is None:
        return inconclusive(
            f"{model.points} points for 3 parameters: no interval can be computed; repeat the cells or add levels"
        )
    if model.r_squared < MIN_R_SQUARED:
        return inconclusive(
            f"poor fit (R^2 {model.r_squared:.2f} < {MIN_R_SQUARED}): the points do not follow a scalability "
            "curve (noise or interference larger than the effect); repeat the cells"
        )
    peak = model.peak_concurrency_ci95
    if model.kappa > 0 and peak is not None and (peak[1] is None or peak[1] - peak[0] > span):
        if peak[1] is None:
            return inconclusive(
                f"N*'s 95% interval is unbounded ({peak[0]:.1f} to infinity): the points up to {top} cannot rule "
                "out a curve that never turns down; test higher"
            )
        return inconclusive(
            f"N*'s 95% interval ({peak[0]:.1f}-{peak[1]:.1f}) is wider than the tested range ({min(tested)}-{top})"
        )
    found = _recommended_range(model)
    if found is None or not all(math.isfinite(v) for v in found):
        return inconclusive("the recommended concurrency's 95% range is unbounded: no saturation can be ruled out")
    low, high = int(found[0]), int(found[1])
    if high - low > span or high > 2 * top:
        return inconclusive(
            f"the recommended concurrency's 95% range ({low}-{high}) is wider than the tested range "
            f"({min(tested)}-{top}) or reaches beyond twice its top"
        )
    low, high = min(low, point), max(high, point)
    return Recommendation(
        RECOMMENDED,
        point,
        (low, high),
        f"smallest N reaching {PEAK_SHARE:.0%} of the fitted peak; 95% range {low}-{high}",
        levels,
    )


def interval_json(interval: Interval | tuple[float, float] | None) -> list[float | None] | None:
    return None if interval is None else [interval[0], interval[1]]


def publish(
    model: USLFit | None,
    points: list[tuple[float, float]],
    tested: list[int],
    why: str = "",
    verdict: Recommendation | None = None,
) -> dict[str, Any]:
    """The JSON keys a fit is published with, by ``usl -f json`` and each group of ``report``
    (``verdict``: the assessment already made, else :func:`assess`'s)."""
    verdict = verdict or assess(model, tested, why)

    def finite(value: float | None) -> float | None:
        return None if value is None or math.isinf(value) else value

    return {
        "sigma": model.sigma if model else None,
        "sigma_ci95": interval_json(model.interval(0)) if model else None,
        "kappa": model.kappa if model else None,
        "kappa_ci95": interval_json(model.interval(1)) if model else None,
        "lambda": model.lambda_ if model else None,
        "lambda_ci95": interval_json(model.interval(2)) if model else None,
        "peak_concurrency": finite(model.peak_concurrency) if model else None,
        "peak_concurrency_ci95": interval_json(model.peak_concurrency_ci95) if model else None,
        "peak_throughput": finite(model.peak_throughput) if model else None,
        "r_squared": model.r_squared if model else None,
        "points_used": [[n, x] for n, x in points],
        "recommended_concurrency": verdict.recommended_concurrency,
        "recommended_range": list(verdict.recommended_range) if verdict.recommended_range else None,
        "verdict": verdict.verdict,
        "reason": verdict.reason,
        "next_levels": list(verdict.next_levels),
    }


def read_points(path: Path, size: str | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(slots, throughput, notes) from a CSV with concurrency and throughput columns, or a matrix
    results.csv. There only burst cells count (a sustained cell's X is its arrival rate); when it
    holds several payload sizes, ``size`` picks one; slots are concurrency x replicas where a
    ``replicas`` column exists; rows marked ``disturbed`` (other processes took the CPU) are left
    out, and the notes say how many."""
    try:
        with path.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(input_lines(handle, path)))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read a CSV: {getattr(exc, 'strerror', None) or exc}") from None
    if not rows:
        raise InputError(f"{path}: no rows")
    names = {name.lower().strip(): name for name in rows[0] if isinstance(name, str)}
    n_col = names.get("concurrency") or names.get("load") or names.get("n")
    x_col = names.get("throughput") or names.get("throughput_per_min") or names.get("x")
    if not n_col or not x_col:
        raise InputError(f"{path}: needs columns concurrency and throughput (found: {', '.join(names.values())})")
    if "mode" in names:
        rows = [r for r in rows if (r[names["mode"]] or "").strip().lower() == "burst"]
    if "size" in names:
        sizes = sorted({r[names["size"]] or "" for r in rows})
        if size is not None:
            rows = [r for r in rows if (r[names["size"]] or "").replace(" ", "") == size.replace(" ", "")]
            if not rows:
                raise InputError(f"{path}: no burst rows of size {size!r} (sizes: {', '.join(sizes)})")
        elif len(sizes) > 1:
            raise InputError(f"{path}: holds several sizes ({', '.join(sizes)}); pick one with --size")
    notes = []
    if "disturbed" in names:
        kept = [r for r in rows if (r[names["disturbed"]] or "").strip().lower() not in ("true", "1", "yes")]
        if len(kept) < len(rows):
            notes.append(
                f"{len(rows) - len(kept)} disturbed rows left out (other processes took the CPU while they ran)"
            )
        rows = kept
    replicas_col = names.get("replicas")
    try:
        pairs = []
        for r in rows:
            if r[x_col] in ("", None):
                continue
            replicas = float(r[replicas_col]) if replicas_col and r[replicas_col] not in ("", None) else 1.0
            pairs.append((float(r[n_col]) * replicas, float(r[x_col])))
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: {exc}") from None
    if replicas_col and any(r[replicas_col] not in ("", None, "1") for r in rows):
        notes.append("slots are concurrency x replicas")
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), notes
