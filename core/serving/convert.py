"""Payloads to the model's frame: what validation makes of a parsed request body.

Conversion has a fast path for the common case (every column present with exactly the
training type, nothing out of range or unseen): columns are built directly as typed
numpy arrays, never row by row through pandas. Anything else goes through
:meth:`Prototype.validate`, which produces the same frame plus warnings, or lists every
problem at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.errors import BadRequest, InvalidInput
from core.model.columns import Columns
from core.model.prototype import Prototype, to_frame
from core.serving.records import KIND_TYPES, decoder_for
from core.serving.wire import (
    SCALARS,
    ColumnsWithExtra,
    Names,
    Payload,
    exact_columns,
    record_columns,
)

# The types every value of a column of each kind has when the typed decoder read it.
_KIND_TYPES: dict[str, set[type]] = {kind: {t} for kind, t in KIND_TYPES.items()}
# Below this many rows a Python comparison beats two numpy reductions (a few µs each,
# per column, per request: it shows at one row per request).
_SMALL = 8


def _within(values: list[Any], arr: np.ndarray, lo: float, hi: float) -> bool:
    """All values in [lo, hi]; False for NaN, as the comparisons are."""
    if len(values) <= _SMALL:
        return all(lo <= v <= hi for v in values)
    mn, mx = arr.min(), arr.max()
    return bool(mn >= lo and mx <= hi)


class Converter:
    """Turns payloads into the frame the model gets, for one prototype.

    ``convert`` returns ``(frame, warnings)`` or raises :class:`InvalidInput`; the
    result is identical to ``prototype.validate(payload.data)``.
    """

    def __init__(self, prototype: Prototype, *, columns: bool = False) -> None:
        self.prototype = prototype
        # the fast path gives :class:`Columns` (no DataFrame) to an engine that takes them
        self.columns = columns
        self.names = prototype.names
        self._plan = _fast_plan(prototype)
        # A model fitted on an unnamed array: vetiver and pandas name its columns "0",
        # "1", ... (as vetiver's prototype does), so those name the columns by position.
        self._positions = ({str(i): n for i, n in enumerate(self.names)}
                           if not prototype.named else {})
        # the column names a body may use for the model's columns: the rest are dropped
        self.keep = frozenset(self.names) | frozenset(self._positions)
        # records named by position go through the general path's renaming
        self._records = decoder_for(self._plan) if not self._positions else None
        # JSON does not tell 3.0 from 3: where an integer is taken, so is a whole float
        self._int_names = [c.name for c in prototype.columns
                           if c.kind in ("int", "string", "category")]

    def _by_position(self, payload: Payload) -> Payload:
        pos, data = self._positions, payload.data
        if payload.fmt == "records" and isinstance(data, list) and data and \
                type(data[0]) is dict and any(k in pos for k in data[0]):
            data = [{pos.get(k, k): v for k, v in r.items()} if type(r) is dict else r
                    for r in data]
            return Payload(data, record_columns(data, self.names), payload.params, payload.fmt)
        if isinstance(data, dict) and any(k in pos for k in data):
            data = {pos.get(k, k): v for k, v in data.items()}
            return Payload(data, exact_columns(data, self.names), payload.params, payload.fmt)
        if isinstance(data, pd.DataFrame) and any(str(c) in pos for c in data.columns):
            return Payload(data.rename(columns=lambda c: pos.get(str(c), c)), None,
                           payload.params, payload.fmt)
        return payload

    def convert(self, payload: Payload) -> tuple[pd.DataFrame | Columns, list[str]]:
        if self._positions and payload.columns is None:
            payload = self._by_position(payload)
        if payload.columns is not None and self._plan is not None:
            frame = self._fast(payload.columns)
            if frame is not None:
                return frame, []
        data = payload.data
        if payload.columns is None and isinstance(data, list) and payload.fmt != "csv" \
                and all(type(r) is dict for r in data):
            payload = self._records_as_columns(data, payload)
            data = payload.data
        if payload.fmt == "csv":
            data = _typed_csv(data, self.prototype)
        elif isinstance(data, ColumnsWithExtra):
            frame = pd.DataFrame(self._whole_floats_as_ints(data), index=pd.RangeIndex(data.n))
            frame.attrs["extra_columns"] = data.extra
            data = frame
        elif payload.columns is not None or isinstance(data, dict):
            cols = payload.columns if payload.columns is not None else data
            extra = [str(k) for k in cols if k not in self.names]
            if extra:
                n = max((len(v) for v in cols.values() if isinstance(v, list)), default=1)
                cols = {k: v for k, v in cols.items() if k in self.names}
            _check_scalars(cols)
            cols = self._whole_floats_as_ints(cols)
            data = pd.DataFrame(cols, index=pd.RangeIndex(n)) if extra else pd.DataFrame(cols)
            if extra:  # named, not built: validation reports them as dropped
                data.attrs["extra_columns"] = Names(extra)
        elif payload.fmt in ("rows", "split") and isinstance(data, list):
            _check_scalars_rows(data)
        try:
            frame = to_frame(data, self.names)
            _check_int_range(frame, self.prototype)
            return self.prototype.validate(frame)
        except (OverflowError, TypeError, ValueError) as exc:
            raise InvalidInput(f"The input could not be converted to the model's column types "
                               f"({type(exc).__name__}: {str(exc)[:200]}).") from None

    def _records_as_columns(self, records: list[dict[str, Any]], payload: Payload) -> Payload:
        """Records whose keys differ from the model's columns, as a column mapping of the
        model's columns that appear (absent is null, as validation reads it); the other
        keys are named for validation's warning, never built into a frame."""
        names = self.names
        seen: dict[str, None] = {}
        for i, r in enumerate(records):
            for k, v in r.items():
                if k not in seen:
                    seen[k] = None
                if not isinstance(v, SCALARS):
                    raise BadRequest(f"Row {i} holds a nested value; each field must be a "
                                     "single number, string, boolean or null.")
        cols: dict[str, Any] = {n: [r.get(n) for r in records] for n in names if n in seen}
        extra = Names(str(k) for k in seen if k not in set(names))
        return Payload(ColumnsWithExtra(cols, extra, len(records)), None, payload.params,
                       "columns")

    def _whole_floats_as_ints(self, cols: dict[str, Any]) -> dict[str, Any]:
        """In integer (and text) columns, 3.0 becomes 3 before pandas sees the column: mixed
        with ints, pandas would make every value a float and 2**63-1 would no longer fit."""
        out = dict(cols)
        for name in self._int_names:
            values = out.get(name)
            if isinstance(values, list) and float in set(map(type, values)):
                # beyond 2**53 a float is not the integer the client wrote (orjson reads
                # integers past 64 bits as floats): left for the range check to refuse
                out[name] = [int(v) if type(v) is float and v.is_integer()
                             and abs(v) < 2.0**53 else v for v in values]
        return out

    def records(self, body: bytes, max_rows: int) -> pd.DataFrame | Columns | None:
        """The frame of a JSON array of records that decodes as typed rows (see
        :mod:`core.serving.records`): exactly what :meth:`convert` gives it, with no
        warnings. None when the body needs the general path."""
        if self._records is None:
            return None
        cols = self._records.decode(body, max_rows)
        if cols is None:
            return None
        return self._fast(cols, ranged=self._records.ranged)

    def _fast(self, cols: dict[str, list[Any]], ranged: frozenset[str] | None = None
              ) -> pd.DataFrame | Columns | None:
        """``ranged``: given when the typed decoder built ``cols``: every value is then of
        its column's kind, and the columns named are within their training range."""
        if self._plan is None:  # no fast plan for this prototype
            return None
        checked = ranged if ranged is not None else frozenset()
        out: dict[str, Any] = {}
        later: dict[str, Any] = {}  # Columns: text stays numpy objects until a frame is built
        n = -1
        for name, kind, dtype, lo, hi, cats in self._plan:
            values = cols[name]
            arr: Any  # a numpy array, or a pandas string or categorical array
            if n < 0:
                n = len(values)
                if n == 0:
                    return None
            types: set[type] = (_KIND_TYPES[kind] if ranged is not None
                                else set(map(type, values)))
            if kind == "int":
                if types != {int}:
                    return None
                try:
                    arr = np.array(values, dtype=dtype)
                except OverflowError:
                    return None
                if lo is not None and name not in checked and not _within(values, arr, lo, hi):
                    return None
            elif kind == "float":
                if not types <= {int, float}:
                    return None
                arr = np.array(values, dtype=dtype)
                if lo is not None:
                    if name not in checked and not _within(values, arr, lo, hi):
                        return None
                elif not np.isfinite(arr).all():
                    return None
            elif kind == "str":
                if types != {str} or (cats is not None and not cats.issuperset(values)):
                    return None
                if self.columns or dtype == "object":
                    arr = np.array(values, dtype=object)
                    if dtype != "object":
                        later[name] = dtype
                else:
                    arr = pd.array(values, dtype=dtype)
            elif kind == "cat":
                if types != {str}:
                    return None
                if self.columns:
                    if not cats.keys() >= set(values):  # unseen: validation warns about it
                        return None
                    arr = np.array(values, dtype=object)
                    later[name] = dtype
                else:
                    try:
                        codes = [cats[v] for v in values]
                    except KeyError:  # unseen: validation warns about it
                        return None
                    arr = pd.Categorical.from_codes(codes, dtype=dtype)
            else:  # bool
                if types != {bool}:
                    return None
                arr = np.array(values, dtype=bool)
            out[name] = arr
        if self.columns:
            return Columns(out, n, later)
        return pd.DataFrame(out, index=pd.RangeIndex(n), copy=False)


