"""The monitoring connection: a DuckDB connection that can read one model's Parquet only.

Every query runs in a connection that cannot touch files at all
(``enable_external_access=false``, configuration locked by the caller): the Parquet
segments are handed to it as Arrow datasets opened through the board's fsspec
filesystem, so local and S3 boards read alike, and a custom metric written by a user can
read nothing but the views it is given (see :mod:`core.monitoring.custom`). On a local
board DuckDB reads the Parquet itself, limited by ``allowed_directories``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from core.monitoring.limits import memory_limit
from core.store.paths import actuals_dir, log_dir, scored_dir


def is_local(fs: Any) -> bool:
    """Whether DuckDB can read this fsspec filesystem's paths as local files."""
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def arrow_fs(fs: Any) -> Any:
    if is_local(fs):
        return pa.fs.LocalFileSystem()
    return pa.fs.PyFileSystem(pa.fs.FSSpecHandler(fs))


def _dataset(fs: Any, files: Sequence[str]) -> ds.Dataset | None:
    if not files:
        return None
    afs = arrow_fs(fs)
    schemas = [pq.read_schema(f, filesystem=afs) for f in files]
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    return ds.dataset(list(files), schema=schema, format="parquet", filesystem=afs)


def sandbox(store: Any, name: str, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A connection that can read this model's monitoring folders and nothing else.

    On a local board DuckDB reads the Parquet itself, limited by ``allowed_directories``;
    on other boards it gets Arrow datasets and no file access at all.
    """
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit(), **({"threads": int(threads)} if threads else {})}
    con = duckdb.connect(config=config)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET parquet_metadata_cache = true")
    if is_local(store.fs):
        dirs = [d.rstrip("/") + "/" for d in (log_dir(store, name), scored_dir(store, name),
                                              actuals_dir(store, name))]
        con.execute("SET allowed_directories = $dirs", {"dirs": dirs})
    con.execute("SET enable_external_access = false")
    return con


def register(con: duckdb.DuckDBPyConnection, store: Any, view: str, files: Sequence[str],
             empty: pa.Table | None = None) -> bool:
    """Make ``view`` read ``files``; False (and an empty view) when there are none."""
    if not files:
        if empty is not None:
            con.register(f"{view}_empty", empty)
            con.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM {view}_empty")
        return False
    if is_local(store.fs):
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


def files_in_range(files: list[str], since: pd.Timestamp | None,
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
