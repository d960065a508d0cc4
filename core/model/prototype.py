"""Input schema of a model: derive it from data, check and convert requests against it.

Validation is vectorised over the whole batch: every check is a pandas/numpy
operation on a column, never a Python loop over rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from core.errors import InvalidArgument, InvalidInput

if TYPE_CHECKING:  # imported where used: reading a stored prototype needs neither
    import numpy as np
    import pandas as pd

KINDS = ("int", "float", "bool", "string", "category", "datetime", "unknown")

# A string column with at most this many distinct values (and not mostly unique)
# is a category: its values are remembered and unseen ones are flagged.
MAX_CATEGORIES = 1000
# How many offending row numbers an error lists per problem.
MAX_ROWS_REPORTED = 20


def number_text(value: float, kind: str = "float") -> str:
    """A number for people: whole numbers of an int column without ``.0``, others to six
    significant digits, positional unless very large or very small."""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if kind == "int" and value.is_integer():
        return str(int(value))
    if value == 0 or 1e-4 <= abs(value) < 1e12:
        # the shortest text that rounds back to six significant digits, positional
        text = repr(float(f"{value:.6g}"))
        return text[:-2] if text.endswith(".0") else text
    return f"{value:.6g}"


@dataclass
class Column:
    """One input column as seen in training."""

    name: str
    kind: str
    dtype: str = ""
    nullable: bool = False
    categories: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    example: Any = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def range_text(self) -> str | None:
        """The training range as people read it: ``1 to 10`` for an integer column,
        ``75000 to 7700000`` rather than ``75000 to 7.7e+06``; None when unknown."""
        if self.min is None or self.max is None:
            return None
        return f"{number_text(self.min, self.kind)} to {number_text(self.max, self.kind)}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Column:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Prototype:
    """The columns a model expects, in the model's order.

    ``source`` says where the columns came from: ``sample`` (full information),
    ``feature_names`` (names only, from ``feature_names_in_``) or ``n_features``
    (a numeric array with ``n_features_in_`` columns). ``named`` is False when the
    model was fitted on an unnamed array and must be given one.
    """

    columns: list[Column]
    source: str = "sample"
    named: bool = True
    accepts_nulls: bool = False

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, named: bool = True) -> Prototype:
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            raise InvalidArgument(
                f"The training sample must be a pandas DataFrame, got {type(frame).__name__}."
            )
        if frame.shape[1] == 0:
            raise InvalidArgument("The training sample has no columns; pass the model's input "
                                  "features.")
        if len(frame) == 0:
            raise InvalidArgument("The training sample has no rows; pass at least one row of "
                                  "features.")
        return cls([_column_from_series(str(name), frame[name]) for name in frame.columns],
                   source="sample", named=named)

    @classmethod
    def from_names(cls, names: Iterable[str]) -> Prototype:
        cols = [Column(str(n), "unknown", nullable=True) for n in names]
        return cls(cols, source="feature_names")

    @classmethod
    def from_n_features(cls, n: int) -> Prototype:
        cols = [Column(f"x{i}", "float", dtype="float64", nullable=True) for i in range(int(n))]
        return cls(cols, source="n_features", named=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "named": self.named,
            "accepts_nulls": self.accepts_nulls,
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Prototype:
        return cls(
            [Column.from_dict(c) for c in data.get("columns", [])],
            source=data.get("source", "sample"),
            named=bool(data.get("named", True)),
            accepts_nulls=bool(data.get("accepts_nulls", False)),
        )

    # -- facts ------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def missing_information(self) -> str | None:
        """What a prototype without a sample cannot know, as advice to the user."""
        if self.source == "sample":
            return None
        return (
            "No training sample was given, so column kinds, ranges and categories are unknown: "
            "requests are checked for missing columns only and drift cannot be measured. "
            "Pass a sample of the training features (sample=... or --sample FILE) to fix this."
        )

    def example_record(self) -> dict[str, Any]:
        return {c.name: _jsonable(c.example) for c in self.columns}

    def json_schema(self) -> dict[str, Any]:
        """JSON schema of one input record."""
        props: dict[str, Any] = {}
        for c in self.columns:
            prop: dict[str, Any] = dict(_JSON_TYPES.get(c.kind, {}))
            if c.nullable and "type" in prop:
                prop["type"] = [prop["type"], "null"]
            if c.example is not None:
                prop["example"] = _jsonable(c.example)
            if c.kind in ("int", "float") and c.min is not None:
                prop["description"] = f"seen in training: {c.range_text()}"
            if c.categories is not None:
                shown = ", ".join(map(str, c.categories[:20]))
                more = "" if len(c.categories) <= 20 else f", … ({len(c.categories)} in all)"
                prop["description"] = f"categories seen in training: {shown}{more}"
            props[c.name] = prop
        return {
            "type": "object",
            "properties": props,
            "required": self.names,
            "additionalProperties": True,
        }

    # -- validation ---------------------------------------------------------------------

    def validate(self, data: Any) -> tuple[pd.DataFrame, list[str]]:
        """Check and convert ``data`` for ``predict``.

        Returns the frame in the model's column order with training dtypes, and
        warnings (dropped extra columns, unseen categories, values out of range).
        Raises :class:`InvalidInput` listing every problem at once.
        """
        import pandas as pd

        frame = to_frame(data, self.names)
        problems: list[dict[str, Any]] = []
        warnings: list[str] = []
        missing = [n for n in self.names if n not in frame.columns]
        for name in missing:
            problems.append({"column": name, "problem": "missing",
                             "message": f"column '{name}' is missing"})
        extra = [str(c) for c in frame.columns if c not in set(self.names)]
        extra += frame.attrs.get("extra_columns", [])
        if extra:
            shown = ", ".join(f"'{e}'" for e in extra[:20])
            more = "" if len(extra) <= 20 else f" and {len(extra) - 20} more"
            warnings.append(f"extra columns dropped: {shown}{more}")
        if len(frame) == 0:
            raise InvalidInput("The request has no rows; send at least one record.",
                               problems)
        out: dict[str, pd.Series] = {}
        for col in self.columns:
            if col.name in missing:
                continue
            series, col_problems, col_warnings = _convert(frame[col.name], col, self.accepts_nulls)
            problems.extend(col_problems)
            warnings.extend(col_warnings)
            out[col.name] = series
        if problems:
            raise InvalidInput(_summary(problems), problems)
        result = pd.DataFrame(out, index=pd.RangeIndex(len(frame)))
        return result[self.names], warnings


_JSON_TYPES: dict[str, dict[str, Any]] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "string": {"type": "string"},
    "category": {"type": "string"},
    "datetime": {"type": "string", "format": "date-time"},
    "unknown": {},
}


def to_frame(data: Any, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Turn records, a column mapping, an array or a DataFrame into a DataFrame."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True)
    if isinstance(data, np.ndarray):
        if data.ndim == 1:
            data = data.reshape(1, -1)
        if data.ndim != 2:
            raise InvalidArgument(f"Expected a 2-dimensional array of rows, got {data.ndim} "
                                  "dimensions.")
        return _frame_from_rows(data.tolist(), names)
    if isinstance(data, Mapping):
        # a single record, or a mapping of column -> list of values
        if data and all(isinstance(v, list) for v in data.values()):
            lengths = {len(v) for v in data.values()}
            if len(lengths) > 1:
                raise InvalidArgument("Columns have different lengths; "
                                      "every column needs one value per row.")
            return pd.DataFrame(dict(data))
        return _frame_from_records([data], names)
    if isinstance(data, list):
        if not data:
            return pd.DataFrame(columns=list(names or []))
        if all(isinstance(r, Mapping) for r in data):
            return _frame_from_records(data, names)
        if all(isinstance(r, list) for r in data):
            return _frame_from_rows(data, names)
        raise InvalidArgument("Expected a list of records (objects) or a list of rows (arrays), "
                              "not a mix of both or of plain values.")
    raise InvalidArgument(f"Cannot read input of type {type(data).__name__}; send a list of "
                          "records.")


def _frame_from_records(records: Sequence[Mapping[str, Any]],
                        names: Sequence[str] | None = None) -> pd.DataFrame:
    """Records as a frame. Given the model's ``names``, only those columns are built and
    the other keys are listed in ``frame.attrs["extra_columns"]``: records that each
    carry different keys would otherwise make one column per key, rows × keys cells."""
    import pandas as pd

    for i, rec in enumerate(records):
        for v in rec.values():
            if isinstance(v, (dict, list)):
                raise InvalidArgument(f"Row {i} holds a nested value; each field must be a single "
                                      "number, string, boolean or null.")
    if names is None:
        return pd.DataFrame.from_records(records)
    keys = dict.fromkeys(k for rec in records for k in rec)  # first-seen order
    frame = pd.DataFrame({n: [rec.get(n) for rec in records] for n in names if n in keys},
                         index=pd.RangeIndex(len(records)))
    wanted = set(names)
    frame.attrs["extra_columns"] = [str(k) for k in keys if k not in wanted]
    return frame


def _frame_from_rows(rows: Sequence[list[Any] | tuple[Any, ...]], names: Sequence[str] | None
                     ) -> pd.DataFrame:
    import pandas as pd

    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise InvalidArgument("Rows have different lengths; every row needs one value per column.")
    width = widths.pop() if widths else 0
    if names is not None and width != len(names):
        raise InvalidInput(
            f"Each row has {width} values but the model expects {len(names)} columns "
            f"({', '.join(names[:20])}).",
            [{"problem": "wrong_width", "expected": len(names), "got": width}],
        )
    cols = list(names) if names is not None else [f"x{i}" for i in range(width)]
    frame = pd.DataFrame.from_records(rows, columns=cols)
    return frame


def _column_from_series(name: str, s: pd.Series) -> Column:
    import pandas as pd

    dtype = str(s.dtype)
    nullable = bool(s.isna().any())
    non_null = s.dropna()
    example = _jsonable(non_null.iloc[0]) if len(non_null) else None
    if pd.api.types.is_bool_dtype(s):
        return Column(name, "bool", dtype, nullable, example=example)
    if pd.api.types.is_integer_dtype(s) or pd.api.types.is_float_dtype(s):
        is_int = pd.api.types.is_integer_dtype(s)
        lo = float(non_null.min()) if len(non_null) else None
        hi = float(non_null.max()) if len(non_null) else None
        if len(non_null):
            med = non_null.median()
            example = int(round(med)) if is_int else float(med)
        return Column(name, "int" if is_int else "float", dtype, nullable, min=lo, max=hi,
                      example=example)
    if pd.api.types.is_datetime64_any_dtype(s):
        return Column(name, "datetime", dtype, nullable,
                      example=non_null.iloc[0].isoformat() if len(non_null) else None)
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = [_jsonable(c) for c in s.cat.categories]
        return Column(name, "category", dtype, nullable, categories=cats, example=example)
    # strings and other objects
    values = non_null.astype(str)
    uniques = pd.unique(values)
    if len(uniques) <= MAX_CATEGORIES and (len(uniques) <= 20 or len(uniques) < 0.5 * len(values)):
        cats = sorted(uniques.tolist())
        return Column(name, "category", dtype, nullable, categories=cats, example=example)
    return Column(name, "string", dtype, nullable, example=example)


def _jsonable(v: Any) -> Any:
    import numpy as np
    import pandas as pd

    if v is None:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def _rows(mask: np.ndarray | pd.Series) -> tuple[list[int], int]:
    import numpy as np

    idx = np.flatnonzero(np.asarray(mask))
    return idx[:MAX_ROWS_REPORTED].tolist(), int(len(idx))


def _problem(col: Column, problem: str, mask: Any, expected: str, got: pd.Series | None,
             message: str) -> dict[str, Any]:
    import numpy as np

    rows, n = _rows(mask)
    out: dict[str, Any] = {"column": col.name, "problem": problem, "rows": rows, "n_rows": n,
                           "expected": expected, "message": message}
    if got is not None:
        bad = got[np.asarray(mask)].head(5)
        out["got"] = [_jsonable(v) if not isinstance(v, str) else v[:100] for v in bad.tolist()]
    return out


def _row_phrase(mask: Any) -> str:
    rows, n = _rows(mask)
    shown = ", ".join(map(str, rows[:5]))
    return f"row {shown}" if n == 1 else f"{n} rows ({shown}{', …' if n > 5 else ''})"


def _convert(s: pd.Series, col: Column, accepts_nulls: bool
             ) -> tuple[pd.Series, list[dict[str, Any]], list[str]]:
    import numpy as np
    import pandas as pd

    problems: list[dict[str, Any]] = []
    warnings: list[str] = []
    null = s.isna().to_numpy()
    if null.any() and not col.nullable and not accepts_nulls and col.kind != "unknown":
        problems.append(_problem(
            col, "null", null, col.kind, None,
            f"column '{col.name}' is null or absent in {_row_phrase(null)} but had no nulls in "
            "training; give every record a value for it"))
    converter = _CONVERTERS.get(col.kind)
    if converter is None:
        return s, problems, warnings
    out, bad, expected = converter(s, col, null)
    if bad is not None and bad.any():
        problems.append(_problem(
            col, "wrong_type", bad, expected, s,
            f"column '{col.name}' expects {expected}; {_row_phrase(bad)} cannot be converted "
            "without loss"))
        return s, problems, warnings
    if col.kind == "category" and col.categories is not None and not problems:
        seen = pd.Series(out).astype(object).isin(col.categories).to_numpy()
        unseen = ~seen & ~null
        if unseen.any():
            # the values as sent: in a categorical column an unseen one becomes null
            values = sorted({str(v) for v in s[unseen].head(1000)})[:5]
            warnings.append(f"column '{col.name}': {int(unseen.sum())} value(s) never seen in "
                            f"training ({', '.join(values)})")
    if col.kind in ("int", "float") and col.min is not None and not problems:
        vals = pd.to_numeric(pd.Series(out), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            outside = (vals < col.min) | (vals > col.max)
        if outside.any():
            warnings.append(f"column '{col.name}': {int(outside.sum())} value(s) outside the "
                            f"training range {col.range_text()}")
    return out, problems, warnings


def _numeric(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float values and a mask of non-null entries that are not numbers."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(s):  # true/false are not numbers
        return np.full(len(s), np.nan), ~s.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(s), dtype=bool)
    if s.dtype == object:
        # pandas-stubs: eq() compares with any object, a type included
        is_bool = s.map(type).eq(bool).to_numpy()  # type: ignore[arg-type]
    else:
        is_bool = np.zeros(len(s), dtype=bool)
    vals = pd.to_numeric(s.where(~is_bool, None), errors="coerce").to_numpy(dtype=float,
                                                                            na_value=np.nan)
    bad = (np.isnan(vals) & ~s.isna().to_numpy()) | is_bool
    return vals, bad


_EXACT_FLOAT = 2.0**53  # every whole number below this is exact in a float64


def _exact_int(value: Any) -> int | None:
    """A whole number exactly as sent (int, numeric text, or a whole float); else None."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if math.isfinite(value) and float(value).is_integer() else None
    try:
        return int(str(value).strip())
    except ValueError:
        import decimal

        try:
            number = decimal.Decimal(str(value).strip())
        except decimal.InvalidOperation:
            return None
        return int(number) if number.is_finite() and number == number.to_integral() else None


