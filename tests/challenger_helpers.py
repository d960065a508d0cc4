"""Challenger models for the champion/challenger tests: custom classes that must be
trusted to load (``challenger_helpers.Faulty`` / ``.Sleepy``)."""

from __future__ import annotations

import time

import numpy as np


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
