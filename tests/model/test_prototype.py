"""Input prototype: derivation from data and the validation rules of DESIGN.md."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.errors import InvalidArgument, InvalidInput
from core.model.prototype import Column, Prototype, to_frame


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "rooms": np.array([1, 2, 3, 4], dtype="int64"),
        "area": [50.5, 70.0, 80.25, 120.0],
        "city": ["a", "b", "a", "c"],
        "garden": [True, False, True, True],
    })


@pytest.fixture
def proto(frame) -> Prototype:
    return Prototype.from_frame(frame)


def test_derives_kinds_ranges_categories(proto):
    kinds = {c.name: c.kind for c in proto.columns}
    assert kinds == {"rooms": "int", "area": "float", "city": "category", "garden": "bool"}
    rooms = proto.column("rooms")
    assert (rooms.min, rooms.max, rooms.nullable) == (1.0, 4.0, False)
    assert proto.column("city").categories == ["a", "b", "c"]
    assert proto.source == "sample" and proto.missing_information is None


def test_round_trips_through_json(proto):
    again = Prototype.from_dict(json.loads(json.dumps(proto.to_dict())))
    assert again == proto


def test_nullable_column_is_recorded():
    p = Prototype.from_frame(pd.DataFrame({"x": [1.0, None, 3.0]}))
    assert p.column("x").nullable


def test_validate_converts_losslessly_and_orders_columns(proto):
    records = [{"garden": "true", "city": "b", "area": 60, "rooms": "2"},
               {"garden": False, "city": "a", "area": 74.5, "rooms": 3.0}]
    out, warnings = proto.validate(records)
    assert list(out.columns) == ["rooms", "area", "city", "garden"]
    assert out["rooms"].tolist() == [2, 3] and out["rooms"].dtype == np.int64
    assert out["area"].tolist() == [60.0, 74.5] and out["area"].dtype == np.float64
    assert out["garden"].tolist() == [True, False]
    assert warnings == []


def test_missing_column_is_named(proto):
    with pytest.raises(InvalidInput, match="column 'city' is missing") as err:
        proto.validate([{"rooms": 1, "area": 60.0, "garden": True}])
    assert err.value.details[0]["column"] == "city"


def test_extra_column_dropped_and_reported(proto):
    out, warnings = proto.validate([{"rooms": 1, "area": 60.0, "city": "a", "garden": True,
                                     "price": 10}])
    assert "price" not in out.columns
    assert warnings == ["extra columns dropped: 'price'"]


@pytest.mark.parametrize("bad", ["abc", 1.7, True, float("inf"), 1e300, 2.0**63, -(2.0**64),
                                 "1e30", 2**63, "9223372036854775808", "12.5"])
def test_lossy_int_conversion_is_refused(proto, bad):
    with pytest.raises(InvalidInput, match="column 'rooms' expects an integer"):
        proto.validate([{"rooms": bad, "area": 60.0, "city": "a", "garden": True}])


@pytest.mark.parametrize("value", [2**63 - 1, -(2**63), 2557863443820377553,
                                   "2557863443820377553", " 42 ", -(2.0**63), 2.0**60])
def test_whole_numbers_reach_an_int_column_exactly(proto, value):
    # no float64 round trip: above 2**53 that would round 2557863443820377553 to ...600
    frame, _ = proto.validate([{"rooms": value, "area": 60.0, "city": "a", "garden": True},
                               {"rooms": 2, "area": 61.5, "city": "a", "garden": True}])
    assert frame["rooms"].dtype == "int64"
    assert int(frame["rooms"].iloc[0]) == int(str(value).strip().split(".")[0]) \
        if not isinstance(value, float) else int(value)


def test_string_into_float_refused(proto):
    with pytest.raises(InvalidInput, match="column 'area' expects a number"):
        proto.validate([{"rooms": 1, "area": "big", "city": "a", "garden": True}])


def test_null_where_training_had_none(proto):
    with pytest.raises(InvalidInput, match="column 'area' is null or absent in row 1"):
        proto.validate([{"rooms": 1, "area": 60.0, "city": "a", "garden": True},
                        {"rooms": 1, "area": None, "city": "a", "garden": True}])


def test_null_allowed_when_model_accepts_nulls(frame):
    p = Prototype.from_frame(frame)
    p.accepts_nulls = True
    out, _ = p.validate([{"rooms": 1, "area": None, "city": "a", "garden": True}])
    assert np.isnan(out["area"][0])


def test_every_problem_reported_at_once(proto):
    rows = [{"rooms": "x", "area": "y", "city": 1.5, "garden": "maybe"}] * 3
    with pytest.raises(InvalidInput) as err:
        proto.validate(rows)
    columns = {d["column"] for d in err.value.details}
    assert columns == {"rooms", "area", "city", "garden"}
    first = err.value.details[0]
    assert first["rows"] == [0, 1, 2] and first["n_rows"] == 3 and first["got"] == ["x"] * 3


def test_unseen_category_is_a_warning(proto):
    _, warnings = proto.validate([{"rooms": 1, "area": 60.0, "city": "zzz", "garden": True}])
    assert warnings == ["column 'city': 1 value(s) never seen in training (zzz)"]


def test_unseen_value_of_a_categorical_column_is_named_in_the_warning():
    sample = pd.DataFrame({"city": pd.Categorical(["oslo", "bergen", "oslo"]), "n": [1, 2, 3]})
    proto = Prototype.from_frame(sample)
    frame, warnings = proto.validate([{"city": "tromso", "n": 2}])
    assert warnings == ["column 'city': 1 value(s) never seen in training (tromso)"]
    # a categorical column cannot hold it: the model gets a null, as for any unknown
    assert frame["city"].isna().tolist() == [True]


def test_out_of_range_is_a_warning(proto):
    _, warnings = proto.validate([{"rooms": 99, "area": 60.0, "city": "a", "garden": True}])
    assert any("outside the training range 1 to 4" in w for w in warnings)


@pytest.mark.parametrize(("kind", "lo", "hi", "text"), [
    ("int", 1.0, 4.0, "1 to 4"),
    ("float", 75_000.0, 7_700_000.0, "75000 to 7700000"),  # not 7.7e+06
    ("float", -0.5, 0.1234567, "-0.5 to 0.123457"),
    ("float", 1e-7, 2.5e13, "1e-07 to 2.5e+13"),
    ("int", -3.0, 0.0, "-3 to 0"),
])
def test_training_ranges_read_as_numbers_people_write(kind, lo, hi, text):
    assert Column("x", kind, min=lo, max=hi).range_text() == text


def test_ranges_in_the_schema_and_warnings_use_the_column_kind():
    sample = pd.DataFrame({"rooms": [1, 3, 12], "price": [75_000.0, 2e5, 7.7e6]})
    proto = Prototype.from_frame(sample)
    props = proto.json_schema()["properties"]
    assert props["rooms"]["description"] == "seen in training: 1 to 12"
    assert props["price"]["description"] == "seen in training: 75000 to 7700000"
    _, warnings = proto.validate([{"rooms": 40, "price": 1e8}])
    assert warnings == [
        "column 'rooms': 1 value(s) outside the training range 1 to 12",
        "column 'price': 1 value(s) outside the training range 75000 to 7700000"]
    assert Column("n", "int").range_text() is None


def test_empty_input_is_an_error(proto):
    with pytest.raises(InvalidInput, match="no rows"):
        proto.validate([])


def test_nested_values_are_refused(proto):
    with pytest.raises(InvalidArgument, match="nested value"):
        proto.validate([{"rooms": [1, 2], "area": 60.0, "city": "a", "garden": True}])


def test_rows_of_wrong_width(proto):
    with pytest.raises(InvalidInput, match="4 columns"):
        proto.validate([[1, 2.0, "a"]])
    with pytest.raises(InvalidArgument, match="different lengths"):
        to_frame([[1, 2], [1]])


def test_mixed_records_and_rows_refused():
    with pytest.raises(InvalidArgument, match="not a mix"):
        to_frame([{"a": 1}, [1]])


def test_column_mapping_and_array_inputs(proto):
    out, _ = proto.validate({"rooms": [1, 2], "area": [1.0, 2.0], "city": ["a", "b"],
                             "garden": [True, False]})
    assert len(out) == 2
    arr = Prototype.from_n_features(3)
    out, _ = arr.validate(np.array([[1, 2, 3], [4, 5, 6]]))
    assert out.shape == (2, 3) and out.dtypes.eq(np.float64).all()


def test_hostile_strings_are_reported_truncated(proto):
    huge = "x" * 100_000
    with pytest.raises(InvalidInput) as err:
        proto.validate([{"rooms": huge, "area": 60.0, "city": "a", "garden": True}])
    assert len(err.value.details[0]["got"][0]) == 100
    assert len(err.value.message) < 1000


def test_many_extra_columns(proto):
    rec = {"rooms": 1, "area": 60.0, "city": "a", "garden": True}
    rec.update({f"c{i}": i for i in range(10_000)})
    out, warnings = proto.validate([rec])
    assert out.shape == (1, 4)
    assert "and 9980 more" in warnings[0]


def test_large_batch_is_vectorised(proto):
    big = pd.DataFrame({"rooms": np.arange(200_000) % 4 + 1, "area": 60.5,
                        "city": "a", "garden": True})
    out, warnings = proto.validate(big)
    assert len(out) == 200_000 and warnings == []


def test_category_dtype_kept_for_models_that_need_it():
    frame = pd.DataFrame({"c": pd.Categorical(["x", "y", "x"])})
    p = Prototype.from_frame(frame)
    out, warnings = p.validate([{"c": "y"}, {"c": "new"}])
    assert isinstance(out["c"].dtype, pd.CategoricalDtype)
    assert list(out["c"].cat.categories) == ["x", "y"]
    assert warnings and "never seen" in warnings[0]


def test_datetime_column():
    p = Prototype.from_frame(pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-02-01"])}))
    assert p.column("t").kind == "datetime"
    out, _ = p.validate([{"t": "2024-03-05T10:00:00"}])
    assert out["t"][0] == pd.Timestamp("2024-03-05T10:00:00")
    with pytest.raises(InvalidInput, match="date-time"):
        p.validate([{"t": "not a date"}])


def test_json_schema(proto):
    schema = proto.json_schema()
    assert schema["required"] == ["rooms", "area", "city", "garden"]
    assert schema["properties"]["rooms"]["type"] == "integer"
    assert schema["properties"]["garden"]["type"] == "boolean"
    assert "categories seen in training: a, b, c" in schema["properties"]["city"]["description"]


def test_names_only_prototype_checks_columns_and_says_what_is_missing():
    p = Prototype.from_names(["a", "b"])
    assert "No training sample" in p.missing_information
    with pytest.raises(InvalidInput, match="column 'b' is missing"):
        p.validate([{"a": 1}])


def test_empty_sample_refused():
    with pytest.raises(InvalidArgument, match="no rows"):
        Prototype.from_frame(pd.DataFrame({"a": []}))
    with pytest.raises(InvalidArgument, match="no columns"):
        Prototype.from_frame(pd.DataFrame())


def test_column_from_dict_ignores_unknown_keys():
    c = Column.from_dict({"name": "a", "kind": "int", "future_field": 1})
    assert c.name == "a" and c.kind == "int"
