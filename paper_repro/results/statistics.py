"""The statistics behind every verdict: small samples (three seeds a side), stated exactly.

- :func:`welch` - the difference of two means with its Welch t interval (Satterthwaite's degrees of
  freedom; exactly ``n - 1`` against a constant, such as a trivial classifier's floor).
- :func:`seeds_for_power` - how many seeds a side would detect an effect with 80 % power (the
  noncentral t distribution, two-sided, as in Cohen 1988 and the OriginLab/PASS power pages).
- :func:`kendall_exact` - Kendall's tau-b of two orderings with its *exact* permutation p-value, ties
  included (every permutation of up to 8 rows is enumerated: at most 40,320).
- :func:`holm` - Holm's step-down correction of a family of p-values.
- :func:`trend` - the least-squares slope of a learning curve with a Newey-West interval, which
  tolerates the autocorrelation of a curve's neighbouring points.

Everything here is a pure function of numbers; :mod:`paper_repro.results.reading` turns its answers into
the book's verdicts.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

ALPHA = 0.05   # every verdict decides at this level: a 95 % interval, or an exact p below 0.05
POWER = 0.80   # the power a seed count is planned for
MAX_PERMUTED_ROWS = 8   # 8! = 40,320 permutations: enumerated exactly


def _mean_var(values: Sequence[float]) -> tuple[int, float, float]:
    x = np.asarray(values, dtype=float)
    if x.size < 1 or not np.isfinite(x).all():
        raise ValueError(f"need at least one finite number, got {list(values)}")
    return x.size, float(x.mean()), float(x.var(ddof=1)) if x.size > 1 else 0.0


def satterthwaite_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch-Satterthwaite degrees of freedom of ``mean(a) - mean(b)``; ``inf`` when neither side varies.

    A side with no spread (a constant floor) contributes nothing, so the df are the other side's ``n - 1``."""
    u_a, u_b = var_a / n_a, var_b / n_b
    denominator = (u_a ** 2 / (n_a - 1) if n_a > 1 else 0.0) + (u_b ** 2 / (n_b - 1) if n_b > 1 else 0.0)
    return math.inf if denominator == 0 else (u_a + u_b) ** 2 / denominator


@dataclass(frozen=True)
class Difference:
    """``mean(a) - mean(b)`` with its Welch t interval at ``confidence`` and two-sided p of "no difference"."""

    estimate: float
    se: float
    df: float
    low: float
    high: float
    p: float
    confidence: float

    def excludes(self, value: float) -> bool:
        return not self.low <= value <= self.high

    def interval(self, unit: str = "", digits: int = 3) -> str:
        return f"[{self.low:+.{digits}g}, {self.high:+.{digits}g}]{unit}"


def welch(a: Sequence[float], b: Sequence[float], confidence: float = 1 - ALPHA) -> Difference:
    """The difference of means of ``a`` and ``b`` with its Welch t interval (Satterthwaite df).

    Two runs with no spread at all differ exactly (a zero-width interval, p 0 or 1); one value a side is
    refused, since it has no spread to judge by."""
    n_a, mean_a, var_a = _mean_var(a)
    n_b, mean_b, var_b = _mean_var(b)
    if n_a + n_b < 3 or (n_a < 2 and n_b < 2):
        raise ValueError(f"a difference needs a spread: {n_a} and {n_b} values")
    estimate = mean_a - mean_b
    se = math.sqrt(var_a / n_a + var_b / n_b)
    df = satterthwaite_df(var_a, n_a, var_b, n_b)
    if se == 0:
        return Difference(estimate, 0.0, df, estimate, estimate, 0.0 if estimate else 1.0, confidence)
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    p = 2 * stats.t.sf(abs(estimate) / se, df)
    return Difference(estimate, se, df, estimate - half, estimate + half, float(p), confidence)


def power(effect: float, sd_a: float, sd_b: float, n: int, alpha: float = ALPHA, b_is_constant: bool = False) -> float:
    """Power of the two-sided Welch test at ``alpha`` to find a true difference ``effect`` with ``n`` seeds a
    side (the noncentral t with Satterthwaite df). ``b_is_constant``: side b is a number with no spread."""
    var_b = 0.0 if b_is_constant else sd_b ** 2
    se = math.sqrt(sd_a ** 2 / n + var_b / n)
    if se == 0:
        return 1.0 if effect else 0.0
    df = satterthwaite_df(sd_a ** 2, n, var_b, n)
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = abs(effect) / se
    far_side = stats.nct.cdf(-critical, df, shift)   # rejecting in the wrong direction; nan where it underflows
    return float(stats.nct.sf(critical, df, shift) + (0.0 if math.isnan(far_side) else far_side))


def seeds_for_power(effect: float, sd_a: float, sd_b: float, alpha: float = ALPHA, target: float = POWER,
                    b_is_constant: bool = False, most: int = 10_000) -> int | None:
    """The fewest seeds a side (>= 2) with which :func:`power` reaches ``target``; ``None`` when
    ``effect`` is 0 or the spreads are unknown (both 0), or more than ``most`` would be needed."""
    if not effect or not math.isfinite(effect) or (sd_a == 0 and (sd_b == 0 or b_is_constant)):
        return None
    def enough(n: int) -> bool:
        return power(effect, sd_a, sd_b, n, alpha, b_is_constant) >= target

    if not enough(most):
        return None
    if enough(2):
        return 2
    low, high = 2, most   # power grows with n: enough(low) is False, enough(high) is True
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


