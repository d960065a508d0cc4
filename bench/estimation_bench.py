"""Label-free estimation under covariate shift: do estimated and realized metrics agree?

Command and last figures: see bench/README.md ("Estimated performance").

    /work/venv/bin/python bench/estimation_bench.py [--windows 30] [--nannyml PYTHON]

Data sets (scikit-learn's bundled or generated; nothing downloaded):

* ``breast_cancer``: the real Wisconsin data (569 rows). A logistic regression is fitted
  on 200 rows; the other 369 are the pool windows are drawn from, with replacement:
  reference windows uniformly, analysis windows with weights
  ``exp(beta * z)`` on the standardised ``mean radius``, beta growing from 0 to 1.5
  across the windows: the inputs shift, P(label | inputs) does not (covariate shift).
* ``make_classification``: 3 classes, 10 features, 80,000 rows; a logistic regression
  on 5,000 rows; analysis windows drawn without replacement with the same kind of
  weights on feature 0.

Every window (one a day, ``--rows`` rows) is written to a real board as prediction-log
segments with probabilities, the actuals of every window are uploaded, and
:func:`core.monitoring.estimate.estimated` runs the real path with the reference period
(the first ``--reference-days`` days) as the reference. For each metric: the share of
analysis windows whose realized metric lies inside the estimate's band, the mean band
width, and the mean |estimated - realized|. With ``--nannyml PYTHON`` (an interpreter
with nannyml installed), NannyML's CBPE runs on the same rows and chunks and the same
figures are printed for its bands (its default: 3 sampling-error standard deviations).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.datasets import load_breast_cancer, make_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from core import bundle  # noqa: E402
from core.monitoring.actuals import save_actuals  # noqa: E402
from core.monitoring.estimate import compare, estimated  # noqa: E402
from core.monitoring.monitor import open_monitor  # noqa: E402
from core.store.predlog import build_table, write_segment  # noqa: E402
from core.store.versionstore import VersionStore  # noqa: E402

T0 = pd.Timestamp("2024-01-01", tz="UTC")
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def breast_cancer(rows: int, windows: int, ref_days: int, seed: int):
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target.map({0: "malignant", 1: "benign"})
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    train, pool = order[:200], order[200:]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(X.iloc[train], y.iloc[train])
    z = (X["mean radius"] - X["mean radius"].mean()) / X["mean radius"].std()
    picks = [rng.choice(pool, rows) for _ in range(ref_days)]
    for i in range(windows):
        beta = 1.5 * i / max(windows - 1, 1)
        w = np.exp(beta * z.iloc[pool].to_numpy())
        picks.append(rng.choice(pool, rows, p=w / w.sum()))
    return model, X, y, picks


def generated(rows: int, windows: int, ref_days: int, seed: int):
    Xa, ya = make_classification(80_000, 10, n_informative=5, n_classes=3, random_state=seed)
    X = pd.DataFrame(Xa, columns=[f"x{i}" for i in range(10)])
    y = pd.Series(np.array(["a", "b", "c"])[ya])
    model = LogisticRegression(max_iter=2000).fit(X.iloc[:5000], y.iloc[:5000])
    rng = np.random.default_rng(seed)
    rest = np.arange(5000, len(X))
    used = np.zeros(len(X), bool)
    picks = []
    for i in range(ref_days + windows):
        beta = 0.0 if i < ref_days else 1.0 * (i - ref_days) / max(windows - 1, 1)
        free = rest[~used[rest]]
        w = np.exp(beta * X["x0"].to_numpy()[free])
        pick = rng.choice(free, rows, replace=False, p=w / w.sum())
        used[pick] = True
        picks.append(pick)
    return model, X, y, picks


def write(store: VersionStore, b, X: pd.DataFrame, y: pd.Series, picks) -> pd.DataFrame:
    kinds = {c.name: c.kind for c in b.meta.prototype.columns}
    logged = []
    for day, pick in enumerate(picks):
        part = X.iloc[pick].reset_index(drop=True)
        pred, prob = b.model.predict(part), b.model.predict_proba(part)
        at = (T0 + pd.Timedelta(days=day, hours=1)).to_pydatetime()
        entries = []
        for lo in range(0, len(part), 50):
            rid = uuid.uuid4().hex
            entries.append((at, rid, "predict_proba", 200, 5.0, part.iloc[lo:lo + 50]
                            .reset_index(drop=True), pred[lo:lo + 50], prob[lo:lo + 50], None))
            logged.append(pd.DataFrame({"request_id": rid, "row": np.arange(len(part.iloc[
                lo:lo + 50])), "actual": y.iloc[pick[lo:lo + 50]].to_numpy(), "day": day,
                "prediction": pred[lo:lo + 50]}).assign(proba=list(prob[lo:lo + 50])))
        table = build_table(entries, b.meta.name, b.version, b.meta.classes, kinds)
        write_segment(store, b.meta.name, b.version, at.strftime("%Y-%m-%d"),
                      f"bench-{uuid.uuid4().hex[:8]}", table)
    frame = pd.concat(logged, ignore_index=True)
    save_actuals(store, b.meta.name, frame, key_column="request_id", actual_column="actual",
                 row_column="row", classes=b.meta.classes)
    return frame


NANNYML = textwrap.dedent("""
    import json, sys, warnings
    warnings.filterwarnings("ignore")
    import numpy as np, pandas as pd, nannyml as nml
    data = pd.read_parquet(sys.argv[1]); classes = json.loads(sys.argv[2])
    ref_days = int(sys.argv[3]); rows = int(sys.argv[4])
    P = np.vstack(data["proba"].to_numpy())
    frame = pd.DataFrame({"y_pred": data["prediction"].astype(str),
                          "y_true": data["actual"].astype(str), "day": data["day"]})
    if len(classes) == 2:
        frame["y_pred"] = (frame["y_pred"] == classes[1]).astype(int)
        frame["y_true"] = (frame["y_true"] == classes[1]).astype(int)
        frame["p"] = P[:, 1]; proba = "p"; kind = "classification_binary"
    else:
        proba = {}
        for i, c in enumerate(classes):
            frame[f"p_{c}"] = P[:, i]; proba[c] = f"p_{c}"
        kind = "classification_multiclass"
    ref = frame[frame["day"] < ref_days]; ana = frame[frame["day"] >= ref_days]
    metrics = ["roc_auc", "f1", "precision", "recall", "accuracy"]
    est = nml.CBPE(y_pred_proba=proba, y_pred="y_pred", y_true="y_true", metrics=metrics,
                   chunk_size=rows, problem_type=kind)
    est.fit(ref)
    res = est.estimate(ana).filter(period="analysis").to_df()
    out = {}
    for m in metrics:
        r = res[m]
        out[m] = {"value": r["value"].tolist(), "realized": r["realized"].tolist(),
                  "lower": r["lower_confidence_boundary"].fillna(-np.inf).tolist(),
                  "upper": r["upper_confidence_boundary"].fillna(np.inf).tolist()}
    print(json.dumps(out))
