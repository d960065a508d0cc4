"""Upload page under AppTest: a real upload, a hostile pickle, and every kind of wrong input."""

from __future__ import annotations

import io
import os
import pickle
import sys
from pathlib import Path

import joblib
import pytest
from safety_helpers import room_label
from streamlit.testing.v1 import AppTest

from core.model.bundle import bundle
from core.store.versionstore import VersionStore

# The page script runs on its own, as the app runs it inside its navigation; the
# selection comes from the URL's query parameters, as a deep link gives it.
PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "upload.py")


class _Hostile:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    path = tmp_path / "store"
    monkeypatch.setenv("FIXATIVE_STORE", str(path))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    return path


@pytest.fixture(scope="module")
def house_bytes(house_model) -> bytes:
    buf = io.BytesIO()
    joblib.dump(house_model, buf)
    return buf.getvalue()


def _upload_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _give(at: AppTest, data: bytes, filename: str, sample: tuple[bytes, str] | None = None
          ) -> AppTest:
    at.file_uploader(key="upload_model").set_value((filename, data, "application/octet-stream"))
    if sample is not None:
        at.file_uploader(key="upload_sample").set_value((sample[1], sample[0], "text/csv"))
    at.run()
    assert not at.exception, at.exception
    return at


def _errors(at: AppTest) -> str:
    return "\n".join(e.value for e in at.error)


def _versions(store_dir: Path) -> list:
    store = VersionStore(str(store_dir))
    return [v for m in store.list_models() for v in store.versions(m.name)]


def test_empty_page_says_what_to_do(store_dir):
    at = _upload_page()
    assert at.title[0].value == "Upload a model"
    assert "Choose a model file to start" in at.info[0].value
    assert not at.button


def test_upload_creates_a_version(store_dir, house_bytes, house_data):
    csv = house_data.head(300).to_csv(index=False).encode()
    at = _give(_upload_page(), house_bytes, "My House.joblib", (csv, "train.csv"))
    assert "allowlist" in at.success[0].value
    assert at.text_input(key="upload_name").value == "my-house"
    assert any("Creates the model `my-house`" in c.value for c in at.caption)
    # the metrics grid shows blank cells, not "None", in a row not filled in yet
    (grid,) = [d for d in at.dataframe if d.proto.editing_mode]
    assert grid.proto.HasField("placeholder") and grid.proto.placeholder == ""
    at.text_input(key="upload_name").input("houses")
    at.text_area(key="upload_description").input("first try")
    at.text_input(key="upload_tags").input("baseline, demo")
    at.button(key="upload_submit").click().run()
    assert not at.exception, at.exception
    assert not at.error, _errors(at)
    (info,) = _versions(store_dir)
    assert info.name == "houses" and info.description == "first try"
    assert sorted(info.tags) == ["baseline", "demo"]
    meta = VersionStore(str(store_dir)).meta("houses", info.version)
    assert meta.prototype.source == "sample" and meta.profile is not None
    # The page reran so the sidebar lists the new version; the message survived it.
    assert f"Stored **houses** version `{info.version}`." == at.success[0].value
    assert at.session_state["_fx_pending_selection"] == ("houses", info.version)
    assert any(f"(./models?model=houses&version={info.version})" in m.value
               for m in at.markdown)


def test_storing_the_same_file_twice_asks_first(store_dir, house_bytes):
    at = _give(_upload_page(), house_bytes, "house.joblib")
    at.button(key="upload_submit").click().run()
    assert not at.exception, at.exception
    (first,) = _versions(store_dir)
    # the file is still in the uploader: a second click would add an identical version
    assert any(f"already stored as `house@{first.version}`" in w.value for w in at.warning)
    assert at.button(key="upload_submit").disabled
    at.run()
    assert len(_versions(store_dir)) == 1
    at.checkbox(key=next(c.key for c in at.checkbox if c.key.startswith("upload_again_"))
                ).check().run()
    assert not at.button(key="upload_submit").disabled
    at.button(key="upload_submit").click().run()
    assert not at.exception, at.exception
    assert len(_versions(store_dir)) == 2


