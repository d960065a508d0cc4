"""Limits on the monitoring connection: a time limit per query and a memory limit.

A custom metric is SQL a person wrote; one that costs hours (``levenshtein`` of two
20,000-character strings per row) must not hold a report, ``monitor-status`` or the
other models. Queries that run user SQL go through :func:`deadline`, which interrupts
the connection after ``FIXATIVE_MONITOR_QUERY_SECONDS`` (default 30); every monitoring
connection gets DuckDB's ``memory_limit`` from ``FIXATIVE_MONITOR_MEMORY_LIMIT``
(default 2GB). DuckDB's memory limit covers its operators (aggregates, joins, sorts),
not one huge list or string built inside an expression, so the custom-metric check
refuses the functions that build those from a number (see :mod:`core.monitoring.custom`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from core import settings
from core.errors import InvalidArgument

SECONDS_ENV = settings.MONITOR_SECONDS_ENV
MEMORY_ENV = settings.MONITOR_MEMORY_ENV
DEFAULT_SECONDS = 30.0
DEFAULT_MEMORY = "2GB"
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def query_seconds() -> float:
    raw = settings.raw(SECONDS_ENV)
    if not raw:
        return DEFAULT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise InvalidArgument(f"{SECONDS_ENV}={raw!r} is not a positive number of seconds.")
    return value


def memory_limit() -> str:
    raw = settings.raw(MEMORY_ENV) or DEFAULT_MEMORY
    if not _MEMORY.match(raw):
        raise InvalidArgument(f"{MEMORY_ENV}={raw!r} is not a memory size such as 512MB or 2GB.")
    return raw


@contextmanager
def deadline(con: duckdb.DuckDBPyConnection, seconds: float | None = None) -> Iterator[None]:
    """Interrupt ``con``'s running query after ``seconds`` (DuckDB then raises
    ``duckdb.InterruptException``)."""
    timer = threading.Timer(query_seconds() if seconds is None else float(seconds),
                            con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
