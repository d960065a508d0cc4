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

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from core.errors import BadRequest, NotFound
from core.model.bundle import BundleMeta
from core.monitoring.limits import memory_limit

LOG_SCHEMA_BASE = pa.schema([
    ("ts", pa.timestamp("us", tz="UTC")), ("request_id", pa.string()), ("model", pa.string()),
    ("version", pa.string()), ("route", pa.string()), ("status", pa.int16()),
    ("latency_ms", pa.float64()), ("row", pa.int32()), ("error_code", pa.string()),
])
SOURCES = ("log", "upload", "all")
UNITS = ("hour", "day", "week", "month")
# More windows than this is a mistake (a 1-minute window over a year), not a request.
MAX_WINDOWS = 5000
_US = {"min": 60 * 10**6, "h": 3600 * 10**6, "d": 86400 * 10**6, "w": 7 * 86400 * 10**6}
_UNIT_US = {"hour": _US["h"], "day": _US["d"], "week": _US["w"]}
# Monday 1970-01-05 00:00 UTC, in microseconds since the epoch.
ORIGIN_US = 4 * 86400 * 10**6
EPS = float(np.finfo(np.float64).eps)
REGRESSION_METRICS = ("rmse", "mae", "mape", "r2")
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
# Lower is better for these; higher for the others (used for threshold defaults and charts).
LOWER_IS_BETTER = {"rmse", "mae", "mape", "log_loss"}


# -- board paths ---------------------------------------------------------------------------

def log_dir(store: Any, name: str, version: str | None = None) -> str:
    return store.path(".fixative", "logs", name, *([version] if version else []))


def scored_dir(store: Any, name: str, version: str | None = None) -> str:
    return store.path(".fixative", "scored", name, *([version] if version else []))


def actuals_dir(store: Any, name: str, on: str | None = None) -> str:
    return store.path(".fixative", "actuals", name, *([_on_dir(on)] if on else []))


def _on_dir(on: str) -> str:
    return "by-" + re.sub(r"[^A-Za-z0-9_.-]", lambda m: f"%{ord(m.group()):02X}", on)


def _on_from_dir(folder: str) -> str:
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), folder[3:])


