"""What a drift statistic means on a window of n values: its no-drift distribution,
the smallest window it can judge, and the correction across the columns of a window.

A drift statistic computed on a few dozen values is mostly noise: PSI on 40 values of
a 10-bin reference exceeds 0.25 in about half the windows drawn from the reference
itself. So every verdict is judged against the statistic's own sampling distribution
when nothing drifted, for the window's n and the reference's bins:

* ``chisquare``: the chi-square distribution of the contingency statistic when every
  reference bin expects at least 5 current values (the textbook condition), else a
  simulation as for psi;
* ``psi`` and ``jensenshannon``: simulated. Under no drift the current counts are
  multinomial(n, p) and the reference counts multinomial(m, p), p the reference
  shares; ``SIMULATIONS`` draws of both give the statistic's null distribution (cached
  per method, bins and n; above ``EXACT_N`` values n is rounded to a 3 % grid and the
  draws rescaled by ``1/n + 1/m``, the statistics' asymptotic scale);
* ``ks``: SciPy's exact p-value (asymptotic above 10,000 values);
* ``wasserstein``: the asymptotic KS p-value on the same values (the distance has no
  test of its own; it is used on windows of over 1000 values).

Multiple columns: the p-values of one window are adjusted with Benjamini-Hochberg,
which under "nothing drifted" keeps the chance of any false alarm in the window at
``ALPHA`` (for independent or positively dependent columns).

Minimum n per method (:func:`min_n`): the smallest window in which the no-drift
95th percentile of the statistic falls below the method's alert size. Below it a
window of pure noise reaches the alert size more than 5 % of the time (equivalently, a
change of exactly the alert size is missed more than half the time), so a small value
of the statistic does not mean "no drift": such a window can be found drifted (the
p-value is valid at any n) but never "ok".
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence

import numpy as np
from scipy import stats

ALPHA = 0.05
SIMULATIONS = 2000
# Windows up to this many values are simulated at their exact n.
EXACT_N = 300
GRID = 1.03
PSI_EPS = 1e-4
# Fewer values than this: no verdict at all, whatever the p-value.
FLOOR = 10
# The chi-square approximation holds when every bin expects this many current values.
MIN_EXPECTED = 5.0
LN2 = float(np.log(2.0))


def psi_rows(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """PSI of each row of ``cur`` against the same row of ``ref`` (shares, eps-clipped)."""
    r = np.clip(ref / ref.sum(axis=-1, keepdims=True), PSI_EPS, None)
    c = np.clip(cur / cur.sum(axis=-1, keepdims=True), PSI_EPS, None)
    return np.sum((c - r) * np.log(c / r), axis=-1)


def js_rows(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base 2) row by row, as ``scipy.spatial.distance``."""
    p = ref / ref.sum(axis=-1, keepdims=True)
    q = cur / cur.sum(axis=-1, keepdims=True)
    mid = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / mid), 0.0)
        kq = np.where(q > 0, q * np.log2(q / mid), 0.0)
    return np.sqrt(np.clip((kp.sum(axis=-1) + kq.sum(axis=-1)) / 2, 0, None))


