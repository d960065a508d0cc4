"""Prediction log: every served row, as Parquet segments on the board.

Layout (read by monitoring with DuckDB)::

    <board>/.fixative/logs/<model>/<version>/<YYYY-MM-DD>/<host>-<pid>-<uuid8>-<seq>.parquet

One row per input row; a failed request is one row with null features. Columns:
``ts`` (timestamp[us, UTC], when the request arrived), ``request_id``, ``model``,
``version``, ``route`` (predict, predict_proba, invocations, upload), ``status``
(int16), ``latency_ms`` (float64, the whole request), ``row`` (int32 index within the
request, null for failed requests), ``error_code`` (null on success), one column per
input feature under its own name (prefixed ``input_`` only where it clashes with a
log column), ``prediction`` (float64 for regression, the class label as a string for
classifiers) and ``proba`` (list<double> in the model's class order, null unless
probabilities were computed).

Durability. :class:`LogWriter` keeps requests in memory (appending a reference per
request costs microseconds) and a background thread writes them out at least every
``flush_interval`` seconds and once more when the writer is closed. The server closes
it in its lifespan shutdown, which uvicorn runs on SIGTERM or Ctrl-C after the last
response is sent: everything answered is on disk before the process exits. A process
killed with SIGKILL (or by the OOM killer) loses at most the requests of the last
flush interval. Each writer names its files ``<host>-<pid>-<uuid8>-<seq>``, so any
number of server processes on any number of machines can share one board without
ever writing the same file; a segment is written under a temporary name and renamed,
so readers never see half a file (on object stores a PUT is atomic anyway).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import InvalidArgument
from core.model.columns import as_frame
from core.store.paths import log_dir, segment_files
from core.store.protocols import BoardLike

LOG_COLUMNS = ("ts", "request_id", "model", "version", "route", "status", "latency_ms", "row",
               "error_code", "prediction", "proba", "serving_role")
ROUTES = ("predict", "predict_proba", "invocations", "upload")
# A writer that cannot reach the board keeps at most this many requests before
# dropping the oldest (and saying so in the server log).
MAX_PENDING = 200_000
_log = logging.getLogger("fixative.predlog")
_KIND_TYPES = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
               "string": pa.string(), "category": pa.string()}


def feature_column(name: str) -> str:
    """The log column that holds input feature ``name``."""
    return f"input_{name}" if name in LOG_COLUMNS else name


class LogWriter:
    """Buffers served requests and writes them to the board in the background.

    ``feature_kinds`` (name -> prototype kind) types feature columns in segments that
    hold only failed requests; ``classes`` marks a classifier (labels are logged as
    strings).
    """

    def __init__(self, store: BoardLike, name: str, version: str | None,
                 flush_interval: float = 1.0, *, feature_kinds: dict[str, str] | None = None,
                 classes: Sequence[Any] | None = None) -> None:
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive (seconds)")
        self.store = store
        self.name = name
        self.version = version or "unversioned"
        self.flush_interval = float(flush_interval)
        self.feature_kinds = dict(feature_kinds or {})
        self.classes = list(classes) if classes is not None else None
        self._prefix = f"{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._seq = 0
        self._pending: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.segments_written = 0
        # champion / challenger when the endpoint runs two versions (a serving_role column)
        self.role: str | None = None

    # -- producer side (event loop) ----------------------------------------------------

    def append(self, *, ts: datetime, request_id: str, route: str, status: int,
               latency_ms: float, frame: pd.DataFrame | None = None,
               rows: tuple[int, int] | None = None, prediction: Any = None,
               proba: Any = None, error_code: str | None = None) -> None:
        """Record one request; cheap (no copying, no I/O).

        ``frame`` holds the request's validated inputs, at ``rows`` (start, stop) when it
        is a batch shared with other requests; ``frame=None`` logs a failed request.
        """
        entry = (ts, request_id, route, status, latency_ms, frame, prediction, proba,
                 error_code, rows)
        with self._lock:
            self._pending.append(entry)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="fixative-predlog",
                                            daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the background thread and write everything still buffered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def __enter__(self) -> LogWriter:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- consumer side (background thread) ---------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:  # keep the thread alive; flush() re-queued the entries
                _log.exception("could not write the prediction log; retrying")

    def flush(self) -> list[str]:
        """Write what is buffered now; returns the paths written."""
        with self._write_lock:
            with self._lock:
                entries, self._pending = self._pending, []
            if not entries:
                return []
            try:
                return self._write(entries)
            except Exception:
                with self._lock:
                    self._pending[:0] = entries
                    overflow = len(self._pending) - MAX_PENDING
                    if overflow > 0:
                        del self._pending[:overflow]
                        _log.error("prediction log: dropped %d requests that could not be "
                                   "written", overflow)
                raise

    def _write(self, entries: list[tuple[Any, ...]]) -> list[str]:
        by_day: dict[str, list[tuple[Any, ...]]] = {}
        for e in entries:
            by_day.setdefault(e[0].astimezone(UTC).strftime("%Y-%m-%d"), []).append(e)
        paths = []
        for day, group in sorted(by_day.items()):
            table = build_table(group, self.name, self.version, self.classes, self.feature_kinds,
                                role=self.role)
            self._seq += 1
            paths.append(write_segment(self.store, self.name, self.version, day,
                                       f"{self._prefix}-{self._seq:06d}", table))
            self.segments_written += 1
        return paths


def build_table(entries: Sequence[tuple[Any, ...]], model: str, version: str,
                classes: Sequence[Any] | None, feature_kinds: dict[str, str], *,
                role: str | None = None) -> pa.Table:
    """The Arrow table of a segment: successful rows first, then failed requests; with
    ``role``, a ``serving_role`` column (champion / challenger) marks every row."""
    ok, frames = _by_frame([e for e in entries if e[5] is not None])
    failed = [e for e in entries if e[5] is None]
    sizes = np.array([_span(e)[1] - _span(e)[0] for e in ok], dtype=np.int64)
    n_ok, n_failed = int(sizes.sum()), len(failed)
    n = n_ok + n_failed

    def meta(i: int) -> list[Any]:
        return np.repeat([e[i] for e in ok], sizes).tolist() + [e[i] for e in failed]

    ts = [e[0] for e in ok]
    cols: dict[str, pa.Array] = {
        "ts": pa.array(np.repeat(np.array([_us(t) for t in ts], dtype=np.int64), sizes).tolist()
                       + [_us(e[0]) for e in failed], type=pa.timestamp("us", tz="UTC")),
        "request_id": pa.array(meta(1), type=pa.string()),
        "model": pa.array([model] * n, type=pa.string()),
        "version": pa.array([version] * n, type=pa.string()),
        "route": pa.array(meta(2), type=pa.string()),
        "status": pa.array(meta(3), type=pa.int16()),
        "latency_ms": pa.array(meta(4), type=pa.float64()),
        "row": pa.array(np.concatenate([np.arange(s, dtype=np.int32) for s in sizes]).tolist()
                        + [None] * n_failed if n_ok else [None] * n_failed, type=pa.int32()),
        "error_code": pa.array(meta(8), type=pa.string()),
    }
    features = _feature_arrays(frames, feature_kinds, n_failed)
    cols.update(features)
    cols["prediction"] = _predictions([e[6] for e in ok], classes, n_failed)
    cols["proba"] = _probas([e[7] for e in ok], sizes, n_failed)
    if role is not None:
        cols["serving_role"] = pa.array([role] * n, type=pa.string())
    return pa.table(cols)


def _span(entry: tuple[Any, ...]) -> tuple[int, int]:
    return entry[9] if len(entry) > 9 and entry[9] is not None else (0, len(entry[5]))


def _by_frame(ok: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], list[pd.DataFrame]]:
    """Entries ordered by the frame they point into, and one frame per group: requests of
    one batch share its frame, so a flush concatenates batches, not requests."""
    groups: dict[int, list[tuple[Any, ...]]] = {}
    for e in ok:
        groups.setdefault(id(e[5]), []).append(e)
    ordered: list[tuple[Any, ...]] = []
    frames: list[pd.DataFrame] = []
    for members in groups.values():
        members.sort(key=lambda e: _span(e)[0])
        base = as_frame(members[0][5])
        spans = [_span(e) for e in members]
        if spans == [(0, len(base))] or (spans[0][0] == 0 and spans[-1][1] == len(base) and all(
                a[1] == b[0] for a, b in zip(spans, spans[1:]))):
            frames.append(base)
        else:
            take = np.concatenate([np.arange(a, b) for a, b in spans])
            frames.append(base.iloc[take].reset_index(drop=True))
        ordered.extend(members)
    return ordered, frames


def _us(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000)


def _feature_arrays(frames: list[pd.DataFrame], kinds: dict[str, str],
                    n_failed: int) -> dict[str, pa.Array]:
    names = list(frames[0].columns) if frames else list(kinds)
    merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else (
        frames[0] if frames else None)
    out: dict[str, pa.Array] = {}
    for name in names:
        key = feature_column(str(name))
        if merged is None:
            out[key] = pa.nulls(n_failed, type=_KIND_TYPES.get(kinds.get(name, ""), pa.string()))
            continue
        arr = _to_arrow(merged[name])
        if n_failed:
            arr = pa.concat_arrays([arr, pa.nulls(n_failed, type=arr.type)])
        out[key] = arr
    return out


def _to_arrow(s: pd.Series) -> pa.Array:
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    try:
        arr = pa.array(s, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = pa.array(s.astype(object).where(s.isna(), s.astype(str)), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):  # arrow-backed pandas columns
        arr = arr.combine_chunks()
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.string())
    if pa.types.is_null(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _predictions(preds: list[Any], classes: Sequence[Any] | None, n_failed: int) -> pa.Array:
    nulls = [None] * n_failed
    if not preds:
        return pa.array(nulls, type=pa.string() if classes is not None else pa.float64())
    values = np.concatenate([np.asarray(p).reshape(len(p), -1)[:, 0] if np.ndim(p) > 1
                             else np.asarray(p) for p in preds])
    if classes is None:
        try:
            return pa.array(values.astype(np.float64).tolist() + nulls, type=pa.float64())
        except (TypeError, ValueError):
            pass
    return pa.array([str(v) for v in values.tolist()] + nulls, type=pa.string())


def _probas(probas: list[Any], sizes: np.ndarray, n_failed: int) -> pa.Array:
    values: list[Any] = []
    for p, size in zip(probas, sizes):
        if p is None:
            values.extend([None] * int(size))
        else:
            values.extend(np.asarray(p, dtype=np.float64).tolist())
    values.extend([None] * n_failed)
    return pa.array(values, type=pa.list_(pa.float64()))


def write_segment(store: BoardLike, name: str, version: str, day: str, stem: str,
                  table: pa.Table) -> str:
    """Write ``table`` as one log segment; see :func:`write_parquet`."""
    return write_parquet(store, log_dir(store, name, version, day), stem, table)


def write_parquet(store: BoardLike, folder: str, stem: str, table: pa.Table) -> str:
    """Write ``folder/stem.parquet`` on the board under a temporary name, then rename it,
    so readers globbing ``*.parquet`` never see a half-written file."""
    fs = store.fs
    fs.makedirs(folder, exist_ok=True)
    final = f"{folder}/{stem}.parquet"
    tmp = f"{folder}/.{stem}.parquet.tmp"
    with fs.open(tmp, "wb") as f:
        pq.write_table(table, f, compression="zstd")
    fs.mv(tmp, final)
    return final


def write_rows(store: BoardLike, name: str, version: str, inputs: pd.DataFrame, predictions: Any,
               *, proba: Any = None, classes: Sequence[Any] | None = None,
               route: str = "upload", request_id: str | None = None,
               ts: datetime | None = None, status: int = 200,
               latency_ms: float = 0.0) -> str:
    """Write scored rows (e.g. uploaded data scored in the workbench) as one segment in
    the prediction log's format; returns its path."""
    if route not in ROUTES:
        raise InvalidArgument(f"route must be one of {', '.join(ROUTES)}, got {route!r}.")
    if not isinstance(inputs, pd.DataFrame) or len(inputs) == 0:
        raise InvalidArgument("inputs must be a non-empty DataFrame of the model's features.")
    preds = np.asarray(predictions)
    if len(preds) != len(inputs):
        raise InvalidArgument(f"Got {len(preds)} predictions for {len(inputs)} input rows; "
                              "pass one prediction per row.")
    if proba is not None and len(proba) != len(inputs):
        raise InvalidArgument(f"Got {len(proba)} probability rows for {len(inputs)} input rows.")
    ts = ts or datetime.now(UTC)
    if ts.tzinfo is None:
        raise InvalidArgument("ts must be timezone-aware (e.g. datetime.now(UTC)).")
    entry = (ts, request_id or uuid.uuid4().hex, route, status, float(latency_ms),
             inputs.reset_index(drop=True), preds, proba, None, None)
    table = build_table([entry], name, version, classes, {})
    stem = f"{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}-000001"
    return write_segment(store, name, version, ts.astimezone(UTC).strftime("%Y-%m-%d"), stem,
                         table)


