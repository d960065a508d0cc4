"""Recent requests of an endpoint, read from a real prediction log on a real board."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from core.deploy import views
from core.deploy.endpoints import Endpoint
from core.store.predlog import build_table, write_rows, write_segment
from core.store.versionstore import VersionStore


def _endpoint(started: datetime) -> Endpoint:
    return Endpoint(id="e1", name="m", version="v1", host="127.0.0.1", port=8080, pid=1,
                    started=started.isoformat(), log_file="", store="")


def test_recent_requests_show_their_predictions(tmp_path):
    store = VersionStore(str(tmp_path / "store"))
    now = datetime.now(UTC)
    five = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    predictions = np.array([412345.0, 0.125, 3.5, 4.0, 5.0])
    write_rows(store, "m", "v1", five, predictions, route="predict", ts=now)
    write_rows(store, "m", "v1", five.head(1), np.array([98765.4321]), route="predict",
               ts=now + timedelta(seconds=1))
    write_rows(store, "m", "v1", five.head(1), np.array([1.0]), route="predict",
               ts=now - timedelta(hours=1))  # before the endpoint started: not shown
    failed = (now + timedelta(seconds=2), "bad", "predict", 422, 1.0, None, None, None,
              "invalid_input")
    write_segment(store, "m", "v1", f"{failed[0]:%Y-%m-%d}", "failed-000001",
                  build_table([failed], "m", "v1", None, {"x": "float"}))
    recent = views.recent_requests(store, _endpoint(now - timedelta(seconds=5)), 10)
    assert list(recent.columns) == views.RECENT_COLUMNS
    assert recent["prediction"].tolist() == ["", "98,765.4",
                                             "412,345, 0.125, 3.5 … (5 rows)"]
    assert recent["rows"].tolist() == [0, 1, 5] and recent["status"].tolist()[0] == 422


def test_predictions_text():
    assert views.predictions_text(["yes"], 1) == "yes"
    assert views.predictions_text([], 0) == ""
    assert views.predictions_text(None, 3) == ""  # a failed request has none
    assert views.predictions_text([1.0, 2.0, 3.0], 10_000) == "1, 2, 3 … (10,000 rows)"
