"""Drift conventions side by side: Fixative's, Evidently's and NannyML's, on one example.

    /work/venv/bin/python bench/drift_conventions.py

Neither library is installed: their conventions are rewritten here with NumPy/SciPy
as their code reads (Evidently 0.4 ``calculations/stattests``: PSI and JS on 30
equal-width bins of reference and current together, zero shares 0.0001, JS base 2,
chi-square goodness of fit of the current counts against the reference shares,
Wasserstein / std of the reference; NannyML 0.10 ``drift/univariate/methods.py``: JS
base 2 on Doane bins of the reference plus a bucket for what falls outside, chi-square
contingency with SciPy's default Yates correction (2 x 2 tables only), raw
Wasserstein-1). Fixative: :mod:`core.monitoring.drift`.

Example: the reference is the example house model's training sample (2,000 rows,
``house_prices(2000, seed=0)``); the current window is 200 rows of a fresh draw
(``seed=1``) with ``sqft_living`` scaled by 1.1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.spatial import distance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.model.examples import house_prices  # noqa: E402
from core.model.profile import profile_series  # noqa: E402
from core.monitoring import calibration  # noqa: E402
from core.monitoring.drift import binned_statistic  # noqa: E402
from core.workbench.charts import numeric_bin_counts  # noqa: E402


def shares(counts: np.ndarray) -> np.ndarray:
    return counts / counts.sum()


def evidently_bins(ref: np.ndarray, cur: np.ndarray, n_bins: int = 30):
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=n_bins)
    r = np.histogram(ref, edges)[0] / len(ref)
    c = np.histogram(cur, edges)[0] / len(cur)
    return np.where(r == 0, 1e-4, r), np.where(c == 0, 1e-4, c)


def nannyml_bins(ref: np.ndarray, cur: np.ndarray):
    edges = np.histogram_bin_edges(ref, bins="doane")
    r = np.histogram(ref, edges)[0] / len(ref)
    c = np.histogram(cur, edges)[0] / len(cur)
    left = 1 - c.sum()
    if left > 0:
        r, c = np.append(r, 0), np.append(c, left)
    return r, c


def main() -> None:
    train = house_prices(2000, seed=0)
    current = house_prices(200, seed=1)
    ref = train["sqft_living"].to_numpy(float)
    cur = current["sqft_living"].to_numpy(float) * 1.1
    prof = profile_series(train["sqft_living"], "int")
    rc = np.asarray(prof["counts"], float)
    cc = numeric_bin_counts(cur, prof["edges"])
    psi, _ = binned_statistic("psi", rc, cc)
    js, _ = binned_statistic("jensenshannon", rc, cc)
    js_e = float(distance.jensenshannon(shares(rc), shares(cc)))
    er, ec = evidently_bins(ref, cur)
    e_psi = float(np.sum((ec - er) * np.log(ec / er)))
    e_js = float(distance.jensenshannon(er, ec, base=2))
    nr, nc = nannyml_bins(ref, cur)
    n_js = float(distance.jensenshannon(nr, nc, base=2))
    w = stats.wasserstein_distance(ref, cur)
    ks = stats.ks_2samp(ref, cur)
    rows = [
        ("PSI, sqft_living", f"{psi:.4f} (10 reference deciles)", f"{e_psi:.4f} (30 bins)",
         "no PSI"),
        ("JS distance, sqft_living", f"{js:.4f} (base 2; {js_e:.4f} in nats before #14)",
         f"{e_js:.4f}", f"{n_js:.4f} (Doane bins)"),
        ("Wasserstein, sqft_living", f"{w / np.std(ref):.4f} (/ std)", f"{w / np.std(ref):.4f}",
         f"{w:.1f} (raw)"),
        ("KS D, p", f"{ks.statistic:.4f}, {ks.pvalue:.2g}", "same (SciPy)", "same (SciPy)"),
    ]
    # chi-square on zipcode, 8 categories, and on a 2-category column (Yates matters)
    for col, cats in (("zipcode", None), ("bedrooms > 3", None)):
        if col == "zipcode":
            r_s, c_s = train["zipcode"], current["zipcode"]
        else:
            r_s, c_s = train["bedrooms"] > 3, current["bedrooms"] > 3
        keys = sorted(set(r_s.astype(str)))
        rcount = np.array([(r_s.astype(str) == k).sum() for k in keys], float)
        ccount = np.array([(c_s.astype(str) == k).sum() for k in keys], float)
        ours = stats.chi2_contingency(np.vstack([rcount, ccount]), correction=False)
        nanny = stats.chi2_contingency(np.vstack([rcount, ccount]))
        evid = stats.chisquare(ccount, shares(rcount) * ccount.sum())
        rows.append((f"chi-square p, {col}", f"{ours.pvalue:.4f} (no Yates)",
                     f"{evid.pvalue:.4f} (goodness of fit)", f"{nanny.pvalue:.4f}"))
    p_psi = calibration.simulated_p("psi", rc, int(cc.sum()), psi)
    rows.append(("PSI no-drift p (n=200)", f"{p_psi:.4f} (simulated)", "not computed",
                 "not computed"))
    print("| measure | Fixative | Evidently's convention | NannyML's convention |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
