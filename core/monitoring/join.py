"""How actuals meet the rows they are for: the join rule, and the actuals as DuckDB views.

An actual matches a logged (or scored) row ``l`` on ``request_id`` and ``row`` when it
was uploaded with request ids, or on a logged column the user chose (the key compared
as text, successful rows only). Counting matches at upload
(:func:`core.monitoring.labels.count_matched`), materialising the join
(:mod:`core.monitoring.labels`) and the live ``monitoring`` view
(:mod:`core.monitoring.monitor`) all use this one rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from core.monitoring.sandbox import register
from core.store.paths import actuals_dir, on_from_dir


def match_condition(on: str, actual: str) -> str:
    """SQL: the logged row ``l`` is the one the actual ``actual`` (key, row) is for."""
    if on == "request_id":
        return f'l.request_id = {actual}.key AND l."row" = {actual}.row'
    quoted = on.replace('"', '""')
    return f'CAST(l."{quoted}" AS VARCHAR) = {actual}.key AND l.status < 400'


def actual_sources(store: Any, con: duckdb.DuckDBPyConnection, name: str,
                   log_columns: Sequence[str], numeric: bool) -> tuple[list[str], list[str]]:
    """Register the model's actuals with ``con``; returns LEFT JOIN clauses (against the
    log aliased ``l``) and the expressions of the matched actual, by priority."""
    base = actuals_dir(store, name)
    try:
        folders = sorted(p for p in store.fs.ls(base, detail=False)
                         if p.rstrip("/").rsplit("/", 1)[-1].startswith("by-"))
    except FileNotFoundError:
        return [], []
    # request_id first: it identifies a row exactly.
    folders.sort(key=lambda p: (on_from_dir(p.rstrip("/").rsplit("/", 1)[-1]) != "request_id", p))
    joins, exprs = [], []
    cast = "DOUBLE" if numeric else "VARCHAR"
    for i, folder in enumerate(folders):
        on = on_from_dir(folder.rstrip("/").rsplit("/", 1)[-1])
        if on != "request_id" and on not in log_columns:
            continue
        files = sorted(f for f in store.fs.glob(f"{folder.rstrip('/')}/*.parquet")
                       if not f.rsplit("/", 1)[-1].startswith("."))
        src = f"_act_src_{i}"
        if not register(con, store, src, files):
            continue
        if len(files) > 1:
            con.execute(f"CREATE TEMP VIEW _act_{i} AS SELECT key, row, "
                        f"arg_max(actual, uploaded_at) AS actual FROM {src} GROUP BY key, row")
        else:
            con.execute(f"CREATE TEMP VIEW _act_{i} AS SELECT key, row, actual FROM {src}")
        joins.append(f"LEFT JOIN _act_{i} AS a{i} ON {match_condition(on, f'a{i}')}")
        exprs.append(f"TRY_CAST(a{i}.actual AS {cast})")
    return joins, exprs
