"""The WHERE clause of a version search over the index (see :meth:`VersionStore.search`)."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from core.errors import InvalidArgument
from core.model.params import leaf, value_text
from core.times import as_utc, iso


def search_sql(text: str | None = None, tag: str | None = None,
               created_after: datetime | date | str | None = None,
               created_before: datetime | date | str | None = None,
               metric: str | None = None, min_value: float | None = None,
               max_value: float | None = None, param: str | None = None
               ) -> tuple[str, list[Any]]:
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
    if param is not None:
        matches, values = param_condition(param)
        where.append("EXISTS (SELECT 1 FROM params p WHERE p.name = v.name AND "
                     f"p.version = v.version AND {matches})")
        params += values
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


# A parameter search names a key and a value; both are compared as parameters, never
# spliced into the SQL. Keys and values longer than these cannot match anything recorded.
MAX_PARAM_KEY = 300
MAX_PARAM_VALUE = 1000
_WORDS = {"true": "True", "false": "False", "none": "None", "null": "None"}


def _param_number(value: Any) -> float | None:
    """A recorded value as a number where it is one (300, 300.0 or the text "300")."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        f = float(value) if isinstance(value, (int, float, str)) else None
    except ValueError:
        return None
    return f if f is not None and math.isfinite(f) else None


def param_rows(name: str, version: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows of the index's ``params`` table for one version's recorded parameters."""
    return [(name, version, str(k), leaf(str(k)), value_text(v), _param_number(v))
            for k, v in params.items()]


def parse_param(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` split and checked; InvalidArgument saying how to write it otherwise."""
    key, sep, value = str(text).partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        raise InvalidArgument(f"A parameter search is KEY=VALUE, e.g. n_estimators=300 or "
                              f"forest__max_depth=10; got {str(text)[:60]!r}.")
    if len(key) > MAX_PARAM_KEY or len(value) > MAX_PARAM_VALUE:
        raise InvalidArgument(f"A parameter key has at most {MAX_PARAM_KEY} characters and a "
                              f"value at most {MAX_PARAM_VALUE}; shorten the search.")
    return key, value


def param_condition(text: str) -> tuple[str, list[Any]]:
    """SQL on the index's params ``p``: the key (whole, or its last segment) has the value.

    A value that reads as a number matches the same number recorded as a number or as
    text (300 matches 300, 300.0 and "300"); true/false/none match booleans and None;
    anything else matches the recorded text exactly.
    """
    key, value = parse_param(text)
    cond = "(p.\"key\" = ? OR p.leaf = ?)"
    number_value = _param_number(value)
    if number_value is not None:
        return f"{cond} AND p.num = ?", [key, key, number_value]
    word = _WORDS.get(value.lower())
    if word is not None:
        return f"{cond} AND p.text = ?", [key, key, word]
    return f"{cond} AND p.text = ?", [key, key, value]
