"""Request bodies on the wire: what clients send to the prediction server.

Accepted shapes (``POST /predict`` and ``POST /invocations``):

- vetiver: a JSON array of records ``[{"col": value, ...}, ...]`` (vetiver's Python
  client sends ``df.to_json(orient="records")`` with no Content-Type at all);
- a JSON array of rows ``[[v1, v2, ...], ...]`` in the model's column order;
- columnar JSON ``{"columns": [...], "data": [[...], ...]}`` (pandas ``split``
  orient), the cheapest way to send large batches;
- MLflow's scoring-server envelopes on ``/invocations``: ``dataframe_split``,
  ``dataframe_records``, ``instances`` or ``inputs`` (records, rows or a mapping of
  column to values), with optional ``params``;
- CSV with a header row (``Content-Type: text/csv``).

JSON is parsed with orjson, which rejects ``NaN``/``Infinity`` literals, invalid
UTF-8 and nesting deeper than 1024 levels with an error instead of a crash. For
duplicate keys in an object the last value wins, as in Python's ``json``.

Before a body becomes Python objects it is held to :class:`~core.serving.limits.Limits`
(413): rows, columns and JSON nesting are counted on the bytes, so ``[{},{},...]`` is
refused at about the cost of reading it, never after 25 bytes of Python object were
built per byte of JSON. Every check here is linear in the body.

Conversion of a parsed payload to the model's frame is :mod:`core.serving.convert`.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from core.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from core.serving.limits import Limits

JSON_TYPES = ("application/json", "text/json", "text/plain", "application/x-www-form-urlencoded")
CSV_TYPES = ("text/csv", "application/csv")
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
SCALARS = (int, float, str, bool, type(None))


@dataclass
class Payload:
    """A parsed request body: the data in one of the shapes validation understands."""

    data: Any
    # column name -> list of values, when the body had every column by name or position
    columns: dict[str, list[Any]] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    fmt: str = "records"


# -- bytes -> Python ------------------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_media_type(content_type: str | None) -> str:
    """``json`` or ``csv``; raises 415 for anything else. No Content-Type means JSON."""
    mt = media_type(content_type)
    if not mt or mt in JSON_TYPES or (mt.startswith("application/") and mt.endswith("+json")):
        return "json"
    if mt in CSV_TYPES:
        return "csv"
    raise UnsupportedMediaType(
        f"Content-Type '{mt[:100]}' is not supported; send JSON (application/json) "
        "or CSV with a header row (text/csv).",
        [{"content_type": mt[:100], "accepted": ["application/json", "text/csv"]}])


def loads(body: bytes) -> Any:
    """Parse JSON bytes; every failure is a 400 that says what is wrong."""
    if not body.strip():
        raise BadRequest("The request body is empty; send a JSON array of records, "
                         "e.g. [{\"column\": value, ...}].")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(_json_error(str(exc)), [{"problem": "malformed_json",
                                                   "detail": str(exc)[:200]}]) from None
    # Some clients JSON-encode an already encoded JSON string; unwrap once.
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(_json_error(str(exc))) from None
    return value


def _json_error(detail: str) -> str:
    low = detail.lower()
    if "depth limit" in low or "recursion" in low:
        why = "it is nested too deeply (more than 1024 levels)"
    elif "utf-8" in low:
        why = "it is not valid UTF-8 text"
    elif "infinity" in low:
        why = "a number is too large for a 64-bit float"
    elif "expected a json value" in low or "unexpected character" in low:
        # (orjson before 3.11 says only "unexpected character")
        why = ("it holds something that is not JSON (NaN and Infinity are not JSON; "
               "send null for a missing value)")
    else:
        why = f"it is not valid JSON ({detail[:120]})"
    return f"The request body could not be parsed: {why}."


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


# -- Python -> Payload ----------------------------------------------------------------------


def parse_predict(body: bytes, content_type: str | None, names: Sequence[str],
                  limits: Limits | None = None, keep: Collection[str] | None = None) -> Payload:
    """The body of ``POST /predict``: records, rows, columnar JSON or CSV."""
    limits = limits or Limits()
    if check_media_type(content_type) == "csv":
        return Payload(read_csv(body, limits, len(names), keep), fmt="csv")
    check_json_size(body, limits, len(names))
    return shape(loads(body), names, where="the request body", limits=limits)


def parse_invocations(body: bytes, content_type: str | None, names: Sequence[str],
                      limits: Limits | None = None, keep: Collection[str] | None = None
                      ) -> Payload:
    """The body of ``POST /invocations``, following MLflow's scoring server."""
    limits = limits or Limits()
    if check_media_type(content_type) == "csv":
        return Payload(read_csv(body, limits, len(names), keep), fmt="csv")
    check_json_size(body, limits, len(names))
    obj = loads(body)
    if not isinstance(obj, dict):
        raise BadRequest(
            "/invocations expects a JSON object with exactly one of the fields "
            f"{', '.join(MLFLOW_KEYS)} (MLflow's format), or {{\"columns\": [...], "
            "\"data\": [...]}; for a plain array of records use POST /predict.")
    keys = [k for k in MLFLOW_KEYS if k in obj]
    if not keys and "data" in obj:
        return shape(obj, names, where="the request body", limits=limits)
    if len(keys) != 1:
        found = ", ".join(sorted(map(str, obj)))[:200] or "none"
        raise BadRequest(
            "The input must be a JSON object with exactly one of the fields "
            f"{', '.join(MLFLOW_KEYS)}; found: {found}.",
            [{"problem": "mlflow_envelope", "allowed": list(MLFLOW_KEYS)}])
    params = obj.get("params")
    if params is None:  # absent or null: MLflow's client sends null for "no params"
        params = {}
    if not isinstance(params, dict):
        raise BadRequest("'params' must be a JSON object, e.g. {\"predict_method\": \"predict\"}.")
    key = keys[0]
    inner = obj[key]
    if key == "dataframe_split":
        if not isinstance(inner, dict) or "data" not in inner:
            raise BadRequest("'dataframe_split' must be an object with 'columns' and 'data' "
                             "(pandas' split orient).")
        payload = shape(inner, names, where="'dataframe_split'", limits=limits)
    elif key == "dataframe_records":
        if not isinstance(inner, list):
            raise BadRequest("'dataframe_records' must be a JSON array of records.")
        payload = shape(inner, names, where="'dataframe_records'", limits=limits)
    else:
        payload = shape(inner, names, where=f"'{key}'", limits=limits)
    payload.params = params
    payload.fmt = key
    return payload


