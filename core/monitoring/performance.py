"""Model performance per window: DuckDB reduces the rows to sufficient statistics.

Each query reads the Parquet once and returns a few numbers per window (sums of
errors, a confusion table, positive/negative counts per distinct score); pandas then
finishes the metrics on those small tables. Nothing row-sized ever leaves DuckDB.
See :mod:`core.monitoring.monitor` for the definitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.monitoring.labels import rollup_level
from core.monitoring.windows import Window

if TYPE_CHECKING:
    from core.monitoring.monitor import Monitor

EPS = float(np.finfo(np.float64).eps)
REGRESSION_METRICS = ("rmse", "mae", "mape", "r2")
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
# Lower is better for these; higher for the others (used for threshold defaults and charts).
LOWER_IS_BETTER = {"rmse", "mae", "mape", "log_loss"}


def _by_sql(by: Sequence[str]) -> str:
    return "".join(f', "{b}"' for b in by)


def _level(mon: Monitor, w: Window) -> str:
    """SQL keeping the rows of the coarsest sums that fit window ``w`` (core.monitoring.labels) and
    the single rows (null level)."""
    return f"coalesce(level = {rollup_level(w, mon.since, mon.until)}, TRUE)"


def _join_notes(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def regression_metrics(mon: Monitor, w: Window, by: Sequence[str],
                       min_rows: int) -> pd.DataFrame | None:
    if not mon.has_rows:
        return None
    keys = ["k", *by]
    level = _level(mon, w)
    counts = mon.query(f"SELECT {w.key_sql()} AS k{_by_sql(by)}, sum(n)::BIGINT AS n "
                       f"FROM monitoring_counts WHERE {level} GROUP BY ALL")
    if mon.regstats:
        # Per-minute sums (monitoring.labels); the variance of the actuals per window merges the
        # minutes' means and squared deviations (Chan et al.), which stays exact.
        by_cols = _by_sql(by)
        sums = mon.query(f"""
            SELECT k{by_cols}, sum(n_actual)::BIGINT AS n_actual, sum(sse) AS sse,
                   sum(sae) AS sae, sum(sape) AS sape,
                   sum(m2_a + n_actual * (mean_a - mean_w) * (mean_a - mean_w))
                       / sum(n_actual) AS var_y
            FROM (SELECT *, sum(n_actual * mean_a) OVER w / sum(n_actual) OVER w AS mean_w
                  FROM (SELECT {w.key_sql()} AS k, version, n_actual, sse, sae, sape, mean_a,
                               m2_a
                        FROM monitoring_regstats WHERE {level})
                  WINDOW w AS (PARTITION BY k{by_cols}))
            GROUP BY ALL""")
    else:
        sums = _regression_sums(mon, w, by)
    data = counts.merge(sums, on=keys, how="left")
    data["n_actual"] = data["n_actual"].fillna(0).astype("int64")
    na = data["n_actual"].astype(float)
    enough = na >= min_rows
    with np.errstate(invalid="ignore", divide="ignore"):
        data["rmse"] = np.where(enough, np.sqrt(data["sse"] / na), np.nan)
        data["mae"] = np.where(enough, data["sae"] / na, np.nan)
        data["mape"] = np.where(enough, data["sape"] / na, np.nan)
        r2_ok = enough & (na >= 2) & (data["var_y"] > 0)
        data["r2"] = np.where(r2_ok, 1 - data["sse"] / (na * data["var_y"]), np.nan)
    notes = []
    for n, n_a, var_y in zip(data["n"], data["n_actual"], data["var_y"]):
        if n_a == 0:
            notes.append("no actuals in this window: upload actuals to score it")
        elif n_a < min_rows:
            notes.append(f"only {n_a} rows with actuals (need {min_rows})")
        elif n_a < 2:
            notes.append("R² needs at least 2 rows with actuals")
        elif not var_y > 0:
            notes.append("R² is undefined: the actuals are constant in this window")
        else:
            notes.append("")
    data["note"] = notes
    return data.drop(columns=["sse", "sae", "sape", "var_y"])


def _regression_sums(mon: Monitor, w: Window, by: Sequence[str]) -> pd.DataFrame:
    """Error sums per window from the labelled rows."""
    # d * d, not d ^ 2: pow() costs DuckDB twice what the rest of the query does.
    return mon.query(f"""
        SELECT k{_by_sql(by)}, count(*) AS n_actual, sum(d * d) AS sse, sum(abs(d)) AS sae,
               sum(abs(d) / greatest(abs(actual), {EPS!r})) AS sape,
               var_pop(actual) AS var_y
        FROM (SELECT k{_by_sql(by)}, p - actual AS d, actual
              FROM (SELECT {w.key_sql()} AS k{_by_sql(by)}, TRY_CAST(prediction AS DOUBLE) AS p,
                           TRY_CAST(actual AS DOUBLE) AS actual
                    FROM monitoring_labelled WHERE status < 400)
              WHERE actual IS NOT NULL AND p IS NOT NULL)
        GROUP BY ALL""")


def classification_metrics(mon: Monitor, w: Window, by: Sequence[str],
                           min_rows: int) -> pd.DataFrame | None:
    if not mon.has_rows:
        return None
    classes = mon.classes or []
    k = w.key_sql()
    counts = mon.query(f"SELECT {k} AS k{_by_sql(by)}, sum(n)::BIGINT AS n "
                       f"FROM monitoring_counts WHERE {_level(mon, w)} GROUP BY ALL")
    conf = mon.query(f"""
        SELECT {k} AS k{_by_sql(by)}, actual::VARCHAR AS y, prediction::VARCHAR AS p,
               count(*) AS c
        FROM monitoring_labelled
        WHERE status < 400 AND actual IS NOT NULL AND prediction IS NOT NULL
        GROUP BY ALL""")
    keys = ["k", *by]
    rows = []
    for key, group in (conf.groupby(keys, sort=False) if len(conf) else []):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, key)), **_label_metrics(group, classes, min_rows)})
    label = pd.DataFrame(rows, columns=[*keys, "n_actual", "accuracy", "precision", "recall",
                                        "f1", "note"])
    data = counts.merge(label, on=keys, how="left")
    if "proba" in mon.columns and len(classes) >= 2:
        proba = _proba_metrics(mon, w, by, classes, min_rows)
        if proba is not None:
            data = data.merge(proba, on=keys, how="left", suffixes=("", "_p"))
            data["note"] = [_join_notes(a if isinstance(a, str) else "",
                                        b if isinstance(b, str) else "")
                            for a, b in zip(data["note"], data.pop("note_p"))]
    # counts of windows without rows come out of the merges as missing values (of object
    # dtype when every one is missing): numbers first, then zero
    data["n_actual"] = pd.to_numeric(data["n_actual"]).fillna(0).astype("int64")
    data["n_proba"] = pd.to_numeric(data["n_proba"] if "n_proba" in data
                                    else pd.Series(0, index=data.index)).fillna(0).astype("int64")
    data["note"] = [note if isinstance(note, str) and note else
                    ("no actuals in this window: upload actuals to score it" if na == 0 else "")
                    for note, na in zip(data["note"], data["n_actual"])]
    return data


def _label_metrics(group: pd.DataFrame, classes: list[str], min_rows: int) -> dict:
    y, p, c = group["y"].to_numpy(), group["p"].to_numpy(), group["c"].to_numpy(dtype=float)
    total = c.sum()
    out: dict = {"n_actual": int(total), "accuracy": np.nan, "precision": np.nan,
                 "recall": np.nan, "f1": np.nan, "note": ""}
    if total < min_rows:
        out["note"] = f"only {int(total)} rows with actuals (need {min_rows})"
        return out
    out["accuracy"] = c[y == p].sum() / total
    notes = []
    if len(classes) == 2:
        pos = classes[1]
        tp = c[(y == pos) & (p == pos)].sum()
        fp = c[(y != pos) & (p == pos)].sum()
        fn = c[(y == pos) & (p != pos)].sum()
        if tp + fp > 0:
            out["precision"] = tp / (tp + fp)
        else:
            notes.append(f"precision is undefined: nothing was predicted '{pos}'")
        if tp + fn > 0:
            out["recall"] = tp / (tp + fn)
        else:
            notes.append(f"recall is undefined: no actual is '{pos}'")
        if 2 * tp + fp + fn > 0:
            out["f1"] = 2 * tp / (2 * tp + fp + fn)
    else:
        labels = sorted(set(y) | set(p))
        prec, rec, f1 = [], [], []
        for label in labels:
            tp = c[(y == label) & (p == label)].sum()
            pp = c[p == label].sum()
            ap = c[y == label].sum()
            prec.append(tp / pp if pp else 0.0)
            rec.append(tp / ap if ap else 0.0)
            f1.append(2 * tp / (pp + ap) if pp + ap else 0.0)
        out["precision"], out["recall"], out["f1"] = (float(np.mean(prec)), float(np.mean(rec)),
                                                      float(np.mean(f1)))
    out["note"] = _join_notes(*notes)
    return out


def _proba_metrics(mon: Monitor, w: Window, by: Sequence[str], classes: list[str],
                   min_rows: int = 1) -> pd.DataFrame | None:
    """ROC AUC and log loss on the rows with an actual *and* logged probabilities
    (``n_proba``; rows served by ``/predict`` have none), null below ``min_rows``."""
    k = w.key_sql()
    keys = ["k", *by]
    cond = (f"status < 400 AND proba IS NOT NULL AND actual IS NOT NULL "
            f"AND len(proba) = {len(classes)}")
    ll = mon.query(f"""
        SELECT k{_by_sql(by)}, count(*) AS n_proba,
               avg(-ln(greatest(least(pt, {1 - EPS!r}), {EPS!r}))) AS log_loss
        FROM (SELECT {k} AS k{_by_sql(by)},
                     proba[list_position($classes, actual::VARCHAR)] / list_sum(proba) AS pt
              FROM monitoring_labelled
              WHERE {cond} AND list_position($classes, actual::VARCHAR) IS NOT NULL)
        GROUP BY ALL""", {"classes": classes})
    if ll.empty:
        return None
    n_classes = len(classes)
    idx = [1] if n_classes == 2 else list(range(n_classes))
    # Mann-Whitney: AUC = P(score of a positive > score of a negative), ties count half.
    auc = mon.query(f"""
        WITH s AS (
            SELECT {k} AS k{_by_sql(by)}, i, proba[i + 1] AS score,
                   count_if(actual::VARCHAR = $classes[i + 1]) AS pos,
                   count_if(actual::VARCHAR <> $classes[i + 1]) AS neg
            FROM monitoring_labelled, (SELECT unnest($idx::INT[]) AS i) AS t
            WHERE {cond}
            GROUP BY ALL),
        c AS (
            SELECT *, coalesce(sum(neg) OVER (PARTITION BY k{_by_sql(by)}, i ORDER BY score
                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS below
            FROM s)
        SELECT k{_by_sql(by)}, i, sum(pos * below + 0.5 * pos * neg) AS u,
               sum(pos) AS n_pos, sum(neg) AS n_neg
        FROM c GROUP BY ALL""", {"classes": classes, "idx": idx})
    rows = []
    for key, group in auc.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        defined = (group["n_pos"] > 0) & (group["n_neg"] > 0)
        if len(group) == len(idx) and defined.all():
            value = float((group["u"] / (group["n_pos"] * group["n_neg"])).mean())
            note = ""
        else:
            value = np.nan
            note = ("ROC AUC needs both classes among the actuals" if n_classes == 2
                    else "ROC AUC needs every class among the actuals")
        rows.append({**dict(zip(keys, key)), "roc_auc": value, "note": note})
    aucs = pd.DataFrame(rows, columns=[*keys, "roc_auc", "note"])
    out = ll.merge(aucs, on=keys, how="outer")
    few = out["n_proba"].fillna(0) < min_rows
    out.loc[few, ["roc_auc", "log_loss"]] = np.nan
    out["note"] = [f"only {int(n)} rows with actuals and probabilities for ROC AUC and log "
                   f"loss (need {min_rows})" if short else (note if isinstance(note, str) else "")
                   for n, short, note in zip(out["n_proba"].fillna(0), few, out["note"])]
    return out
