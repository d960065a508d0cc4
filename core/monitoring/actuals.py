"""Ground truth for monitoring: actuals uploaded later, and data uploaded to be scored.

Actuals live at ``<board>/.fixative/actuals/<model>/by-<on>/<stamp>-<id>.parquet`` with
columns ``key`` (string), ``row`` (int32), ``actual`` (double for regression, the class
label as a string for classifiers) and ``uploaded_at``. ``on`` says what ``key``
matches in the log: ``request_id`` (with ``row``, the row's index within its request;
an actuals file without a row column means single-row requests, row 0), or any logged
input column the person chose (a customer id, say), with the row when the upload has a
row column (folder ``by-<on>+row``). A later upload of the same key replaces the
earlier value, so corrections are just another upload, and an empty value retracts it;
a key given twice in one upload is an error (see :mod:`core.monitoring.join`). After each upload
the log is joined to all the actuals once and the result kept for the metrics
(:mod:`core.monitoring.labels`).

Uploaded data (features, a time column, optionally the true value) is scored by the
chosen version and kept at ``.fixative/scored/<model>/<version>/<day>/...parquet`` in
the prediction log's format with route ``upload``; its true values become actuals
keyed on the upload's request id and row.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any, cast

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import FixativeError, InvalidArgument, InvalidInput
from core.monitoring.join import canonical_keys
from core.monitoring.labels import LabelsInfo, count_matched, refresh_labels
from core.store.paths import actuals_dir, scored_dir
from core.store.predlog import feature_column, write_parquet
from core.store.protocols import StoreLike
from core.store.tables import check_parquet
from core.times import to_utc

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
MAX_UPLOAD_ROWS = 5_000_000
Progress = Callable[[float, str], None]
_log = logging.getLogger("fixative.actuals")


def read_table(data: bytes, filename: str, what: str = "file") -> pd.DataFrame:
    """A DataFrame from uploaded CSV or Parquet bytes, with errors that say what to fix."""
    suffix = PurePath(filename or "").suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InvalidArgument(f"The {what} '{filename}' is neither CSV nor Parquet; upload a .csv "
                              "or .parquet file.")
    if not data:
        raise InvalidArgument(f"The {what} '{filename}' is empty (0 bytes); it needs a header row "
                              "and at least one row.")
    if suffix != ".csv":  # sized up from its footer before it is read
        check_parquet(data, f"The {what} '{filename}'", MAX_UPLOAD_ROWS)
    try:
        frame = (pd.read_csv(io.BytesIO(data)) if suffix == ".csv"
                 else pd.read_parquet(io.BytesIO(data)))
    except pd.errors.EmptyDataError:
        raise InvalidArgument(f"The {what} '{filename}' has no columns; it needs a header "
                              "row.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidArgument(f"The {what} '{filename}' cannot be read as {kind} ({first}); export "
                              f"it again as {kind}.") from None
    if frame.shape[1] == 0 or len(frame) == 0:
        raise InvalidArgument(f"The {what} '{filename}' has no rows; it needs a header row and at "
                              "least one row.")
    if len(frame) > MAX_UPLOAD_ROWS:
        raise InvalidArgument(f"The {what} '{filename}' has {len(frame):,} rows; at most "
                              f"{MAX_UPLOAD_ROWS:,} per upload. Split it into several files.")
    frame.columns = [str(c) for c in frame.columns]
    return frame


# -- labels ---------------------------------------------------------------------------------

def normalize_labels(values: pd.Series, classes: Sequence[Any]) -> pd.Series:
    """Map uploaded labels onto the model's classes, as the strings the log holds.

    ``1``, ``1.0`` and ``"1"`` all mean class ``1``; ``"TRUE"`` means ``True``. Labels
    that match no class are an error naming them, since they would silently count as
    wrong predictions.
    """
    names = [str(c) for c in classes]
    lookup: dict[str, str] = {}
    for c, name in zip(classes, names):
        lookup[name] = name
        lookup[name.lower()] = name
        try:
            f = float(c)
            lookup[repr(f)] = name
            if f.is_integer():
                lookup[str(int(f))] = name
        except (TypeError, ValueError):
            pass
    uniques = pd.unique(values.dropna())
    mapping: dict[Any, str] = {}
    unknown = []
    for u in uniques:
        text = str(u).strip()
        hit = lookup.get(text) or lookup.get(text.lower())
        if hit is None:
            try:
                f = float(text)
                hit = lookup.get(repr(f)) or (lookup.get(str(int(f))) if f.is_integer() else None)
            except (ValueError, OverflowError):
                pass
        if hit is None:
            unknown.append(text)
        else:
            mapping[u] = hit
    if unknown:
        raise InvalidInput(
            f"The actuals hold labels the model does not know: {', '.join(unknown[:10])}"
            f"{' …' if len(unknown) > 10 else ''}. Its classes are {', '.join(names)}.")
    return values.map(mapping).astype(object)


# -- saving actuals -------------------------------------------------------------------------

@dataclass
class SavedActuals:
    path: str
    rows: int
    on: str
    # Rows with an empty actual: each retracts the value stored earlier for its key.
    retracted: int = 0
    # Whether the row within a request is part of the key (always for request_id).
    by_row: bool = True
    # The log joined to every actual so far (None: nothing logged yet, or the join
    # failed and monitoring joins live until the next upload; see core.monitoring.labels).
    labels: LabelsInfo | None = None
    # Rows of this upload that match a logged or scored prediction (None: not counted).
    matched: int | None = None

    def summary(self) -> str:
        """What was saved, in words, with what to check when nothing matched."""
        values = self.rows - self.retracted
        text = f"Saved {values:,} actuals"
        if self.retracted:
            text += (f" and retracted {self.retracted:,} (empty values remove the actual "
                     "stored earlier for the same key)")
        if self.matched is None:
            return text + "."
        if self.matched == self.rows:
            return text + ", each matching a logged prediction."
        if self.matched == 0:
            row = " (and the row column the row within a batched request)" if self.by_row else ""
            return (text + ", but none matches a logged prediction yet: check that the key "
                    f"column holds the values of '{self.on}'{row}. They are kept and will "
                    "match predictions logged later.")
        missing = self.rows - self.matched
        return text + f"; {self.matched:,} match a logged prediction, {missing:,} do not (yet)."


_ACTUAL_NAMES = ("actual", "actuals", "truth", "true", "label", "target", "y", "outcome")


def actual_column_guess(columns: Sequence[Any]) -> Any:
    """The column of an actuals file most likely to hold the true value: one named like
    it, else the last that is not a key or row number (files usually end with it)."""
    cols = list(columns)
    rest = [c for c in cols if str(c).lower() not in ("request_id", "row", "id", "key")]
    named = [c for c in rest if str(c).lower() in _ACTUAL_NAMES]
    return (named or rest or cols)[-1 if not named else 0]


def _shown(key: Any) -> str:
    text = repr(str(key))
    return text if len(text) <= 40 else text[:37] + "...'"


def _check_unique(keys: pa.Array, rows: np.ndarray, key_column: str,
                  row_column: str | None) -> None:
    """Refuse an upload that gives one key (and row) twice, naming the first few."""
    frame = pd.DataFrame({"key": keys.to_pandas(), "row": rows})
    twice = frame.duplicated(keep=False)
    if not twice.any():
        return
    groups = frame[twice].groupby(["key", "row"], sort=False).groups
    shown = []
    for pair, index in list(groups.items())[:5]:
        key, row = cast(tuple[Any, Any], pair)
        where = ", ".join(str(i) for i in list(index)[:3]) + (" ..." if len(index) > 3 else "")
        shown.append(f"{_shown(key)}{f' row {row}' if row_column else ''} (rows {where})")
    more = f" and {len(groups) - 5:,} more" if len(groups) > 5 else ""
    what = f"key and row ('{key_column}', '{row_column}')" if row_column else \
        f"key ('{key_column}')"
    raise InvalidInput(
        f"The actuals give the same {what} more than once: {'; '.join(shown)}{more} "
        f"({len(groups):,} keys in all; numbers count as one key when equal, e.g. 29 and "
        "'29.0'). Keep one row per prediction" + ("" if row_column else
                                                  ", or add the row column of batched "
                                                  "requests") + "; nothing was saved.")


def _blank_to_null(values: pd.Series) -> pd.Series:
    """Empty text counts as an empty value, as an empty CSV cell does."""
    if values.dtype != object and not pd.api.types.is_string_dtype(values):
        return values
    blank = values.map(lambda v: isinstance(v, str) and not v.strip())
    return values.astype(object).where(~blank, None)


def truth_column_guess(frame: pd.DataFrame, features: Sequence[Any],
                       classes: Sequence[Any] | None = None,
                       exclude: Sequence[Any] = ()) -> Any | None:
    """In a file of new data to score, the column most likely to hold the true value.

    Candidates are the columns that are not inputs of the model, not in ``exclude`` (the
    time column) and not keys, whose values could be true values: numbers for a
    regression, the model's class labels for a classifier. One named like a true value
    wins; otherwise the only candidate; None when that is not clear.
    """
    known = {str(c) for c in [*features, *exclude]}
    labels = None if classes is None else {str(c) for c in classes}
    rest = []
    for c in frame.columns:
        if str(c) in known or str(c).lower() in ("request_id", "row", "id", "key",
                                                 "prediction"):
            continue
        values = frame[c].dropna()
        if values.empty:
            continue
        if labels is None and not pd.api.types.is_numeric_dtype(values):
            continue
        if labels is not None:
            try:
                normalize_labels(pd.Series(pd.unique(values)), classes or [])
            except InvalidInput:  # holds a label the model does not know
                continue
        rest.append(c)
    named = [c for c in rest if str(c).lower() in _ACTUAL_NAMES]
    if named:
        return named[0]
    return rest[0] if len(rest) == 1 else None


def save_actuals(store: StoreLike, name: str, frame: pd.DataFrame, *, key_column: str,
                 actual_column: str, on: str = "request_id", row_column: str | None = None,
                 classes: Sequence[Any] | None = None,
                 log_columns: Sequence[str] | None = None,
                 retract: bool = False) -> SavedActuals:
    """Store actuals for model ``name``; see the module docstring for the layout and
    :mod:`core.monitoring.join` for how keys match.

    ``classes`` (the model's, for a classifier) makes the actual a label; otherwise it
    must be a number. ``log_columns``, when given, checks that ``on`` is a logged column.
    An empty actual retracts the value stored earlier for its key; a file whose actuals
    are all empty is refused unless ``retract`` (a wrong column would retract them all).
    A key (with its row, when a row column is given) that appears twice is an error and
    nothing is saved.
    """
    if not isinstance(frame, pd.DataFrame) or len(frame) == 0:
        raise InvalidArgument("The actuals are empty; upload a file with a key column and the true "
                              "value, one row per prediction.")
    for label, col in (("key", key_column), ("actual", actual_column)):
        if not col or col not in frame.columns:
            raise InvalidArgument(f"The {label} column {col!r} is not in the file; its columns are "
                                  f"{', '.join(map(str, frame.columns[:30]))}.")
    if key_column == actual_column:
        raise InvalidArgument("The key column and the actual column must differ.")
    on = str(on or "").strip()
    if not on:
        raise InvalidArgument("Say which logged column the key matches (usually request_id).")
    if log_columns is not None and on not in log_columns:
        raise InvalidArgument(f"'{on}' is not a logged column; match on request_id or one of the "
                              f"model's inputs: {', '.join(c for c in log_columns if c != 'ts')}.")
    if row_column is not None and row_column not in frame.columns:
        raise InvalidArgument(f"The row column {row_column!r} is not in the file; its columns "
                              f"are {', '.join(map(str, frame.columns[:30]))}.")
    if row_column is not None and row_column in (key_column, actual_column):
        raise InvalidArgument("The row column must differ from the key and actual columns.")
    keys = _blank_to_null(frame[key_column])
    if keys.isna().any():
        rows = np.flatnonzero(keys.isna().to_numpy())[:10].tolist()
        raise InvalidInput(f"The key column '{key_column}' is empty in rows {rows}; every row "
                           "needs a key.")
    values = _blank_to_null(frame[actual_column])
    if values.isna().all() and not retract:
        raise InvalidInput(f"The actual column '{actual_column}' has no values. To retract the "
                           "actuals of these keys, say so (retract=True, or --retract on the "
                           "command line).")
    if classes is not None:
        actual = pa.array(normalize_labels(values, classes), pa.string(), from_pandas=True)
    else:
        numeric = pd.to_numeric(values, errors="coerce")
        bad = numeric.isna() & values.notna()
        if bad.any():
            rows = np.flatnonzero(bad.to_numpy())[:10].tolist()
            raise InvalidInput(f"The actual column '{actual_column}' has values that are not "
                               f"numbers in rows {rows} (e.g. {_shown(values[bad].iloc[0])}); a "
                               "regression model's actuals must be numbers.")
        actual = pa.array(numeric.astype("float64"), pa.float64(), from_pandas=True)
    if row_column is not None:
        rows_num = pd.to_numeric(frame[row_column], errors="coerce")
        if (rows_num.isna().any() or (rows_num < 0).any() or (rows_num % 1 != 0).any()
                or (rows_num >= 2**31).any()):
            raise InvalidInput(f"The row column '{row_column}' must hold whole numbers from 0 "
                               "(the row's index within its request).")
        row_values = rows_num.to_numpy().astype(np.int32)
    else:
        row_values = np.zeros(len(frame), dtype=np.int32)
    by_row = on == "request_id" or row_column is not None
    # Request ids are ids, compared as exact text (numbers as their digits).
    key_text = (pa.array(keys.astype(str), pa.string())
                if on == "request_id" and not pd.api.types.is_numeric_dtype(keys)
                else canonical_keys(keys))
    _check_unique(key_text, row_values if by_row else np.zeros(len(frame), np.int32),
                  key_column, row_column if by_row else None)
    table = pa.table({
        "key": key_text,
        "row": pa.array(row_values, pa.int32()),
        "actual": actual,
        "uploaded_at": pa.array(np.full(len(frame), pd.Timestamp.now(tz="UTC").value // 1000),
                                pa.timestamp("us", tz="UTC")),
    })
    table = table.take(pc.sort_indices(table, [("key", "ascending"),
                                                       ("row", "ascending")]))
    folder = actuals_dir(store, name, on, by_row=by_row)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = write_parquet(store, folder, f"{stamp}-{uuid.uuid4().hex[:8]}", table)
    labels = None
    try:
        labels = refresh_labels(store, name, numeric=classes is None)
    except (duckdb.Error, OSError, pa.ArrowException, FixativeError) as exc:
        # The actuals are saved; metrics join them live until the next upload.
        _log.warning("Could not materialise the labelled rows of %s: %s", name, exc)
    try:
        matched: int | None = count_matched(store, name, table, on, by_row=by_row)
    except (duckdb.Error, OSError, pa.ArrowException, FixativeError) as exc:
        _log.warning("Could not count the matched actuals of %s: %s", name, exc)
        matched = None
    return SavedActuals(path=path, rows=table.num_rows, on=on,
                        retracted=int(values.isna().sum()), by_row=by_row, labels=labels,
                        matched=matched)


# -- scoring uploaded data ------------------------------------------------------------------

@dataclass
class ScoredUpload:
    request_id: str
    rows: int
    paths: list[str]
    actuals: SavedActuals | None
    seconds: float
    # What validation said of the features (dropped columns, unseen categories...).
    warnings: list[str] = field(default_factory=list)


def score_upload(store: StoreLike, bundle: Any, frame: pd.DataFrame, *, time_column: str,
                 actual_column: str | None = None, progress: Progress | None = None,
                 batch_rows: int = 5000) -> ScoredUpload:
    """Score ``frame`` with ``bundle`` (a stored version) and keep it for monitoring.

    The features are validated against the version's prototype like a request; the
    time column becomes ``ts`` (UTC; naive times are taken as UTC), the true value
    (optional) becomes actuals. ``progress(fraction, message)`` is called per batch.
    """
    if bundle.version is None:
        raise InvalidArgument("Score uploaded data with a stored version (store it first).")
    if not isinstance(frame, pd.DataFrame) or len(frame) == 0:
        raise InvalidArgument("The uploaded data is empty; upload features, a time column and "
                              "optionally the true value.")
    if time_column not in frame.columns:
        raise InvalidArgument(f"The time column {time_column!r} is not in the file; its columns "
                              f"are {', '.join(map(str, frame.columns[:30]))}.")
    if actual_column is not None and actual_column not in frame.columns:
        raise InvalidArgument(f"The actual column {actual_column!r} is not in the file.")
    if actual_column is not None and actual_column == time_column:
        raise InvalidArgument("The time column and the actual column must differ.")
    ts = to_utc(frame[time_column], time_column).reset_index(drop=True)
    features = frame.drop(columns=[c for c in (time_column, actual_column) if c])
    features = features.reset_index(drop=True)
    meta = bundle.meta
    classifier = meta.classes is not None
    say = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    preds: list[np.ndarray] = []
    probas: list[np.ndarray] = []
    latency = np.zeros(len(features))
    checked: list[pd.DataFrame] = []
    warned: list[str] = []
    n = len(features)
    for lo in range(0, n, batch_rows):
        hi = min(lo + batch_rows, n)
        t0 = time.perf_counter()
        part, said = meta.prototype.validate(features.iloc[lo:hi])
        for w in said:  # the first few distinct ones; each batch repeats most of them
            if w not in warned and len(warned) < 5:
                warned.append(w)
        model_in = bundle.model_input(part)
        preds.append(np.asarray(bundle.model.predict(model_in)))
        if classifier and meta.has_proba:
            probas.append(np.asarray(bundle.model.predict_proba(model_in), dtype=float))
        latency[lo:hi] = (time.perf_counter() - t0) * 1000
        checked.append(part.reset_index(drop=True))
        say(hi / n, f"Scored {hi:,} of {n:,} rows")
    inputs = pd.concat(checked, ignore_index=True)
    pred = np.concatenate(preds)
    request_id = f"upload-{uuid.uuid4().hex}"
    cols: dict[str, pa.Array] = {
        "ts": pa.array(ts.to_numpy(), pa.timestamp("us", tz="UTC")),
        "request_id": pa.array([request_id] * n, pa.string()),
        "model": pa.array([meta.name] * n, pa.string()),
        "version": pa.array([bundle.version] * n, pa.string()),
        "route": pa.array(["upload"] * n, pa.string()),
        "status": pa.array(np.full(n, 200, dtype=np.int16), pa.int16()),
        "latency_ms": pa.array(latency, pa.float64()),
        "row": pa.array(np.arange(n, dtype=np.int32), pa.int32()),
        "error_code": pa.nulls(n, pa.string()),
    }
    for col in inputs.columns:
        s = inputs[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(object)
        arr = pa.array(s, from_pandas=True)
        if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
            arr = arr.cast(pa.string())
        if pa.types.is_null(arr.type):
            arr = arr.cast(pa.string())
        cols[feature_column(str(col))] = arr
    if classifier:
        cols["prediction"] = pa.array([str(v) for v in pred.tolist()], pa.string())
    else:
        cols["prediction"] = pa.array(pred.astype(np.float64), pa.float64())
    cols["proba"] = (pa.array(np.concatenate(probas).tolist(), pa.list_(pa.float64()))
                     if probas else pa.nulls(n, pa.list_(pa.float64())))
    table = pa.table(cols)
    days = ts.dt.strftime("%Y-%m-%d").to_numpy()
    order = np.argsort(days, kind="stable")
    table, days = table.take(pa.array(order)), days[order]
    paths = []
    folder = scored_dir(store, meta.name, bundle.version)
    stem = uuid.uuid4().hex[:8]
    bounds = np.flatnonzero(np.r_[True, days[1:] != days[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        paths.append(write_parquet(store, f"{folder}/{days[a]}", f"upload-{stem}-{a:09d}",
                                    table.slice(int(a), int(b - a))))
    saved = None
    if actual_column is not None and frame[actual_column].notna().any():
        truth = pd.DataFrame({"key": request_id, "row": np.arange(n),
                              "actual": frame[actual_column].reset_index(drop=True)})
        truth = truth[truth["actual"].notna()]
        saved = save_actuals(store, meta.name, truth, key_column="key", actual_column="actual",
                             row_column="row", classes=meta.classes)
    say(1.0, f"Scored {n:,} rows")
    return ScoredUpload(request_id=request_id, rows=n, paths=paths, actuals=saved,
                        seconds=time.perf_counter() - started, warnings=warned)


__all__ = ["SavedActuals", "ScoredUpload", "normalize_labels", "read_table", "save_actuals",
           "score_upload"]
