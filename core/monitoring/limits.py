"""Limits on the monitoring connection: a time limit per query and a memory limit.

A custom metric is SQL a person wrote; one that costs hours (``levenshtein`` of two
20,000-character strings per row) must not hold a report, ``monitor-status`` or the
other models, and neither may a built-in query over a log far bigger than expected.
Every query on a :class:`LimitedConnection` (the one a
:class:`core.monitoring.monitor.Monitor` holds), and the custom metrics, run under
:func:`deadline`, which interrupts the connection after
``FIXATIVE_MONITOR_QUERY_SECONDS`` (default 30); every monitoring connection gets
DuckDB's ``memory_limit`` from ``FIXATIVE_MONITOR_MEMORY_LIMIT`` (default 2GB). A query
stopped by either raises DuckDB's ``InterruptException`` or ``OutOfMemoryException``
(:data:`STOPPED`); :func:`reason` says why in words. DuckDB's memory limit covers its
operators (aggregates, joins, sorts), not one huge list or string built inside an
expression, so the custom-metric check refuses the functions that build those from a
number (see :mod:`core.monitoring.custom`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb

from core import settings
from core.errors import InvalidArgument

SECONDS_ENV = settings.MONITOR_SECONDS_ENV
MEMORY_ENV = settings.MONITOR_MEMORY_ENV
DEFAULT_SECONDS = 30.0
DEFAULT_MEMORY = "2GB"
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def query_seconds() -> float:
    """A monitoring query's time limit: ``FIXATIVE_MONITOR_QUERY_SECONDS``, a positive
    number of seconds (30 when unset)."""
    return settings.number(SECONDS_ENV, DEFAULT_SECONDS, above=0, unit="seconds",
                           hint="the time limit of a monitoring query")


def memory_limit() -> str:
    raw = settings.raw(MEMORY_ENV) or DEFAULT_MEMORY
    if not _MEMORY.match(raw):
        raise InvalidArgument(f"{MEMORY_ENV}={raw!r} is not a memory size such as 512MB or 2GB.")
    return raw


@contextmanager
def deadline(con: duckdb.DuckDBPyConnection | LimitedConnection,
             seconds: float | None = None) -> Iterator[None]:
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


# What a query stopped by the time or memory limit raises.
STOPPED = (duckdb.InterruptException, duckdb.OutOfMemoryException)


def reason(exc: BaseException, seconds: float | None = None) -> str:
    """Why a query stopped, in words, with the setting that decides it."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        return (f"stopped: it needs more than the memory limit ({memory_limit()}, "
                f"{MEMORY_ENV}); raise the limit or narrow the range (since/until)")
    if isinstance(exc, duckdb.InterruptException):
        s = query_seconds() if seconds is None else seconds
        return (f"stopped after {s:g} s, the time limit of a monitoring query "
                f"({SECONDS_ENV}); raise the limit or narrow the range (since/until)")
    return f"failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


class LimitedResult:
    """The result of :meth:`LimitedConnection.execute`: DuckDB may finish a query while
    its rows are fetched, so each fetch runs under the time limit too."""

    def __init__(self, con: LimitedConnection) -> None:
        self._con = con

    def _fetch(self, how: str) -> Any:
        with deadline(self._con.raw, self._con.seconds):
            return getattr(self._con.raw, how)()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._fetch("fetchall")

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._fetch("fetchone")

    def fetchnumpy(self) -> dict[str, Any]:
        return self._fetch("fetchnumpy")

    def fetch_df(self) -> Any:
        return self._fetch("fetch_df")

    def df(self) -> Any:
        return self._fetch("fetch_df")


class LimitedConnection:
    """A monitoring connection whose every query (and the fetch of its rows) runs under
    :func:`deadline` with :func:`query_seconds`, read when it is made."""

    def __init__(self, con: duckdb.DuckDBPyConnection, seconds: float | None = None) -> None:
        self.raw = con
        self.seconds = query_seconds() if seconds is None else float(seconds)

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
                ) -> LimitedResult:
        with deadline(self.raw, self.seconds):
            self.raw.execute(sql, params or [])
        return LimitedResult(self)

    def interrupt(self) -> None:
        self.raw.interrupt()

    def close(self) -> None:
        self.raw.close()