def _to_int(s: pd.Series, col: Column, null: np.ndarray):
    import numpy as np
    import pandas as pd

    dtype = col.dtype if col.dtype.startswith(("int", "uint", "Int", "UInt")) else "int64"
    if pd.api.types.is_integer_dtype(s.dtype) and s.dtype.kind == "i" and not null.any():
        # already exact: no float round trip (pandas-stubs take only literal dtype names,
        # and this one comes from the prototype)
        return s.astype(dtype), None, "an integer"  # type: ignore[call-overload]
    vals, bad = _numeric(s)
    with np.errstate(invalid="ignore"):
        frac = ~np.isnan(vals) & ((vals != np.round(vals)) | np.isinf(vals))
        # Beyond 2**53 a float64 rounds: those few values are read again exactly, and
        # refused beyond int64, where a whole number would wrap around.
        big = ~bad & ~frac & (np.abs(vals) >= _EXACT_FLOAT)
    huge = np.zeros(len(s), dtype=bool)
    exact: dict[int, int] = {}
    for i in np.flatnonzero(big).tolist():
        value = _exact_int(s.iat[i])
        if value is None or not -(2**63) <= value < 2**63:
            huge[i] = True
        else:
            exact[int(i)] = value
    bad = bad | frac | huge
    if bad.any():
        return s, bad, "an integer"
    if null.any():
        return pd.Series(vals, dtype="float64"), None, "an integer"
    with np.errstate(invalid="ignore"):
        ints = np.where(big, 0, vals).astype(np.int64)
    for i, value in exact.items():
        ints[i] = value
    # a dtype name from the prototype (pandas-stubs take only literal ones)
    return pd.Series(ints).astype(dtype), None, "an integer"  # type: ignore[call-overload]


