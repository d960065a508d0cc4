"""Reference profile: compact per-column statistics of the training sample, for drift.

The profile is small and JSON-able whatever the sample size: numeric columns keep
quantile bin edges with counts and a few moments, categorical columns keep value
frequencies (the most frequent ``MAX_LEVELS``, the rest summed as ``other``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.model.prototype import Prototype

N_BINS = 10
# An integer column with at most this many values gets a bin per value.
MAX_INT_BINS = 20
MAX_LEVELS = 100
# Rows kept verbatim with a version (for KS/Wasserstein tests and the card).
SAMPLE_ROWS = 2000
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def profile_series(s: pd.Series, kind: str) -> dict[str, Any]:
    """Statistics of one column; ``kind`` is a prototype kind."""
    n = int(len(s))
    if kind in ("int", "float") and s.dtype.kind in "iuf":
        # plain numpy numbers: NaN is what pandas counts as missing (a column the size of
        # a sample spends most of its profile in pandas' per-call overhead otherwise)
        x = s.to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(x)
        nulls = int(missing.sum())
        x = x[~missing]
        n_values = len(x)
    else:
        nulls = int(s.isna().sum())
        values = s.dropna()
        n_values = len(values)
        x = None
    out: dict[str, Any] = {"n": n, "null_share": (nulls / n) if n else 0.0}
    if kind in ("int", "float") and n_values:
        if x is None:
            x = values.to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        if len(x) == 0:
            out["type"] = "numeric"
            return out
        distinct = np.unique(x)
        if kind == "int" and len(distinct) <= MAX_INT_BINS:
            # One bin per value: quantile edges would put the two largest values of,
            # say, a 1-5 rating in one bin, which reads as a skew that is not there.
            edges = np.append(distinct, distinct[-1] + 1)
        else:
            edges = np.unique(np.quantile(x, np.linspace(0, 1, N_BINS + 1)))
        if len(edges) == 1:
            edges = np.array([edges[0], edges[0]])
        counts = _bin_counts(x, edges)
        out.update({
            "type": "numeric",
            "edges": edges.tolist(),
            "counts": counts.tolist(),
            "mean": float(x.mean()),
            "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
            "min": float(x.min()),
            "max": float(x.max()),
            "quantiles": dict(zip(map(str, QUANTILES),  # one pass over x for all five
                                  np.quantile(x, QUANTILES).tolist(), strict=True)),
        })
    elif kind in ("category", "string", "bool"):
        freq = values.astype(str).value_counts()
        top = freq.head(MAX_LEVELS)
        out.update({
            "type": "categorical",
            "frequencies": {str(k): int(v) for k, v in top.items()},
            "other": int(freq.iloc[MAX_LEVELS:].sum()) if len(freq) > MAX_LEVELS else 0,
            "n_levels": int(len(freq)),
        })
    else:
        out["type"] = "other"
    return out


def one_bin_per_value(edges: Sequence[float] | np.ndarray) -> bool:
    """Whether numeric bins are the ones :func:`profile_series` keeps for an integer column
    with few values (each distinct value, then the last one plus one), whose bars stand
    for single values rather than ranges. Read from the edges, as profiles store no more:
    whole numbers, at most ``MAX_INT_BINS`` bins, the last one unit wide."""
    e = [float(x) for x in edges]
    return (1 < len(e) <= MAX_INT_BINS + 1 and all(x == int(x) for x in e)
            and e[-1] - e[-2] == 1)


def _bin_counts(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin with the interior edges; the outer bins are open-ended."""
    idx = np.searchsorted(edges[1:-1], x, side="right")
    return np.bincount(idx, minlength=len(edges) - 1)


def build_profile(sample: pd.DataFrame, prototype: Prototype,
                  predictions: np.ndarray | None = None) -> dict[str, Any]:
    columns = {c.name: profile_series(sample[c.name], c.kind)
               for c in prototype.columns if c.name in sample.columns}
    prof: dict[str, Any] = {"n_rows": int(len(sample)), "columns": columns}
    if predictions is not None:
        pred = pd.Series(np.asarray(predictions).ravel())
        numeric = pd.api.types.is_numeric_dtype(pred) and not pd.api.types.is_bool_dtype(pred)
        # integer predictions with few values are class labels, not a quantity
        if pd.api.types.is_integer_dtype(pred) and pred.nunique() <= 20:
            numeric = False
        kind = "float" if numeric else "category"
        prof["prediction"] = profile_series(pred, kind)
    return prof


def row_sample(sample: pd.DataFrame, n: int = SAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
    """A bounded, reproducible random subset of the sample's rows."""
    if len(sample) <= n:
        return sample.reset_index(drop=True)
    return sample.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)
