"""Reading times: one module, so "a time" means the same thing everywhere.

All times are UTC. Values with a zone are converted; naive ones (and strings without an
offset) are taken as UTC. Spans (``30d``, ``12h ago``) count back from now.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, overload

from core.errors import InvalidArgument

if TYPE_CHECKING:  # pandas is imported where used: the store's listings never need it
    import pandas as pd

# Microseconds in one of each span unit (``min``, ``h``, ``d``, ``w``).
SPAN_US = {"min": 60 * 10**6, "h": 3600 * 10**6, "d": 86400 * 10**6, "w": 7 * 86400 * 10**6}
_RELATIVE = re.compile(r"^\s*(\d+)\s*(min|m|h|d|w)\s*(ago)?\s*$", re.IGNORECASE)


def span_unit(unit: str, text: Any) -> str:
    """A span's unit; ``m`` alone is refused, as people mean minutes or months by it."""
    unit = unit.lower()
    if unit == "m":
        raise InvalidArgument(f"{str(text).strip()!r} is ambiguous: write min for minutes (e.g. "
                              "15min), or use month windows.")
    return unit


def parse_time(value: Any, now: datetime | None = None) -> pd.Timestamp | None:
    """A point in time as a UTC Timestamp.

    Accepts datetimes, ISO strings (``2025-03-01``, ``2025-03-01T12:00+02:00``), or a
    span before now (``30d``, ``12h ago``). Naive values are taken as UTC.
    """
    import pandas as pd

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        m = _RELATIVE.match(value)
        if m:
            unit = span_unit(m.group(2), value)
            base = pd.Timestamp(now or datetime.now(UTC))
            base = base.tz_localize("UTC") if base.tzinfo is None else base.tz_convert("UTC")
            return base - pd.Timedelta(microseconds=int(m.group(1)) * SPAN_US[unit])
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise InvalidArgument(f"Cannot read {value!r} as a time: use a date such as 2025-03-01, "
                              "a time such as 2025-03-01T12:00:00+02:00, or a span such as 30d "
                              "(30 days ago).") from None
    if t is pd.NaT:
        raise InvalidArgument(f"Cannot read {value!r} as a time.")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def to_utc(values: pd.Series, column: str = "time") -> pd.Series:
    """Timestamps of any zone, naive datetimes (taken as UTC) or strings, as UTC."""
    import numpy as np
    import pandas as pd

    s = values
    if not pd.api.types.is_datetime64_any_dtype(s):
        try:
            s = pd.to_datetime(s, utc=True, format="mixed")
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidArgument(f"The {column} column has values that are not times ({exc}); "
                                  "use ISO dates such as 2025-03-01 or "
                                  "2025-03-01T12:00:00Z.") from None
    elif s.dt.tz is None:
        s = s.dt.tz_localize("UTC")
    else:
        s = s.dt.tz_convert("UTC")
    if s.isna().any():
        rows = np.flatnonzero(s.isna().to_numpy())[:10].tolist()
        raise InvalidArgument(f"The {column} column has empty or unreadable times in rows {rows}; "
                              "every row needs a time.")
    return s.astype("datetime64[us, UTC]")


def iso(at: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as written to the board."""
    if at is None:
        return None
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: Any) -> datetime | None:
    """An ISO 8601 text (``Z`` allowed) as an aware UTC datetime; None if empty or unreadable."""
    if not text:
        return None
    try:
        at = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@overload
def as_utc(value: None, what: str) -> None: ...
@overload
def as_utc(value: datetime | date | str, what: str) -> datetime: ...
@overload
def as_utc(value: Any, what: str) -> datetime | None: ...


def as_utc(value: Any, what: str) -> datetime | None:
    """A datetime, date or ISO text as an aware UTC datetime; ``what`` names it in the error."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        parsed = parse_iso(value)
        if parsed is not None:
            return parsed
    raise InvalidArgument(f"{what} must be a date or time such as '2024-05-03' or "
                          f"'2024-05-03T10:00:00Z', got {value!r}.")


def span_seconds(text: Any, what: str = "the span") -> float:
    """A span such as ``30min``, ``12h``, ``2d`` or a plain number of seconds, in seconds."""
    value = str(text).strip()
    if len(value) <= 40:
        try:
            seconds = float(value)
        except ValueError:
            seconds = None
        if seconds is not None and 0 <= seconds < 10**10:
            return seconds
        m = _RELATIVE.match(value)
        if m and not m.group(3):
            return int(m.group(1)) * SPAN_US[span_unit(m.group(2), value)] / 10**6
    raise InvalidArgument(f"{what} must be a span such as 30min, 12h or 2d (or seconds), got "
                          f"{value[:40]!r}.")
