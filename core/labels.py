"""Labelled rows: the prediction log joined to its actuals once, kept as one Parquet file.

Scoring a window needs only the logged rows that have an actual. Joining millions of
logged rows to the actuals on every query costs seconds, so each upload of actuals
(:func:`core.actuals.save_actuals`) materialises the join for model ``name``::

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
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from core.monitoring import (
    _US,
    ORIGIN_US,
    Window,
    _arrow_fs,
    _is_local,
    _register,
    _sandbox,
    actuals_dir,
    log_dir,
    scored_dir,
    segment_files,
)

FOLDER = "labelled"
MANIFEST = "manifest.json"
COLUMNS = ("seg", "ts", "version", "status", "prediction", "proba", "actual")
MINUTE_US = _US["min"]


def labels_dir(store: Any, name: str) -> str:
    # Not named "by-...", so core.actuals never takes it for a folder of actuals.
    return f"{actuals_dir(store, name)}/{FOLDER}"


@dataclass
class LabelsInfo:
    path: str
    rows: int
    segments: int
    actual_files: int


def _relative(store: Any, path: str) -> str:
    base = store.path(".fixative").rstrip("/") + "/"
    return path[len(base):] if path.startswith(base) else path


def actual_files(store: Any, name: str) -> list[tuple[str, int]]:
    """Every actuals file of model ``name`` with its size, as the manifest records them."""
    try:
        found = store.fs.glob(f"{actuals_dir(store, name)}/by-*/*.parquet", detail=True)
    except FileNotFoundError:
        return []
    return sorted((_relative(store, p), int(info.get("size") or 0)) for p, info in found.items()
                  if not p.rsplit("/", 1)[-1].startswith("."))


def all_segments(store: Any, name: str) -> list[str]:
    return (segment_files(store, log_dir(store, name), None)
            + segment_files(store, scored_dir(store, name), None))


def read_manifest(store: Any, name: str) -> dict | None:
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


def _register_with_seg(con: duckdb.DuckDBPyConnection, store: Any, view: str,
                       files: Sequence[str]) -> None:
    """``view``: the segments' rows with ``seg``, the index of each row's file in ``files``."""
    segs = pa.table({"filename": pa.array(list(files), pa.string()),
                     "seg": pa.array(range(len(files)), pa.int32())})
    con.register(f"{view}_segs", segs)
    if _is_local(store.fs):
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT l.* EXCLUDE (filename), s.seg "
                    f"FROM read_parquet([{listing}], union_by_name = true, filename = true) l "
                    f"JOIN {view}_segs s USING (filename)")
        return
    afs = _arrow_fs(store.fs)
    schema = pa.unify_schemas([pq.read_schema(f, filesystem=afs) for f in files],
                              promote_options="permissive")
    dataset = ds.dataset(list(files), schema=schema, format="parquet", filesystem=afs)
    columns = {c: ds.field(c) for c in schema.names}
    columns["filename"] = ds.field("__filename")
    con.register(f"{view}_arrow", dataset.scanner(columns=columns).to_reader())
    con.execute(f"CREATE TEMP VIEW {view} AS SELECT l.* EXCLUDE (filename), s.seg "
                f"FROM {view}_arrow l JOIN {view}_segs s USING (filename)")


def _select(types: dict[str, str], numeric: bool, actual: str, seg: str) -> str:
    """The labelled columns of the log aliased ``l`` (typed alike in every part)."""
    pred = "DOUBLE" if numeric else "VARCHAR"
    proba = "l.proba::DOUBLE[]" if "proba" in types else "NULL::DOUBLE[]"
    return (f"{seg}::INTEGER AS seg, l.ts, l.version, l.status, "
            f"TRY_CAST(l.prediction AS {pred}) AS prediction, {proba} AS proba, "
            f"{actual} AS actual")


def refresh_labels(store: Any, name: str, *, numeric: bool) -> LabelsInfo | None:
    """Join every logged row of model ``name`` to its actuals and keep the result.

    ``numeric`` is True for a regression model (actuals are numbers), False for a
    classifier (labels). Returns None when there is nothing to join (no log or no
    actuals); any earlier materialisation is then removed.
    """
    from core.actuals import actual_sources

    folder = labels_dir(store, name)
    acts = actual_files(store, name)
    segments = all_segments(store, name)
    if not acts or not segments:
        _remove(store, folder, keep=())
        return None
    con = _sandbox(store, name)
    try:
        _register_with_seg(con, store, "_lab_src", segments)
        types = {r[0]: str(r[1]) for r in con.execute("DESCRIBE _lab_src").fetchall()}
        joins, exprs = actual_sources(store, con, name, list(types), numeric=numeric)
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
        counts = con.sql(f"""
            SELECT seg, version, {minute} AS minute, count(*)::INTEGER AS n
            FROM _lab_src WHERE status < 400 GROUP BY ALL ORDER BY seg, minute
            """).to_arrow_table()
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
                "numeric": bool(numeric), "rows": table.num_rows,
                "segments": [_relative(store, s) for s in segments],
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


def _remove(store: Any, folder: str, keep: Sequence[Any]) -> None:
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


def labelled_view(store: Any, con: duckdb.DuckDBPyConnection, name: str, files: Sequence[str],
                  *, numeric: bool, types: dict[str, str], joins: Sequence[str], actual: str,
                  where: str, since: pd.Timestamp | None = None,
                  until: pd.Timestamp | None = None) -> str:
    """Create ``monitoring_labelled`` (the successful rows of ``files`` that have an
    actual) and ``monitoring_counts`` (``ts``, ``version``, ``n``: successful rows, per
    minute where the materialisation has them; every window is whole minutes).

    Uses the materialisation where it is current (see the module docstring), reading
    only segments it does not cover; otherwise joins (counts) live. Returns how the
    labelled rows are read: ``"none"`` (no actuals), ``"join"``, ``"materialised"`` or
    ``"materialised+N"`` (N segments joined live).
    """
    manifest = read_manifest(store, name) if files else None
    index = {s: i for i, s in enumerate(manifest["segments"])} if manifest else {}
    covered: list[int] = []
    new: list[str] = []
    for f in files:
        i = index.get(_relative(store, f))
        if i is None:
            new.append(f)
        else:
            covered.append(i)
    keep = ("TRUE" if len(covered) == len(index)
            else f"seg IN ({', '.join(str(i) for i in sorted(covered)) or 'NULL'})")
    if new:
        _register(con, store, "_labels_new", new)
    _counts_view(store, con, name, manifest, keep, bool(new), where, since, until)

    view = "monitoring_labelled"
    if not joins or not files:
        none = "NULL::DOUBLE" if numeric else "NULL::VARCHAR"
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT {_select(types, numeric, none, '0')} "
                    "FROM monitoring_log l WHERE FALSE")
        return "none"
    current = (manifest is not None and manifest["numeric"] == bool(numeric)
               and [tuple(a) for a in manifest["actuals"]] == actual_files(store, name))
    if not current:
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT {_select(types, numeric, 'actual', '0')} "
                    "FROM monitoring l WHERE l.status < 400 AND l.actual IS NOT NULL")
        return "join"
    parts = []
    if covered:
        _register(con, store, "_labels_src", [f"{labels_dir(store, name)}/{manifest['file']}"])
        parts.append(f"SELECT {', '.join(COLUMNS)} FROM _labels_src WHERE {keep} AND {where}")
    if new:
        parts.append(f"SELECT {_select(types, numeric, actual, '-1')} FROM _labels_new l "
                     f"{' '.join(joins)} WHERE l.status < 400 AND {actual} IS NOT NULL "
                     f"AND {where}")
    con.execute(f"CREATE TEMP VIEW {view} AS {' UNION ALL BY NAME '.join(parts)}")
    return "materialised" + (f"+{len(new)}" if new else "")


def _minute_aligned(t: pd.Timestamp | None) -> bool:
    return t is None or (t.value // 1000 - ORIGIN_US) % MINUTE_US == 0


def _counts_view(store: Any, con: duckdb.DuckDBPyConnection, name: str, manifest: dict | None,
                 keep: str, new: bool, where: str, since: pd.Timestamp | None,
                 until: pd.Timestamp | None) -> None:
    live = "SELECT ts, version, 1 AS n FROM {src} WHERE status < 400 AND {where}"
    # Per-minute counts answer only for whole minutes: a bound inside a minute needs rows.
    if manifest is None or not (_minute_aligned(since) and _minute_aligned(until)):
        con.execute("CREATE TEMP VIEW monitoring_counts AS "
                    + live.format(src="monitoring_log", where="TRUE"))
        return
    _register(con, store, "_counts_src", [f"{labels_dir(store, name)}/{manifest['counts']}"])
    conds = [keep]
    if since is not None:
        conds.append(f"minute >= {(since.value // 1000 - ORIGIN_US) // MINUTE_US}")
    if until is not None:
        conds.append(f"minute < {(until.value // 1000 - ORIGIN_US) // MINUTE_US}")
    parts = [f"SELECT make_timestamptz({ORIGIN_US} + minute * {MINUTE_US}) AS ts, version, n "
             f"FROM _counts_src WHERE {' AND '.join(conds)}"]
    if new:
        parts.append(live.format(src="_labels_new", where=where))
    con.execute(f"CREATE TEMP VIEW monitoring_counts AS {' UNION ALL '.join(parts)}")
