"""How actuals meet the rows they are for: the join rule, keys, and the actuals as views.

An actual matches a logged (or scored) row ``l`` in one of three ways, chosen at upload:

- on ``request_id`` and ``row`` (the row's index within its request; an upload without
  a row column means single-row requests, row 0). Request ids compare as exact text.
- on a logged column the person chose (a customer id, say) and the row, when the
  upload has a row column (actuals folder ``by-<column>+row``);
- on that logged column alone, when it has none (``by-<column>``): the actual then
  applies to every successful logged row with that value.

Keys compare by value, whatever type each side has (:func:`key_sql`): a whole number
is its decimal digits, so ``29``, ``29.0``, ``'29'``, ``'29.0'``, ``'029'``, ``'2.9e1'`` and
``' 29 '`` are one key; other numbers (and text that reads as one, up to 64
characters) compare as doubles, written the shortest way that reads back the same
(``'0.10'`` is ``0.1``); text that is not a number compares exactly (case, spaces and
all); integers of more than 38 digits stay as their text. So a text column that
holds zip codes matches ``'02139'`` to ``2139``: keys of one column should not
differ only by leading zeros.

Within one folder the latest upload of a key wins, and a key whose latest value is
empty has no actual (a retraction). Across folders, request_id comes first, then
column-and-row, then column alone. Counting matches at upload
(:func:`core.monitoring.labels.count_matched`), materialising the join
(:mod:`core.monitoring.labels`) and the live ``monitoring`` view
(:mod:`core.monitoring.monitor`) all use this one rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from core.monitoring.sandbox import register
from core.store.paths import actuals_dir, on_from_dir, row_keyed_dir

_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
             "UINTEGER", "UBIGINT", "UHUGEINT")
_FLOATS = ("FLOAT", "DOUBLE", "REAL")
_WHOLE = "[+-]?[0-9]+"
_NUMBER = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?"
# Text longer than this is never read as a number (nor regex-matched per row).
MAX_NUMBER_TEXT = 64


def _double_key(x: str) -> str:
    """SQL: the key of the DOUBLE expression ``x`` (whole numbers as their digits)."""
    return (f"CASE WHEN isfinite({x}) AND {x} = trunc({x}) AND abs({x}) < 1e38 "
            f"THEN CAST(CAST({x} AS HUGEINT) AS VARCHAR) ELSE CAST({x} AS VARCHAR) END")


def key_sql(expr: str, dtype: str) -> str:
    """SQL: the key of ``expr``, a value of DuckDB type ``dtype`` (see the module
    docstring); the same expression keys uploads and logged columns."""
    t = dtype.upper()
    if t in _INTEGERS:
        return f"CAST({expr} AS VARCHAR)"
    if t in _FLOATS or t.startswith("DECIMAL"):
        return _double_key(f"CAST({expr} AS DOUBLE)")
    if t != "VARCHAR":
        return f"CAST({expr} AS VARCHAR)"
    s = f"trim({expr})"
    short = f"length({expr}) <= {MAX_NUMBER_TEXT}"
    whole = f"TRY_CAST({s} AS HUGEINT)"
    double = f"TRY_CAST({s} AS DOUBLE)"
    return (f"CASE WHEN {short} AND regexp_full_match({s}, '{_WHOLE}') "
            f"THEN coalesce(CAST({whole} AS VARCHAR), {s}) "
            f"WHEN {short} AND regexp_full_match({s}, '{_NUMBER}') AND isfinite({double}) "
            f"THEN {_double_key(double)} ELSE {expr} END")


def _as_arrow(values: pd.Series) -> pa.Array:
    """The upload's key column as Arrow, keeping numbers numbers and the rest text."""
    if pd.api.types.is_bool_dtype(values):
        return pa.array(values.astype(bool), pa.bool_())
    if pd.api.types.is_integer_dtype(values) or pd.api.types.is_float_dtype(values):
        return pa.array(values, from_pandas=True)
    if pd.api.types.is_datetime64_any_dtype(values):
        return pa.array(values)

    def text(v: Any) -> str:
        if isinstance(v, str):
            return v
        if isinstance(v, bytes):
            return v.decode("utf-8", "backslashreplace")
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    return pa.array([text(v) for v in values.astype(object)], pa.string())


