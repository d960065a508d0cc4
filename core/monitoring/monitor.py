"""Monitoring: model metrics per time window, computed in DuckDB over the board's Parquet.

Sources. The prediction log (``<board>/.fixative/logs/<model>/<version>/...``, see
:mod:`core.store.predlog`), data uploaded in the workbench and scored there
(``.fixative/scored/<model>/<version>/...``, same format, route ``upload``), and actuals
uploaded later (``.fixative/actuals/<model>/<on>/...``, see :mod:`core.monitoring.actuals`), joined
to the rows on ``request_id`` (+ ``row``) or on a logged column the user chose.

Every query runs in a DuckDB connection that cannot touch files at all
(``enable_external_access=false``, configuration locked): the Parquet segments are
handed to it as Arrow datasets opened through the board's fsspec filesystem, so local
and S3 boards read alike, and a custom metric written by a user can read nothing but
the ``monitoring`` view (see :mod:`core.monitoring.custom`).

Windows. Calendar units (``hour``, ``day``, ``week``, ``month``) or a fixed period
(``15min``, ``6h``, ``3d``, ``2w``). All times are UTC: timestamps with a zone are
converted, naive ones (and strings without an offset) are taken as UTC. A window is
half-open, ``[start, end)``: a timestamp exactly on a boundary belongs to the window
that starts there. Weeks start on Monday; fixed periods are counted from Monday
1970-01-05 00:00 UTC, so ``6h`` windows start at 00, 06, 12 and 18 h. Every window
between the first and the last (or between ``since`` and ``until``) is reported,
with ``n = 0`` where nothing was logged, so a gap never merges two windows.

Metrics. Regression: RMSE, MAE, MAPE (``|y - ŷ| / max(|y|, ε)``, as scikit-learn),
R². Classification: accuracy; precision, recall and F1 of the positive class for a
binary model (the *second* of ``BundleMeta.classes``, as scikit-learn's
``classes_[1]``) and their macro average over the labels seen in the window for a
multiclass one; ROC AUC (Mann-Whitney rank statistic, one-vs-rest macro for
multiclass) and log loss where probabilities were logged. A metric that a window's
rows cannot define (too few rows with actuals, one class only, constant actuals, no
positive prediction) is null, and the window's ``note`` says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from core.errors import InvalidArgument, NotFound
from core.model.bundle import BundleMeta
from core.monitoring.drift import compute as compute_drift
from core.monitoring.join import actual_sources
from core.monitoring.labels import labelled_view
from core.monitoring.limits import LimitedConnection
from core.monitoring.performance import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    classification_metrics,
    regression_metrics,
)
from core.monitoring.sandbox import files_in_range, register, sandbox
from core.monitoring.windows import Window, parse_window, window_keys
from core.store.paths import log_dir, scored_dir, segment_files
from core.store.predlog import feature_column
from core.store.protocols import StoreLike
from core.times import parse_time

LOG_SCHEMA_BASE = pa.schema([
    ("ts", pa.timestamp("us", tz="UTC")), ("request_id", pa.string()), ("model", pa.string()),
    ("version", pa.string()), ("route", pa.string()), ("status", pa.int16()),
    ("latency_ms", pa.float64()), ("row", pa.int32()), ("error_code", pa.string()),
])
SOURCES = ("log", "upload", "all")
TRAFFIC_COLUMNS = ["requests", "rows", "errors", "error_rate", "p50_ms", "p90_ms", "p99_ms"]


@dataclass
class Monitor:
    """A sandboxed DuckDB connection with the ``monitoring`` view for one model.

    ``monitoring`` has the log columns, the features, ``prediction``, ``proba`` and
    ``actual`` (null where no actual was uploaded); ``monitoring_log`` is the same
    without the join to the actuals (cheaper, for drift and traffic);
    ``monitoring_labelled`` has ``ts``, ``version``, ``status``, ``prediction``,
    ``proba`` and ``actual`` of the successful rows with an actual, read from the join
    materialised when actuals were uploaded (:mod:`core.monitoring.labels`), for the metrics;
    ``monitoring_counts`` has ``ts``, ``version`` and ``n``, successful rows counted (per
    minute where that was materialised too). Every query runs under the monitoring time
    limit (:class:`core.monitoring.limits.LimitedConnection`).
    """

    con: LimitedConnection
    meta: BundleMeta
    name: str
    versions: list[str] | None
    since: pd.Timestamp | None
    until: pd.Timestamp | None
    columns: list[str] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    has_rows: bool = False
    has_actuals: bool = False
    sample: pd.DataFrame | None = None
    # How ``monitoring_labelled`` gets its rows (see core.monitoring.labels.labelled_view).
    labelled: str = "none"
    # Whether ``monitoring_regstats`` (per-minute error sums, core.monitoring.labels) exists.
    regstats: bool = False
    # The LEFT JOINs to the actuals (against a log aliased ``l``) and the matched actual,
    # so a reference period of ``monitoring_ref`` can be joined too (core.monitoring.estimate).
    actual_joins: list[str] = field(default_factory=list)
    actual_sql: str = "NULL"

    # ---- shared helpers -----------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
              ) -> pd.DataFrame:
        return self.con.execute(sql, params or []).fetch_df()

    @property
    def classes(self) -> list[str] | None:
        return [str(c) for c in self.meta.classes] if self.meta.classes is not None else None

    @property
    def is_classifier(self) -> bool:
        return self.meta.task in ("binary", "multiclass") or self.meta.classes is not None

    def windows(self, window: Window, observed: Any = ()) -> list[int]:
        """Every window from since (or the first observed key) to until (or the last)."""
        seen = [int(k) for k in observed if k is not None and not pd.isna(k)]
        lo, hi = (min(seen), max(seen)) if seen else (None, None)
        return window_keys(window, lo, hi, self.since, self.until)

    def frame_for(self, window: Window, keys: list[int], data: pd.DataFrame | None,
                  by: Sequence[str] = ()) -> pd.DataFrame:
        """Windows ``keys`` as rows (start, end) left-joined with per-window ``data``."""
        base = pd.DataFrame({"k": keys})
        base.insert(1, "window_start", [window.start(k) for k in keys])
        base.insert(2, "window_end", [window.end(k) for k in keys])
        if data is None or data.empty:
            return base
        if by:
            combos = data[list(by)].drop_duplicates()
            base = base.merge(combos, how="cross")
        return base.merge(data, on=["k", *by], how="left")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- metrics ------------------------------------------------------------------------

    def metrics(self, window: str | Window = "week", *, by_version: bool = False,
                min_rows: int = 1) -> pd.DataFrame:
        """One row per window: n, n_actual and the task's metrics (see module docstring)."""
        w = parse_window(window)
        if min_rows < 1:
            raise InvalidArgument("min_rows must be at least 1.")
        by = ["version"] if by_version else []
        if self.is_classifier:
            data = classification_metrics(self, w, by, min_rows)
        else:
            data = regression_metrics(self, w, by, min_rows)
        keys = self.windows(w, data["k"] if data is not None else ())
        out = self.frame_for(w, keys, data, by)
        names = CLASSIFICATION_METRICS if self.is_classifier else REGRESSION_METRICS
        counts = ("n", "n_actual", "n_proba") if self.is_classifier else ("n", "n_actual")
        for col in counts:
            out[col] = (out[col] if col in out else pd.Series(0, index=out.index)
                        ).fillna(0).astype("int64")
        for col in names:
            if col not in out:
                out[col] = np.nan
            out[col] = out[col].astype("float64")
        note = out["note"] if "note" in out else pd.Series("", index=out.index)
        note = note.astype(object).where(note.notna(), "")
        note = note.where(out["n"] > 0, "no predictions in this window")
        out["note"] = note.astype(str)
        return out[["window_start", "window_end", *by, *counts, *names, "note"]]

    # ---- drift --------------------------------------------------------------------------

    def drift(self, window: str | Window = "week", *, reference: tuple[Any, Any] | None = None,
              methods: dict[str, str] | None = None,
              columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Drift and data quality per window and column; see :mod:`core.monitoring.drift`."""
        return compute_drift(self, window, reference=reference, methods=methods, columns=columns)

    # ---- traffic ------------------------------------------------------------------------

    def traffic(self, window: str | Window = "day") -> pd.DataFrame:
        """Requests, rows, error rate and latency percentiles (ms) per window.

        One row per request is read (its first row, or the single row of a failed
        request), since latency is logged per request; a request counts in the window
        it started in. Rows count where they fall: a scored upload is one request whose
        rows span many windows, and every window with rows is listed.
        """
        w = parse_window(window)
        data = None
        if self.has_rows:
            data = self.query(f"""
                SELECT {w.key_sql()} AS k, count(*) AS requests,
                       count_if(status >= 400) AS errors,
                       quantile_cont(latency_ms, [0.5, 0.9, 0.99]) AS q
                FROM monitoring_log WHERE coalesce("row", 0) = 0 GROUP BY k""")
            rows = self.query(f"SELECT {w.key_sql()} AS k, count(*) AS rows FROM monitoring_log "
                              "WHERE status < 400 GROUP BY k")
            data = data.merge(rows, on="k", how="outer")
            q = data.pop("q")
            for i, label in enumerate(("p50_ms", "p90_ms", "p99_ms")):
                # a window with rows but no request starting in it has no latencies
                data[label] = [v[i] if isinstance(v, (list, tuple, np.ndarray)) else np.nan
                               for v in q]
        keys = self.windows(w, data["k"] if data is not None else ())
        out = self.frame_for(w, keys, data)
        for col in ("requests", "errors", "rows"):
            out[col] = (out[col] if col in out else pd.Series(0, index=out.index)
                        ).fillna(0).astype("int64")
        for col in ("p50_ms", "p90_ms", "p99_ms"):
            if col not in out:
                out[col] = np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            out["error_rate"] = np.where(out["requests"] > 0,
                                         out["errors"] / out["requests"].clip(lower=1), np.nan)
        return out[["window_start", "window_end", *TRAFFIC_COLUMNS]]


def open_monitor(store: StoreLike, name: str, meta: BundleMeta, *,
                 versions: Sequence[str] | None = None,
                 source: str = "log", since: Any = None, until: Any = None,
                 sample: pd.DataFrame | None = None, threads: int | None = None,
                 reference: tuple[Any, Any] | None = None) -> Monitor:
    """Open the ``monitoring`` view over the chosen source of model ``name``.

    ``store`` needs ``fs`` and ``path(...)`` (a :class:`core.store.versionstore.VersionStore`);
    ``meta`` is the version whose task, classes and reference profile apply;
    ``source`` is ``log`` (served predictions), ``upload`` (data scored in the
    workbench) or ``all``.
    """
    if source not in SOURCES:
        raise InvalidArgument(f"Unknown source {source!r}: use one of {', '.join(SOURCES)}.")
    t0, t1 = parse_time(since), parse_time(until)
    if t0 is not None and t1 is not None and t1 <= t0:
        raise InvalidArgument(f"The end of the range, until {t1:%Y-%m-%d %H:%M}, must be after its "
                              f"start, since {t0:%Y-%m-%d %H:%M}.")
    versions = list(versions) if versions else None
    files: list[str] = []
    if source in ("log", "all"):
        files += segment_files(store, log_dir(store, name), versions)
    if source in ("upload", "all"):
        files += segment_files(store, scored_dir(store, name), versions)
    lo, hi = t0, t1
    if reference is not None:
        r0, r1 = parse_time(reference[0]), parse_time(reference[1])
        lo = None if lo is None or r0 is None else min(lo, r0)
        hi = None if hi is None or r1 is None else max(hi, r1)
    files = files_in_range(files, lo, hi)
    con = sandbox(store, name, threads)
    register(con, store, "_log_src", files, empty=_empty_log(meta))
    src = "_log_src"
    conds = []
    if t0 is not None:
        conds.append(f"ts >= make_timestamptz({t0.value // 1000})")
    if t1 is not None:
        conds.append(f"ts < make_timestamptz({t1.value // 1000})")
    where = " AND ".join(conds) or "TRUE"
    con.execute(f"CREATE TEMP VIEW monitoring_log AS SELECT * FROM {src} WHERE {where}")
    con.execute(f"CREATE TEMP VIEW monitoring_ref AS SELECT * FROM {src}")
    log_types = {r[0]: str(r[1]) for r in con.execute("DESCRIBE monitoring_log").fetchall()}
    joins, actual_exprs = actual_sources(store, con, name, log_types,
                                         numeric=not _is_classifier(meta))
    actual = (f"coalesce({', '.join(actual_exprs)})" if len(actual_exprs) > 1
              else actual_exprs[0] if actual_exprs else
              ("NULL::VARCHAR" if _is_classifier(meta) else "NULL::DOUBLE"))
    con.execute(f"CREATE TEMP VIEW monitoring AS SELECT l.*, {actual} AS actual "
                f"FROM monitoring_log l {' '.join(joins)}")
    labelled, regstats = labelled_view(store, con, name, files, numeric=not _is_classifier(meta),
                             types=log_types, joins=joins, actual=actual, where=where,
                             since=t0, until=t1)
    con.execute("SET lock_configuration = true")
    described = con.execute("DESCRIBE monitoring").fetchall()
    columns = [r[0] for r in described]
    has_rows = bool(con.execute("SELECT count(*) > 0 FROM (SELECT 1 FROM monitoring_log "
                                "LIMIT 1)").fetchall()[0][0])
    return Monitor(con=LimitedConnection(con), meta=meta, name=name, versions=versions,
                   since=t0, until=t1,
                   columns=columns, types={r[0]: str(r[1]) for r in described},
                   has_rows=has_rows, has_actuals=bool(joins), sample=sample,
                   labelled=labelled, regstats=regstats, actual_joins=list(joins),
                   actual_sql=actual)


def _is_classifier(meta: BundleMeta) -> bool:
    return meta.task in ("binary", "multiclass") or meta.classes is not None


_KIND_TYPES = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
               "string": pa.string(), "category": pa.string(), "datetime": pa.timestamp("us")}


def _empty_log(meta: BundleMeta) -> pa.Table:
    """A table with the log's columns and no rows, typed from the prototype."""
    fields = list(LOG_SCHEMA_BASE)
    for c in meta.prototype.columns:
        fields.append(pa.field(feature_column(c.name), _KIND_TYPES.get(c.kind, pa.float64())))
    fields.append(pa.field("prediction", pa.string() if _is_classifier(meta) else pa.float64()))
    fields.append(pa.field("proba", pa.list_(pa.float64())))
    return pa.schema(fields).empty_table()


def open_ref(store: StoreLike, ref: str, *, source: str = "log", since: Any = None,
             until: Any = None, all_versions: bool = False,
             reference: tuple[Any, Any] | None = None) -> Monitor:
    """Open a monitor for ``NAME``, ``NAME@VERSION`` or ``NAME:ALIAS``.

    Plain ``NAME`` covers every version's rows (the latest version's metadata applies);
    a version or alias only that version's, unless ``all_versions``.
    """
    text = str(ref or "").strip()
    if not text:
        raise InvalidArgument("Name a model: NAME, NAME@VERSION or NAME:ALIAS.")
    name, version = store.resolve(text)
    pinned = ("@" in text or ":" in text) and not all_versions
    meta = store.meta(name, version)
    try:
        sample = store.sample(name, version)
    except NotFound:
        sample = None
    return open_monitor(store, name, meta, versions=[version] if pinned else None,
                        source=source, since=since, until=until, sample=sample,
                        reference=reference)
