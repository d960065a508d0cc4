"""What the command line prints: plain numbers, and text that can neither run as a
spreadsheet formula nor rewrite the terminal.

A CSV cell (or column name) that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is read by spreadsheets as a formula (``=HYPERLINK(...)``), so it gets
a leading apostrophe, as OWASP advises; numbers are never escaped, so ``-3.5`` stays a
number. Tables do the same and also show control characters as escapes (``\\n``,
``\\x1b``), so a value cannot break a line or send terminal codes. Numbers print in
positional notation: never ``1.629e+04``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape_formula(text: str) -> str:
    """``text`` with a leading apostrophe when a spreadsheet would run it."""
    return "'" + text if text.startswith(FORMULA_START) else text


def visible(text: str) -> str:
    """``text`` on one line, control characters written as escapes."""
    def esc(m: re.Match[str]) -> str:
        c = m.group()
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, f"\\x{ord(c):02x}")

    return _CONTROL.sub(esc, text)


def table_text(value: Any) -> str:
    """A string cell of a table: formulas escaped, control characters visible."""
    return visible(escape_formula(str(value)))


def exact_number(x: float) -> str:
    """``x`` exactly (it reads back to the same float), in positional notation."""
    if math.isnan(x):
        return ""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = repr(float(x))
    if "e" not in text and "E" not in text:
        return text[:-2] if text.endswith(".0") else text
    return format(Decimal(text), "f")


def plain_number(x: float, significant: int = 4, max_decimals: int = 6) -> str:
    """``x`` for people: about ``significant`` digits, at most ``max_decimals``
    decimals, whole numbers without decimals, never an exponent."""
    if math.isnan(x):
        return ""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    decimals = significant - 1 - math.floor(math.log10(abs(x)))
    decimals = max(0, min(max_decimals, decimals))
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
