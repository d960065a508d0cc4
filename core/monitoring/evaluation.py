"""Evaluation results from monitoring: a version's metrics on the logged rows with actuals.

For a model card's "Quantitative analyses": the metrics over every row of one version
that has an actual (served predictions and scored uploads), overall and per level of a
chosen segment column, each with its row counts and the period the rows cover. The
results are plain dicts, so the card (which must not import monitoring) takes them from
whoever calls both, as :func:`core.cards.card.card_data`'s ``evaluations``.

Regression: RMSE, MAE, MAPE and R², as :mod:`core.monitoring.monitor` defines them.
Classification: accuracy, and for a binary model precision, recall and F1 of the positive
class (the second of the model's classes). Everything is computed in DuckDB.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from core.errors import InvalidArgument
from core.monitoring.monitor import Monitor, open_monitor
from core.monitoring.performance import EPS
from core.store.predlog import feature_column
from core.store.protocols import StoreLike

# Levels of a segment column reported one by one; the rest are left out and counted.
MAX_LEVELS = 20
SOURCE = "monitoring"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _metric_sql(mon: Monitor) -> str:
    if not mon.is_classifier:
        d = "(p - a)"
        return (f"sqrt(avg({d} * {d})) AS rmse, avg(abs({d})) AS mae, "
                f"avg(abs({d}) / greatest(abs(a), {EPS!r})) AS mape, "
                f"CASE WHEN count(*) >= 2 AND var_pop(a) > 0 "
                f"THEN 1 - sum({d} * {d}) / (count(*) * var_pop(a)) END AS r2")
    sql = "avg(CASE WHEN p = a THEN 1.0 ELSE 0.0 END) AS accuracy"
    classes = mon.classes or []
    if mon.meta.task == "binary" and len(classes) == 2:
        pos = "'" + classes[1].replace("'", "''") + "'"
        tp, fp, fn = (f"count_if(p = {pos} AND a = {pos})", f"count_if(p = {pos} AND a <> {pos})",
                      f"count_if(p <> {pos} AND a = {pos})")
        sql += (f", {tp} / nullif({tp} + {fp}, 0) AS precision"
                f", {tp} / nullif({tp} + {fn}, 0) AS recall"
                f", 2 * {tp} / nullif(2 * {tp} + {fp} + {fn}, 0) AS f1")
    return sql


def _rows(mon: Monitor, segment: str | None) -> pd.DataFrame:
    if mon.is_classifier:
        p, a = "CAST(prediction AS VARCHAR)", "CAST(actual AS VARCHAR)"
    else:
        p, a = "TRY_CAST(prediction AS DOUBLE)", "TRY_CAST(actual AS DOUBLE)"
    seg = f", CAST({_quote(feature_column(segment))} AS VARCHAR) AS seg" if segment else ""
    group = "GROUP BY seg ORDER BY count(*) DESC, seg" if segment else ""
    return mon.query(f"""
        SELECT count(*) AS n_actual, min(ts) AS first, max(ts) AS last
               {', seg' if segment else ''}, {_metric_sql(mon)}
        FROM (SELECT ts, {p} AS p, {a} AS a{seg} FROM monitoring
              WHERE status < 400 AND actual IS NOT NULL)
        WHERE p IS NOT NULL AND a IS NOT NULL
        {group}""")


def _result(row: Mapping[Any, Any], names: list[str], segment: tuple[str, str] | None,
            n_predictions: int | None) -> dict[str, Any]:
    first, last = row.get("first"), row.get("last")
    return {
        "source": SOURCE,
        "data": "predictions with actuals",
        "rows": int(row["n_actual"]),
        "predictions": n_predictions,
        "period": [pd.Timestamp(first).isoformat() if pd.notna(first) else None,
                   pd.Timestamp(last).isoformat() if pd.notna(last) else None],
        "segment": list(segment) if segment else None,
        "metrics": {k: float(row[k]) for k in names if k in row and pd.notna(row[k])},
    }


def evaluate(store: StoreLike, name: str, version: str, *, segment: str | None = None,
             max_levels: int = MAX_LEVELS) -> list[dict[str, Any]]:
    """Metrics of ``name@version`` on its logged rows with actuals: overall first, then one
    result per level of ``segment`` (an input column), most rows first. [] when no row
    of this version has an actual."""
    meta = store.meta(name, version)
    if segment is not None and segment not in {c.name for c in meta.prototype.columns}:
        raise InvalidArgument(f"{str(segment)[:60]!r} is not an input of {name}; segment by one "
                              f"of: {', '.join(c.name for c in meta.prototype.columns[:30])}.")
    with open_monitor(store, name, meta, versions=[version], source="all") as mon:
        if not (mon.has_rows and mon.has_actuals):
            return []
        overall = _rows(mon, None)
        if overall.empty or int(overall["n_actual"].iloc[0]) == 0:
            return []
        n_predictions = int(mon.query("SELECT count(*) AS n FROM monitoring_log "
                                      "WHERE status < 400")["n"].iloc[0])
        names = [c for c in overall.columns if c not in ("n_actual", "first", "last", "seg")]
        out = [_result(overall.iloc[0].to_dict(), names, None, n_predictions)]
        if segment is not None:
            levels = _rows(mon, segment)
            for row in levels.head(max_levels).to_dict("records"):
                level = "(missing)" if row["seg"] is None or pd.isna(row["seg"]) else row["seg"]
                out.append(_result(row, names, (segment, str(level)), None))
            if len(levels) > max_levels:
                rest = int(levels["n_actual"].iloc[max_levels:].sum())
                out[0]["note"] = (f"{len(levels) - max_levels} more levels of {segment} "
                                  f"({rest:,} rows) are not listed one by one")
        return out
