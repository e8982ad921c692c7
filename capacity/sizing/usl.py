"""Gunther's Universal Scalability Law: X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)).

Fitted by bounded nonlinear least squares (scipy.optimize.least_squares; sigma and kappa in
[0, 1], lambda >= 0), so the table of measured throughputs answers "what concurrency should we run?".
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capacity.errors import InputError
from capacity.files import input_lines

MIN_POINTS = 3
TRUSTED_POINTS = 6


@dataclass(frozen=True)
class USLFit:
    sigma: float
    kappa: float
    lambda_: float
    r_squared: float
    points: int

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


def fit(concurrency: np.ndarray, throughput: np.ndarray) -> USLFit:
    from scipy.optimize import least_squares

    n = np.asarray(concurrency, dtype=float)
    x = np.asarray(throughput, dtype=float)
    if len(n) < MIN_POINTS:
        raise InputError(f"a USL fit needs at least {MIN_POINTS} (concurrency, throughput) points, got {len(n)}")
    if np.any(n <= 0) or np.any(x < 0) or not np.all(np.isfinite(x)):
        raise InputError("concurrency must be above zero and throughput zero or more")
    if len(np.unique(n)) < MIN_POINTS:
        raise InputError(f"a USL fit needs at least {MIN_POINTS} different concurrency levels")
    lam0 = float(np.max(x / n))

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
    return USLFit(sigma, kappa, lam, 1 - ss_res / ss_tot if ss_tot > 0 else 1.0, len(n))


def read_points(path: Path, size: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(concurrency, throughput) from a CSV with those columns, or a matrix results.csv: there
    only burst cells count (a sustained cell's X is its arrival rate) and, when it holds several
    payload sizes, ``size`` picks one."""
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
        rows = [r for r in rows if r[names["mode"]].strip().lower() == "burst"]
    if "size" in names:
        sizes = sorted({r[names["size"]] for r in rows})
        if size is not None:
            rows = [r for r in rows if r[names["size"]].replace(" ", "") == size.replace(" ", "")]
            if not rows:
                raise InputError(f"{path}: no burst rows of size {size!r} (sizes: {', '.join(sizes)})")
        elif len(sizes) > 1:
            raise InputError(f"{path}: holds several sizes ({', '.join(sizes)}); pick one with --size")
    try:
        pairs = [(float(r[n_col]), float(r[x_col])) for r in rows if r[x_col] not in ("", None)]
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
