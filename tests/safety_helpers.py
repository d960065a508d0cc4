"""A harmless custom model class for tests/test_safety.py.

It lives in its own importable module so that pickles refer to it by name
(``safety_helpers.Thermostat``), as they would to a user's own class.
"""

from __future__ import annotations

import numpy as np


class Thermostat:
    """Predicts its setpoint for every row: custom code that is safe to trust."""

    def __init__(self, setpoint: float) -> None:
        self.setpoint = setpoint

    def predict(self, rows: object) -> np.ndarray:
        return np.full(len(rows), self.setpoint, dtype=float)  # type: ignore[arg-type]


def room_label(name: str) -> str:
    """A user's plain function: what a pickle that only names it loads (no model)."""
    return name.title()
