"""Estimated performance per window, before the actuals arrive.

Classifiers with logged probabilities: confidence-based performance estimation
(:mod:`core.monitoring.cbpe`): accuracy, precision, recall, F1 and ROC AUC, each with a
95 % band. Regressors: direct loss estimation (:mod:`core.monitoring.dle`): MAE and
RMSE with their bands.

Both learn from a *reference*: logged rows that have actuals. By default that is every
such row in the monitored range (the windows whose actuals are in calibrate the
estimate of those whose actuals are not); ``reference=(start, end)`` takes the rows of
that period instead, which is the honest choice when comparing estimates to realized
metrics of the same windows. Without a usable reference the result says "cannot
estimate" and why (``attrs["reason"]``), with no numbers.

The frame has one row per window: ``window_start``, ``window_end``, ``n`` (the rows
estimated on: rows with probabilities for a classifier), then for each metric ``m`` the
columns ``m``, ``m_lower``, ``m_upper``, and ``note``. ``attrs`` holds ``method``
(``cbpe``, ``dle`` or ``none``), ``reason``, ``calibration`` and ``reference``.
Windows over ``MAX_WINDOW_ROWS`` rows are estimated on a uniform sample of that many
(chosen by hashing the request id), and the note says so; the band is then that of the
sample, wider than the whole window's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.monitoring import cbpe, dle
from core.monitoring.monitor import Monitor
from core.monitoring.windows import Window, parse_window
from core.times import parse_time

PREFIX = "estimated:"
MIN_REFERENCE = 100
MAX_REFERENCE_ROWS = 20_000
MAX_WINDOW_ROWS = 50_000


def metric_names(mon: Monitor) -> tuple[str, ...]:
    return cbpe.METRICS if mon.is_classifier else dle.METRICS


def empty_frame(metrics: tuple[str, ...], method: str, reason: str) -> pd.DataFrame:
    cols = ["window_start", "window_end", "n"]
    for m in metrics:
        cols += [m, f"{m}_lower", f"{m}_upper"]
    out = pd.DataFrame(columns=[*cols, "note"])
    out.attrs.update(method=method, reason=reason, calibration="", reference="")
    return out


def estimated(mon: Monitor, window: str | Window = "week", *,
              reference: tuple[Any, Any] | None = None, min_rows: int = 30,
              seed: int = 0) -> pd.DataFrame:
    """Estimated metrics per window (see the module docstring)."""
    w = parse_window(window)
    names = metric_names(mon)
    if not mon.has_rows:
        return empty_frame(names, "none", "no predictions in this range")
    ref = _reference(mon, reference)
    where = _describe(reference)
    if mon.is_classifier:
        classes = mon.classes or []
        if "proba" not in mon.columns or len(classes) < 2 or not mon.con.execute(
                "SELECT count(*) FROM (SELECT 1 FROM monitoring_log WHERE status < 400 "
                "AND proba IS NOT NULL LIMIT 1)").fetchall()[0][0]:
            return empty_frame(names, "none", "cannot estimate: the model logs no "
                               "probabilities (it has no predict_proba, or was served "
                               "through /predict only)")
        ref = ref[ref["proba"].map(lambda v: v is not None and len(v) == len(classes))] \
            if len(ref) else ref
        actual = ref["actual"].astype(str).map({c: i for i, c in enumerate(classes)}) \
            if len(ref) else pd.Series(dtype=float)
        ref, actual = ref[actual.notna()], actual[actual.notna()].astype(int)
        if len(ref) < MIN_REFERENCE or actual.nunique() < 2:
            return empty_frame(names, "none", _short_reference(len(ref), where, True))
        cal = cbpe.fit_calibration(_stack(ref["proba"]), actual.to_numpy(),
                                   classes, seed=seed)
        out = _per_window(mon, w, names, min_rows,
                          lambda rows: _classify(cal, rows, classes, seed))
        out.attrs.update(method="cbpe", reason="", calibration=cal.note,
                         reference=f"{len(ref):,} rows with actuals {where}")
        return out
    features = [c.name for c in mon.meta.prototype.columns if c.name in mon.columns]
    ref = ref.dropna(subset=["prediction", "actual"]) if len(ref) else ref
    if len(ref) < MIN_REFERENCE:
        return empty_frame(names, "none", _short_reference(len(ref), where, False))
    model = dle.fit(ref, features, seed=seed)
    out = _per_window(mon, w, names, min_rows, lambda rows: dle.estimate(model, rows),
                      features=features)
    out.attrs.update(method="dle", reason="", calibration=model.note,
                     reference=f"{len(ref):,} rows with actuals {where}")
    return out


def _short_reference(n: int, where: str, classifier: bool) -> str:
    what = "rows with actuals and logged probabilities" if classifier else "rows with actuals"
    return (f"cannot estimate: the reference has {n} {what} {where} (needs at least "
            f"{MIN_REFERENCE}{' and two classes' if classifier else ''}); upload actuals "
            "for a period and use it as the reference")


def _describe(reference: tuple[Any, Any] | None) -> str:
    if reference is None:
        return "in the monitored range"
    t0, t1 = parse_time(reference[0]), parse_time(reference[1])
    return (f"from {t0:%Y-%m-%d %H:%M} to {t1:%Y-%m-%d %H:%M} UTC" if t0 is not None
            and t1 is not None else "in the reference period")


def _reference(mon: Monitor, reference: tuple[Any, Any] | None) -> pd.DataFrame:
    """Up to ``MAX_REFERENCE_ROWS`` successful logged rows with an actual."""
    sample = f'ORDER BY hash(request_id, "row") LIMIT {MAX_REFERENCE_ROWS}'
    if not mon.actual_joins:
        return pd.DataFrame(columns=["prediction", "proba", "actual"])
    if reference is None:
        return mon.query(f"SELECT * FROM monitoring WHERE status < 400 AND actual IS NOT NULL "
                         f"{sample}")
    t0, t1 = parse_time(reference[0]), parse_time(reference[1])
    conds = ["l.status < 400", f"{mon.actual_sql} IS NOT NULL"]
    if t0 is not None:
        conds.append(f"l.ts >= make_timestamptz({t0.value // 1000})")
    if t1 is not None:
        conds.append(f"l.ts < make_timestamptz({t1.value // 1000})")
    return mon.query(f"SELECT * FROM (SELECT l.*, {mon.actual_sql} AS actual "
                     f"FROM monitoring_ref l {' '.join(mon.actual_joins)} "
                     f"WHERE {' AND '.join(conds)}) {sample}")


def _per_window(mon: Monitor, w: Window, names: tuple[str, ...], min_rows: int,
                fn: Any, features: list[str] | None = None) -> pd.DataFrame:
    quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in features or [])
    cols = f"prediction, {quoted}" if features else "prediction, proba"
    cond = "proba IS NOT NULL" if features is None else "prediction IS NOT NULL"
    rows = mon.query(f"""
        SELECT {w.key_sql()} AS k, {cols}, count(*) OVER (PARTITION BY {w.key_sql()}) AS total
        FROM monitoring_log WHERE status < 400 AND {cond}
        QUALIFY row_number() OVER (PARTITION BY {w.key_sql()}
                                   ORDER BY hash(request_id, "row")) <= {MAX_WINDOW_ROWS}""")
    records = []
    for key, group in rows.groupby("k", sort=True):
        rec: dict[str, Any] = {"k": int(str(key)), "n": len(group)}
        total = int(group["total"].iloc[0])
        notes: list[str] = []
        if total > len(group):
            notes.append(f"estimated on a uniform sample of {len(group):,} of {total:,} rows")
        if len(group) < min_rows:
            notes.append(f"only {len(group)} rows to estimate on (need {min_rows})")
        else:
            for m, (value, lo, hi) in fn(group).items():
                rec.update({m: value, f"{m}_lower": lo, f"{m}_upper": hi})
        rec["note"] = "; ".join(notes)
        records.append(rec)
    data = pd.DataFrame(records) if records else None
    keys = mon.windows(w, data["k"] if data is not None else ())
    out = mon.frame_for(w, keys, data)
    out["n"] = pd.to_numeric(out["n"] if "n" in out else pd.Series(0, index=out.index)).fillna(0)
    out["n"] = out["n"].astype("int64")
    for m in names:
        for col in (m, f"{m}_lower", f"{m}_upper"):
            out[col] = (out[col] if col in out else pd.Series(np.nan, index=out.index)
                        ).astype("float64")
    note = out["note"] if "note" in out else pd.Series("", index=out.index)
    note = note.astype(object).where(note.notna(), "no rows to estimate on in this window")
    out["note"] = note.astype(str)
    shown = [c for m in names for c in (m, f"{m}_lower", f"{m}_upper")]
    return out[["window_start", "window_end", "n", *shown, "note"]]


def _classify(cal: cbpe.Calibration, rows: pd.DataFrame, classes: list[str],
              seed: int) -> dict[str, tuple[float, float, float]]:
    ok = rows["proba"].map(lambda v: v is not None and len(v) == len(classes))
    rows = rows[ok]
    proba = _stack(rows["proba"])
    index = {c: i for i, c in enumerate(classes)}
    mapped = rows["prediction"].astype(str).map(index)
    predicted = np.where(mapped.notna(), mapped.fillna(0), proba.argmax(axis=1)).astype(int)
    est = cbpe.estimate(cal, proba, predicted, seed=seed)
    return {m: (est.value[m], est.lower[m], est.upper[m]) for m in cbpe.METRICS}


def _stack(values: pd.Series) -> np.ndarray:
    """Rows of logged probability lists as an n x k array."""
    return np.array([np.asarray(v, dtype=float) for v in values], dtype=float)


def compare(realized: pd.DataFrame, estimated_frame: pd.DataFrame) -> pd.DataFrame:
    """Per window and metric: estimate, band, realized value (where actuals are in) and
    whether the realized value is inside the band."""
    rows = []
    names = [c for c in estimated_frame.columns if f"{c}_lower" in estimated_frame.columns]
    merged = estimated_frame.merge(realized, on="window_start", how="left",
                                   suffixes=("", "_realized"))
    for m in names:
        real = merged.get(f"{m}_realized", pd.Series(np.nan, index=merged.index))
        for start, est, lo, hi, r in zip(merged["window_start"], merged[m],
                                         merged[f"{m}_lower"], merged[f"{m}_upper"], real):
            inside = bool(lo <= r <= hi) if pd.notna(r) and pd.notna(lo) else None
            rows.append({"window_start": start, "metric": m, "estimated": est, "lower": lo,
                         "upper": hi, "realized": r, "inside": inside})
    return pd.DataFrame(rows, columns=["window_start", "metric", "estimated", "lower", "upper",
                                       "realized", "inside"])