""")


def run_nannyml(python: str, frame: pd.DataFrame, classes, ref_days: int, rows: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.parquet"
        frame.to_parquet(path)
        script = Path(tmp) / "nml.py"
        script.write_text(NANNYML)
        done = subprocess.run([python, str(script), str(path), json.dumps(list(classes)),
                               str(ref_days), str(rows)], capture_output=True, text=True,
                              timeout=900)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    out = json.loads(done.stdout.strip().splitlines()[-1])
    figures = {}
    for m, r in out.items():
        v, real = np.array(r["value"]), np.array(r["realized"], dtype=float)
        lo, hi = np.array(r["lower"], dtype=float), np.array(r["upper"], dtype=float)
        ok = np.isfinite(real)
        figures[m] = {"inside": float(np.mean((lo[ok] <= real[ok]) & (real[ok] <= hi[ok]))),
                      "width": float(np.mean(np.minimum(hi, 1) - np.maximum(lo, 0))),
                      "error": float(np.mean(np.abs(v[ok] - real[ok])))}
    return figures


def run(name: str, args: argparse.Namespace) -> None:
    maker = breast_cancer if name == "breast_cancer" else generated
    model, X, y, picks = maker(args.rows, args.windows, args.reference_days, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = VersionStore(str(Path(tmp) / "board"))
        b = bundle(model, X.iloc[:500], name="clf")
        store.write(b)
        frame = write(store, b, X, y, picks)
        ref_end = T0 + pd.Timedelta(days=args.reference_days)
        t = time.perf_counter()
        with open_monitor(store, "clf", b.meta, since=ref_end,
                          reference=(T0, ref_end)) as mon:
            est = estimated(mon, "day", reference=(T0, ref_end), min_rows=30)
            realized = mon.metrics("day", min_rows=30)
        seconds = time.perf_counter() - t
    table = compare(realized, est)
    print(f"\n== {name}: {args.windows} windows of {args.rows} rows, covariate shift; "
          f"{est.attrs['reference']} ==")
    print(f"   {est.attrs['calibration']}")
    print(f"   estimation + realized metrics: {seconds:.1f} s")
    nml = None
    if args.nannyml:
        try:
            nml = run_nannyml(args.nannyml, frame, b.meta.classes, args.reference_days, args.rows)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            print(f"   NannyML failed: {exc}")
    print(f"   {'metric':10} {'inside band':>12} {'band width':>11} {'|est-real|':>11}"
          + ("   NannyML: inside  width  |est-real|" if nml else ""))
    shares = []
    for m in METRICS:
        t = table[(table["metric"] == m) & table["inside"].notna()]
        inside = t["inside"].astype(bool).mean()
        shares.append(inside)
        line = (f"   {m:10} {inside:12.1%} {(t['upper'] - t['lower']).mean():11.4f} "
                f"{(t['estimated'] - t['realized']).abs().mean():11.4f}")
        if nml and m in nml:
            f = nml[m]
            line += f"   {f['inside']:13.1%} {f['width']:6.4f} {f['error']:10.4f}"
        print(line)
    print(f"   all metrics: {np.mean(shares):.1%} of windows inside the band (target >= 90 %)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=30)
    p.add_argument("--rows", type=int, default=500)
    p.add_argument("--reference-days", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="breast_cancer,make_classification")
    p.add_argument("--nannyml", default=None, help="a Python with nannyml installed")
    args = p.parse_args()
    for name in args.data.split(","):
        run(name.strip(), args)


if __name__ == "__main__":
    main()
