"""The shared monitoring report and its Quarto dashboard export (chunks executed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from monitor_helpers import store_version, write_log

from core.errors import InvalidArgument
from core.monitoring import custom as custom_metrics
from core.monitoring import thresholds
from core.monitoring.actuals import save_actuals
from core.monitoring.monitor import open_monitor
from core.monitoring.report import build, column_values, data_token, render_qmd
from core.store.versionstore import VersionStore

ROOT = Path(__file__).resolve().parents[2]
T0 = pd.Timestamp("2025-03-03", tz="UTC")


@pytest.fixture(scope="module")
def store(house_data, house_model, tmp_path_factory):
    # Quotes and a space in the path: it must reach the chunks as data, not code.
    store = VersionStore(str(tmp_path_factory.mktemp("report") / "it's a \"board\""))
    b = store_version(store, house_model, house_data, "price", "house")
    rows = house_data.iloc[:80].reset_index(drop=True)
    frame = write_log(store, b, rows.drop(columns=["price"]),
                      [T0 + pd.Timedelta(hours=2 * i) for i in range(80)], request_size=4)
    frame["price"] = rows.loc[frame["source_row"], "price"].to_numpy()
    save_actuals(store, "house", frame, key_column="request_id", actual_column="price",
                 row_column="row")
    with open_monitor(store, "house", b.meta) as mon:
        custom_metrics.save(store, mon, custom_metrics.CustomMetric(
            "ppsf", "avg(prediction) / avg(sqft_living)"))
    # 12 rows a day, so the minimum is lowered from its default (30) to mark them
    thresholds.save(store, "house", thresholds.Settings(
        window="day", min_rows=10, rules=[thresholds.Rule("rmse", warning=1.0, alert=1e12)]))
    return store


def test_report_combines_everything(store):
    report = build(store, "house")
    assert report.window == "day" and report.name == "house"
    assert report.metrics["n"].sum() == 80
    assert "ppsf" in report.table().columns
    rmse = report.marks[report.marks["metric"] == "rmse"]
    assert set(rmse.loc[rmse["n"] >= 10, "status"]) == {"warning"}
    assert set(rmse.loc[rmse["n"] < 10, "status"]) == {"none"}  # the last day: 8 rows
    assert rmse.loc[rmse["n"] < 10, "value"].isna().all()
    head = report.headline
    recent = report.marks[report.marks["window_start"].isin(head.windows)]
    assert report.status == thresholds.worst(recent["status"]) != "none"
    assert len(head.windows) == 3 and head.metric in set(recent["metric"])
    summary = report.drift_summary()
    assert list(summary["columns"].unique()) == [len(set(report.drift["column"]))]
    week = build(store, "house", window="week")
    assert len(week.metrics) == 1  # 80 rows two hours apart, from a Monday: one week


def test_column_values(store):
    values = column_values(store, "house", "sqft_living", T0, T0 + pd.Timedelta(days=1))
    assert len(values) == 12
    assert len(column_values(store, "house", "sqft_living", T0, T0 + pd.Timedelta(days=1),
                             limit=5)) <= 5
    with pytest.raises(InvalidArgument, match="not a logged column"):
        column_values(store, "house", "nope", T0, T0 + pd.Timedelta(days=1))


def _chunks(qmd: str) -> list[str]:
    return re.findall(r"^```\{python\}\n(.*?)^```", qmd, flags=re.S | re.M)


def test_qmd_chunks_run_the_same_queries(store, tmp_path):
    qmd = render_qmd(store, "house", window="day", since="2025-03-03", until="2025-03-10",
                     project_root=str(ROOT))
    assert qmd.startswith("---\ntitle: \"Monitoring: house@") and "format: dashboard" in qmd
    chunks = _chunks(qmd)
    assert len(chunks) == 9
    script = "\n".join(chunks) + (
        "\nimport json\nprint(json.dumps({'n': int(report.metrics['n'].sum()), "
        "'status': report.status, 'cols': list(report.table().columns)}))\n")
    path = tmp_path / "dashboard.py"
    path.write_text(script)
    res = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                         timeout=180, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = res.stdout.strip().splitlines()[-1]
    expected = build(store, "house", window="day", since="2025-03-03", until="2025-03-10")
    assert '"n": 80' in out and f'"status": "{expected.status}"' in out and "ppsf" in out


def test_qmd_rejects_bad_input(store):
    with pytest.raises(InvalidArgument, match="Unknown window"):
        render_qmd(store, "house", window="1; import os")
    with pytest.raises(InvalidArgument, match="Cannot read"):
        render_qmd(store, "house", window="day", since="'); import os; ('")
    with pytest.raises(Exception, match="(?i)not found|no model|unknown"):
        render_qmd(store, "ghost", window="day")


def test_data_token_follows_the_models_data_only(tmp_path, house_data, house_model):
    store = VersionStore(str(tmp_path / "board"))
    b = store_version(store, house_model, house_data, "price", "house")
    other = store_version(store, house_model, house_data, "price", "other")
    first = data_token(store, "house")
    assert data_token(store, "house") == first  # nothing changed
    store.set_alias("other", "production", store.versions("other")[-1].version)
    write_log(store, other, house_data.head(3).drop(columns=["price"]), [T0] * 3)
    assert data_token(store, "house") == first  # another model's changes leave it alone
    changes = [
        lambda: write_log(store, b, house_data.head(3).drop(columns=["price"]), [T0] * 3),
        lambda: store.set_alias("house", "production", store.versions("house")[-1].version),
        lambda: thresholds.save(store, "house", thresholds.Settings(window="day")),
        lambda: store.add_record(custom_metrics.RECORD_KIND, "house",
                                 {"name": "gone", "deleted": True}),
        lambda: save_actuals(store, "house", pd.DataFrame({"k": ["x"], "price": [1.0]}),
                             key_column="k", actual_column="price"),
    ]
    seen = {first}
    for change in changes:
        change()
        token = data_token(store, "house")
        assert token not in seen
        seen.add(token)
