"""Time windows: calendar units (``hour``, ``day``, ``week``, ``month``) or fixed periods.

A fixed period is ``15min``, ``6h``, ``3d``, ``2w``. All times are UTC. A window is
half-open, ``[start, end)``: a timestamp exactly on a boundary belongs to the window
that starts there. Weeks start on Monday; fixed periods are counted from Monday
1970-01-05 00:00 UTC, so ``6h`` windows start at 00, 06, 12 and 18 h.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from core.errors import InvalidArgument
from core.times import SPAN_US, span_unit

UNITS = ("hour", "day", "week", "month")
# More windows than this is a mistake (a 1-minute window over a year), not a request.
MAX_WINDOWS = 5000
_UNIT_US = {"hour": SPAN_US["h"], "day": SPAN_US["d"], "week": SPAN_US["w"]}
# Monday 1970-01-05 00:00 UTC, in microseconds since the epoch.
ORIGIN_US = 4 * 86400 * 10**6
MINUTE_US = SPAN_US["min"]


@dataclass(frozen=True)
class Window:
    """A calendar unit (``unit``) or a fixed period of ``period_us`` microseconds."""

    unit: str | None = None
    period_us: int | None = None
    label: str = ""

    def key_sql(self, ts: str = "ts") -> str:
        """SQL for the window number of timestamp column ``ts`` (a BIGINT)."""
        if self.unit == "month":
            t = f"make_timestamp(epoch_us({ts}))"
            return f"((year({t}) - 1970) * 12 + month({t}) - 1)::BIGINT"
        p = self.period_us
        d = f"(epoch_us({ts}) - {ORIGIN_US})"
        # DuckDB's // truncates toward zero; windows must floor (times before 1970).
        return f"({d} // {p} - CASE WHEN {d} % {p} < 0 THEN 1 ELSE 0 END)"

    def key_of(self, t: pd.Timestamp) -> int:
        if self.unit == "month":
            return (t.year - 1970) * 12 + t.month - 1
        return (t.value // 1000 - ORIGIN_US) // int(self.period_us or 1)

    def start(self, key: int) -> pd.Timestamp:
        if self.unit == "month":
            return pd.Timestamp(year=1970 + key // 12, month=key % 12 + 1, day=1, tz="UTC")
        return pd.Timestamp(ORIGIN_US * 1000 + key * int(self.period_us or 1) * 1000, tz="UTC")

    def end(self, key: int) -> pd.Timestamp:
        return self.start(key + 1)


_PERIOD = re.compile(r"^\s*(\d+)\s*(min|m|h|d|w)\s*$", re.IGNORECASE)


def parse_window(text: str | Window) -> Window:
    """``hour``/``day``/``week``/``month`` or a fixed period such as ``15min``, ``6h``, ``3d``."""
    if isinstance(text, Window):
        return text
    raw = str(text or "").strip().lower()
    if raw in UNITS:
        return Window(unit=raw, period_us=_UNIT_US.get(raw), label=raw)
    m = _PERIOD.match(raw)
    if m:
        count, unit = int(m.group(1)), span_unit(m.group(2), text)
        if count <= 0:
            raise InvalidArgument(f"The window {text!r} must be longer than zero.")
        if count * SPAN_US[unit] < SPAN_US["min"]:
            raise InvalidArgument("The shortest window is one minute.")
        if count * SPAN_US[unit] > 3650 * SPAN_US["d"]:
            raise InvalidArgument(f"The window {text!r} is longer than 3650 days; use month "
                                  "windows or a shorter period.")
        return Window(period_us=count * SPAN_US[unit], label=f"{count}{unit}")
    raise InvalidArgument(f"Unknown window {text!r}: use hour, day, week or month, or a fixed "
                          "period such as 15min, 6h, 3d or 2w.")


def window_keys(window: Window, lo: int | None, hi: int | None,
                since: pd.Timestamp | None, until: pd.Timestamp | None) -> list[int]:
    """Every window number from ``since`` (or the first data) to ``until`` (or the last)."""
    first = window.key_of(since) if since is not None else lo
    last = (window.key_of(until - pd.Timedelta(microseconds=1)) if until is not None else hi)
    if first is None or last is None or last < first:
        return []
    if last - first + 1 > MAX_WINDOWS:
        raise InvalidArgument(f"{window.label} windows over this range make {last - first + 1} "
                              f"windows (at most {MAX_WINDOWS}); choose a longer window or a "
                              "shorter date range (since / until).")
    return list(range(first, last + 1))
