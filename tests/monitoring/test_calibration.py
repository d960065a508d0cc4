"""Calibration of drift verdicts: no-drift distributions, minimum n, the BH correction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from core.monitoring import calibration as cal
from core.monitoring.drift import METHODS, binned_statistic, judge, ks_asymptotic_p

REF = np.array([200, 210, 190, 205, 195, 200, 198, 202, 199, 201], dtype=float)


def test_bh_equals_scipy_and_the_direct_formula():
    p = np.array([0.001, 0.04, 0.03, 0.2, 0.5, np.nan, 0.012])
    got = cal.benjamini_hochberg(p)
    ok = np.isfinite(p)
    assert np.isnan(got[~ok]).all()
    assert got[ok] == pytest.approx(stats.false_discovery_control(p[ok], method="bh"))
    # direct: p_(i) * m / i, made monotone from the top, capped at 1
    q = p[ok]
    order = np.argsort(q)
    m = len(q)
    raw = q[order] * m / np.arange(1, m + 1)
    direct = np.minimum.accumulate(raw[::-1])[::-1].clip(max=1)
    expected = np.empty(m)
    expected[order] = direct
    assert got[ok] == pytest.approx(expected)


@pytest.mark.parametrize("method", ["psi", "jensenshannon", "chisquare"])
def test_vectorised_statistics_equal_the_scipy_ones(method):
    rng = np.random.default_rng(1)
    cur = rng.multinomial(60, REF / REF.sum(), size=5).astype(float)
    cur[0, -1] = 0
    got = cal.STATISTICS[method](np.tile(REF, (5, 1)), cur)
    for row, value in zip(cur, got):
        assert value == pytest.approx(binned_statistic(method, REF, row)[0])


@pytest.mark.parametrize("method", ["psi", "jensenshannon"])
def test_simulated_p_values_are_calibrated(method):
    """Windows drawn from the reference: about 5 % get p < 0.05, not half."""
    rng = np.random.default_rng(7)
    p = REF / REF.sum()
    n = 40
    flagged, big = 0, 0
    for _ in range(400):
        ref = rng.multinomial(int(REF.sum()), p).astype(float)
        cur = rng.multinomial(n, p).astype(float)
        stat = binned_statistic(method, ref, cur)[0]
        flagged += cal.simulated_p(method, ref, n, stat) < 0.05
        big += stat > METHODS[method].alert
    assert 0.02 <= flagged / 400 <= 0.09
    if method == "psi":
        assert big / 400 > 0.3  # what the uncalibrated 0.25 rule flagged


def test_psi_minimum_n_is_where_its_no_drift_quantile_meets_the_alert_size():
    n = cal.min_n("psi", 0.25, counts=REF)
    q95 = [np.quantile(cal.null_sample("psi", REF, k)[0], 0.95) for k in (n - 1, n)]
    assert q95[0] > 0.25 >= q95[1]
    assert 60 <= n <= 120  # far more than the old 30 for ten bins
    # fewer bins need fewer values
    assert cal.min_n("psi", 0.25, counts=[500, 500]) < n


def test_ks_minimum_n_from_kolmogorovs_distribution():
    n = cal.min_n("ks", 0.2, m=2000)
    assert cal.ks_null_quantile(n, 2000) <= 0.2 < cal.ks_null_quantile(n - 1, 2000)
    assert stats.kstwo.ppf(0.95, round(n * 2000 / (n + 2000))) <= 0.2


def test_chisquare_uses_the_chi2_distribution_only_with_enough_expected_values():
    cur = np.array([30, 31, 29, 30, 30, 30, 31, 29, 30, 30], dtype=float)
    stat, p = binned_statistic("chisquare", REF, cur)
    assert cal.binned_p("chisquare", REF, cur, stat, p) == (p, "chi-square distribution")
    small = np.array([3, 2, 4, 3, 3, 2, 3, 4, 3, 3], dtype=float)
    stat, p = binned_statistic("chisquare", REF, small)
    got, how = cal.binned_p("chisquare", REF, small, stat, p)
    assert how.startswith("simulated") and 0 < got <= 1


def _row(column, method, n, p, score, min_n):
    return {"column": column, "method": method, "n": n, "p_value": p, "score": score,
            "min_n": min_n, "note": "", "drifted": None, "p_adjusted": np.nan,
            "judged_on": ""}


def test_verdicts_need_evidence_after_bh_and_size_and_enough_rows_to_be_ok():
    rows = judge([
        _row("a", "ks", 60, 0.0005, 0.5, 46),    # evidence and size: drifted
        _row("b", "ks", 60, 0.04, 0.25, 46),     # p 0.04, but 0.06 after BH: ok
        _row("c", "psi", 60, 0.5, 0.3, 80),      # no evidence on too few rows: not ok
        _row("d", "ks", 5, 0.0001, 0.9, 46),     # under the floor: nothing judged
    ])
    a, b, c, d = rows
    assert a["drifted"] is True and a["p_adjusted"] == pytest.approx(0.0015)
    assert b["drifted"] is False and b["p_adjusted"] == pytest.approx(0.06)
    assert c["drifted"] is None and "too few to rule it out" in c["note"]
    assert d["drifted"] is None and np.isnan(d["p_adjusted"])
    assert "after BH over 3 columns" in a["judged_on"] and "n 60" in a["judged_on"]


def test_wasserstein_evidence_is_scipys_asymptotic_ks():
    rng = np.random.default_rng(3)
    ref = np.sort(rng.normal(size=2000))
    for shift in (0.0, 0.05, 0.3):
        cur = np.round(rng.normal(shift, 1, size=3000), 2)  # ties too
        expected = stats.ks_2samp(ref, cur, method="asymp").pvalue
        assert ks_asymptotic_p(ref, cur) == pytest.approx(expected, rel=1e-9, abs=1e-300)
