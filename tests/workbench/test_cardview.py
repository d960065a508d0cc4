"""The Card page's card: monitoring results added, and left out with a reason when the
prediction log cannot be read."""

from __future__ import annotations

import pandas as pd
from monitor_helpers import write_log

from core.model.bundle import bundle
from core.monitoring.actuals import save_actuals
from core.store.paths import log_dir
from core.store.versionstore import VersionStore
from core.workbench import cardview


def test_card_with_results_then_without_when_the_log_is_damaged(tmp_path, house_model,
                                                                 house_data):
    store = VersionStore(str(tmp_path / "board"))
    features = house_data.drop(columns="price")
    b = bundle(house_model, features, name="house", metrics={"rmse": 1.0})
    store.write(b)
    assert cardview.segment_choices(b.meta) == ["bedrooms", "sqft_living", "grade",
                                                "yr_built", "zipcode"]
    logged = write_log(store, b, features.head(10), [pd.Timestamp("2025-03-03", tz="UTC")] * 10)
    logged["price"] = house_data["price"].head(10).to_numpy()
    save_actuals(store, "house", logged, key_column="request_id", actual_column="price",
                 row_column="row")
    card, problem = cardview.card_for(store, "house", b.version, "zipcode")
    assert problem is None
    assert [e.source for e in card.evaluations][:2] == ["recorded", "monitoring"]
    assert card.evaluations[1].rows == 10 and card.segment == "zipcode"

    folder = f"{log_dir(store, 'house')}/{b.version}/2025-03-03"
    store.fs.pipe(f"{folder}/broken-000001.parquet", b"not parquet at all")
    card, problem = cardview.card_for(store, "house", b.version)
    assert problem.startswith("The results on served predictions are left out")
    assert [e.source for e in card.evaluations] == ["recorded"]
