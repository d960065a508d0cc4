"""Confidence-based performance estimation (CBPE): a classifier's metrics without labels.

If the probabilities a classifier logs are calibrated (of the rows given 0.8, 80 % are
the class), the labels of a window are draws from them, and the window's confusion
matrix has a known expectation: a row predicted positive with probability ``p`` of
being positive adds ``p`` to the true positives and ``1 - p`` to the false positives.
Every metric follows from the expected counts:

* accuracy: the mean probability of the predicted class;
* precision, recall, F1 of the positive class (binary) or their macro average over the
  classes one-vs-rest (multiclass): ratios of expected counts, as NannyML's CBPE;
* ROC AUC: the expected share of (positive, negative) pairs ranked right,
  ``sum_{s_i > s_j} p_i (1 - p_j) / sum_{i != j} p_i (1 - p_j)`` (ties count half),
  macro one-vs-rest for multiclass.

Calibration. The probabilities are first checked on a *reference*: rows with actuals
(:func:`fit_calibration`). A Hosmer-Lemeshow test per class (ten bins of equal count)
says whether they are calibrated; when not (p < 0.05) they are recalibrated, isotonic
regression from 1,000 reference rows, Platt's sigmoid below, and the report says so.

Bands. The realized metric of a window differs from the estimate for two reasons, and
the band holds both at the window's own n:

1. the labels are random even when the probabilities are right: ``SIMULATIONS`` draws
   of the window's labels from its calibrated probabilities give the spread of the
   realized metric (the exact Poisson-binomial spread, where NannyML scales the
   reference's spread by ``1/sqrt(n)``);
2. the calibration map is fitted on a finite reference: it is refitted on
   ``BOOTSTRAPS`` bootstrap samples of the reference and the estimate recomputed.

The band is the estimate +/- ``Z`` = 3 standard deviations of both together, NannyML's
width. Not 1.96: under covariate shift P(label | inputs) stays as it was, but a map
fitted on the reference is calibrated on average over the reference's inputs, and a
window that moved into a region where it is off carries a bias that neither part
measures (``bench/estimation_bench.py``: at 1.96 standard deviations 82 % of the
shifted make_classification windows were inside their bands, at 3, 95 %). Under
concept drift (P(label | inputs) changes) the estimate is wrong, which no label-free
method can see.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
SIMULATIONS = 400
BOOTSTRAPS = 20
Z = 3.0
HL_BINS = 10
ISOTONIC_FROM = 1000
ALPHA = 0.05
_CHUNK = 2_000_000  # simulated labels held at once


@dataclass
class Calibration:
    """How a model's probabilities are mapped before estimation, and why."""

    classes: list[str]
    method: str  # "none", "isotonic" or "sigmoid"
    reference_rows: int
    p_value: float  # Hosmer-Lemeshow, the worst class, before calibration
    ece_before: float
    ece_after: float
    maps: list[Callable[[np.ndarray], np.ndarray]] = field(default_factory=list, repr=False)
    bootstrap: list[list[Callable[[np.ndarray], np.ndarray]]] = field(default_factory=list,
                                                                      repr=False)

    @property
    def note(self) -> str:
        base = (f"checked on {self.reference_rows:,} reference rows with actuals "
                f"(Hosmer-Lemeshow p = {self.p_value:.3g}, expected calibration error "
                f"{self.ece_before:.3f})")
        if self.method == "none":
            return f"probabilities used as logged: calibrated, {base}"
        return (f"probabilities recalibrated ({self.method}): not calibrated, {base}; "
                f"after: {self.ece_after:.3f}")

    def apply(self, proba: np.ndarray,
              maps: Sequence[Callable[[np.ndarray], np.ndarray]] | None = None) -> np.ndarray:
        """Calibrated probabilities of every class (rows sum to 1)."""
        proba = _normalise(proba)
        maps = self.maps if maps is None else maps
        if not maps:
            return proba
        if proba.shape[1] == 2:
            p1 = np.clip(maps[0](proba[:, 1]), 0.0, 1.0)
            return np.column_stack([1 - p1, p1])
        out = np.column_stack([np.clip(m(proba[:, c]), 0.0, 1.0) for c, m in enumerate(maps)])
        return _normalise(out)


def _normalise(proba: np.ndarray) -> np.ndarray:
    proba = np.clip(np.asarray(proba, dtype=float), 0.0, None)
    total = proba.sum(axis=1, keepdims=True)
    k = proba.shape[1]
    return np.where(total > 0, proba / np.where(total > 0, total, 1.0), 1.0 / k)