def canonical_keys(values: pd.Series) -> pa.Array:
    """The keys of an upload's key column (no nulls), by the rule of :func:`key_sql`."""
    arr = _as_arrow(values)
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        con.register("_keys", pa.table({"v": arr}))
        dtype = str(con.execute("DESCRIBE _keys").fetchall()[0][1])
        out = con.sql(f"SELECT {key_sql('v', dtype)} AS key FROM _keys").to_arrow_table()
    finally:
        con.close()
    return out.column("key").combine_chunks().cast(pa.string())


def match_condition(on: str, actual: str, *, by_row: bool = False,
                    dtype: str = "VARCHAR") -> str:
    """SQL: the logged row ``l`` is the one the actual ``actual`` (key, row) is for;
    ``dtype`` is the type of the logged column ``on``."""
    if on == "request_id":
        return f'l.request_id = {actual}.key AND l."row" = {actual}.row'
    column = 'l."' + on.replace('"', '""') + '"'
    row = f' AND l."row" = {actual}.row' if by_row else ""
    return f"{key_sql(column, dtype)} = {actual}.key{row} AND l.status < 400"


def _folder_order(folder: str) -> tuple[int, str]:
    base = folder.rstrip("/").rsplit("/", 1)[-1]
    on = on_from_dir(base)
    return (0 if on == "request_id" else 1 if row_keyed_dir(base) else 2, base)


def actual_sources(store: Any, con: duckdb.DuckDBPyConnection, name: str,
                   log_types: Mapping[str, str], numeric: bool) -> tuple[list[str], list[str]]:
    """Register the model's actuals with ``con``; returns LEFT JOIN clauses (against the
    log aliased ``l``, whose columns have ``log_types``) and the expressions of the
    matched actual, by priority."""
    base = actuals_dir(store, name)
    try:
        folders = sorted((p for p in store.fs.ls(base, detail=False)
                          if p.rstrip("/").rsplit("/", 1)[-1].startswith("by-")),
                         key=_folder_order)
    except FileNotFoundError:
        return [], []
    joins, exprs = [], []
    cast = "DOUBLE" if numeric else "VARCHAR"
    for i, folder in enumerate(folders):
        folder_name = folder.rstrip("/").rsplit("/", 1)[-1]
        on = on_from_dir(folder_name)
        if on != "request_id" and on not in log_types:
            continue
        by_row = row_keyed_dir(folder_name)
        files = sorted(f for f in store.fs.glob(f"{folder.rstrip('/')}/*.parquet")
                       if not f.rsplit("/", 1)[-1].startswith("."))
        src = f"_act_src_{i}"
        if not register(con, store, src, files):
            continue
        # Keys written before they were canonical are keyed again here (a no-op for
        # canonical ones); the latest upload of a key wins, an empty one included.
        key = "key" if on == "request_id" else key_sql("key", "VARCHAR")
        row = "row" if by_row else "0::INTEGER"
        if len(files) == 1 and on == "request_id":
            # One upload holds each key once (checked when it was saved).
            con.execute(f"CREATE TEMP VIEW _act_{i} AS SELECT key, row, actual FROM {src}")
        else:
            con.execute(f"CREATE TEMP VIEW _act_{i} AS SELECT {key} AS key, {row} AS row, "
                        f"arg_max_null(actual, uploaded_at) AS actual FROM {src} GROUP BY ALL")
        cond = match_condition(on, f"a{i}", by_row=by_row, dtype=log_types.get(on, "VARCHAR"))
        joins.append(f"LEFT JOIN _act_{i} AS a{i} ON {cond}")
        exprs.append(f"TRY_CAST(a{i}.actual AS {cast})")
    return joins, exprs