# -- windows and times ----------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """A calendar unit (``unit``) or a fixed period of ``period_us`` microseconds."""

    unit: str | None = None
    period_us: int | None = None
    label: str = ""

    def key_sql(self, ts: str = "ts") -> str:
        """SQL for the window number of timestamp column ``ts`` (a BIGINT)."""
        if self.unit == "month":
            t = f"make_timestamp(epoch_us({ts}))"
            return f"((year({t}) - 1970) * 12 + month({t}) - 1)::BIGINT"
        p = self.period_us
        d = f"(epoch_us({ts}) - {ORIGIN_US})"
        # DuckDB's // truncates toward zero; windows must floor (times before 1970).
        return f"({d} // {p} - CASE WHEN {d} % {p} < 0 THEN 1 ELSE 0 END)"

    def key_of(self, t: pd.Timestamp) -> int:
        if self.unit == "month":
            return (t.year - 1970) * 12 + t.month - 1
        return (t.value // 1000 - ORIGIN_US) // int(self.period_us or 1)

    def start(self, key: int) -> pd.Timestamp:
        if self.unit == "month":
            return pd.Timestamp(year=1970 + key // 12, month=key % 12 + 1, day=1, tz="UTC")
        return pd.Timestamp(ORIGIN_US * 1000 + key * int(self.period_us or 1) * 1000, tz="UTC")

    def end(self, key: int) -> pd.Timestamp:
        return self.start(key + 1)


_PERIOD = re.compile(r"^\s*(\d+)\s*(min|m|h|d|w)\s*$", re.IGNORECASE)


def parse_window(text: str | Window) -> Window:
    """``hour``/``day``/``week``/``month`` or a fixed period such as ``15min``, ``6h``, ``3d``."""
    if isinstance(text, Window):
        return text
    raw = str(text or "").strip().lower()
    if raw in UNITS:
        return Window(unit=raw, period_us=_UNIT_US.get(raw), label=raw)
    m = _PERIOD.match(raw)
    if m:
        count, unit = int(m.group(1)), _unit(m.group(2), text)
        if count <= 0:
            raise BadRequest(f"The window {text!r} must be longer than zero.")
        if count * _US[unit] < _US["min"]:
            raise BadRequest("The shortest window is one minute.")
        if count * _US[unit] > 3650 * _US["d"]:
            raise BadRequest(f"The window {text!r} is longer than 3650 days; use month windows "
                             "or a shorter period.")
        return Window(period_us=count * _US[unit], label=f"{count}{unit}")
    raise BadRequest(f"Unknown window {text!r}: use hour, day, week or month, or a fixed "
                     "period such as 15min, 6h, 3d or 2w.")


def _unit(unit: str, text: Any) -> str:
    """A period's unit; ``m`` alone is refused, as people mean minutes or months by it."""
    unit = unit.lower()
    if unit == "m":
        raise BadRequest(f"{str(text).strip()!r} is ambiguous: write min for minutes (e.g. "
                         "15min), or use month windows.")
    return unit


_RELATIVE = re.compile(r"^\s*(\d+)\s*(min|m|h|d|w)\s*(ago)?\s*$", re.IGNORECASE)


def parse_time(value: Any, now: datetime | None = None) -> pd.Timestamp | None:
    """A point in time as a UTC Timestamp.

    Accepts datetimes, ISO strings (``2025-03-01``, ``2025-03-01T12:00+02:00``), or a
    span before now (``30d``, ``12h ago``). Naive values are taken as UTC.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        m = _RELATIVE.match(value)
        if m:
            unit = _unit(m.group(2), value)
            base = pd.Timestamp(now or datetime.now(UTC))
            base = base.tz_localize("UTC") if base.tzinfo is None else base.tz_convert("UTC")
            return base - pd.Timedelta(microseconds=int(m.group(1)) * _US[unit])
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"Cannot read {value!r} as a time: use a date such as 2025-03-01, "
                         "a time such as 2025-03-01T12:00:00+02:00, or a span such as 30d "
                         "(30 days ago).") from None
    if t is pd.NaT:
        raise BadRequest(f"Cannot read {value!r} as a time.")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def to_utc(values: pd.Series, column: str = "time") -> pd.Series:
    """Timestamps of any zone, naive datetimes (taken as UTC) or strings, as UTC."""
    s = values
    if not pd.api.types.is_datetime64_any_dtype(s):
        try:
            s = pd.to_datetime(s, utc=True, format="mixed")
        except (ValueError, TypeError, OverflowError) as exc:
            raise BadRequest(f"The {column} column has values that are not times ({exc}); "
                             "use ISO dates such as 2025-03-01 or 2025-03-01T12:00:00Z.") from None
    elif s.dt.tz is None:
        s = s.dt.tz_localize("UTC")
    else:
        s = s.dt.tz_convert("UTC")
    if s.isna().any():
        rows = np.flatnonzero(s.isna().to_numpy())[:10].tolist()
        raise BadRequest(f"The {column} column has empty or unreadable times in rows {rows}; "
                         "every row needs a time.")
    return s.astype("datetime64[us, UTC]")


def window_keys(window: Window, lo: int | None, hi: int | None,
                since: pd.Timestamp | None, until: pd.Timestamp | None) -> list[int]:
    """Every window number from ``since`` (or the first data) to ``until`` (or the last)."""
    first = window.key_of(since) if since is not None else lo
    last = (window.key_of(until - pd.Timedelta(microseconds=1)) if until is not None else hi)
    if first is None or last is None or last < first:
        return []
    if last - first + 1 > MAX_WINDOWS:
        raise BadRequest(f"{window.label} windows over this range make {last - first + 1} "
                         f"windows (at most {MAX_WINDOWS}); choose a longer window or a "
                         "shorter date range (since / until).")
    return list(range(first, last + 1))


# -- the monitoring connection ------------------------------------------------------------

def _arrow_fs(fs: Any) -> Any:
    if _is_local(fs):
        return pa.fs.LocalFileSystem()
    return pa.fs.PyFileSystem(pa.fs.FSSpecHandler(fs))


def _dataset(fs: Any, files: Sequence[str]) -> ds.Dataset | None:
    if not files:
        return None
    afs = _arrow_fs(fs)
    schemas = [pq.read_schema(f, filesystem=afs) for f in files]
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    return ds.dataset(list(files), schema=schema, format="parquet", filesystem=afs)


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def _sandbox(store: Any, name: str, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A connection that can read this model's monitoring folders and nothing else.

    On a local board DuckDB reads the Parquet itself, limited by ``allowed_directories``;
    on other boards it gets Arrow datasets and no file access at all.
    """
    config = {"memory_limit": memory_limit(), **({"threads": int(threads)} if threads else {})}
    con = duckdb.connect(config=config)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET parquet_metadata_cache = true")
    if _is_local(store.fs):
        dirs = [d.rstrip("/") + "/" for d in (log_dir(store, name), scored_dir(store, name),
                                              actuals_dir(store, name))]
        con.execute("SET allowed_directories = $dirs", {"dirs": dirs})
    con.execute("SET enable_external_access = false")
    return con


def _register(con: duckdb.DuckDBPyConnection, store: Any, view: str, files: Sequence[str],
              empty: pa.Table | None = None) -> bool:
    """Make ``view`` read ``files``; False (and an empty view) when there are none."""
    if not files:
        if empty is not None:
            con.register(f"{view}_empty", empty)
            con.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM {view}_empty")
        return False
    if _is_local(store.fs):
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        # Unifying by name costs DuckDB every segment's footer at every bind (each query);
        # when the segments share one schema (checked once here) the first one's will do.
        unify = "true" if not _same_schema(files) else "false"
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM read_parquet([{listing}], "
                    f"union_by_name = {unify})")
    else:
        con.register(f"{view}_arrow", _dataset(store.fs, files))
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM {view}_arrow")
    return True


def _same_schema(files: Sequence[str]) -> bool:
    """Whether the local Parquet ``files`` all have the same columns of the same types."""
    if len(files) < 2:
        return True
    first = pq.read_schema(files[0]).remove_metadata()
    return all(pq.read_schema(f).remove_metadata().equals(first) for f in files[1:])


def _files_in_range(files: list[str], since: pd.Timestamp | None,
                    until: pd.Timestamp | None) -> list[str]:
    """Skip segments whose day folder lies outside [since, until) (a day of slack)."""
    if since is None and until is None:
        return files
    lo = (since - pd.Timedelta(days=1)).strftime("%Y-%m-%d") if since is not None else ""
    hi = (until + pd.Timedelta(days=1)).strftime("%Y-%m-%d") if until is not None else "9999"
    kept = []
    for f in files:
        day = f.rsplit("/", 2)[-2] if f.count("/") >= 2 else ""
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", day) and not lo <= day <= hi:
            continue
        kept.append(f)
    return kept


def segment_files(store: Any, folder: str, versions: Sequence[str] | None) -> list[str]:
    patterns = ([f"{folder}/{v}/*/*.parquet" for v in versions] if versions
                else [f"{folder}/*/*/*.parquet"])
    found: set[str] = set()
    for pattern in patterns:
        found.update(store.fs.glob(pattern))
    return sorted(f for f in found if not f.rsplit("/", 1)[-1].startswith("."))


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
    minute where that was materialised too).
    """

    con: duckdb.DuckDBPyConnection
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

    # ---- shared helpers -----------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
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
        from core.monitoring.performance import classification_metrics, regression_metrics

        w = parse_window(window)
        if min_rows < 1:
            raise BadRequest("min_rows must be at least 1.")
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
        from core.monitoring.drift import compute

        return compute(self, window, reference=reference, methods=methods, columns=columns)

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
        return out[["window_start", "window_end", "requests", "rows", "errors", "error_rate",
                    "p50_ms", "p90_ms", "p99_ms"]]


def open_monitor(store: Any, name: str, meta: BundleMeta, *, versions: Sequence[str] | None = None,
                 source: str = "log", since: Any = None, until: Any = None,
                 sample: pd.DataFrame | None = None, threads: int | None = None,
                 reference: tuple[Any, Any] | None = None) -> Monitor:
    """Open the ``monitoring`` view over the chosen source of model ``name``.

    ``store`` needs ``fs`` and ``path(...)`` (a :class:`core.store.versionstore.VersionStore`);
    ``meta`` is the version whose task, classes and reference profile apply;
    ``source`` is ``log`` (served predictions), ``upload`` (data scored in the
    workbench) or ``all``.
    """
    from core.monitoring.actuals import actual_sources
    from core.monitoring.labels import labelled_view

    if source not in SOURCES:
        raise BadRequest(f"Unknown source {source!r}: use one of {', '.join(SOURCES)}.")
    t0, t1 = parse_time(since), parse_time(until)
    if t0 is not None and t1 is not None and t1 <= t0:
        raise BadRequest(f"The end of the range, until {t1:%Y-%m-%d %H:%M}, must be after its "
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
    files = _files_in_range(files, lo, hi)
    con = _sandbox(store, name, threads)
    _register(con, store, "_log_src", files, empty=_empty_log(meta))
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
    log_columns = list(log_types)
    joins, actual_exprs = actual_sources(store, con, name, log_columns,
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
                                "LIMIT 1)").fetchone()[0])
    return Monitor(con=con, meta=meta, name=name, versions=versions, since=t0, until=t1,
                   columns=columns, types={r[0]: str(r[1]) for r in described},
                   has_rows=has_rows, has_actuals=bool(joins), sample=sample,
                   labelled=labelled, regstats=regstats)


def _is_classifier(meta: BundleMeta) -> bool:
    return meta.task in ("binary", "multiclass") or meta.classes is not None


_KIND_TYPES = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
               "string": pa.string(), "category": pa.string(), "datetime": pa.timestamp("us")}


def _empty_log(meta: BundleMeta) -> pa.Table:
    """A table with the log's columns and no rows, typed from the prototype."""
    from core.store.predlog import feature_column

    fields = list(LOG_SCHEMA_BASE)
    for c in meta.prototype.columns:
        fields.append(pa.field(feature_column(c.name), _KIND_TYPES.get(c.kind, pa.float64())))
    fields.append(pa.field("prediction", pa.string() if _is_classifier(meta) else pa.float64()))
    fields.append(pa.field("proba", pa.list_(pa.float64())))
    return pa.schema(fields).empty_table()


def open_ref(store: Any, ref: str, *, source: str = "log", since: Any = None, until: Any = None,
             all_versions: bool = False, reference: tuple[Any, Any] | None = None) -> Monitor:
    """Open a monitor for ``NAME``, ``NAME@VERSION`` or ``NAME:ALIAS``.

    Plain ``NAME`` covers every version's rows (the latest version's metadata applies);
    a version or alias only that version's, unless ``all_versions``.
    """
    text = str(ref or "").strip()
    if not text:
        raise BadRequest("Name a model: NAME, NAME@VERSION or NAME:ALIAS.")
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