def hosmer_lemeshow(p: np.ndarray, y: np.ndarray, bins: int = HL_BINS) -> tuple[float, float]:
    """(p-value, expected calibration error) of probabilities ``p`` for 0/1 outcomes ``y``."""
    order = np.argsort(p, kind="stable")
    groups = [g for g in np.array_split(order, min(bins, len(p))) if len(g)]
    chi, ece = 0.0, 0.0
    for g in groups:
        expected, observed, n = p[g].sum(), y[g].sum(), len(g)
        ece += abs(expected - observed) / len(p)
        var = expected * (1 - expected / n)
        if var > 1e-12:
            chi += (observed - expected) ** 2 / var
    df = max(len(groups) - 2, 1)
    return float(stats.chi2.sf(chi, df)), float(ece)


def _fit_map(p: np.ndarray, y: np.ndarray, method: str) -> Callable[[np.ndarray], np.ndarray]:
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        return lambda x: np.asarray(iso.predict(x), dtype=float)
    from sklearn.linear_model import LogisticRegression

    logit = np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1.0))
    if len(np.unique(y)) < 2:
        const = float(y.mean()) if len(y) else 0.5
        return lambda x: np.full(len(x), const)
    lr = LogisticRegression(C=1e6).fit(logit.reshape(-1, 1), y)

    def sigmoid(x: np.ndarray) -> np.ndarray:
        z = np.log(np.clip(x, 1e-6, 1 - 1e-6) / np.clip(1 - x, 1e-6, 1.0))
        return np.asarray(lr.predict_proba(z.reshape(-1, 1))[:, 1], dtype=float)

    return sigmoid


def fit_calibration(proba: np.ndarray, actual: np.ndarray, classes: Sequence[str],
                    seed: int = 0, force: str | None = None) -> Calibration:
    """Check the reference's probabilities (rows of ``proba``, one column per class of
    ``classes``; ``actual`` the class index of each row) and fit a map when needed.
    ``force`` ("none", "isotonic", "sigmoid") skips the decision."""
    proba = _normalise(proba)
    y = np.asarray(actual, dtype=int)
    k = proba.shape[1]
    cols = [1] if k == 2 else list(range(k))
    checks = [hosmer_lemeshow(proba[:, c], (y == c).astype(float)) for c in cols]
    p_value = min(c[0] for c in checks)
    ece = float(np.mean([c[1] for c in checks]))
    method = force or ("none" if p_value >= ALPHA else
                       "isotonic" if len(y) >= ISOTONIC_FROM else "sigmoid")
    cal = Calibration(classes=[str(c) for c in classes], method=method,
                      reference_rows=len(y), p_value=p_value, ece_before=ece, ece_after=ece)
    if method == "none":
        return cal
    cal.maps = [_fit_map(proba[:, c], (y == c).astype(float), method) for c in cols]
    after = cal.apply(proba)
    cal.ece_after = float(np.mean([hosmer_lemeshow(after[:, c], (y == c).astype(float))[1]
                                   for c in cols]))
    rng = np.random.default_rng(seed)
    for _ in range(BOOTSTRAPS):
        idx = rng.integers(0, len(y), len(y))
        cal.bootstrap.append([_fit_map(proba[idx, c], (y[idx] == c).astype(float), method)
                              for c in cols])
    return cal


# ---- expected metrics ---------------------------------------------------------------------


def _expected_auc(score: np.ndarray, p: np.ndarray) -> float:
    """Expected ROC AUC of ``score`` when row i is positive with probability ``p_i``."""
    order = np.argsort(score, kind="stable")
    s, q = score[order], p[order]
    neg = 1.0 - q
    # negatives strictly below each score, and tied with it (each tie counts half)
    uniq, start, counts = np.unique(s, return_index=True, return_counts=True)
    neg_cum = np.concatenate([[0.0], np.cumsum(neg)])
    below_group = neg_cum[start]
    tie_group = neg_cum[start + counts] - below_group
    group_of = np.repeat(np.arange(len(uniq)), counts)
    below = below_group[group_of]
    tied_other = tie_group[group_of] - neg  # the row itself is not its own pair
    numer = float(np.sum(q * (below + 0.5 * tied_other)))
    denom = float(q.sum() * neg.sum() - np.sum(q * neg))
    return numer / denom if denom > 1e-12 else float("nan")


