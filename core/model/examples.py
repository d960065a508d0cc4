"""Example models trained on locally generated data (nothing is downloaded).

Used by the workbench's "Add an example model" button, the tests and the benchmarks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ZIPCODES = ["98001", "98004", "98033", "98052", "98103", "98115", "98125", "98199"]


def house_prices(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Synthetic house sales: features plus a ``price`` column."""
    rng = np.random.default_rng(seed)
    bedrooms = rng.integers(1, 7, n)
    bathrooms = np.round(rng.uniform(0.75, 4.5, n) * 4) / 4
    sqft = np.round(rng.normal(800 + 450 * bedrooms, 300).clip(400, 8000)).astype(np.int64)
    zipcode = rng.choice(ZIPCODES, n)
    grade = rng.integers(4, 13, n)
    yr_built = rng.integers(1900, 2024, n)
    zip_effect = pd.Series(zipcode).map({z: i * 25_000 for i, z in enumerate(ZIPCODES)})
    price = (50_000 + 180 * sqft + 12_000 * bathrooms + 25_000 * grade
             + 300 * (yr_built - 1900) + zip_effect.to_numpy() + rng.normal(0, 40_000, n))
    return pd.DataFrame({
        "bedrooms": bedrooms,
        "bathrooms": bathrooms,
        "sqft_living": sqft,
        "grade": grade,
        "yr_built": yr_built,
        "zipcode": zipcode,
        "price": np.round(price, 2),
    })


def house_model(data: pd.DataFrame | None = None, n_estimators: int = 30) -> Pipeline:
    """A ColumnTransformer (one-hot zipcode + numerics) feeding a random forest."""
    data = house_prices() if data is None else data
    features = data.drop(columns=["price"])
    numeric = [c for c in features.columns if c != "zipcode"]
    model = Pipeline([
        ("prep", ColumnTransformer([
            ("zip", OneHotEncoder(handle_unknown="ignore"), ["zipcode"]),
            ("num", "passthrough", numeric),
        ])),
        ("forest", RandomForestRegressor(n_estimators=n_estimators, max_depth=10,
                                         random_state=0, n_jobs=1)),
    ])
    return model.fit(features, data["price"])


def churn(n: int = 2000, seed: int = 1) -> pd.DataFrame:
    """Synthetic customer churn: features plus a ``churned`` yes/no column."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    monthly = np.round(rng.uniform(20, 120, n), 2)
    plan = rng.choice(["basic", "standard", "premium"], n, p=[0.5, 0.3, 0.2])
    support_calls = rng.poisson(1.5, n)
    logit = -1.0 - 0.04 * tenure + 0.015 * monthly + 0.45 * support_calls
    logit += pd.Series(plan).map({"basic": 0.4, "standard": 0.0, "premium": -0.6}).to_numpy()
    churned = rng.uniform(size=n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "plan": plan,
        "support_calls": support_calls,
        "churned": np.where(churned, "yes", "no"),
    })


def churn_model(data: pd.DataFrame | None = None) -> Pipeline:
    """A scaled logistic regression with a one-hot plan: a binary classifier."""
    data = churn() if data is None else data
    features = data.drop(columns=["churned"])
    model = Pipeline([
        ("prep", ColumnTransformer([
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
            ("num", StandardScaler(), ["tenure_months", "monthly_charges", "support_calls"]),
        ])),
        ("logit", LogisticRegression(max_iter=500)),
    ])
    return model.fit(features, data["churned"])