def _fast_plan(prototype: Prototype) -> list[tuple[Any, ...]] | None:
    """Per column: (name, kind, dtype, min, max, categories) for the fast path, or None
    when some column needs the general validator (datetimes, unknown kinds, nullable
    columns, pandas categoricals)."""
    plan: list[tuple[Any, ...]] = []
    for c in prototype.columns:
        if c.kind == "int" and c.dtype.startswith(("int", "uint")):
            plan.append((c.name, "int", c.dtype, c.min, c.max, None))
        elif c.kind == "int":
            plan.append((c.name, "int", "int64", c.min, c.max, None))
        elif c.kind == "float":
            dtype = c.dtype if c.dtype.startswith("float") else "float64"
            plan.append((c.name, "float", dtype, c.min, c.max, None))
        elif c.kind == "category" and c.dtype == "category" and c.categories is not None:
            if not all(isinstance(v, str) for v in c.categories):
                return None
            positions = {v: i for i, v in enumerate(c.categories)}
            plan.append((c.name, "cat", pd.CategoricalDtype(c.categories), None, None,
                         positions))
        elif c.kind in ("string", "category") and c.dtype != "category":
            dtype = c.dtype if c.dtype in ("str", "string") else "object"
            cats = set(c.categories) if c.categories is not None else None
            if cats is not None and not all(isinstance(v, str) for v in cats):
                return None
            plan.append((c.name, "str", dtype, None, None, cats))
        elif c.kind == "bool":
            plan.append((c.name, "bool", "bool", None, None, None))
        else:
            return None
    return plan


