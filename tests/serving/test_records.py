"""The typed decoder for records (core.serving.records): whatever it accepts, the general
path (parse, then validate) turns into exactly the same frame with no warning; whatever
else it is sent, it declines, and the general path answers as it always did."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from core.errors import FixativeError
from core.model.bundle import bundle
from core.model.columns import Columns
from core.model.prototype import Prototype
from core.serving.app import create_app
from core.serving.convert import Converter
from core.serving.wire import parse_predict

ODD = "with space ünï"  # a column name that is no identifier


@pytest.fixture(scope="module")
def prototype():
    return Prototype.from_frame(pd.DataFrame({
        "rooms": np.array([1, 2, 3, 9], dtype="int64"),
        "floors": np.array([1, 2, 1, 3], dtype="int32"),
        "area": [50.5, 60.0, 70.25, 80.0],
        "ratio": np.array([0.25, 0.5, 0.75, 1.0], dtype="float32"),
        "city": pd.array(["a", "b", "a", "c"], dtype="str"),
        "band": pd.Categorical(["low", "high", "low", "mid"]),
        "garden": [True, False, True, False],
        ODD: np.array(["x", "y", "x", "z"], dtype=object),
        "sq ft": [1.0, 2.0, 3.0, 4.0],
    }))


def good(rng: random.Random) -> dict:
    return {"rooms": rng.randint(1, 9), "floors": rng.randint(1, 3),
            "area": rng.choice([50.5, 80.0, 61, 70.125]), "ratio": rng.choice([0.25, 1, 0.5]),
            "city": rng.choice("abc"), "band": rng.choice(["low", "mid", "high"]),
            "garden": rng.choice([True, False]), ODD: rng.choice("xyz"),
            "sq ft": rng.choice([1, 2.5, 4.0])}


# values that are wrong for some column, or right for one and wrong for another
ODD_VALUES = [None, True, False, 0, 10, 3.0, 2.5, -1, 2**63, 2**70, 1e300, -0.0, "1", "a",
              "unseen", "", "x\u00e9", 80.0000001, 49.9, 0.2499999, 1.0000001, [], {}]


def body_of(rng: random.Random, n: int) -> bytes:
    rows = []
    for _ in range(n):
        row = good(rng)
        roll = rng.random()
        if roll < 0.2:
            row[rng.choice(list(row))] = rng.choice(ODD_VALUES)
        elif roll < 0.25:
            del row[rng.choice(list(row))]
        elif roll < 0.3:
            row["extra"] = 1
        rows.append(row)
    text = json.dumps(rows)
    if rng.random() < 0.05:  # a key given twice: the last one counts on both paths
        text = text.replace('{"rooms": ', '{"rooms": 99, "rooms": ', 1)
    return text.encode()


def general(conv: Converter, body: bytes):
    try:
        return conv.convert(parse_predict(body, "application/json", conv.names, keep=conv.keep))
    except FixativeError as exc:
        return exc


def same(a, b) -> None:
    if isinstance(a, Columns):
        assert isinstance(b, Columns) and a.n == b.n and a.columns == b.columns
        for name in a.arrays:
            assert a.arrays[name].dtype == b.arrays[name].dtype, name
            assert a.arrays[name].tolist() == b.arrays[name].tolist(), name
        assert a.dtypes == b.dtypes
        pd.testing.assert_frame_equal(a.frame(), b.frame())
    else:
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("columns", [True, False])
def test_what_the_typed_decoder_accepts_the_general_path_gives_identically(prototype, columns):
    conv = Converter(prototype, columns=columns)
    rng = random.Random(7)
    accepted = declined = 0
    for _ in range(600):
        body = body_of(rng, rng.choice([1, 1, 2, 5, 40]))
        typed = conv.records(body, 100_000)
        if typed is None:
            declined += 1
            continue
        accepted += 1
        expected = general(conv, body)
        assert not isinstance(expected, Exception), (body[:300], expected)
        frame, warnings = expected
        assert warnings == [], body[:300]
        same(typed, frame)
    # both sides of the property were exercised
    assert accepted > 150 and declined > 150, (accepted, declined)


@pytest.mark.parametrize("change", [
    {"rooms": 3.0},          # a whole float for an integer: the general path converts it
    {"rooms": True},         # a boolean is not an integer here
    {"rooms": 10},           # past the training range: the general path warns
    {"area": 80.0000001},    # just past a float64 column's range
    {"area": "61.5"},        # text for a number
    {"band": "unseen"},      # an unseen category: the general path warns
    {"city": None},          # a null
    {"garden": 1},           # a number for a boolean
    {"extra": 1},            # a key the model does not take: dropped with a warning
    {"rooms": 2**64},        # beyond 64 bits
])
def test_anything_but_typed_records_is_declined(prototype, change):
    conv = Converter(prototype, columns=True)
    row = {**good(random.Random(1)), **change}
    assert conv.records(json.dumps([row]).encode(), 100_000) is None


@pytest.mark.parametrize("body", [
    b"", b"   ", b"null", b"[]", b"{}", b'"[]"', b"[1, 2]", b"[[1, 2]]", b"[{}]",
    b'{"columns": ["rooms"], "data": [[1]]}', b"[{\"rooms\": NaN}]", b"\xff\xfe",
    b"[" * 10_000, b'[{"rooms": 1}] trailing',
])
def test_malformed_and_other_shapes_are_declined(prototype, body):
    assert Converter(prototype, columns=True).records(body, 100_000) is None


def test_rows_past_the_limit_are_declined_before_they_are_decoded(prototype):
    conv = Converter(prototype, columns=True)
    row = good(random.Random(2))
    body = json.dumps([row] * 11).encode()
    assert conv.records(body, 11) is not None
    assert conv.records(body, 10) is None
    # more records than the limit could possibly hold in these bytes: counted, not decoded
    decoder = conv._records
    assert decoder is not None
    tiny = b"[" + b",".join([b"{}"] * 200) + b"]"
    assert len(tiny) // decoder.min_row_bytes <= 10  # too short to hold 10 full records
    many = json.dumps([row] * 50).encode()
    assert len(many) // decoder.min_row_bytes > 10 and conv.records(many, 10) is None


def test_the_fewest_bytes_of_a_record_bound_the_rows_a_body_holds(prototype):
    """min_row_bytes is a true lower bound: the shortest record the decoder accepts, with
    its separator, takes at least that many bytes."""
    conv = Converter(prototype, columns=True)
    shortest = {"rooms": 1, "floors": 1, "area": 61, "ratio": 1, "city": "a",
                "band": "low", "garden": True, ODD: "x", "sq ft": 1}
    text = json.dumps([shortest] * 3, separators=(",", ":"), ensure_ascii=False).encode()
    assert conv.records(text, 3) is not None
    assert len(text) // conv._records.min_row_bytes >= 3


def test_the_server_answers_typed_and_general_bodies_alike(house_model, house_data):
    """The same rows sent as typed records (as vetiver's client writes them), as a body
    the typed decoder declines (an extra key), and as columnar JSON get the same
    predictions; the extra key is warned about."""
    features = house_data.drop(columns=["price"])
    house = bundle(house_model, features, name="house")
    rows = json.loads(features.head(50).to_json(orient="records"))
    with TestClient(create_app(house, tokens=[], log=False)) as client:
        converter = client.app.state.svc.converter
        assert converter.records(json.dumps(rows).encode(), 100) is not None  # typed
        typed = client.post("/predict", json=rows)
        extra = client.post("/predict", json=[{**r, "note": "x"} for r in rows])
        split = client.post("/predict", json={"columns": list(rows[0]),
                                              "data": [list(r.values()) for r in rows]})
    assert typed.status_code == extra.status_code == split.status_code == 200
    assert typed.json() == extra.json() == split.json()
    assert "X-Fixative-Warnings" not in typed.headers
    assert "note" in extra.headers["X-Fixative-Warnings"]


def test_names_msgspec_cannot_key_leave_the_general_path_to_read_them():
    proto = Prototype.from_frame(pd.DataFrame({'quote"d': [1, 2], "back\\slash": [0.5, 1.5]}))
    conv = Converter(proto, columns=True)
    assert conv._records is None
    body = json.dumps([{'quote"d': 1, "back\\slash": 1.0}]).encode()
    assert conv.records(body, 100) is None
    frame, warnings = general(conv, body)
    assert warnings == [] and frame.frame()['quote"d'].tolist() == [1]


def test_numbers_read_by_the_typed_decoder_are_the_doubles_the_general_path_reads(prototype):
    """Both parsers round every decimal text to the same double: long, short, with
    exponents, near the range's ends."""
    conv = Converter(prototype, columns=True)
    rng = random.Random(11)
    texts = []
    for _ in range(3000):
        x = rng.uniform(50.5, 80.0)
        texts.append(rng.choice([f"{x:.17g}", f"{x:.25f}", f"{x:.15e}", f"{x / 1000:.22f}e3",
                                 f"{x * 1e5:.0f}E-5", repr(x)]))
    texts += ["50.5", "80", "80.0", "50.50000000000000000001", "7.99999999999999999e1", "5.05e1"]
    row = {**good(random.Random(3)), "area": "AREA"}
    template = json.dumps(row).replace('"AREA"', "{}")
    body = ("[" + ",".join(template.replace("{}", t)
                           for t in texts) + "]").encode()
    typed = conv.records(body, 100_000)
    assert typed is not None
    frame, warnings = general(conv, body)
    assert warnings == []
    assert typed.arrays["area"].tolist() == frame.arrays["area"].tolist()
    assert typed.arrays["area"].tolist() == [float(t) for t in texts]


def _with(row: dict, key: str, raw: str) -> bytes:
    text = json.dumps([row])
    return text.replace(f'"{key}": {json.dumps(row[key])}', f'"{key}": {raw}', 1).encode()


@pytest.mark.parametrize("make, accepted", [
    (lambda r: _with(r, "area", "61." + "1" * 300_000), True),         # 300,000 digits
    (lambda r: _with(r, "rooms", "1" * 300_000), False),               # past any integer width
    (lambda r: _with(r, "area", "6.1e" + "0" * 300_000 + "1"), True),  # a 300,000-digit exponent
    (lambda r: _with(r, "area", "0." + "0" * 300_000 + "1"), False),   # tiny: out of range
    (lambda r: ("[{" + '"rooms": 3,' * 50_000 + json.dumps(r)[1:] + "]").encode(), True),
    (lambda r: _with(r, "city", '"' + "\\u0061" * 50_000 + '"'), False),  # unseen text
    (lambda r: _with(r, ODD, '"\\u0078"'), True),                        # an escaped "x"
    (lambda r: b"[" + b" " * 300_000 + json.dumps(r).encode() + b"]", True),
], ids=["long-number", "long-integer", "long-exponent", "long-tiny", "repeated-key",
        "escapes", "escaped-known", "whitespace"])
def test_hostile_bodies_are_read_alike_or_declined(prototype, make, accepted):
    """Bodies built to stress a number or string parser: whatever the typed decoder
    accepts, the general path reads to the same frame."""
    conv = Converter(prototype, columns=True)
    body = make(good(random.Random(5)))
    typed = conv.records(body, 100_000)
    assert (typed is not None) == accepted
    if typed is not None:
        frame, warnings = general(conv, body)
        assert warnings == []
        same(typed, frame)


def test_a_plan_without_columns_has_no_typed_decoder():
    from core.serving.records import decoder_for

    assert decoder_for([]) is None and decoder_for(None) is None
    wide = [(f"c{i}", "float", "float64", 0.0, 1.0, None) for i in range(5_000)]
    decoder = decoder_for(wide)
    assert decoder is not None
    body = json.dumps([{f"c{i}": 0.5 for i in range(5_000)}] * 2).encode()
    cols = decoder.decode(body, 10)
    assert cols is not None and len(cols) == 5_000 and cols["c4999"] == [0.5, 0.5]