def chi2_rows(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Chi-square statistic of the 2 x k table (reference, current) row by row, without
    Yates' correction; bins empty on both sides drop out."""
    m = ref.sum(axis=-1, keepdims=True)
    n = cur.sum(axis=-1, keepdims=True)
    s = ref + cur
    with np.errstate(divide="ignore", invalid="ignore"):
        er, ec = m * s / (m + n), n * s / (m + n)
        t = np.where(s > 0, (ref - er) ** 2 / er + (cur - ec) ** 2 / ec, 0.0)
    return t.sum(axis=-1)


STATISTICS = {"psi": psi_rows, "jensenshannon": js_rows, "chisquare": chi2_rows}


def cohen_w(ref: np.ndarray, cur: np.ndarray) -> float:
    """Cohen's w of the current shares against the reference shares (reference shares
    clipped to PSI_EPS, so a category never seen in training counts as a large effect)."""
    r = np.clip(np.asarray(ref, float) / np.sum(ref), PSI_EPS, None)
    c = np.asarray(cur, float) / np.sum(cur)
    return float(np.sqrt(np.sum((c - r) ** 2 / r)))


def _scale(n: float, m: float) -> float:
    return 1.0 / n + 1.0 / m


def _grid_n(n: int) -> int:
    if n <= EXACT_N:
        return int(n)
    return int(round(GRID ** round(np.log(n) / np.log(GRID))))


@functools.lru_cache(maxsize=4096)
def _null(method: str, n: int, ref: tuple[float, ...]) -> np.ndarray:
    """Sorted simulated values of ``method``'s statistic when nothing drifted."""
    counts = np.asarray(ref, dtype=float)
    m = int(round(counts.sum()))
    p = counts / counts.sum()
    seed = zlib.crc32(repr((method, n, ref)).encode())
    rng = np.random.default_rng(seed)
    cur = rng.multinomial(n, p, size=SIMULATIONS).astype(float)
    base = rng.multinomial(max(m, 1), p, size=SIMULATIONS).astype(float)
    return np.sort(STATISTICS[method](base, cur))


def null_sample(method: str, ref: np.ndarray | Sequence[float], n: int) -> tuple[np.ndarray, float]:
    """The simulated no-drift statistics for a window of ``n`` values, and the factor
    that brings them to ``n`` (1 unless n was rounded to the grid)."""
    key = tuple(float(x) for x in np.asarray(ref, dtype=float))
    g = _grid_n(int(n))
    m = float(sum(key))
    factor = _scale(n, m) / _scale(g, m)
    if method == "chisquare":
        factor = 1.0  # chi-square statistics carry their n already
    elif method == "jensenshannon":
        factor = float(np.sqrt(factor))  # the distance is the root of a chi-square-like sum
    return _null(method, g, key), factor


def simulated_p(method: str, ref: np.ndarray | Sequence[float], n: int,
                statistic: float) -> float:
    """Monte Carlo p-value: share of no-drift draws at least as large (with the +1 that
    keeps it valid)."""
    null, factor = null_sample(method, ref, n)
    # a relative tolerance: equal statistics computed two ways must count as ties
    above = len(null) - np.searchsorted(null * factor, statistic * (1 - 1e-9), side="left")
    return float((1 + above) / (len(null) + 1))


def binned_p(method: str, ref: np.ndarray | Sequence[float],
             cur: np.ndarray | Sequence[float], statistic: float,
             asymptotic_p: float | None = None) -> tuple[float, str]:
    """(p-value, how it was obtained) of a binned statistic."""
    ref_a = np.asarray(ref, dtype=float)
    n = int(round(float(np.sum(cur))))
    if method == "chisquare" and asymptotic_p is not None:
        shares = ref_a[ref_a > 0] / ref_a.sum()
        if len(shares) and n * shares.min() >= MIN_EXPECTED:
            return float(asymptotic_p), "chi-square distribution"
    return simulated_p(method, ref_a, n, statistic), f"simulated ({SIMULATIONS:,} draws)"


def ks_null_quantile(n: int, m: int, q: float = 1 - ALPHA) -> float:
    """The no-drift ``q`` quantile of the two-sample KS statistic, from Kolmogorov's
    distribution at the effective size n·m/(n+m)."""
    n_eff = max(1, int(round(n * m / (n + m))))
    return float(stats.kstwo.ppf(q, n_eff))


def _smallest(ok, start: int, cap: int = 10**7) -> int:
    """The smallest n >= start with ``ok(n)`` (``ok`` monotone); ``cap`` if none."""
    lo = max(int(start), 2)
    if ok(lo):
        while lo > 2 and ok(lo - 1):
            lo -= 1
        return lo
    hi = lo
    while not ok(hi):
        lo, hi = hi, int(hi * 1.5) + 1
        if hi > cap:
            return cap
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


@functools.lru_cache(maxsize=1024)
def _binned_min_n(method: str, ref: tuple[float, ...], size: float) -> int:
    counts = np.asarray(ref, dtype=float)
    k = int((counts > 0).sum())
    if k < 2:
        return FLOOR
    m = counts.sum()
    # The asymptotic answer is a starting point; the simulation decides (at small n the
    # statistic's tail is much heavier than the chi-square approximation says).
    chi2_size = {"psi": size, "chisquare": size ** 2, "jensenshannon": 8 * LN2 * size ** 2}
    q = stats.chi2.ppf(1 - ALPHA, k - 1) / chi2_size[method]
    start = int(np.ceil(1 / (1 / q - 1 / m))) if 1 / q > 1 / m else 10**6

    def ok(n: int) -> bool:
        if method == "chisquare":  # its size is Cohen's w: w = sqrt(chi2 / n_eff)
            null, factor = null_sample("chisquare", ref, n)
            w = np.sqrt(null * factor * _scale(n, m))
            return bool(np.quantile(w, 1 - ALPHA) <= size)
        null, factor = null_sample(method, ref, n)
        return bool(np.quantile(null * factor, 1 - ALPHA) <= size)

    return max(FLOOR, _smallest(ok, max(2, int(start * 0.8))))


@functools.lru_cache(maxsize=1024)
def _ks_min_n(m: int, size: float) -> int:
    return max(FLOOR, _smallest(lambda n: ks_null_quantile(n, m) <= size, 10))


def min_n(method: str, size: float, *, counts: np.ndarray | Sequence[float] | None = None,
          m: int | None = None, wasserstein_q95_at_100: float | None = None) -> int:
    """The smallest number of current values at which ``method`` judges a window (see
    the module docstring): binned methods need the reference ``counts``, ks the
    reference size ``m``, wasserstein its no-drift 95th percentile at n = 100."""
    if method in STATISTICS:
        key = tuple(float(c) for c in (counts if counts is not None else ()))
        return _binned_min_n(method, key, float(size))
    if method == "ks":
        return _ks_min_n(int(m or 1), float(size))
    if method == "wasserstein":
        q100, mm = float(wasserstein_q95_at_100 or 0.0), float(m or 1)
        if q100 <= 0:
            return FLOOR
        # W1 between samples shrinks as sqrt(1/n + 1/m)
        target = (size / q100) ** 2 * _scale(100, mm)
        if target <= 1 / mm:
            return 10**7
        return max(FLOOR, int(np.ceil(1 / (target - 1 / mm))))
    raise ValueError(method)


def wasserstein_q95(values: np.ndarray, n: int = 100, draws: int = 200) -> float:
    """The no-drift 95th percentile of the normed Wasserstein distance between the
    reference and a window of ``n`` values, both drawn from the reference values (at most
    2,000 of them, rescaled to the reference's size: this only sets ``min_n``)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return 0.0
    std = max(float(np.std(x)), 0.001)
    rng = np.random.default_rng(0)
    k = min(len(x), 2000)
    a = np.sort(rng.choice(x, (draws, k)), axis=1)
    b = np.sort(rng.choice(x, (draws, n)), axis=1)
    # W1 is the mean gap between the quantile functions; on a grid of 2,000 points it is
    # exact when both sizes divide 2,000
    u = (np.arange(2000) + 0.5) / 2000
    w = np.mean(np.abs(a[:, (u * k).astype(int)] - b[:, (u * n).astype(int)]), axis=1) / std
    return float(np.quantile(w, 0.95)) * float(np.sqrt(_scale(n, len(x)) / _scale(n, k)))


def benjamini_hochberg(p: np.ndarray | Sequence[float]) -> np.ndarray:
    """BH-adjusted p-values (NaN stays NaN and is not counted), as
    ``scipy.stats.false_discovery_control(p, method='bh')``."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out
