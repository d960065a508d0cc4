"""ROC AUC and log loss cover only the rows with logged probabilities (n_proba)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm
from monitor_helpers import store_version, write_log

from core.monitoring.actuals import save_actuals
from core.monitoring.monitor import open_monitor
from core.store.versionstore import VersionStore

T0 = pd.Timestamp("2025-03-03", tz="UTC")


def test_probability_metrics_say_how_many_rows_they_cover(tmp_path, churn_data, churn_model):
    store = VersionStore(str(tmp_path / "board"))
    b = store_version(store, churn_model, churn_data, "churned", "churn")
    rows = churn_data.iloc[:100].reset_index(drop=True)
    x = rows.drop(columns=["churned"])
    ts = [T0 + pd.Timedelta(minutes=i) for i in range(100)]
    # 60 rows through /predict_proba, 40 through /predict (no probabilities logged)
    with_p = write_log(store, b, x.iloc[:60], ts[:60], request_size=3)
    without = write_log(store, b, x.iloc[60:], ts[60:], request_size=4, proba=False)
    logged = pd.concat([with_p, without], ignore_index=True)
    logged["churned"] = rows.loc[logged["source_row"], "churned"].to_numpy()
    save_actuals(store, "churn", logged, key_column="request_id", actual_column="churned",
                 row_column="row", classes=b.meta.classes)
    with open_monitor(store, "churn", b.meta) as mon:
        m = mon.metrics("day", min_rows=30).iloc[0]
        strict = mon.metrics("day", min_rows=70).iloc[0]
    assert (m["n"], m["n_actual"], m["n_proba"]) == (100, 100, 60)
    pos = b.meta.classes[1]
    y = with_p["source_row"].map(rows["churned"])
    P = np.vstack(with_p["proba"].to_numpy())
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y == pos, P[:, 1]), rel=1e-9)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, P, labels=b.meta.classes), rel=1e-9)
    # 60 rows with probabilities are fewer than 70: no value, and the note says why
    assert strict["n_proba"] == 60 and np.isnan(strict["roc_auc"])
    assert np.isnan(strict["log_loss"])
    assert "only 60 rows with actuals and probabilities" in strict["note"]
    assert not np.isnan(strict["accuracy"])  # 100 rows with actuals: judged
