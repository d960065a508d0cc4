"""Shared fixtures: real models trained on generated data, real stores in temp folders."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from core import settings
from core.model import examples

# Compiling a version to ONNX costs a second or more per write (skl2onnx); the tests of
# compiling (tests/store/test_compile.py, tests/serving/test_engines.py) turn it on.
os.environ.setdefault(settings.COMPILE_ENV, "0")


@pytest.fixture(scope="session")
def house_data() -> pd.DataFrame:
    return examples.house_prices(800, seed=0)


@pytest.fixture(scope="session")
def house_model(house_data):
    return examples.house_model(house_data, n_estimators=10)


@pytest.fixture(scope="session")
def churn_data() -> pd.DataFrame:
    return examples.churn(800, seed=1)


@pytest.fixture(scope="session")
def churn_model(churn_data):
    return examples.churn_model(churn_data)


@pytest.fixture(autouse=True)
def _fresh_sign_in_throttle():
    """Page tests run the workbench in this process, all from one (loopback) address:
    each test starts with no wrong passwords remembered."""
    from core.workbench.access import THROTTLE

    THROTTLE.reset()
    yield
