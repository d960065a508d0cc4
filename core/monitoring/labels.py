"""Labelled rows: the prediction log joined to its actuals once, kept as one Parquet file.

Scoring a window needs only the logged rows that have an actual. Joining millions of
logged rows to the actuals on every query costs seconds, so each upload of actuals
(:func:`core.monitoring.actuals.save_actuals`) materialises the join for model ``name``::

    <board>/.fixative/actuals/<name>/labelled/labels-<stamp>-<id>.parquet
    <board>/.fixative/actuals/<name>/labelled/manifest.json

The Parquet holds ``seg`` (the index of the row's log segment in the manifest), ``ts``,
``version``, ``status``, ``prediction``, ``proba`` and ``actual`` of every successful
logged row with an actual, sorted by ``ts``. The manifest lists the segments that were
joined and the actuals files (with their sizes) they were joined to.

Reading (:func:`labelled_view`) uses the file only while it is current: when the
actuals files on the board are exactly those of the manifest. A later upload of
actuals (which may correct earlier values) changes that list, so until the next
materialisation the rows are joined live, as before. Log segments written after the
materialisation are joined live and added to the file's rows; segments that were
deleted since are left out by their ``seg``. The result is always the rows the live
join would give.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from core.monitoring.join import actual_sources, match_condition
from core.monitoring.limits import deadline
from core.monitoring.sandbox import arrow_fs, register, sandbox
from core.monitoring.windows import MINUTE_US, ORIGIN_US, Window
from core.store.paths import (
    actuals_dir,
    labels_dir,
    log_dir,
    on_from_dir,
    relative_to_system,
    scored_dir,
    segment_files,
)
from core.store.protocols import BoardLike, StoreLike

MANIFEST = "manifest.json"
COLUMNS = ("seg", "ts", "version", "status", "prediction", "proba", "actual")
BASE_COLUMNS = ("ts", "request_id", "row", "status", "version", "prediction", "proba")
# Sums are kept per minute, hour and day (in minutes): a window reads the coarsest that fits.
LEVELS = (1, 60, 24 * 60)
EPS = float(np.finfo(np.float64).eps)


@dataclass
class LabelsInfo:
    path: str
    rows: int
    segments: int
    actual_files: int


def actual_files(store: Any, name: str) -> list[tuple[str, int]]:
    """Every actuals file of model ``name`` with its size, as the manifest records them."""
    try:
        found = store.fs.glob(f"{actuals_dir(store, name)}/by-*/*.parquet", detail=True)
    except FileNotFoundError:
        return []
    return sorted((relative_to_system(store, p), int(info.get("size") or 0))
                  for p, info in found.items() if not p.rsplit("/", 1)[-1].startswith("."))


def all_segments(store: BoardLike, name: str) -> list[str]:
    return (segment_files(store, log_dir(store, name), None)
            + segment_files(store, scored_dir(store, name), None))


def read_manifest(store: BoardLike, name: str) -> dict | None:
    path = f"{labels_dir(store, name)}/{MANIFEST}"
    try:
        with store.fs.open(path, "rb") as f:
            manifest = json.loads(f.read())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(manifest, dict) or not {"file", "counts", "numeric", "segments",
                                              "actuals"} <= set(manifest):
        return None
    return manifest


def _register_with_seg(con: duckdb.DuckDBPyConnection, store: BoardLike, view: str,
                       files: Sequence[str], columns: Sequence[str]) -> None:
    """``view``: the segments' rows with ``seg``, the index of each row's file in ``files``
    (on a board other than a local folder only the log columns the join needs and
    ``columns``)."""
    if store.is_local:
        segs = pa.table({"filename": pa.array(list(files), pa.string()),
                         "seg": pa.array(range(len(files)), pa.int32())})
        con.register(f"{view}_segs", segs)
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT l.* EXCLUDE (filename), s.seg "
                    f"FROM read_parquet([{listing}], union_by_name = true, filename = true) l "
                    f"JOIN {view}_segs s USING (filename)")
        return
    afs = arrow_fs(store.fs)
    schema = pa.unify_schemas([pq.read_schema(f, filesystem=afs) for f in files],
                              promote_options="permissive")
    # DuckDB cannot see an Arrow dataset's file names, so the columns the join needs are
    # read here, segment by segment, each with its index.
    wanted = [c for c in schema.names if c in set(BASE_COLUMNS) | set(columns)]
    parts = []
    for i, f in enumerate(files):
        part = ds.dataset(f, schema=schema, format="parquet", filesystem=afs).to_table(
            columns=wanted)
        parts.append(part.append_column("seg", pa.array([i] * part.num_rows, pa.int32())))
    con.register(f"{view}_arrow", pa.concat_tables(parts))
    con.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM {view}_arrow")


def _rollup(size: int, numeric: bool) -> str:
    """The per-minute rows of ``_lab_minutes`` summed into buckets of ``size`` minutes
    (an hour, a day: the origin, a Monday midnight, starts both)."""
    bucket = f"(minute - ((minute % {size}) + {size}) % {size})"
    if not numeric:
        return (f"SELECT seg, version, {bucket} AS minute, sum(n)::INTEGER AS n, "
                f"{size} AS level FROM _lab_minutes GROUP BY ALL")
    # Means and squared deviations merge exactly (Chan et al.).
    return f"""
        SELECT seg, version, b AS minute, sum(n)::INTEGER AS n,
               sum(n_actual)::INTEGER AS n_actual, sum(sse) AS sse, sum(sae) AS sae,
               sum(sape) AS sape, any_value(mean_b) AS mean_a,
               sum(m2_a + n_actual * (mean_a - mean_b) * (mean_a - mean_b)) AS m2_a,
               {size} AS level
        FROM (SELECT *, {bucket} AS b,
                     sum(n_actual * mean_a) OVER bw / sum(n_actual) OVER bw AS mean_b
              FROM _lab_minutes WINDOW bw AS (PARTITION BY seg, version, {bucket}))
        GROUP BY seg, version, b"""


def rollup_level(window: Window, since: pd.Timestamp | None,
                 until: pd.Timestamp | None) -> int:
    """The coarsest bucket (in minutes) whose sums give exact figures for ``window``
    between ``since`` and ``until``: every window and both bounds whole buckets."""
    for size in reversed(LEVELS):
        us = size * MINUTE_US
        whole = (window.unit in ("day", "week", "month") if size == 24 * 60
                 else window.unit in ("hour", "day", "week", "month"))
        whole = whole or (window.unit is None and int(window.period_us or 0) % us == 0)
        if size == 1 or (whole and _aligned(since, size) and _aligned(until, size)):
            return size
    return 1


def _join_columns(store: StoreLike, name: str) -> list[str]:
    """The logged columns actuals of model ``name`` are matched on (besides request_id)."""
    try:
        folders = store.fs.ls(actuals_dir(store, name), detail=False)
    except FileNotFoundError:
        return []
    names = [f.rstrip("/").rsplit("/", 1)[-1] for f in folders]
    return [on_from_dir(n) for n in names if n.startswith("by-")]


def _select(types: dict[str, str], numeric: bool, actual: str, seg: str) -> str:
    """The labelled columns of the log aliased ``l`` (typed alike in every part)."""
    pred = "DOUBLE" if numeric else "VARCHAR"
    proba = "l.proba::DOUBLE[]" if "proba" in types else "NULL::DOUBLE[]"
    return (f"{seg}::INTEGER AS seg, l.ts, l.version, l.status, "
            f"TRY_CAST(l.prediction AS {pred}) AS prediction, {proba} AS proba, "
            f"{actual} AS actual")


def count_matched(store: StoreLike, name: str, actuals: pa.Table, on: str,
                  by_row: bool = False) -> int:
    """How many rows of ``actuals`` (key, row, ...) match a logged or scored prediction
    of model ``name``, by the same rule the monitoring join uses."""
    segments = all_segments(store, name)
    if not segments or actuals.num_rows == 0:
        return 0
    con = sandbox(store, name)
    try:
        _register_with_seg(con, store, "_m_src", segments, [] if on == "request_id" else [on])
        types = {r[0]: str(r[1]) for r in con.execute("DESCRIBE _m_src").fetchall()}
        if on != "request_id" and on not in types:
            return 0
        con.register("_m_act", actuals.select(["key", "row"]))
        cond = match_condition(on, "a", by_row=by_row, dtype=types.get(on, "VARCHAR"))
        with deadline(con):
            return int(con.execute(f"SELECT count(*) FROM _m_act a WHERE EXISTS (SELECT 1 "
                                   f"FROM _m_src l WHERE {cond})").fetchall()[0][0])
    finally:
        con.close()


def refresh_labels(store: StoreLike, name: str, *, numeric: bool) -> LabelsInfo | None:
    """Join every logged row of model ``name`` to its actuals and keep the result.

    ``numeric`` is True for a regression model (actuals are numbers), False for a
    classifier (labels). Returns None when there is nothing to join (no log or no
    actuals); any earlier materialisation is then removed.
    """
    folder = labels_dir(store, name)
    acts = actual_files(store, name)
    segments = all_segments(store, name)
    if not acts or not segments:
        _remove(store, folder, keep=())
        return None
    con = sandbox(store, name)
    try:
        with deadline(con):
            _register_with_seg(con, store, "_lab_src", segments, _join_columns(store, name))
            types = {r[0]: str(r[1]) for r in con.execute("DESCRIBE _lab_src").fetchall()}
            joins, exprs = actual_sources(store, con, name, types, numeric=numeric)
            if not joins:
                _remove(store, folder, keep=())
                return None
            actual = f"coalesce({', '.join(exprs)})" if len(exprs) > 1 else exprs[0]
            table = con.sql(f"""
                SELECT {_select(types, numeric, actual, 'l.seg')}
                FROM _lab_src l {' '.join(joins)}
                WHERE l.status < 400 AND {actual} IS NOT NULL
                ORDER BY l.ts""").to_arrow_table()
            minute = Window(period_us=MINUTE_US).key_sql("ts")
            counts_sql = (f"SELECT seg, version, {minute} AS minute, count(*)::INTEGER AS n "
                          "FROM _lab_src WHERE status < 400 GROUP BY ALL")
            if numeric:
                # A regression model's error sums per minute too (the variance of the actuals
                # as mean and sum of squared deviations, which merge exactly per window).
                con.register("_lab_rows", table)
                counts_sql = f"""
                    SELECT c.*, coalesce(s.n_actual, 0)::INTEGER AS n_actual, s.sse, s.sae,
                           s.sape, s.mean_a, s.m2_a
                    FROM ({counts_sql}) c LEFT JOIN (
                        SELECT seg, version, {minute} AS minute, count(*) AS n_actual,
                               sum(d * d) AS sse, sum(abs(d)) AS sae,
                               sum(abs(d) / greatest(abs(actual), {EPS!r})) AS sape,
                               avg(actual) AS mean_a, var_pop(actual) * count(*) AS m2_a
                        FROM (SELECT seg, version, ts, prediction - actual AS d, actual
                              FROM _lab_rows WHERE prediction IS NOT NULL)
                        GROUP BY ALL) s USING (seg, version, minute)"""
            con.execute(f"CREATE TEMP TABLE _lab_minutes AS SELECT * FROM ({counts_sql})")
            levels = ["SELECT *, 1 AS level FROM _lab_minutes"]
            levels += [_rollup(size, numeric) for size in LEVELS[1:]]
            counts = con.sql(f"SELECT * FROM ({' UNION ALL BY NAME '.join(levels)}) "
                             "ORDER BY level, seg, minute").to_arrow_table()
    finally:
        con.close()
    fs = store.fs
    fs.makedirs(folder, exist_ok=True)
    stem = f"labels-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    tmp, final = f"{folder}/.{stem}.parquet.tmp", f"{folder}/{stem}.parquet"
    with fs.open(tmp, "wb") as f:
        # Row groups of 256k rows let DuckDB read the file on every core.
        pq.write_table(table, f, compression="zstd", row_group_size=256 * 1024)
    fs.mv(tmp, final)
    tmp = f"{folder}/.counts-{stem}.parquet.tmp"
    with fs.open(tmp, "wb") as f:
        pq.write_table(counts, f, compression="zstd", row_group_size=256 * 1024)
    fs.mv(tmp, f"{folder}/counts-{stem}.parquet")
    manifest = {"file": f"{stem}.parquet", "counts": f"counts-{stem}.parquet",
                "numeric": bool(numeric), "stats": bool(numeric), "rows": table.num_rows,
                "segments": [relative_to_system(store, s) for s in segments],
                "actuals": [list(a) for a in acts]}
    previous = read_manifest(store, name)
    tmp = f"{folder}/.{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
    with fs.open(tmp, "wb") as f:
        f.write(json.dumps(manifest).encode())
    fs.mv(tmp, f"{folder}/{MANIFEST}")
    # The previous file stays one round, for monitors that opened it a moment ago.
    _remove(store, folder, keep=(manifest["file"], manifest["counts"],
                                 (previous or {}).get("file"), (previous or {}).get("counts")))
    return LabelsInfo(path=final, rows=table.num_rows, segments=len(segments),
                      actual_files=len(acts))


def _remove(store: BoardLike, folder: str, keep: Sequence[Any]) -> None:
    fs = store.fs
    try:
        names = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return
    for path in names:
        base = path.rstrip("/").rsplit("/", 1)[-1]
        if (base.startswith(("labels-", "counts-")) and base.endswith(".parquet")
                and base not in keep):
            fs.rm(path)
        elif base == MANIFEST and not keep:
            fs.rm(path)


def labelled_view(store: StoreLike, con: duckdb.DuckDBPyConnection, name: str, files: Sequence[str],
                  *, numeric: bool, types: dict[str, str], joins: Sequence[str], actual: str,
                  where: str, since: pd.Timestamp | None = None,
                  until: pd.Timestamp | None = None) -> tuple[str, bool]:
    """Create ``monitoring_labelled`` (the successful rows of ``files`` that have an
    actual) and ``monitoring_counts`` (``ts``, ``version``, ``n``, ``level``: successful
    rows summed per minute, hour and day where the materialisation has them, ``level``
    being the bucket in minutes; single rows, level null, elsewhere). A query reads one
    level (see :func:`rollup_level`) and the rows.

    Uses the materialisation where it is current (see the module docstring), reading
    only segments it does not cover; otherwise joins (counts) live. Returns how the
    labelled rows are read: ``"none"`` (no actuals), ``"join"``, ``"materialised"`` or
    ``"materialised+N"`` (N segments joined live); and whether ``monitoring_regstats``
    was made: a regression model's error sums per bucket (``ts``, ``version``,
    ``n_actual``, ``sse``, ``sae``, ``sape``, ``mean_a``, ``m2_a``, ``level``), from the
    materialisation plus the rows of newer segments.
    """
    manifest = read_manifest(store, name) if files else None
    index = {s: i for i, s in enumerate(manifest["segments"])} if manifest else {}
    covered: list[int] = []
    new: list[str] = []
    for f in files:
        i = index.get(relative_to_system(store, f))
        if i is None:
            new.append(f)
        else:
            covered.append(i)
    keep = ("TRUE" if len(covered) == len(index)
            else f"seg IN ({', '.join(str(i) for i in sorted(covered)) or 'NULL'})")
    if new:
        register(con, store, "_labels_new", new)
    _counts_view(store, con, name, manifest, keep, bool(new), where, since, until)

    view = "monitoring_labelled"
    if not joins or not files:
        none = "NULL::DOUBLE" if numeric else "NULL::VARCHAR"
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT {_select(types, numeric, none, '0')} "
                    "FROM monitoring_log l WHERE FALSE")
        return "none", False
    current = (manifest is not None and manifest["numeric"] == bool(numeric)
               and [tuple(a) for a in manifest["actuals"]] == actual_files(store, name))
    if not current:
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT {_select(types, numeric, 'actual', '0')} "
                    "FROM monitoring l WHERE l.status < 400 AND l.actual IS NOT NULL")
        return "join", False
    parts = []
    if covered and manifest:
        register(con, store, "_labels_src", [f"{labels_dir(store, name)}/{manifest['file']}"])
        parts.append(f"SELECT {', '.join(COLUMNS)} FROM _labels_src WHERE {keep} AND {where}")
    if new:
        parts.append(f"SELECT {_select(types, numeric, actual, '-1')} FROM _labels_new l "
                     f"{' '.join(joins)} WHERE l.status < 400 AND {actual} IS NOT NULL "
                     f"AND {where}")
    con.execute(f"CREATE TEMP VIEW {view} AS {' UNION ALL BY NAME '.join(parts)}")
    how = "materialised" + (f"+{len(new)}" if new else "")
    if not (numeric and manifest and manifest.get("stats") and _minute_aligned(since)
            and _minute_aligned(until)):
        return how, False
    stats = []
    if covered:
        stats.append(f"SELECT {_minute_ts()} AS ts, version, n_actual, sse, sae, sape, mean_a, "
                     f"m2_a, level FROM _counts_src WHERE {_minute_conds(keep, since, until)} "
                     "AND n_actual > 0")
    if new:
        stats.append(f"""
            SELECT ts, version, 1 AS n_actual, d * d AS sse, abs(d) AS sae,
                   abs(d) / greatest(abs(actual), {EPS!r}) AS sape, actual AS mean_a,
                   0.0 AS m2_a, NULL::INTEGER AS level
            FROM (SELECT ts, version, prediction - actual AS d, actual FROM ({parts[-1]})
                  WHERE prediction IS NOT NULL)""")
    con.execute(f"CREATE TEMP VIEW monitoring_regstats AS {' UNION ALL '.join(stats)}")
    return how, True


def _aligned(t: pd.Timestamp | None, size: int) -> bool:
    return t is None or (t.value // 1000 - ORIGIN_US) % (size * MINUTE_US) == 0


def _minute_ts() -> str:
    return f"make_timestamptz({ORIGIN_US} + minute * {MINUTE_US})"


def _minute_conds(keep: str, since: pd.Timestamp | None, until: pd.Timestamp | None) -> str:
    conds = [keep]
    if since is not None:
        conds.append(f"minute >= {(since.value // 1000 - ORIGIN_US) // MINUTE_US}")
    if until is not None:
        conds.append(f"minute < {(until.value // 1000 - ORIGIN_US) // MINUTE_US}")
    return " AND ".join(conds)


def _minute_aligned(t: pd.Timestamp | None) -> bool:
    return _aligned(t, 1)


def _counts_view(store: StoreLike, con: duckdb.DuckDBPyConnection, name: str, manifest: dict | None,
                 keep: str, new: bool, where: str, since: pd.Timestamp | None,
                 until: pd.Timestamp | None) -> None:
    live = ("SELECT ts, version, 1 AS n, NULL::INTEGER AS level FROM {src} "
            "WHERE status < 400 AND {where}")
    # Per-minute counts answer only for whole minutes: a bound inside a minute needs rows.
    if manifest is None or not (_minute_aligned(since) and _minute_aligned(until)):
        con.execute("CREATE TEMP VIEW monitoring_counts AS "
                    + live.format(src="monitoring_log", where="TRUE"))
        return
    register(con, store, "_counts_src", [f"{labels_dir(store, name)}/{manifest['counts']}"])
    parts = [f"SELECT {_minute_ts()} AS ts, version, n, level "
             f"FROM _counts_src WHERE {_minute_conds(keep, since, until)}"]
    if new:
        parts.append(live.format(src="_labels_new", where=where))
    con.execute(f"CREATE TEMP VIEW monitoring_counts AS {' UNION ALL '.join(parts)}")
