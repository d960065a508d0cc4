"""Windows: calendar units and fixed periods (core.monitoring.windows)."""

from __future__ import annotations

import pytest

from core.errors import InvalidArgument
from core.monitoring.windows import parse_window


def test_parse_window():
    assert parse_window("week").unit == "week"
    assert parse_window("6h").period_us == 6 * 3600 * 10**6
    assert parse_window(" 15MIN ").label == "15min"
    for bad, msg in (("fortnight", "Unknown window"), ("", "Unknown window"),
                     ("0h", "longer than zero"), ("10s", "Unknown window"),
                     ("1; DROP TABLE x", "Unknown window"), ("9" * 400 + "d", "longer than 3650"),
                     ("1m", "'1m' is ambiguous: write min for minutes")):
        with pytest.raises(InvalidArgument, match=msg):
            parse_window(bad)