def _concordance(x: np.ndarray) -> np.ndarray:
    """sign(x_j - x_i) for every pair i < j, along the last axis."""
    i, j = np.triu_indices(x.shape[-1], k=1)
    return np.sign(x[..., j] - x[..., i])


@dataclass(frozen=True)
class KendallTest:
    """Kendall's tau-b of two orderings and its exact permutation p-values."""

    tau: float
    p_greater: float   # P(tau >= observed) when the orderings are unrelated
    p_less: float      # P(tau <= observed)
    p_min: float       # the smallest p_greater attainable with these values (all rows in the best order)
    n: int


def kendall_exact(x: Sequence[float], y: Sequence[float]) -> KendallTest:
    """Kendall's tau-b between ``x`` and ``y`` with exact permutation p-values, ties in either included.

    Every assignment of ``y``'s values to the rows is equally likely under "no relation"; the p-values
    count the assignments whose tau-b is at least (at most) the observed one. Ties are kept as they
    are (tau-b's denominator does not change under permutation), so the p-values are exact with ties.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = x.size
    if n != y.size or n < 2:
        raise ValueError(f"two orderings of the same rows (>= 2) are needed, got {x.size} and {y.size}")
    if n > MAX_PERMUTED_ROWS:
        raise ValueError(f"{n} rows: exact enumeration is limited to {MAX_PERMUTED_ROWS} ({math.factorial(MAX_PERMUTED_ROWS):,} permutations)")
    sx, sy = _concordance(x), _concordance(y)
    denominator = math.sqrt(np.count_nonzero(sx) * np.count_nonzero(sy))
    if denominator == 0:
        raise ValueError("an ordering with every value tied has no Kendall's tau")
    permuted = y[np.array(list(itertools.permutations(range(n))))]
    taus = _concordance(permuted) @ sx / denominator
    tau = float(sx @ sy / denominator)
    tolerance = 1e-9
    return KendallTest(tau=tau, p_greater=float(np.mean(taus >= tau - tolerance)),
                       p_less=float(np.mean(taus <= tau + tolerance)),
                       p_min=float(np.mean(taus >= taus.max() - tolerance)), n=n)


def holm(pvalues: Sequence[float], alpha: float = ALPHA) -> tuple[list[float], list[bool]]:
    """Holm's step-down correction: the adjusted p-values (in the given order) and which reject at ``alpha``.

    Sorted ascending, the k-th smallest p (k from 0) is multiplied by ``m - k``, and the adjusted values
    are made non-decreasing (Holm 1979)."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for k, index in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[index]))
        adjusted[index] = running
    return adjusted.tolist(), (adjusted < alpha).tolist()


@dataclass(frozen=True)
class Slope:
    """The least-squares slope of a curve (per unit of ``x``) with its Newey-West interval."""

    slope: float
    se: float
    low: float
    high: float
    df: int
    lags: int
    span: float   # x[-1] - x[0]: the slope times this is the fitted change over the window

    @property
    def change(self) -> float:
        return self.slope * self.span


def newey_west_lags(n: int) -> int:
    """Newey and West's (1994) rule of thumb for the Bartlett kernel: floor(4 (n/100)^(2/9))."""
    return int(math.floor(4 * (n / 100) ** (2 / 9)))


def trend(y: Sequence[float], x: Sequence[float] | None = None, lags: int | None = None,
          confidence: float = 1 - ALPHA) -> Slope:
    """The slope of ``y`` against ``x`` (default 0, 1, ...) by least squares, with a Newey-West (Bartlett
    kernel, ``lags``) standard error and a t interval on ``n - 2`` df: neighbouring points of a learning
    curve are correlated, and this interval widens with that correlation instead of ignoring it."""
    y = np.asarray(y, dtype=float)
    x = np.arange(y.size, dtype=float) if x is None else np.asarray(x, dtype=float)
    n = y.size
    if n < 3 or x.size != n or not (np.isfinite(y).all() and np.isfinite(x).all()):
        raise ValueError(f"a trend needs three or more finite points, got {n}")
    lags = newey_west_lags(n) if lags is None else int(lags)
    design = np.column_stack([np.ones(n), x - x.mean()])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    scores = design * (y - design @ coef)[:, None]          # x_t * e_t
    meat = scores.T @ scores
    for lag in range(1, min(lags, n - 1) + 1):
        weight = 1 - lag / (lags + 1)                        # Bartlett
        cross = scores[lag:].T @ scores[:-lag]
        meat += weight * (cross + cross.T)
    bread = np.linalg.inv(design.T @ design)
    se = float(math.sqrt(max((bread @ meat @ bread)[1, 1], 0.0)))
    half = stats.t.ppf(0.5 + confidence / 2, n - 2) * se
    slope = float(coef[1])
    return Slope(slope, se, slope - half, slope + half, n - 2, lags, float(x[-1] - x[0]))


__all__ = ["ALPHA", "POWER", "MAX_PERMUTED_ROWS", "satterthwaite_df", "Difference", "welch", "power",
           "seeds_for_power", "KendallTest", "kendall_exact", "holm", "Slope", "newey_west_lags", "trend"]
