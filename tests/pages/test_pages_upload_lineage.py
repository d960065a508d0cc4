"""Upload page under AppTest: the metrics' data set and the training code are recorded."""

from __future__ import annotations

import io
from pathlib import Path

import joblib
import pytest
from streamlit.testing.v1 import AppTest

from core.store.versionstore import VersionStore

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "upload.py")


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FIXATIVE_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    return tmp_path / "store"


def _page(house_model) -> AppTest:
    buf = io.BytesIO()
    joblib.dump(house_model, buf)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    at.file_uploader(key="upload_model").set_value(("m.joblib", buf.getvalue(),
                                                    "application/octet-stream"))
    at.run()
    assert not at.exception, at.exception
    at.text_input(key="upload_name").input("houses")
    return at


def test_metrics_data_set_and_training_code_are_recorded(store_dir, house_model):
    at = _page(house_model)
    at.text_input(key="upload_metrics_data").input("holdout 2026-Q1")
    at.number_input(key="upload_metrics_rows").set_value(400)
    at.text_input(key="upload_training_code").input("git:3f2c1ab")
    at.button(key="upload_submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    store = VersionStore(str(store_dir))
    meta = store.meta("houses")
    assert meta.metrics_data == {"name": "holdout 2026-Q1", "rows": 400}
    assert meta.lineage["training_code"] == "git:3f2c1ab"
    assert meta.lineage["params"]["forest__n_estimators"] == 10


def test_bad_training_code_stores_nothing(store_dir, house_model):
    at = _page(house_model)
    at.text_input(key="upload_training_code").input("x" * 600)
    at.button(key="upload_submit").click().run()
    assert "Nothing was stored" in at.error[0].value
    assert "training_code must be one line" in at.error[0].value
    assert not store_dir.exists() or not VersionStore(str(store_dir)).list_models()
