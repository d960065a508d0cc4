"""Direct loss estimation (DLE): a regressor's error without actuals, after NannyML's idea.

On a reference of rows with actuals, a second model learns how large the error of the
monitored model is from the inputs and the prediction: one for the absolute error and
one for the squared error (scikit-learn's histogram gradient boosting). For a window
without actuals, the estimated MAE is the mean predicted absolute error and the
estimated RMSE the root of the mean predicted squared error.

Bands. Each row's realized error scatters around its predicted value; the spread of
that scatter is measured on the reference out of fold (two folds: each half predicted
by the model fitted on the other half), so the band of a window of n rows is
``Z * sd / sqrt(n)`` around the mean (the RMSE's from the squared error's by the delta
method). The estimate holds while the error depends on the inputs as in the reference
(covariate shift); a change in the relation between inputs and target is concept drift
and cannot be seen without actuals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

METRICS = ("mae", "rmse")
Z = 3.0
MIN_REFERENCE = 100


@dataclass
class ErrorModel:
    """Fitted error models and what the reference said about their scatter."""

    columns: list[str]
    categories: dict[str, list[str]]
    reference_rows: int
    sd_abs: float
    sd_sq: float
    models: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def note(self) -> str:
        return (f"error estimated from the inputs and the prediction (direct loss estimation), "
                f"learnt on {self.reference_rows:,} reference rows with actuals")

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        return _matrix(frame, self.columns, self.categories)


def _matrix(frame: pd.DataFrame, columns: list[str],
            categories: dict[str, list[str]]) -> np.ndarray:
    cols = []
    for c in columns:
        s = frame[c] if c in frame else pd.Series(np.nan, index=frame.index)
        if c in categories:
            codes = pd.Categorical(s.astype("string"), categories=categories[c]).codes
            cols.append(np.where(codes < 0, np.nan, codes).astype(float))
        else:
            cols.append(pd.to_numeric(s, errors="coerce").to_numpy(dtype=float))
    return np.column_stack(cols) if cols else np.zeros((len(frame), 0))


def _regressor(categorical: list[bool], seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=100, categorical_features=categorical
                                         if any(categorical) else None, random_state=seed)


def fit(reference: pd.DataFrame, features: list[str], seed: int = 0) -> ErrorModel:
    """Fit on ``reference`` (``features``, ``prediction``, ``actual``)."""
    from threadpoolctl import threadpool_limits

    # A few thousand rows: one thread is as fast, and OpenMP's spinning threads cost
    # seconds on a busy machine.
    with threadpool_limits(1, "openmp"):
        return _fit(reference, features, seed)


def _fit(reference: pd.DataFrame, features: list[str], seed: int) -> ErrorModel:
    ref = reference.dropna(subset=["prediction", "actual"])
    columns = [c for c in features if c in ref.columns] + ["prediction"]
    categories = {c: sorted(ref[c].dropna().astype(str).unique().tolist())[:250]
                  for c in columns if c != "prediction"
                  and not pd.api.types.is_numeric_dtype(ref[c])
                  and not pd.api.types.is_bool_dtype(ref[c])}
    X = _matrix(ref, columns, categories)
    err = ref["prediction"].astype(float).to_numpy() - ref["actual"].astype(float).to_numpy()
    targets = {"abs": np.abs(err), "sq": err * err}
    cat = [c in categories for c in columns]
    rng = np.random.default_rng(seed)
    fold = rng.integers(0, 2, len(ref))
    resid: dict[str, np.ndarray] = {}
    for key, y in targets.items():
        out = np.empty(len(y))
        for f in (0, 1):
            m = _regressor(cat, seed).fit(X[fold != f], y[fold != f])
            out[fold == f] = m.predict(X[fold == f])
        resid[key] = y - out
    models = {key: _regressor(cat, seed).fit(X, y) for key, y in targets.items()}
    return ErrorModel(columns=columns, categories=categories, reference_rows=len(ref),
                      sd_abs=float(np.std(resid["abs"])), sd_sq=float(np.std(resid["sq"])),
                      models=models)


def estimate(model: ErrorModel, frame: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
    """(estimate, lower, upper) of MAE and RMSE for the rows of ``frame``."""
    n = len(frame)
    if n == 0:
        return {m: (np.nan, np.nan, np.nan) for m in METRICS}
    from threadpoolctl import threadpool_limits

    X = model.matrix(frame)
    with threadpool_limits(1, "openmp"):
        mae = float(np.mean(np.clip(model.models["abs"].predict(X), 0.0, None)))
        mse = float(np.mean(np.clip(model.models["sq"].predict(X), 0.0, None)))
    rmse = float(np.sqrt(mse))
    half_mae = Z * model.sd_abs / np.sqrt(n)
    half_mse = Z * model.sd_sq / np.sqrt(n)
    return {"mae": (mae, max(0.0, mae - half_mae), mae + half_mae),
            "rmse": (rmse, float(np.sqrt(max(0.0, mse - half_mse))),
                     float(np.sqrt(mse + half_mse)))}
