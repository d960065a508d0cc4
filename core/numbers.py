"""Numbers as people read them on a page (the workbench, its tables and cards).

Six significant digits with thousands separators; whole numbers in full; never an
exponent for a large value (1,234,568, not 1.23457e+06); a tiny one keeps its exponent
(1e-07), where positional notation would show only zeros. The CLI's tables use their own
rule, positional and without separators, so programs and spreadsheets can read them
(see :func:`core.cli.output.plain_number`).
"""

from __future__ import annotations

import math


def readable(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) < 1e15 and (value == int(value) or abs(value) >= 1e6):
        return f"{value:,.0f}"
    return f"{value:,.6g}"