# -- limits on the bytes and on the parsed shape ------------------------------------------

_CHUNK = 1 << 20
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
# Arrays and objects a body may hold besides one per row or column: an MLflow envelope,
# 'dataframe_split' with its 'columns' and 'index', 'params'.
_ENVELOPE = 8


def max_columns(limits: Limits, width: int) -> int:
    """The column limit in force: never below the model's own column count."""
    return max(limits.max_columns, width)


def check_json_size(body: bytes, limits: Limits, width: int) -> None:
    """413 when the JSON in ``body`` nests deeper than ``limits.max_json_depth`` or holds
    more arrays and objects than its rows and columns may need, read off the bytes
    before any Python object is built for it."""
    marks = _marks(body)
    # brackets inside strings count too: an upper bound, and a cheap one
    upper = marks.count(b"[") + marks.count(b"{")
    if upper <= limits.max_json_depth:
        return
    containers, depth = _nesting(marks)
    if depth > limits.max_json_depth:
        raise PayloadTooLarge(
            f"The JSON body is nested {depth} levels deep; this server reads at most "
            f"{limits.max_json_depth} (a request needs 4 at most: an envelope, a table, a "
            "row and its values).",
            [{"problem": "too_deep", "limit": limits.max_json_depth}])
    cap = limits.max_rows + max_columns(limits, width) + _ENVELOPE
    if containers > cap:
        raise _too_many("rows", containers, limits.max_rows, "--max-rows",
                        "JSON arrays or objects (one per row)")


_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')


def _structure(body: bytes) -> tuple[int, int]:
    """(arrays and objects, deepest nesting) of a JSON text, outside strings."""
    return _nesting(_marks(body))