def _one_vs_rest(p: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    """Expected precision, recall, F1 of one class (ratios of expected counts)."""
    tp = float(np.sum(p[predicted]))
    fp = float(np.sum(1 - p[predicted]))
    fn = float(np.sum(p[~predicted]))
    precision = tp / (tp + fp) if tp + fp > 0 else float("nan")
    recall = tp / (tp + fn) if tp + fn > 1e-12 else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn > 1e-12 else float("nan")
    return precision, recall, f1


def expected_metrics(cal_proba: np.ndarray, predicted: np.ndarray,
                     scores: np.ndarray) -> dict[str, float]:
    """Expected metrics of a window: ``cal_proba`` calibrated probabilities (n x k),
    ``predicted`` the predicted class index per row, ``scores`` the logged probabilities
    that rank the rows for ROC AUC."""
    n, k = cal_proba.shape
    out = {m: float("nan") for m in METRICS}
    if n == 0:
        return out
    out["accuracy"] = float(np.mean(cal_proba[np.arange(n), predicted]))
    cols = [1] if k == 2 else list(range(k))
    prf = np.array([_one_vs_rest(cal_proba[:, c], predicted == c) for c in cols])
    aucs = [_expected_auc(scores[:, c], cal_proba[:, c]) for c in cols]
    with np.errstate(invalid="ignore"):
        out["precision"], out["recall"], out["f1"] = (float(np.mean(prf[:, i])) for i in range(3))
        out["roc_auc"] = float(np.mean(aucs))
    return out


# ---- realized metrics of simulated labels -------------------------------------------------


def realized_metrics(labels: np.ndarray, predicted: np.ndarray, scores: np.ndarray,
                     k: int) -> dict[str, np.ndarray]:
    """The metrics of each row of ``labels`` (draws x n class indices), as the monitor
    computes realized metrics (positive class = index 1 for binary, macro over the
    classes one-vs-rest otherwise)."""
    out: dict[str, np.ndarray] = {}
    out["accuracy"] = np.mean(labels == predicted[None, :], axis=1)
    cols = [1] if k == 2 else list(range(k))
    prec, rec, f1, auc = [], [], [], []
    for c in cols:
        y = labels == c
        pp = predicted == c
        tp = (y & pp[None, :]).sum(axis=1).astype(float)
        ap = y.sum(axis=1).astype(float)
        npp = float(pp.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            prec.append(np.where(npp > 0, tp / max(npp, 1.0), np.nan))
            rec.append(np.where(ap > 0, tp / np.maximum(ap, 1.0), np.nan))
            f1.append(np.where(npp + ap > 0, 2 * tp / np.maximum(npp + ap, 1.0), np.nan))
            ranks = stats.rankdata(scores[:, c])
            n_pos = ap
            n_neg = labels.shape[1] - ap
            u = y.astype(float) @ ranks - n_pos * (n_pos + 1) / 2
            auc.append(np.where((n_pos > 0) & (n_neg > 0),
                                u / np.maximum(n_pos * n_neg, 1.0), np.nan))
    with np.errstate(invalid="ignore"):
        out["precision"] = np.nanmean(np.vstack(prec), axis=0) if k > 2 else prec[0]
        out["recall"] = np.nanmean(np.vstack(rec), axis=0) if k > 2 else rec[0]
        out["f1"] = np.nanmean(np.vstack(f1), axis=0) if k > 2 else f1[0]
        out["roc_auc"] = np.mean(np.vstack(auc), axis=0)
    return out


def draw_labels(cal_proba: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` x n class indices drawn from the rows' calibrated probabilities."""
    u = rng.random((draws, cal_proba.shape[0]))
    if cal_proba.shape[1] == 2:
        return (u < cal_proba[None, :, 1]).astype(int)
    cum = np.cumsum(cal_proba, axis=1)[:, :-1]
    return (u[:, :, None] >= cum[None, :, :]).sum(axis=2)


@dataclass
class Estimate:
    value: dict[str, float]
    lower: dict[str, float]
    upper: dict[str, float]
    sd: dict[str, float]


def estimate(cal: Calibration, proba: np.ndarray, predicted: np.ndarray,
             seed: int = 0) -> Estimate:
    """Estimated metrics of one window with their 95 % bands (see the module docstring)."""
    proba = _normalise(proba)
    n, k = proba.shape
    if n == 0:
        nan = {m: float("nan") for m in METRICS}
        return Estimate(value=dict(nan), lower=dict(nan), upper=dict(nan), sd=dict(nan))
    cal_proba = cal.apply(proba)
    value = expected_metrics(cal_proba, predicted, proba)
    rng = np.random.default_rng(seed)
    sims: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    per = max(1, min(SIMULATIONS, _CHUNK // max(n, 1)))
    done = 0
    while done < SIMULATIONS and n:
        step = min(per, SIMULATIONS - done)
        got = realized_metrics(draw_labels(cal_proba, step, rng), predicted, proba, k)
        for m in METRICS:
            sims[m].append(got[m])
        done += step
    boots = [expected_metrics(cal.apply(proba, maps), predicted, proba)
             for maps in cal.bootstrap]
    sd, lower, upper = {}, {}, {}
    for m in METRICS:
        label_var = _var(np.concatenate(sims[m])) if sims[m] else float("nan")
        cal_var = _var(np.array([b[m] for b in boots])) if boots else 0.0
        sd[m] = float(np.sqrt(label_var + cal_var))
        lower[m] = max(0.0, value[m] - Z * sd[m])
        upper[m] = min(1.0, value[m] + Z * sd[m])
    return Estimate(value=value, lower=lower, upper=upper, sd=sd)


def _var(values: np.ndarray) -> float:
    """Variance of the finite values (nan with fewer than two)."""
    finite = values[np.isfinite(values)]
    return float(np.var(finite)) if len(finite) > 1 else float("nan")
