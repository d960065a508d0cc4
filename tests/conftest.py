"""Shared fixtures: real models trained on generated data, real stores in temp folders."""

from __future__ import annotations

import pandas as pd
import pytest

from core.model import examples


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