def _marks(body: bytes) -> bytes:
    """The quotes and brackets of a JSON text, in order: all that nesting depends on.
    Dropping every other byte (at C speed) leaves a fraction of a records body."""
    if b"\\" in body:  # an escaped quote would end a string early: drop the strings first
        body = _STRING.sub(b'""', body)
    return body.translate(None, _NOT_STRUCTURE)


def _nesting(marks: bytes) -> tuple[int, int]:
    """(arrays and objects, deepest nesting) from :func:`_marks`; counted with numpy a
    chunk at a time, so the cost is a few passes over the bytes."""
    # A string without brackets is a pair of quotes here. When the non-overlapping pairs
    # are all the quotes there are, they were the strings, one after another, and every
    # bracket is structure: no quote parity to track (the common case: keys and text).
    strings = marks.count(b'""') * 2 != marks.count(b'"')
    if not strings:
        marks = marks.translate(None, b'"')
    containers = deepest = level = 0
    inside = 0  # parity of quotes so far: 1 inside a string
    for start in range(0, len(marks), _CHUNK):
        c = np.frombuffer(marks, np.uint8, count=min(_CHUNK, len(marks) - start), offset=start)
        opens = (c == 91) | (c == 123)
        if strings:
            parity = (np.cumsum(c == 34, dtype=np.int32) + inside) & 1
            inside = int(parity[-1])
            outside = parity == 0
            opens &= outside
            closes = ((c == 93) | (c == 125)) & outside
            change = opens.view(np.int8) - closes.view(np.int8)
        else:  # only brackets: each one that does not open closes
            change = opens.view(np.int8) * np.int8(2) - np.int8(1)
        steps = np.cumsum(change, dtype=np.int32)
        deepest = max(deepest, level + int(steps.max()))
        level += int(steps[-1])
        containers += int(np.count_nonzero(opens))
    return containers, deepest


def _too_many(what: str, got: int | str, limit: int, flag: str, unit: str = "") -> PayloadTooLarge:
    shown = f"{got:,}" if isinstance(got, int) else got
    return PayloadTooLarge(
        f"The request has {shown} {unit or what}; this server takes at most {limit:,} {what} "
        f"per request. Send fewer {what} per request, or start the server with a larger "
        f"{flag}.", [{"problem": f"too_many_{what}", "limit": limit}])


def _check_rows(n: int, limits: Limits) -> None:
    if n > limits.max_rows:
        raise _too_many("rows", n, limits.max_rows, "--max-rows")


def _check_width(n: int, limits: Limits, width: int) -> None:
    cap = max_columns(limits, width)
    if n > cap:
        raise _too_many("columns", n, cap, "--max-columns")


def _duplicates(names: Sequence[Any]) -> list[str]:
    return sorted(str(n) for n, k in Counter(names).items() if k > 1)


def shape(obj: Any, names: Sequence[str], where: str, limits: Limits | None = None) -> Payload:
    """Recognise records, rows, columnar split JSON or a column mapping."""
    limits = limits or Limits()
    width = len(names)
    if isinstance(obj, list):
        if not obj:
            raise InvalidInput(f"{where[0].upper()}{where[1:]} has no rows; "
                               "send at least one record.")
        _check_rows(len(obj), limits)
        reader = _ARRAYS.get(type(obj[0]))
        if reader is not None:
            find_columns, fmt = reader
            columns = find_columns(obj, names)
            if columns is None:
                _check_width(max(len(r) if isinstance(r, (dict, list)) else 0 for r in obj),
                             limits, width)
            return Payload(obj, columns, fmt=fmt)
        raise BadRequest(f"{where[0].upper()}{where[1:]} must be an array of records "
                         "(objects) or of rows (arrays), not of plain values.")
    if isinstance(obj, dict):
        if "data" in obj and ("columns" in obj or set(obj) <= {"data", "index"}):
            return _split(obj, names, where, limits)
        if obj and all(isinstance(v, list) for v in obj.values()):
            _check_width(len(obj), limits, width)
            lengths = {len(v) for v in obj.values()}
            if len(lengths) > 1:
                raise BadRequest("Columns have different lengths; every column needs one "
                                 "value per row.")
            _check_rows(lengths.pop(), limits)
            return Payload(obj, exact_columns(obj, names), fmt="columns")
        # one record
        _check_width(len(obj), limits, width)
        return Payload([obj], record_columns([obj], names), fmt="records")
    raise BadRequest(f"{where[0].upper()}{where[1:]} must be a JSON array of records, "
                     f"got {_json_kind(obj)}; e.g. [{{\"column\": value, ...}}].")


