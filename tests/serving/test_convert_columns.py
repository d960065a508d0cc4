"""The fast path's Columns (no per-request DataFrame, for the compiled graph) hold exactly
what the DataFrame path holds: the same values, the same frame when one is built, the
same graph inputs; anything the fast path cannot take still goes through validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.model import onnxfeeds
from core.model.columns import Columns, as_frame
from core.model.prototype import Prototype
from core.serving.convert import Converter
from core.serving.wire import parse_predict


@pytest.fixture(scope="module")
def training():
    return pd.DataFrame({
        "rooms": np.array([1, 2, 3, 4], dtype="int64"),
        "area": [50.5, 60.0, 70.25, 80.0],
        "city": pd.array(["a", "b", "a", "c"], dtype="str"),
        "band": pd.Categorical(["low", "high", "low", "mid"]),
        "garden": [True, False, True, False],
        "note": np.array(["x", "y", "x", "z"], dtype=object),
    })


@pytest.fixture(scope="module")
def prototype(training):
    return Prototype.from_frame(training)


def _convert(prototype, rows, columns):
    body = json.dumps(rows).encode()
    payload = parse_predict(body, "application/json", prototype.names)
    return Converter(prototype, columns=columns).convert(payload)


ROWS = [{"rooms": 2, "area": 61.5, "city": "b", "band": "mid", "garden": True, "note": "y"},
        {"rooms": 3, "area": 70.0, "city": "a", "band": "low", "garden": False, "note": "x"}]


def test_columns_build_the_frame_validation_builds(prototype):
    fast, warnings = _convert(prototype, ROWS, columns=True)
    assert isinstance(fast, Columns) and warnings == [] and len(fast) == 2
    assert fast.columns == prototype.names
    framed, _ = _convert(prototype, ROWS, columns=False)
    assert isinstance(framed, pd.DataFrame)
    pd.testing.assert_frame_equal(fast.frame(), framed)
    assert as_frame(fast) is fast.frame()  # built once
    assert as_frame(framed) is framed


def test_the_graph_gets_the_same_inputs_from_columns_and_from_the_frame(prototype):
    fast, _ = _convert(prototype, ROWS, columns=True)
    framed, _ = _convert(prototype, ROWS, columns=False)
    inputs = onnxfeeds.graph_inputs(prototype)
    a, b = onnxfeeds.feeds(fast, inputs), onnxfeeds.feeds(framed, inputs)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape
        assert a[name].tolist() == b[name].tolist()


@pytest.mark.parametrize("rows", [
    [{**ROWS[0], "band": "unseen"}],            # an unseen category: validation warns
    [{**ROWS[0], "rooms": None}],               # a null
    [{**ROWS[0], "rooms": 2.5}],                # not a whole number
    [{**ROWS[0], "area": "61.5"}],              # text for a number
    [{**ROWS[0], "rooms": 2**70}],              # beyond 64 bits
    [{**ROWS[0], "garden": 1}],                 # a number for a boolean
])
def test_what_the_fast_path_cannot_take_goes_through_validation(prototype, rows):
    """Never a Columns then: the general path answers (a frame with warnings, or the
    same clear refusal as without Columns)."""
    def outcome(columns):
        try:
            data, warnings = _convert(prototype, rows, columns=columns)
        except Exception as exc:  # noqa: BLE001 - compared below
            return type(exc), str(exc)
        assert not isinstance(data, Columns)
        return data, warnings

    with_columns, without = outcome(True), outcome(False)
    if isinstance(without[0], pd.DataFrame):
        pd.testing.assert_frame_equal(with_columns[0], without[0])
        assert with_columns[1] == without[1]
    else:
        assert with_columns == without
