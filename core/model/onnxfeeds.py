"""What a compiled graph is fed: one typed input per prototype column.

The graph's inputs are derived from the stored prototype, so a validated frame (or the
validated columns the server builds) maps onto them without guessing: integers as
``double`` (or ``int64``, when a converted step wants them so), numbers, booleans and
integers with nulls as ``double`` (a null is NaN, as
scikit-learn sees it), text and categories as ``string``. A model fitted on an unnamed
array gets one ``double`` matrix, as it was fitted. A text column that may hold nulls
cannot be fed (ONNX string tensors have no null), and nor can a datetime column: such a
prototype is :class:`NotFeedable`, with the column named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.model.prototype import Prototype

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# The single input of a model fitted on an unnamed array.
MATRIX_INPUT = "X"


class NotFeedable(Exception):
    """The prototype has a column a graph input cannot carry; the message says which."""


@dataclass(frozen=True)
class Input:
    name: str  # the graph input (the column's name, or MATRIX_INPUT)
    type: str  # int64 | double | float | string
    columns: tuple[str, ...]


def graph_inputs(prototype: Prototype, ints: str = "double", numbers: str = "double"
                 ) -> list[Input]:
    """The graph's inputs for ``prototype``, or NotFeedable naming the column.
    ``ints``: the type of integer columns without nulls, ``double`` (what scikit-learn
    computes with; mixes with other numbers in one converted step) or ``int64``;
    ``numbers``: the type of the other numeric columns, ``double`` or ``float`` (some
    converted steps compute in float32 only)."""
    if not prototype.columns:
        raise NotFeedable("the version records no input columns")
    if not prototype.named:
        bad = [c.name for c in prototype.columns if c.kind not in ("int", "float", "bool")]
        if bad:
            raise NotFeedable(f"column {bad[0]!r} of an unnamed array is not numeric")
        return [Input(MATRIX_INPUT, numbers, tuple(prototype.names))]
    found = []
    for c in prototype.columns:
        if c.kind == "int" and not c.nullable:
            kind = ints
        elif c.kind in ("int", "float", "bool"):
            kind = numbers
        elif c.kind in ("string", "category"):
            if c.nullable:
                raise NotFeedable(f"text column {c.name!r} may hold nulls, which a graph's "
                                  "string input cannot carry")
            kind = "string"
        else:
            raise NotFeedable(f"column {c.name!r} is of kind {c.kind!r}, which a graph input "
                              "cannot carry (numbers, booleans and text can)")
        found.append(Input(c.name, kind, (c.name,)))
    return found


_DTYPES = {"int64": "int64", "double": "float64", "float": "float32"}


def _array(values: Any, kind: str) -> np.ndarray:
    """One column (a numpy array or a pandas array) as a graph input of ``kind``, (n, 1).
    A column already of the input's dtype is used as it is, without a copy."""
    import numpy as np

    if kind == "string":
        arr = np.asarray(values, dtype=object)
        return arr.reshape(-1, 1)
    dtype = np.dtype(_DTYPES[kind])
    if isinstance(values, np.ndarray):
        arr = values if values.dtype == dtype else values.astype(dtype)
    elif kind == "int64":
        arr = values.to_numpy(dtype=dtype)
    else:  # a pandas array with nulls: NaN, as scikit-learn sees them
        arr = values.to_numpy(dtype=dtype, na_value=np.nan)
    return arr.reshape(-1, 1)


def _column(frame: pd.DataFrame, name: str) -> Any:
    """A column's array, without building a Series (~15 us a column; a one-row request
    has a dozen)."""
    arrays = getattr(frame, "arrays", None)  # core.model.columns.Columns
    if arrays is not None:
        return arrays[name]
    get = getattr(frame, "_get_column_array", None)
    if get is not None:
        loc = frame.columns.get_loc(name)
        if isinstance(loc, int):
            return get(loc)
    return frame[name].array


def feeds(frame: pd.DataFrame, inputs: list[Input]) -> dict[str, np.ndarray]:
    """The graph's inputs from a validated frame."""
    import numpy as np

    out: dict[str, np.ndarray] = {}
    for item in inputs:
        if len(item.columns) != 1:
            out[item.name] = np.column_stack(
                [_array(_column(frame, c), item.type).ravel() for c in item.columns])
        else:
            out[item.name] = _array(_column(frame, item.columns[0]), item.type)
    return out


def inputs_to_dict(inputs: list[Input]) -> list[dict[str, Any]]:
    return [{"name": i.name, "type": i.type, "columns": list(i.columns)} for i in inputs]


def inputs_from_dict(data: list[dict[str, Any]]) -> list[Input]:
    return [Input(str(d["name"]), str(d["type"]), tuple(map(str, d["columns"]))) for d in data]