def _json_kind(obj: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(obj), type(obj).__name__)


def exact_columns(cols: dict[str, list[Any]], names: Sequence[str]
                   ) -> dict[str, list[Any]] | None:
    """``cols`` when it holds exactly the model's columns (the fast path), else None."""
    return cols if len(cols) == len(names) and all(n in cols for n in names) else None


def record_columns(records: list[Any], names: Sequence[str]) -> dict[str, list[Any]] | None:
    """Column lists when every record has exactly the model's columns, else None."""
    n = len(names)
    try:
        if set(map(len, records)) != {n}:
            return None
        return {name: [r[name] for r in records] for name in names}
    except (KeyError, TypeError):
        return None


def _row_columns(rows: list[Any], names: Sequence[str]) -> dict[str, list[Any]] | None:
    n = len(names)
    if not all(type(r) is list and len(r) == n for r in rows):
        return None
    return dict(zip(names, map(list, zip(*rows))))


# An array of records or of rows: how its columns are found, and the payload's format.
_ARRAYS: dict[type, tuple[Callable[[list[Any], Sequence[str]], dict[str, list[Any]] | None],
                          str]] = {dict: (record_columns, "records"), list: (_row_columns, "rows")}


def _split(obj: dict[str, Any], names: Sequence[str], where: str,
           limits: Limits) -> Payload:
    data = obj.get("data")
    columns = obj.get("columns")
    if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
        raise BadRequest(f"'data' in {where} must be an array of rows (arrays of values).")
    if not data:
        raise InvalidInput(f"'data' in {where} has no rows; send at least one row.")
    _check_rows(len(data), limits)
    if columns is None:  # absent or null: the rows are in the model's column order
        columns_or_none = _row_columns(data, names)
        if columns_or_none is None:
            _check_width(max(map(len, data)), limits, len(names))
        return Payload(data, columns_or_none, fmt="split")
    if not isinstance(columns, list) or not all(
            isinstance(c, str) or (type(c) is int and c >= 0) for c in columns):
        raise BadRequest(f"'columns' in {where} must be an array of column names (strings, or "
                         "positions 0, 1, ... for a model fitted on an unnamed array).")
    _check_width(len(columns), limits, len(names))
    columns = [str(c) for c in columns]  # pandas writes the columns of an array as 0, 1, ...
    if len(set(columns)) != len(columns):
        dup = _duplicates(columns)[:10]
        raise BadRequest(f"'columns' in {where} names a column twice: {', '.join(dup)}.")
    width = len(columns)
    bad = [i for i, r in enumerate(data) if len(r) != width]
    if bad:
        raise BadRequest(
            f"Every row of 'data' needs {width} values, one per name in 'columns'; "
            f"row {bad[0]} has {len(data[bad[0]])}.",
            [{"problem": "wrong_width", "rows": bad[:20], "expected": width}])
    transposed = list(zip(*data))
    by_name = {c: list(v) for c, v in zip(columns, transposed)}
    return Payload(by_name, exact_columns(by_name, names), fmt="split")


