"""The common request, decoded by its type: a JSON array of records with exactly the
model's columns, each value of its training type and within its training range.

That is what vetiver's client sends and what almost every request is. For it, msgspec
decodes the body straight into typed rows: the type of every value, and the range of
every integer and float64 value, is checked while the bytes are read, in C, and no
dictionary is built per record. Against parsing to dictionaries, transposing them and
then checking each column's types and range in Python, this saves about a third of the
parse (0.5 ms of a 1,000-row body, bench/README.md).

Anything else is not this module's to explain: a body that does not decode as typed
rows (another shape, a missing or extra key, another type, a value out of range, bad
JSON) gets ``None``, and the general path (:mod:`core.serving.wire`, then
:mod:`core.serving.convert`) parses it again, with its limits, warnings and messages.
So the typed path can only answer what the general path would answer with no warning;
a request it declines costs at most one more parse than before.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from operator import attrgetter
from typing import Annotated, Any

import msgspec

# Per column of the conversion plan: (name, kind, dtype, min, max, categories).
PlanRow = tuple[Any, ...]
# what msgspec does not take in a renamed key
_UNKEYABLE = re.compile(r'["\\\x00-\x1f]')
# The Python type every value of a column of each plan kind has once decoded.
KIND_TYPES = {"int": int, "float": float, "str": str, "cat": str, "bool": bool}


class RecordsDecoder:
    """Typed rows for one conversion plan (see ``convert._fast_plan``).

    ``ranged``: the columns whose training range the decoder checks (integers, and
    float64 columns); the caller checks the others' ranges itself.
    """

    def __init__(self, plan: Sequence[PlanRow]) -> None:
        fields: list[tuple[str, Any]] = []
        rename: dict[str, str] = {}
        ranged: set[str] = set()
        self._columns: list[tuple[str, attrgetter[Any]]] = []
        for i, (name, kind, dtype, lo, hi, _cats) in enumerate(plan):
            kind_type: Any = KIND_TYPES[kind]
            attr = f"f{i}"  # column names need not be identifiers: the JSON key is renamed
            rename[attr] = name
            self._columns.append((name, attrgetter(attr)))
            bounds = _bounds(kind, dtype, lo, hi)
            if bounds is not None:
                kind_type = Annotated[kind_type, msgspec.Meta(ge=bounds[0], le=bounds[1])]
                ranged.add(name)
            fields.append((attr, kind_type))
        # gc=False: rows hold only scalars, so the cyclic collector need not track them
        row = msgspec.defstruct("Row", fields, rename=rename, forbid_unknown_fields=True,
                                gc=False)
        self._decoder = msgspec.json.Decoder(list[row])  # type: ignore[valid-type]
        self.ranged = frozenset(ranged)
        # the fewest bytes one record can take: braces, and every key quoted with a colon
        # and at least one byte of value and a separator
        self.min_row_bytes = 2 + sum(len(msgspec.json.encode(name)) + 2 for name, *_ in plan)

    def decode(self, body: bytes, max_rows: int) -> dict[str, list[Any]] | None:
        """Column lists of ``body`` when it is typed rows within the limits, else None."""
        if len(body) // self.min_row_bytes > max_rows and body.count(b"{") > max_rows:
            return None  # past the row limit: the general path refuses it on its bytes
        try:
            rows = self._decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        if not rows or len(rows) > max_rows:
            return None
        return {name: list(map(get, rows)) for name, get in self._columns}


def decoder_for(plan: Sequence[PlanRow] | None) -> RecordsDecoder | None:
    """The typed decoder of ``plan``, or None: no plan, no column, or a key msgspec cannot
    name (a column name with a quote, a backslash or a control character; the general
    path reads those)."""
    if not plan or any(_UNKEYABLE.search(str(row[0])) for row in plan):
        return None
    try:
        return RecordsDecoder(plan)
    except (ValueError, TypeError):
        return None


def _bounds(kind: str, dtype: str, lo: Any, hi: Any) -> tuple[Any, Any] | None:
    """The training range as the decoder checks it, where that is exactly the general
    path's check: integers, and float64 values (a float32 column compares its rounded
    values, so its range is checked after conversion, as before)."""
    if lo is None or hi is None:
        return None
    try:
        if kind == "int":
            return math.ceil(lo), math.floor(hi)
        if kind == "float" and dtype == "float64":
            low, high = float(lo), float(hi)
            if math.isfinite(low) and math.isfinite(high):
                return low, high
    except (TypeError, ValueError, OverflowError):
        return None
    return None
