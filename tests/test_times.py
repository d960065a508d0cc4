"""Reading times (core.times)."""

from __future__ import annotations

import pandas as pd
import pytest

from core.errors import InvalidArgument
from core.times import parse_time


def test_parse_time():
    now = pd.Timestamp("2025-03-10T12:00Z").to_pydatetime()
    assert parse_time("2025-03-01") == pd.Timestamp("2025-03-01", tz="UTC")
    assert parse_time("2025-03-01T02:00+02:00") == pd.Timestamp("2025-03-01T00:00Z")
    assert parse_time("7d", now=now) == pd.Timestamp("2025-03-03T12:00Z")
    assert parse_time("12h ago", now=now) == pd.Timestamp("2025-03-10T00:00Z")
    assert parse_time("30min", now=now) == pd.Timestamp("2025-03-10T11:30Z")
    with pytest.raises(InvalidArgument, match="'30m' is ambiguous"):
        parse_time("30m", now=now)
    assert parse_time(None) is None and parse_time("") is None
    for bad in ("yesterday-ish", "2025-13-45", "'; DROP"):
        with pytest.raises(InvalidArgument, match="Cannot read"):
            parse_time(bad)
