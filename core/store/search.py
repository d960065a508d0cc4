"""The WHERE clause of a version search over the index (see :meth:`VersionStore.search`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from core.errors import InvalidArgument
from core.times import as_utc, iso


def search_sql(text: str | None = None, tag: str | None = None,
               created_after: datetime | date | str | None = None,
               created_before: datetime | date | str | None = None,
               metric: str | None = None, min_value: float | None = None,
               max_value: float | None = None) -> tuple[str, list[Any]]:
    """SQL conditions on the index's versions ``v`` (and metrics ``m``), and their
    parameters; arguments as :meth:`core.store.versionstore.VersionStore.search`."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if text:
        pattern = "%" + str(text).replace("\\", "\\\\").replace("%", "\\%") \
            .replace("_", "\\_") + "%"
        where.append("(v.name ILIKE ? ESCAPE '\\' OR v.description ILIKE ? ESCAPE '\\')")
        params += [pattern, pattern]
    if tag:
        where.append("list_contains(v.tags, ?)")
        params.append(str(tag))
    after = as_utc(created_after, "created_after")
    before = as_utc(created_before, "created_before")
    if after and before and after >= before:
        raise InvalidArgument(f"created_after ({iso(after)}) must be earlier than "
                              f"created_before ({iso(before)}).")
    if after:
        where.append("v.created >= ?")
        params.append(after)
    if before:
        where.append("v.created < ?")
        params.append(before)
    bounds = [number(min_value, "min_value"), number(max_value, "max_value")]
    if metric is None and (min_value is not None or max_value is not None):
        raise InvalidArgument("min_value/max_value need a metric to compare, e.g. "
                              "search(metric='rmse', max_value=50000).")
    if metric is not None:
        if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
            raise InvalidArgument(f"min_value ({bounds[0]}) is larger than max_value "
                                  f"({bounds[1]}); nothing can match.")
        cond = ["m.name = v.name", "m.version = v.version", "m.metric = ?"]
        params.append(str(metric))
        if bounds[0] is not None:
            cond.append("m.value >= ?")
            params.append(bounds[0])
        if bounds[1] is not None:
            cond.append("m.value <= ?")
            params.append(bounds[1])
        where.append(f"EXISTS (SELECT 1 FROM metrics m WHERE {' AND '.join(cond)})")
    return " AND ".join(where), params


def number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{what} must be a number, got {value!r}.") from None
    if f != f:
        raise InvalidArgument(f"{what} must be a number, got NaN.")
    return f
