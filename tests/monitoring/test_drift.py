"""Drift and data quality per window, checked against scipy on the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import store_version, write_log
from scipy import stats
from scipy.spatial import distance

from core.errors import InvalidArgument
from core.monitoring.actuals import score_upload
from core.monitoring.drift import METHODS, binned_statistic, default_method
from core.monitoring.monitor import open_monitor
from core.store.versionstore import VersionStore
from core.workbench.charts import numeric_bin_counts

T0 = pd.Timestamp("2025-03-03", tz="UTC")


@pytest.fixture(scope="module")
def drifted(house_data, house_model, tmp_path_factory):
    """Day 1: training-like rows. Day 2: bigger houses, an unseen zipcode, nulls."""
    store = VersionStore(str(tmp_path_factory.mktemp("drift") / "board"))
    b = store_version(store, house_model, house_data, "price", "house")
    x = house_data.drop(columns=["price"])
    day1 = x.iloc[:300].copy()
    day2 = x.iloc[300:600].copy()
    day2["sqft_living"] = (day2["sqft_living"] * 1.5).astype("int64")
    frame = pd.concat([day1, day2], ignore_index=True)
    ts = [T0 + pd.Timedelta(minutes=i) for i in range(300)] + \
         [T0 + pd.Timedelta(days=1, minutes=i) for i in range(300)]
    logged = write_log(store, b, frame, ts, request_size=10)
    # An upload with an unseen zipcode and out-of-range values, for the quality checks.
    odd = x.iloc[:20].copy()
    odd["zipcode"] = ["99999"] * 5 + list(odd["zipcode"].iloc[5:])
    odd["yr_built"] = [1700] * 4 + list(odd["yr_built"].iloc[4:])
    odd["when"] = T0 + pd.Timedelta(days=3)
    score_upload(store, b, odd, time_column="when")
    return store, b, logged, store.sample("house", b.version)


def _window(frame, day):
    return frame[frame["ts"].dt.floor("D") == T0 + pd.Timedelta(days=day)]


def test_numeric_drift_matches_scipy(drifted):
    store, b, logged, sample = drifted
    with open_monitor(store, "house", b.meta, sample=sample) as mon:
        d = mon.drift("day")
        ks = mon.drift("day", methods={"sqft_living": "ks"})
        was = mon.drift("day", methods={"sqft_living": "wasserstein"})
    rows = d[d["column"] == "sqft_living"].reset_index(drop=True)
    assert list(rows["method"]) == ["ks", "ks"]  # 300 values per window: a test
    for day in (0, 1):
        cur = _window(logged, day)["sqft_living"].to_numpy(dtype=float)
        ref = sample["sqft_living"].to_numpy(dtype=float)
        res = stats.ks_2samp(ref, cur)
        got = ks[(ks["column"] == "sqft_living")].iloc[day]
        assert got["statistic"] == pytest.approx(res.statistic)
        assert got["p_value"] == pytest.approx(res.pvalue)
        w = was[(was["column"] == "sqft_living")].iloc[day]
        assert w["score"] == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref))
    assert not rows["drifted"].iloc[0] and rows["drifted"].iloc[1]


def test_binned_methods_match_scipy_on_reference_bins(drifted):
    store, b, logged, sample = drifted
    prof = b.meta.profile["columns"]["sqft_living"]
    ref = np.asarray(prof["counts"], dtype=float)
    with open_monitor(store, "house", b.meta, sample=sample) as mon:
        for method in ("psi", "jensenshannon", "chisquare"):
            d = mon.drift("day", methods={"sqft_living": method}, columns=["sqft_living"])
            for day in (0, 1):
                cur = numeric_bin_counts(_window(logged, day)["sqft_living"], prof["edges"])
                got = d.iloc[day]
                r, c = ref / ref.sum(), cur / cur.sum()
                if method == "psi":
                    r2, c2 = np.clip(r, 1e-4, None), np.clip(c, 1e-4, None)
                    assert got["score"] == pytest.approx(np.sum((c2 - r2) * np.log(c2 / r2)))
                elif method == "jensenshannon":
                    # base 2 since issue #14 (Evidently's and NannyML's convention)
                    assert got["score"] == pytest.approx(distance.jensenshannon(r, c, base=2))
                else:
                    keep = (ref + cur) > 0
                    res = stats.chi2_contingency(np.vstack([ref[keep], cur[keep]]),
                                                 correction=False)
                    assert got["p_value"] == pytest.approx(res.pvalue)
                    assert got["statistic"] == pytest.approx(res.statistic)


def test_categorical_drift_and_unseen_categories(drifted):
    store, b, logged, sample = drifted
    prof = b.meta.profile["columns"]["zipcode"]
    with open_monitor(store, "house", b.meta, sample=sample, source="all") as mon:
        d = mon.drift("day", columns=["zipcode"])
    assert list(d["method"].iloc[:2]) == ["chisquare", "chisquare"]
    cats = list(prof["frequencies"])
    ref = np.array([prof["frequencies"][c] for c in cats] + [0.0])
    cur_vals = _window(logged, 0)["zipcode"].value_counts()
    cur = np.array([cur_vals.get(c, 0) for c in cats] + [0.0])
    keep = (ref + cur) > 0
    res = stats.chi2_contingency(np.vstack([ref[keep], cur[keep]]), correction=False)
    assert d["p_value"].iloc[0] == pytest.approx(res.pvalue)
    upload_day = d[d["window_start"] == T0 + pd.Timedelta(days=3)].iloc[0]
    assert upload_day["unseen_share"] == pytest.approx(5 / 20)
    assert upload_day["null_share"] == 0


def test_quality_out_of_range_and_nulls(drifted):
    store, b, logged, sample = drifted
    with open_monitor(store, "house", b.meta, sample=sample, source="upload") as mon:
        d = mon.drift("day", columns=["yr_built", "sqft_living"])
    yr = d[d["column"] == "yr_built"].iloc[0]
    assert yr["out_of_range_share"] == pytest.approx(4 / 20)
    assert d[d["column"] == "sqft_living"].iloc[0]["out_of_range_share"] == 0


def test_prediction_drift_uses_profile_bins(drifted):
    store, b, logged, sample = drifted
    with open_monitor(store, "house", b.meta, sample=sample) as mon:
        d = mon.drift("day", columns=["prediction"])
    assert set(d["method"]) == {"psi"}
    prof = b.meta.profile["prediction"]
    cur = numeric_bin_counts(_window(logged, 0)["prediction"], prof["edges"])
    assert d["score"].iloc[0] == pytest.approx(binned_statistic("psi", prof["counts"], cur)[0])


def test_reference_window(drifted):
    store, b, logged, sample = drifted
    ref = (T0, T0 + pd.Timedelta(days=1))
    with open_monitor(store, "house", b.meta, sample=sample, since=T0 + pd.Timedelta(days=1),
                      reference=ref) as mon:
        d = mon.drift("day", reference=ref, columns=["sqft_living"])
    assert len(d) == 1
    cur = _window(logged, 1)["sqft_living"].to_numpy(float)
    base = _window(logged, 0)["sqft_living"].to_numpy(float)
    assert d["statistic"].iloc[0] == pytest.approx(stats.ks_2samp(base, cur).statistic)
    with open_monitor(store, "house", b.meta, sample=sample) as mon:
        with pytest.raises(InvalidArgument, match="No logged rows"):
            mon.drift("day", reference=("2020-01-01", "2020-01-02"))
        with pytest.raises(InvalidArgument, match="start before its end"):
            mon.drift("day", reference=("2020-01-02", "2020-01-01"))


def test_default_methods_and_thresholds():
    assert default_method("numeric", 1000, True) == "ks"
    assert default_method("numeric", 1001, True) == "wasserstein"
    assert default_method("numeric", 10, False) == "psi"
    assert default_method("categorical", 1000, True) == "chisquare"
    assert default_method("categorical", 5000, True) == "jensenshannon"
    assert METHODS["psi"].warning == 0.1 and METHODS["psi"].alert == 0.25
    # Levels are practical sizes on the score since issue #14: KS D, Cohen's w for
    # chi-square (the p-values are judged after Benjamini-Hochberg instead).
    assert METHODS["ks"].alert == 0.2 and METHODS["wasserstein"].alert == 0.1
    assert METHODS["chisquare"].alert == 0.5 and METHODS["jensenshannon"].alert == 0.1


def test_bad_method_choices_are_explained(drifted):
    store, b, logged, sample = drifted
    with open_monitor(store, "house", b.meta, sample=sample) as mon:
        with pytest.raises(InvalidArgument, match="Unknown drift method"):
            mon.drift("day", methods={"sqft_living": "vibes"})
        with pytest.raises(InvalidArgument, match="does not apply to the categorical"):
            mon.drift("day", methods={"zipcode": "ks"})
        with pytest.raises(InvalidArgument, match="No reference for"):
            mon.drift("day", columns=["nope"])
    with open_monitor(store, "house", b.meta, sample=None) as mon:
        with pytest.raises(InvalidArgument, match="needs raw reference values"):
            mon.drift("day", methods={"sqft_living": "wasserstein"})


def test_a_window_with_few_values_can_drift_but_never_be_ok(drifted):
    store, b, _, sample = drifted
    with open_monitor(store, "house", b.meta, sample=sample, source="all") as mon:
        d = mon.drift("day")
    few = d[d["window_start"] == T0 + pd.Timedelta(days=3)].set_index("column")  # 20 rows
    assert (few["n"] == 20).all() and (few["min_n"] > 20).all()
    assert few["statistic"].notna().all() and few["p_adjusted"].notna().all()
    # 5 of 20 zipcodes never seen in training: evidence enough on 20 rows; the other
    # columns are not "ok", just not judged
    assert few.loc["zipcode", "drifted"] is True
    rest = few.drop(index=["zipcode"])
    assert rest["drifted"].isna().all()
    assert rest["note"].str.contains("too few to rule it out").all()
    judged = d[d["window_start"] < T0 + pd.Timedelta(days=2)]  # 300 values a day
    assert judged["drifted"].notna().all()
    assert judged["judged_on"].str.contains("after BH over 7 columns").all()
    day2 = judged[judged["window_start"] == T0 + pd.Timedelta(days=1)]
    assert set(day2.loc[day2["drifted"].astype(bool), "column"]) == {"sqft_living",
                                                                     "prediction"}