def test_hostile_pickle_shows_report_and_stores_nothing(store_dir, tmp_path):
    marker = tmp_path / "pwned"
    at = _give(_upload_page(), pickle.dumps(_Hostile(marker)), "evil.pkl")
    report = _errors(at)
    assert "evil.pkl would run posix.system when it is loaded" in report
    assert "cannot be trusted or loaded" in report
    # no way to trust it, and nothing to store
    assert not [c for c in at.checkbox if c.key.startswith("upload_trust_")]
    assert not [b for b in at.button if b.key == "upload_submit"]
    assert not marker.exists()
    assert _versions(store_dir) == []


def test_trusting_names_exactly_the_imports(store_dir):
    # A pickle that only references a user's function: untrusted, harmless to load, not a
    # model. (It used to reference os.getcwd; nothing in os can be trusted any more.)
    at = _give(_upload_page(), pickle.dumps(room_label), "ref.pkl")
    (trust,) = [c for c in at.checkbox if c.key.startswith("upload_trust_")]
    assert "safety_helpers.room_label" in trust.label
    trust.check().run()
    assert not at.button(key="upload_submit").disabled
    at.button(key="upload_submit").click().run()
    assert "Nothing was stored" in _errors(at) and "no predict method" in _errors(at)
    assert _versions(store_dir) == []


def test_a_function_of_the_training_script_is_explained_not_offered_for_trust(
        store_dir, monkeypatch):
    from sklearn.preprocessing import FunctionTransformer

    def clean(x):
        return x

    clean.__module__, clean.__qualname__ = "__main__", "clean"
    monkeypatch.setattr(sys.modules["__main__"], "clean", clean, raising=False)
    data = pickle.dumps(FunctionTransformer(clean))
    monkeypatch.delattr(sys.modules["__main__"], "clean")
    at = _give(_upload_page(), data, "scripted.pkl")
    said = _errors(at)
    assert "Move clean into a module of its own" in said and "__main__" in said
    assert "install that version" not in said.lower()
    assert not [c for c in at.checkbox if c.key.startswith("upload_trust_")]
    assert not [b for b in at.button if b.key == "upload_submit"]


@pytest.mark.parametrize("data, filename, message", [
    (b"", "empty.pkl", r"'empty.pkl' is empty \(0 bytes\)"),
    (b"this is not a pickle at all", "text.pkl", r"text.pkl"),
])
def test_bad_model_files(store_dir, data, filename, message):
    import re

    at = _give(_upload_page(), data, filename)
    assert re.search(message, _errors(at)), _errors(at)
    assert not [b for b in at.button if b.key == "upload_submit"]
    assert _versions(store_dir) == []


def test_not_a_model(store_dir):
    at = _give(_upload_page(), pickle.dumps({"weights": [1, 2, 3]}), "dict.pkl")
    at.button(key="upload_submit").click().run()
    assert "Nothing was stored" in _errors(at) and "dict has no predict method" in _errors(at)
    assert _versions(store_dir) == []


@pytest.mark.parametrize("sample, message", [
    (b"", r"'s.csv' is empty \(0 bytes\)"),
    (b"bedrooms,bathrooms\n", r"has a header but no rows"),
    (b"colour,size\nred,3\n", r"lacks columns the model was fitted on: bedrooms"),
])
def test_bad_samples_store_nothing(store_dir, house_bytes, sample, message):
    import re

    at = _give(_upload_page(), house_bytes, "house.joblib", (sample, "s.csv"))
    at.button(key="upload_submit").click().run()
    assert re.search(message, _errors(at)), _errors(at)
    assert _versions(store_dir) == []


def test_name_validated_as_you_type(store_dir, house_bytes):
    at = _give(_upload_page(), house_bytes, "house.joblib")
    at.text_input(key="upload_name").input("bad name/..").run()
    assert "not allowed" in _errors(at)
    assert at.button(key="upload_submit").disabled


def test_name_taken_by_another_kind(store_dir, house_bytes, churn_model, churn_data):
    VersionStore(str(store_dir)).write(
        bundle(churn_model, churn_data.drop(columns=["churned"]), name="houses"))
    at = _give(_upload_page(), house_bytes, "house.joblib")
    at.text_input(key="upload_name").input("houses").run()
    assert any("Adds a version to `houses`" in c.value for c in at.caption)
    at.button(key="upload_submit").click().run()
    text = _errors(at)
    assert "'houses' already holds Pipeline (binary)" in text
    assert "this file is Pipeline (regression)" in text and "'houses-regression'" in text
    assert len(_versions(store_dir)) == 1