def _check_int_range(frame: pd.DataFrame, prototype: Prototype) -> None:
    """Integers beyond 64 bits cannot reach an integer column without loss."""
    problems = []
    for col in prototype.columns:
        if col.kind != "int" or col.name not in frame.columns:
            continue
        s = frame[col.name]
        if s.dtype.kind not in "fO":
            continue
        # strings (object or pandas' str dtype) are left to the validator's messages
        if s.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                big = np.abs(s.to_numpy(dtype=float, na_value=np.nan)) >= 2.0**63
        else:
            big = np.array([_beyond_int64(v) for v in s], dtype=bool)
        if big.any():
            rows = np.flatnonzero(big)
            problems.append({"column": col.name, "problem": "out_of_range",
                             "rows": rows[:20].tolist(), "n_rows": int(len(rows)),
                             "expected": "an integer between -2**63 and 2**63-1",
                             "message": f"column '{col.name}' has integers too large for 64 bits "
                                        f"in row {int(rows[0])}"})
    if problems:
        raise InvalidInput("The input does not match the model's prototype: "
                           + "; ".join(p["message"] for p in problems) + ".", problems)


def _beyond_int64(v: Any) -> bool:
    """A JSON number outside int64 (ints compared exactly: 2**63-1 fits, 2**63 does not)."""
    if type(v) is int:
        return not -(2**63) <= v < 2**63
    if type(v) is float:
        return abs(v) >= 2.0**63
    return False


def _check_scalars(cols: dict[str, Any]) -> None:
    for name, values in cols.items():
        if not isinstance(values, list):
            continue
        for i, v in enumerate(values):
            if not isinstance(v, SCALARS):
                raise BadRequest(f"Row {i}, column '{str(name)[:100]}' holds a nested value; "
                                 "each field must be a single number, string, boolean or null.")


def _check_scalars_rows(rows: list[Any]) -> None:
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise BadRequest(f"Row {i} is not an array; send every row as an array of values.")
        for v in row:
            if not isinstance(v, SCALARS):
                raise BadRequest(f"Row {i} holds a nested value; each field must be a single "
                                 "number, string, boolean or null.")


def _typed_csv(frame: pd.DataFrame, prototype: Prototype) -> pd.DataFrame:
    """CSV cells are text; give numeric and bool columns numbers where the text is one.

    Cells that do not parse stay text, so validation reports them with their row.
    """
    out = frame.copy()
    for col in prototype.columns:
        if col.name not in out.columns or col.kind not in ("int", "float"):
            continue
        text = out[col.name]
        nums = pd.to_numeric(text, errors="coerce")
        if nums.isna().equals(text.isna()):
            out[col.name] = nums
        else:
            out[col.name] = text.astype(object)
    return out