def read_csv(body: bytes, limits: Limits | None = None, width: int = 0,
             keep: Collection[str] | None = None) -> pd.DataFrame:
    """A CSV body with a header row. Values are read as text and typed by validation.

    ``keep``: the columns worth building (the model's); the others are only named, in
    ``frame.attrs["extra_columns"]``, for validation's warning. A frame of thousands of
    columns costs pandas ~0.1 ms each, of which a request needs a handful.
    """
    limits = limits or Limits()
    if not body.strip():
        raise BadRequest("The CSV body is empty; send a header row and at least one data row.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The CSV body is not valid UTF-8 text (byte {exc.start}).",
                         [{"problem": "not_utf8", "byte": exc.start}]) from None
    try:
        end = text.find("\n")
        header = next(csv.reader(io.StringIO(text[:end + 1] if end >= 0 else text, newline=""),
                                 skipinitialspace=True), [])
    except csv.Error:
        header = []
    _check_width(len(header), limits, width)
    twice = _duplicates(header)
    if twice:
        raise BadRequest(f"The CSV header names a column twice: {', '.join(twice[:10])}; give "
                         "each column once.")
    if keep is not None and header:
        wanted = set(keep)
        extra = [h for h in header if h not in wanted]
        if extra:
            frame = _csv_columns(text, header, [i for i, h in enumerate(header)
                                                if h in wanted], limits)
            frame.attrs["extra_columns"] = Names(extra)
            return frame
    try:
        with warnings.catch_warnings():
            # a row wider than the header: pandas warns, then drops the extra fields
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # dtype=str: the prototype decides types, so '01234' stays a string where it is
            # one. index_col=False: a row with one field more than the header is an error,
            # not a row whose first field silently becomes its index. nrows: one past the
            # limit is enough to know it is over.
            frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False,
                                na_values=[""], encoding="utf-8", index_col=False,
                                skipinitialspace=True, nrows=limits.max_rows + 1)
    except UnicodeDecodeError:
        raise BadRequest("The CSV body is not valid UTF-8 text.") from None
    except pd.errors.ParserWarning:
        raise BadRequest(_wide_rows(text, len(header))) from None
    except pd.errors.ParserError as exc:
        if "fields in line" in str(exc) and header:  # a later row wider than the header
            raise BadRequest(_wide_rows(text, len(header))) from None
        raise BadRequest(f"The CSV body could not be parsed: {' '.join(str(exc).split())[:200]}"
                         ".") from None
    except (pd.errors.EmptyDataError, ValueError) as exc:
        raise BadRequest(f"The CSV body could not be parsed: {str(exc)[:200]}.") from None
    if len(frame) == 0:
        raise InvalidInput("The CSV body has a header but no rows; send at least one data row.")
    if len(frame) > limits.max_rows:
        raise _too_many("rows", f"more than {limits.max_rows:,}", limits.max_rows,
                        "--max-rows")
    return frame


class ColumnsWithExtra(dict):
    """Model columns built from records, with the names of the keys left out."""

    def __init__(self, cols: dict[str, Any], extra: tuple[str, ...], n: int) -> None:
        super().__init__(cols)
        self.extra = extra
        self.n = n


class Names(tuple):
    """Column names in ``frame.attrs``: pandas deep-copies attrs on every copy, which for
    thousands of names costs more than the request."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Names:
        return self


def _csv_columns(text: str, header: list[str], keep: list[int], limits: Limits
                 ) -> pd.DataFrame:
    """Only the ``keep`` columns of a CSV body, read row by row with the csv module: pandas
    spends ~0.3 ms on each column of a header even when told to use a few of them."""
    width = len(header)
    values: list[list[Any]] = [[] for _ in keep]
    n = 0
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    try:
        next(reader, None)
        for row in reader:
            if not row:
                continue  # blank lines, as pandas skips them
            if len(row) > width:
                raise BadRequest(_wide_rows(text, width))
            n += 1
            if n > limits.max_rows:
                raise _too_many("rows", f"more than {limits.max_rows:,}", limits.max_rows,
                                "--max-rows")
            for out, i in zip(values, keep):
                v = row[i] if i < len(row) else ""
                out.append(v if v != "" else None)
    except csv.Error as exc:
        raise BadRequest(f"The CSV body could not be parsed: {str(exc)[:200]}.") from None
    if n == 0:
        raise InvalidInput("The CSV body has a header but no rows; send at least one data row.")
    return pd.DataFrame({header[i]: pd.Series(v, dtype="str") for i, v in zip(keep, values)},
                        index=pd.RangeIndex(n))


def _wide_rows(text: str, width: int) -> str:
    """Which data rows have more fields than the header (found only after the fast parse
    failed, so clean bodies pay nothing for it)."""
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    wide = []
    try:
        for i, r in enumerate(reader):
            if i > 0 and len(r) > width:
                wide.append((i - 1, len(r)))
                if len(wide) == 10:
                    break
    except csv.Error:
        pass
    shown = ", ".join(f"row {i} has {n}" for i, n in wide) or "some rows have more"
    return (f"Every CSV row needs one field per header column ({width}); {shown}. Quote "
            "values that contain commas, and drop trailing commas.")
