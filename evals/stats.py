"""Paired statistics of run against run, vectorised: the bootstrap interval of a mean delta,
the sign-flip permutation test, McNemar's exact test. All p-values are exact or Monte Carlo with
the +1 correction, so none is ever 0."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["RESAMPLES", "PValue", "bootstrap_interval", "mcnemar", "sign_flip"]

RESAMPLES = 2_000  # bootstrap resamples of the interval
PERMUTATIONS = 10_000  # sign patterns drawn by the Monte Carlo permutation test
EXACT_UP_TO = 16  # nonzero deltas: up to here every one of the 2^n sign patterns is enumerated
NORMAL_FROM = 2_000  # nonzero deltas: from here the permutation distribution is taken as normal
_CELLS = 4_000_000  # numbers drawn per chunk (32 MB of float64)


@dataclass(frozen=True)
class PValue:
    """A p-value and how it was had: exact, or Monte Carlo over ``resamples`` draws (then the
    smallest it can be is 1 / (resamples + 1))."""

    p: float
    method: str
    resamples: int | None = None

    @property
    def floor(self) -> float | None:
        return None if self.resamples is None else 1 / (self.resamples + 1)


def bootstrap_interval(deltas: np.ndarray, seed: int = 0, resamples: int = RESAMPLES) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the mean of ``deltas``.

    Resampling n values with replacement is drawing how often each distinct value comes up: a
    multinomial over the distinct values, which is what makes 20,000 cases cheap when deltas
    take few values (pass/fail metrics take three)."""
    n = len(deltas)
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values, counts = np.unique(deltas, return_counts=True)
    means = np.empty(resamples)
    if len(values) * 4 <= n:
        step = max(1, _CELLS // len(values))
        for start in range(0, resamples, step):
            size = min(step, resamples - start)
            means[start : start + size] = rng.multinomial(n, counts / n, size=size) @ values / n
    else:
        step = max(1, _CELLS // n)
        for start in range(0, resamples, step):
            size = min(step, resamples - start)
            picks = rng.integers(0, n, size=(size, n), dtype=np.int32)
            means[start : start + size] = deltas[picks].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def sign_flip(deltas: np.ndarray, seed: int = 0, resamples: int = PERMUTATIONS) -> tuple[PValue, PValue]:
    """The paired permutation test of "no change": under it each delta is as likely to have the
    other sign. Returns (two-sided, one-sided for a fall) p-values: exact up to 16 nonzero
    deltas, Monte Carlo up to 2,000, then the normal limit of the same distribution (mean 0,
    variance the sum of squared deltas), which at that size is off by far less than a Monte
    Carlo estimate's own error."""
    nonzero = deltas[deltas != 0]
    m = len(nonzero)
    if m == 0:
        return PValue(1.0, "exact"), PValue(1.0, "exact")
    observed = nonzero.sum()
    scale = np.abs(nonzero).max()
    tolerance = 1e-9 * scale * m  # sums equal to the observed one up to rounding count as equal
    if m <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=m)))
        sums = signs @ np.abs(nonzero)
        two = np.mean(np.abs(sums) >= abs(observed) - tolerance)
        fall = np.mean(sums <= observed + tolerance)
        return PValue(float(two), "exact"), PValue(float(fall), "exact")
    if m >= NORMAL_FROM:
        from scipy.stats import norm

        z = observed / math.sqrt(float(np.square(nonzero).sum()))
        return PValue(float(min(1.0, 2 * norm.sf(abs(z)))), "normal"), PValue(float(norm.cdf(z)), "normal")
    rng = np.random.default_rng(seed)
    magnitudes = np.abs(nonzero)
    beyond = below = 0
    step = max(1, _CELLS // m)
    for start in range(0, resamples, step):
        size = min(step, resamples - start)
        sums = np.where(rng.random((size, m)) < 0.5, -1.0, 1.0) @ magnitudes
        beyond += int(np.count_nonzero(np.abs(sums) >= abs(observed) - tolerance))
        below += int(np.count_nonzero(sums <= observed + tolerance))
    return (
        PValue((beyond + 1) / (resamples + 1), "monte carlo", resamples),
        PValue((below + 1) / (resamples + 1), "monte carlo", resamples),
    )


def mcnemar(lost: int, gained: int) -> tuple[PValue, PValue]:
    """McNemar's exact test from the discordant pairs (pass -> fail, fail -> pass): a binomial
    test of ``lost`` out of ``lost + gained`` at 1/2. Returns (two-sided, one-sided for a fall)."""
    from scipy.stats import binom

    n = lost + gained
    if n == 0:
        return PValue(1.0, "exact"), PValue(1.0, "exact")
    two = min(1.0, 2 * float(binom.cdf(min(lost, gained), n, 0.5)))
    fall = float(binom.sf(lost - 1, n, 0.5))  # P(X >= lost): this many losses or more by chance
    return PValue(two, "exact"), PValue(fall, "exact")