def _to_float(s: pd.Series, col: Column, null: np.ndarray):
    import numpy as np
    import pandas as pd

    vals, bad = _numeric(s)
    with np.errstate(invalid="ignore"):
        bad = bad | np.isinf(vals)
    dtype = col.dtype if col.dtype.startswith("float") else "float64"
    return pd.Series(vals, dtype=dtype), bad, "a number"


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _to_bool(s: pd.Series, col: Column, null: np.ndarray):
    import pandas as pd

    if pd.api.types.is_bool_dtype(s):
        return s.astype(bool), None, "true or false"
    text = s.astype(str).str.strip().str.lower()
    truthy = text.isin(_TRUE).to_numpy()
    falsy = text.isin(_FALSE).to_numpy()
    bad = ~(truthy | falsy) & ~null
    return pd.Series(truthy), bad, "true or false"


def _to_text(s: pd.Series, col: Column, null: np.ndarray):
    import numpy as np
    import pandas as pd

    if pd.api.types.is_string_dtype(s) and s.dtype != object:
        bad = np.zeros(len(s), dtype=bool)
    elif pd.api.types.is_integer_dtype(s):
        bad = np.zeros(len(s), dtype=bool)
    elif pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        bad = ~null
    else:
        types = s.map(type)
        # pandas-stubs: eq() compares with any object, a type included
        bad = ~(types.eq(str) | types.eq(int)).to_numpy() & ~null  # type: ignore[arg-type]
    if bad.any():
        return s, bad, "a string"
    text = s.where(null, s.astype(str)) if null.any() else s.astype(str)
    if col.dtype == "category" and col.categories is not None:
        # unseen values become missing, as category-aware estimators treat them
        known = text.astype(object).where(text.isin(col.categories))
        return pd.Series(pd.Categorical(known, categories=col.categories)), None, "a string"
    target = col.dtype if col.dtype in ("str", "string") else object
    # a dtype name from the prototype (pandas-stubs take only literal ones)
    return text.astype(target), None, "a string"  # type: ignore[arg-type]


def _to_datetime(s: pd.Series, col: Column, null: np.ndarray):
    import pandas as pd

    parsed = pd.to_datetime(s, errors="coerce", utc=_is_tz(col.dtype), format="mixed")
    bad = parsed.isna().to_numpy() & ~null
    return parsed, bad, "a date-time (ISO 8601)"


def _is_tz(dtype: str) -> bool:
    return "," in dtype or "UTC" in dtype


_CONVERTERS = {
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "string": _to_text,
    "category": _to_text,
    "datetime": _to_datetime,
}


def _summary(problems: list[dict[str, Any]]) -> str:
    head = "; ".join(p["message"] for p in problems[:10])
    more = "" if len(problems) <= 10 else f"; and {len(problems) - 10} more problems"
    return f"The input does not match the model's prototype: {head}{more}."