def log_relation(store: Any, con: Any, name: str,
                 versions: Sequence[str] | None = None) -> Any:
    """The prediction log of model ``name`` (optionally only ``versions``) as a DuckDB
    relation over its Parquet segments (``union_by_name``, so segments written by
    different model versions with different features read together). With no segment
    yet, an empty relation with the log columns."""
    files = segment_files(store, log_dir(store, name), versions)
    if not files:
        return con.from_arrow(_empty_table())
    if not store.is_local:
        # DuckDB cannot download its own S3 extension here; it reads through fsspec
        protocol = store.fs.protocol
        protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
        if not any(con.filesystem_is_registered(p) for p in protocols):
            con.register_filesystem(store.fs)
        files = [store.fs.unstrip_protocol(f) for f in files]
    return con.read_parquet(files, union_by_name=True)


def _empty_table() -> pa.Table:
    return pa.table({
        "ts": pa.array([], pa.timestamp("us", tz="UTC")), "request_id": pa.array([], pa.string()),
        "model": pa.array([], pa.string()), "version": pa.array([], pa.string()),
        "route": pa.array([], pa.string()), "status": pa.array([], pa.int16()),
        "latency_ms": pa.array([], pa.float64()), "row": pa.array([], pa.int32()),
        "error_code": pa.array([], pa.string()), "prediction": pa.array([], pa.float64()),
        "proba": pa.array([], pa.list_(pa.float64())),
    })


def _host() -> str:
    name = socket.gethostname() or "host"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]
