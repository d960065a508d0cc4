"""What commands print: aligned tables for people, JSON for programs, CSV for
spreadsheets, with plain numbers and text that can neither run as a spreadsheet formula
nor rewrite the terminal.

A CSV cell (or column name) that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is read by spreadsheets as a formula (``=HYPERLINK(...)``), so it gets
a leading apostrophe, as OWASP advises; numbers are never escaped, so ``-3.5`` stays a
number. Tables do the same and also show control characters as escapes (``\\n``,
``\\x1b``), so a value cannot break a line or send terminal codes. Numbers print in
positional notation: never ``1.629e+04``.

Kept free of the store's modules: :mod:`core.cli.quick` prints a listing kept on disk
through the same functions the full commands use, so both print the same bytes.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.times import iso

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


MODEL_COLUMNS = ("name", "latest", "n_versions", "aliases", "task", "model", "updated")
# the model column: the class with its parts, cut to this many characters in tables
MODEL_WIDTH = 64
EMPTY_STORE = ("The store is empty. Add a model with: python -m core write MODEL_FILE "
               "--name NAME [--sample CSV]")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Plain aligned columns, for people; ``--json`` is the form for programs."""
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(cell, value))
    if isinstance(value, float):
        return plain_number(value, significant=6)
    return table_text(value)


def print_models(rows: Sequence[dict[str, Any]], as_json: bool) -> None:
    """The models listing: ``rows`` are each model's fields (as ``vars(ModelInfo)``)."""
    if as_json:  # as ModelInfo.to_dict gives them: times as ISO text in UTC
        print_json([{k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()}
                    for row in rows])
    elif not rows:
        print(EMPTY_STORE, file=sys.stderr)
    else:
        print_table([{**row, "model": _cut(str(row.get("model_summary")
                                               or row.get("model_class") or ""))}
                     for row in rows], MODEL_COLUMNS)


def _cut(text: str, width: int = MODEL_WIDTH) -> str:
    """``text`` in at most ``width`` characters, cut in the middle: a model's outer class
    and its final estimator stay in view."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]
