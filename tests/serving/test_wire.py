"""Request parsing: vetiver records, rows, columnar JSON, MLflow envelopes, CSV; the fast
conversion path must give exactly what Prototype.validate gives."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from core.model.bundle import bundle
from core.serving import wire
from core.serving.convert import Converter
from core.serving.limits import Limits


@pytest.fixture(scope="module")
def house(house_model, house_data):
    return bundle(house_model, house_data.drop(columns=["price"]), name="house")


@pytest.fixture(scope="module")
def conv(house):
    return Converter(house.prototype)


@pytest.fixture(scope="module")
def rows(house_data):
    return house_data.drop(columns=["price"]).head(5)


def records_of(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


def convert(conv, body, ctype=None, route="predict", limits=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    parse = wire.parse_invocations if route == "invocations" else wire.parse_predict
    return conv.convert(parse(raw, ctype, conv.names, limits))


# -- shapes -------------------------------------------------------------------------------


def test_records_rows_and_columnar_give_the_same_frame(conv, rows, house):
    names = list(rows.columns)
    recs = records_of(rows)
    expected, _ = house.prototype.validate(rows)
    as_rows = [[r[n] for n in names] for r in recs]
    bodies = [
        recs,
        as_rows,
        {"columns": names, "data": as_rows},
        {n: [r[n] for r in recs] for n in names},
    ]
    for body in bodies:
        frame, warnings = convert(conv, body)
        pd.testing.assert_frame_equal(frame, expected)
        assert warnings == []


def test_mlflow_envelopes(conv, rows, house):
    names = list(rows.columns)
    recs = records_of(rows)
    as_rows = [[r[n] for n in names] for r in recs]
    expected, _ = house.prototype.validate(rows)
    for body in [
        {"dataframe_split": {"columns": names, "data": as_rows, "index": list(range(5))}},
        {"dataframe_records": recs},
        {"instances": recs},
        {"inputs": as_rows},
        {"inputs": {n: [r[n] for r in recs] for n in names}},
        {"columns": names, "data": as_rows},
    ]:
        frame, _ = convert(conv, body, "application/json", route="invocations")
        pd.testing.assert_frame_equal(frame, expected)


def test_mlflow_params_are_kept(conv, rows):
    payload = wire.parse_invocations(
        json.dumps({"inputs": records_of(rows), "params": {"predict_method": "predict"}}).encode(),
        "application/json", conv.names)
    assert payload.params == {"predict_method": "predict"}
    assert payload.fmt == "inputs"


@pytest.mark.parametrize("body, match", [
    ({"records": []}, "exactly one of the fields dataframe_split"),
    ({"inputs": [], "instances": []}, "exactly one of the fields"),
    ([{"a": 1}], "expects a JSON object with exactly one"),
    ({"dataframe_split": [1, 2]}, "'dataframe_split' must be an object"),
    ({"dataframe_records": {"a": 1}}, "'dataframe_records' must be a JSON array"),
    ({"inputs": [{"a": 1}], "params": [1]}, "'params' must be a JSON object"),
])
def test_mlflow_envelope_errors(conv, body, match):
    with pytest.raises(BadRequest, match=match):
        wire.parse_invocations(json.dumps(body).encode(), "application/json", conv.names)


def test_single_record_object_is_one_row(conv, rows, house):
    frame, _ = convert(conv, records_of(rows)[0])
    assert len(frame) == 1


def test_vetiver_double_encoded_string_is_unwrapped(conv, rows):
    inner = rows.to_json(orient="records")
    frame, _ = convert(conv, json.dumps(inner).encode())
    assert len(frame) == 5


def test_csv_keeps_text_columns_as_text(conv, rows, house):
    body = rows.to_csv(index=False).encode()
    frame, warnings = convert(conv, body, "text/csv; charset=utf-8")
    expected, _ = house.prototype.validate(rows)
    pd.testing.assert_frame_equal(frame, expected)
    assert warnings == []


def test_csv_bad_numbers_are_listed_by_row(conv, rows):
    bad = rows.copy().astype(object)
    bad.loc[2, "bedrooms"] = "three"
    with pytest.raises(InvalidInput, match="column 'bedrooms' expects an integer; row 2") as e:
        convert(conv, bad.to_csv(index=False).encode(), "text/csv")
    assert e.value.details[0]["rows"] == [2]


@pytest.mark.parametrize("body, match", [
    (b"", "CSV body is empty"),
    (b"bedrooms,bathrooms\n", "header but no rows"),
    (b"a,b\n\xff\xfe,1\n", "not valid UTF-8"),
    (b'a,b\n"1,2\n', "could not be parsed"),
])
def test_csv_errors(conv, body, match):
    with pytest.raises((BadRequest, InvalidInput), match=match):
        convert(conv, body, "text/csv")


# -- hostile JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize("body, match", [
    (b"", "request body is empty"),
    (b"   ", "request body is empty"),
    (b"[{\"bedrooms\": NaN}]", "NaN and Infinity are not JSON"),
    (b"[{\"bedrooms\": Infinity}]", "NaN and Infinity are not JSON"),
    (b"[{\"bedrooms\": 1e400}]", "too large for a 64-bit float"),
    (b"\xff\xfe[\x00{", "not valid UTF-8"),
    (b"[{\"a\": 1,}]", "not valid JSON"),
    (b"[{'a': 1}]", "not valid JSON|not JSON"),
    (b"42", "must be a JSON array of records, got a number"),
    (b"\"hello\"", "must be a JSON array of records, got a string"),
    (b"null", "got null"),
    (b"[1, 2, 3]", "not of plain values"),
])
def test_hostile_json_is_a_clear_400(conv, body, match):
    with pytest.raises(BadRequest, match=match):
        convert(conv, body)


@pytest.mark.parametrize("body, match", [
    (b"[" * 100_000 + b"]" * 100_000, "nested 100000 levels deep; this server reads at most 32"),
    (b"{\"a\": [" * 5000, "nested 10000 levels deep"),
    (b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "nested 33 levels"),
])
def test_json_nested_past_the_limit_is_a_413(conv, body, match):
    with pytest.raises(PayloadTooLarge, match=match):
        convert(conv, body)


def test_brackets_inside_strings_are_not_nesting():
    body = json.dumps([{"a": "[" * 50 + "\\\"{" * 50}]).encode()
    assert wire._structure(body) == (2, 2)
    assert wire._structure(b'[{"a": "]]]]"}, [[1]]]') == (4, 3)


def _nesting_by_hand(text: str) -> tuple[int, int]:
    """(arrays and objects, deepest nesting) of a JSON text, one character at a time."""
    inside = escaped = False
    level = deepest = containers = 0
    for ch in text:
        if inside:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                inside = False
        elif ch == '"':
            inside = True
        elif ch in "[{":
            level += 1
            containers += 1
            deepest = max(deepest, level)
        elif ch in "]}":
            level -= 1
    return containers, deepest


def test_the_structure_count_matches_a_count_by_hand_on_random_json():
    """Both ways of counting (brackets only, when no string holds one; quote parity
    otherwise) agree with a character-by-character count, strings full of brackets,
    quotes and escapes included."""
    import random

    rng = random.Random(3)
    texts = ["", "a", "[", "]", '"["', "\\", '"\\""', "[{}]"]

    def value(depth: int):
        roll = rng.random()
        if depth > 8 or roll < 0.35:
            return rng.choice([1, 2.5, None, True, "x", "[", "]]", "{", '"', "\\", "\\[",
                               '\\"]', "", "}{", "ünï["])
        if roll < 0.7:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {rng.choice(["a", "[k", 'q"', "\\", "}"]): value(depth + 1)
                for _ in range(rng.randint(0, 4))}

    for _ in range(3000):
        texts.append(json.dumps(value(0), ensure_ascii=rng.random() < 0.5))
    for text in texts:
        assert wire._structure(text.encode()) == _nesting_by_hand(text), text


def test_empty_array_is_a_422(conv):
    with pytest.raises(InvalidInput, match="has no rows"):
        convert(conv, [])
    with pytest.raises(InvalidInput, match="has no rows"):
        convert(conv, {"columns": ["a"], "data": []})


def test_duplicate_keys_last_wins(conv, rows, house):
    rec = records_of(rows)[0]
    text = json.dumps(rec)[:-1] + ', "bedrooms": 5}'
    frame, _ = convert(conv, ("[" + text + "]").encode())
    assert frame["bedrooms"].tolist() == [5]


def test_integers_beyond_64_bits_are_rejected_not_wrapped(conv, rows):
    rec = json.dumps(records_of(rows)[0])
    for literal in ("123456789012345678901234567890", "1e300", "-9223372036854775809"):
        body = ("[" + rec[:-1] + f', "bedrooms": {literal}' + "}]").encode()
        with pytest.raises(InvalidInput, match="too large for 64 bits"):
            convert(conv, body)


def test_strings_in_integer_columns_get_the_validators_full_report(conv):
    body = b'[{"bedrooms": "x", "sqft_living": 1.5}]'
    with pytest.raises(InvalidInput) as err:
        convert(conv, body)
    message = err.value.message
    assert "column 'zipcode' is missing" in message
    assert "column 'bedrooms' expects an integer" in message
    assert "column 'sqft_living' expects an integer" in message
    assert {d["column"] for d in err.value.details} >= {"bedrooms", "sqft_living", "zipcode"}


def test_nested_values_are_rejected(conv, rows):
    names = list(rows.columns)
    recs = records_of(rows)
    as_rows = [[r[n] for n in names] for r in recs]
    as_rows[1][0] = [1, 2]
    with pytest.raises(BadRequest, match="nested value"):
        convert(conv, as_rows)
    with pytest.raises(BadRequest, match="nested value"):
        convert(conv, {"columns": names, "data": as_rows})
    recs[0]["bedrooms"] = {"x": 1}
    with pytest.raises(BadRequest, match="nested value"):
        convert(conv, recs)


def test_ten_thousand_columns(conv, rows):
    rec = records_of(rows)[0]
    wide = dict(rec, **{f"extra_{i}": i for i in range(10_000)})
    with pytest.raises(PayloadTooLarge, match="has 10,006 columns; this server takes at "
                                              "most 1,000 columns per request"):
        convert(conv, [wide])
    roomy = Limits(max_columns=20_000)
    frame, warnings = convert(conv, [wide], limits=roomy)
    assert list(frame.columns) == conv.names
    assert warnings[0].startswith("extra columns dropped: 'extra_0'")
    assert "and 9980 more" in warnings[0]
    with pytest.raises(InvalidInput, match="column 'bedrooms' is missing"):
        convert(conv, [{f"c{i}": i for i in range(10_000)}], limits=roomy)


def test_records_each_with_other_extra_keys_build_only_the_model_columns(conv, rows, house):
    # Each record brings its own extra key: a frame of every key would be rows × keys
    # cells (20,000² here); only the model's columns are built.
    rec = records_of(rows)[0]
    n = 20_000
    frame, warnings = convert(conv, [dict(rec, **{f"k{i}": i}) for i in range(n)])
    expected, _ = house.prototype.validate([rec])
    assert frame.shape == (n, len(conv.names))
    pd.testing.assert_frame_equal(frame.head(1), expected)
    assert warnings == ["extra columns dropped: " + ", ".join(f"'k{i}'" for i in range(20))
                        + f" and {n - 20} more"]


def test_empty_and_partial_records_name_what_is_missing(conv, rows):
    with pytest.raises(InvalidInput) as err:
        convert(conv, [{}])
    assert "column 'bedrooms' is missing" in err.value.message
    assert "no rows" not in err.value.message
    full = records_of(rows)[0]
    partial = {k: v for k, v in full.items() if k != "bedrooms"}
    with pytest.raises(InvalidInput, match="column 'bedrooms' is null or absent in row 1"):
        convert(conv, [full, partial])


@pytest.mark.parametrize("extra", [",5", ",5,6", ","])
def test_csv_rows_wider_than_the_header_are_refused_not_shifted(conv, rows, extra):
    text = rows.head(2).to_csv(index=False)
    header, first, second = text.strip().split("\n")
    body = "\n".join([header, first, second + extra]).encode()
    width = len(header.split(","))
    with pytest.raises(BadRequest, match=rf"one field per header column \({width}\); row 1 has "
                                         rf"{width + extra.count(',')}\. Quote values"):
        convert(conv, body, "text/csv")


def test_csv_header_naming_a_column_twice_or_with_spaces(conv, rows, house):
    text = rows.head(2).to_csv(index=False)
    header, *data = text.strip().split("\n")
    names = header.split(",")
    doubled = ",".join([names[0], *names]) + "\n" + "\n".join(
        f"{r.split(',')[0]},{r}" for r in data)
    with pytest.raises(BadRequest, match=f"names a column twice: {names[0]}"):
        convert(conv, doubled.encode(), "text/csv")
    spaced = ", ".join(names) + "\n" + "\n".join(", ".join(r.split(",")) for r in data)
    frame, _ = convert(conv, spaced.encode(), "text/csv")
    expected, _ = house.prototype.validate(rows.head(2))
    pd.testing.assert_frame_equal(frame, expected)


def test_large_integers_keep_every_digit_on_every_path(conv, rows):
    rec = records_of(rows)[0]
    big = 2557863443820377553  # float64 would make it ...600
    clean = dict(rec, bedrooms=big)
    extra = dict(rec, bedrooms=big, note="x")  # not the fast path
    as_text = dict(rec, bedrooms=str(big))
    for body in ([clean], [extra], [as_text], [dict(rec, bedrooms=2**63 - 1)]):
        frame, _ = convert(conv, body)
        assert int(frame["bedrooms"].iloc[0]) == int(body[0]["bedrooms"])
    csv_body = rows.head(1).assign(bedrooms=big).to_csv(index=False).encode()
    frame, _ = convert(conv, csv_body, "text/csv")
    assert int(frame["bedrooms"].iloc[0]) == big


@pytest.fixture(scope="module")
def array_model():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 4))
    return bundle(LinearRegression().fit(X, X @ [1.0, 2.0, 3.0, 4.0]), name="arr"), X


def test_a_model_fitted_on_an_array_takes_columns_by_position(array_model):
    # vetiver's client and pandas name an array's columns 0, 1, ...: they mean positions
    b, X = array_model
    conv = Converter(b.prototype)
    expected = b.model.predict(X[:3])
    frame_df = pd.DataFrame(X[:3])
    bodies = [
        (json.loads(frame_df.to_json(orient="records")), None),  # keys "0".."3"
        (json.loads(frame_df.to_json(orient="split", index=False)), None),  # columns [0..3]
        ({str(i): X[:3, i].tolist() for i in range(4)}, None),
        (frame_df.to_csv(index=False).encode(), "text/csv"),
        (X[:3].tolist(), None),
    ]
    for body, ctype in bodies:
        frame, warnings = convert(conv, body, ctype)
        assert list(frame.columns) == b.prototype.names and warnings == []
        np.testing.assert_allclose(b.model.predict(frame.to_numpy()), expected)
    with pytest.raises(InvalidInput, match="column 'x2' is missing"):
        convert(conv, [{"0": 1.0, "1": 2.0, "3": 4.0}])


def test_split_errors(conv, rows):
    names = list(rows.columns)
    with pytest.raises(BadRequest, match="names a column twice: bedrooms"):
        convert(conv, {"columns": names + ["bedrooms"], "data": [[1] * (len(names) + 1)]})
    with pytest.raises(BadRequest, match="row 1 has 2"):
        convert(conv, {"columns": names, "data": [[1] * len(names), [1, 2]]})
    for columns in ([1.5, 2], [True, False], [-1, 0], [None, "a"]):
        with pytest.raises(BadRequest, match="array of column names"):
            convert(conv, {"columns": columns, "data": [[1, 2]]})
    with pytest.raises(BadRequest, match="array of rows"):
        convert(conv, {"columns": names, "data": "x"})


def test_rows_of_wrong_width(conv):
    with pytest.raises(InvalidInput, match="Each row has 2 values but the model expects 6"):
        convert(conv, [[1, 2], [3, 4]])


# -- fast path == validate ----------------------------------------------------------------------


def test_fast_path_used_only_for_clean_input(conv, rows):
    payload = wire.parse_predict(json.dumps(records_of(rows)).encode(), None, conv.names)
    assert payload.columns is not None
    assert conv._fast(payload.columns) is not None
    dirty = records_of(rows)
    dirty[0]["zipcode"] = "00000"  # unseen category: the validator must warn
    payload = wire.parse_predict(json.dumps(dirty).encode(), None, conv.names)
    assert conv._fast(payload.columns) is None


@pytest.mark.parametrize("change, warns", [
    ({}, False),
    ({"bedrooms": "3"}, False),          # numeric text converts without loss
    ({"bathrooms": 2}, False),           # int into a float column
    ({"sqft_living": 10**6}, True),      # outside the training range
    ({"zipcode": "99999"}, True),        # unseen category
    ({"zipcode": 98001}, False),         # int for a text column converts
])
def test_fast_and_general_paths_agree(conv, house, rows, change, warns):
    recs = records_of(rows)
    for r in recs:
        r.update(change)
    frame, warnings = convert(conv, recs)
    expected, expected_warnings = house.prototype.validate(recs)
    pd.testing.assert_frame_equal(frame, expected)
    assert warnings == expected_warnings
    assert bool(warnings) == warns


def test_every_bad_column_and_row_at_once(conv, rows):
    recs = records_of(rows)
    recs[1]["bedrooms"] = 2.5
    recs[3]["bedrooms"] = "many"
    recs[2]["bathrooms"] = None
    del recs[4]["grade"]
    with pytest.raises(InvalidInput) as e:
        convert(conv, recs)
    problems = {(p["column"], p["problem"]): p for p in e.value.details}
    assert problems[("bedrooms", "wrong_type")]["rows"] == [1, 3]
    assert problems[("bathrooms", "null")]["rows"] == [2]
    assert problems[("grade", "null")]["rows"] == [4]


def test_bools_are_not_numbers(conv, rows):
    recs = records_of(rows)
    recs[0]["bedrooms"] = True
    with pytest.raises(InvalidInput, match="column 'bedrooms' expects an integer"):
        convert(conv, recs)


def test_classifier_prototype_fast_path(churn_model, churn_data):
    b = bundle(churn_model, churn_data.drop(columns=["churned"]), name="churn")
    c = Converter(b.prototype)
    recs = records_of(churn_data.drop(columns=["churned"]).head(50))
    frame, _ = convert(c, recs)
    expected, _ = b.prototype.validate(recs)
    pd.testing.assert_frame_equal(frame, expected)
    assert np.array_equal(churn_model.predict(frame), churn_model.predict(expected))


# -- media types ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ctype, kind", [
    (None, "json"), ("", "json"), ("application/json", "json"),
    ("application/json; charset=utf-8", "json"), ("text/plain", "json"),
    ("application/x-www-form-urlencoded", "json"), ("application/vnd.api+json", "json"),
    ("text/csv", "csv"), ("TEXT/CSV; header=present", "csv"),
])
def test_accepted_media_types(ctype, kind):
    assert wire.check_media_type(ctype) == kind


@pytest.mark.parametrize("ctype", ["application/xml", "multipart/form-data; boundary=x",
                                   "application/octet-stream", "image/png"])
def test_unsupported_media_types(ctype):
    with pytest.raises(UnsupportedMediaType, match="send JSON .* or CSV"):
        wire.check_media_type(ctype)
