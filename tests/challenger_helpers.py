"""Challenger models for the champion/challenger tests: custom classes that must be
trusted to load (``challenger_helpers.Faulty`` / ``.Sleepy``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor

from core.model.bundle import bundle
from core.monitoring.actuals import save_actuals
from core.store.predlog import build_table, write_segment
from core.store.versionstore import VersionStore


class Faulty:
    """Takes the house model's inputs and fails on every prediction."""

    def __init__(self, names: list[str]) -> None:
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = len(names)
        # off while the bundle is made (it predicts on the sample); on once stored
        self.armed = False

    def predict(self, rows: object) -> np.ndarray:
        if self.armed:
            raise RuntimeError("the challenger is broken")
        return np.zeros(len(rows))  # type: ignore[arg-type]


class Sleepy(Faulty):
    """Takes the house model's inputs and takes ``seconds`` per prediction."""

    def __init__(self, names: list[str], seconds: float) -> None:
        super().__init__(names)
        self.seconds = seconds

    def predict(self, rows: object) -> np.ndarray:
        if self.armed:
            time.sleep(self.seconds)
        return np.zeros(len(rows))  # type: ignore[arg-type]


START = datetime(2026, 3, 2, tzinfo=UTC)


def log_as(store, name, version, frame, preds, ts, role, classes=None, latency=5.0,
           ids=None):
    """Log single-row requests q0, q1, ... as ``role`` of ``name@version``."""
    entries = []
    for i in range(len(frame)):
        rid = ids[i] if ids is not None else f"q{i}"
        entries.append((ts[i], rid, "predict", 200, latency, frame.iloc[i:i + 1].reset_index(
            drop=True), np.asarray([preds[i]]), None, None, None))
    by_day: dict[str, list] = {}
    for e in entries:
        by_day.setdefault(e[0].strftime("%Y-%m-%d"), []).append(e)
    for day, group in by_day.items():
        table = build_table(group, name, version, classes, {}, role=role)
        write_segment(store, name, version, day, f"{role}-{day}", table)


@pytest.fixture(scope="module")
def values_store(tmp_path_factory, house_data):
    store = VersionStore(str(tmp_path_factory.mktemp("cmp") / "board"))
    x = house_data.drop(columns=["price"])
    vs = [store.write(bundle(DummyRegressor().fit(x, house_data.price), x, name="flat")).version
          for _ in range(3)]
    rng = np.random.default_rng(3)
    n = 400
    y = rng.normal(100, 20, n)
    a = y + rng.normal(0, 10, n)
    b = y + rng.normal(0, 6, n)  # the challenger is better
    ts = [START + timedelta(hours=3 * i / 25) for i in range(n)]  # two days
    frame = x.head(n).reset_index(drop=True)
    log_as(store, "flat", vs[0], frame, a, ts, "champion", latency=4.0)
    log_as(store, "flat", vs[1], frame, b, ts, "challenger", latency=9.0)
    # the same model as the champion's, logged again as a challenger: identical answers
    log_as(store, "flat", vs[2], frame, a, ts, "challenger")
    keep = np.arange(n) % 4 != 3  # actuals for three rows in four
    save_actuals(store, "flat", pd.DataFrame({"id": [f"q{i}" for i in range(n) if keep[i]],
                                              "y": y[keep]}),
                 key_column="id", actual_column="y")
    return store, vs, y, a, b, keep, ts


def write_challengers(store, house_model, features: pd.DataFrame, sleep: float) -> None:
    """The champion ``house``, a second model of its prototype ``twin``, and the armed
    ``faulty`` (raises on every prediction) and ``sleepy`` (``sleep`` s per prediction)."""
    store.write(bundle(house_model, features, name="house"))
    store.write(bundle(house_model, features, name="twin"))  # another model, same prototype
    for name, model in (("faulty", Faulty(list(features.columns))),
                        ("sleepy", Sleepy(list(features.columns), sleep))):
        b = bundle(model, features, name=name)
        b.model.armed = True
        store.write(b)
