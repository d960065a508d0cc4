"""Drift calibration: false alarms on clean windows, detection of a scaled column.

Command and last figures: see bench/README.md ("Drift calibration").

    /work/venv/bin/python bench/drift_calibration.py [--windows 1000] [--sizes 30,60,200,1000]
        [--column sqft_living] [--factor 1.6]

The model is the example house-price model (``core.model.examples``), stored with its
training sample (2,000 rows) as the reference, as the workbench's "Add an example
model" does. For each window size, ``--windows`` windows (one per day) are drawn with
replacement from that same training sample, scored by the model and written to a real
board as prediction-log segments (``core.store.predlog``'s table and segment writer, as
the server's LogWriter writes them); then :func:`core.monitoring.drift.compute` runs the
real path (DuckDB scans, NumPy/SciPy statistics, the no-drift simulations, BH). The
same is repeated with ``--column`` multiplied by ``--factor`` in every row.

A window counts as flagged when any of its columns is drifted (the verdict the status
and :func:`core.monitoring.drift.window_verdicts` use). Printed beside it, for
comparison, the rule before issue #14 on the same rows: any column with a raw p < 0.05
(ks, chi-square) or a distance above its level (psi > 0.25, wasserstein > 0.1, JS >
0.1), judged from 30 values. ``judged`` is the share of clean windows in which every
column got a verdict (enough values to say "no drift").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import bundle  # noqa: E402
from core.model.examples import house_model, house_prices  # noqa: E402
from core.monitoring.drift import window_verdicts  # noqa: E402
from core.monitoring.monitor import open_monitor  # noqa: E402
from core.store.predlog import build_table, write_segment  # noqa: E402
from core.store.versionstore import VersionStore  # noqa: E402

T0 = pd.Timestamp("2024-01-01", tz="UTC")
OLD_LEVELS = {"psi": 0.25, "wasserstein": 0.1, "jensenshannon": 0.1}


def write_windows(store: VersionStore, b, frame: pd.DataFrame, per_window: int,
                  request_size: int = 10) -> None:
    """Log ``frame`` as served: ``per_window`` rows a day, in requests of ``request_size``."""
    pred = np.asarray(b.model.predict(frame))
    kinds = {c.name: c.kind for c in b.meta.prototype.columns}
    by_day: dict[str, list] = {}
    for lo in range(0, len(frame), request_size):
        day = lo // per_window
        at = (T0 + pd.Timedelta(days=day, seconds=lo % per_window)).to_pydatetime()
        hi = min(lo + request_size, (day + 1) * per_window)
        part = frame.iloc[lo:hi].reset_index(drop=True)
        entry = (at, uuid.uuid4().hex, "predict", 200, 5.0, part, pred[lo:hi], None, None)
        by_day.setdefault(at.strftime("%Y-%m-%d"), []).append(entry)
    for day, entries in by_day.items():
        table = build_table(entries, b.meta.name, b.version, None, kinds)
        write_segment(store, b.meta.name, b.version, day, f"bench-{uuid.uuid4().hex[:8]}", table)


def old_rule(drift: pd.DataFrame) -> pd.Series:
    """Flagged windows under the rule before issue #14 (raw p < 0.05 or a distance above
    its level, from 30 values)."""
    d = drift[drift["n"] >= 30]
    test = d["method"].isin(["ks", "chisquare"])
    level = d["method"].map(OLD_LEVELS)
    hit = (test & (d["p_value"] < 0.05)) | (~test & (d["statistic"] > level))
    return hit.groupby(d["window_start"]).any()


def run(size: int, windows: int, column: str, factor: float, seed: int) -> dict:
    data = house_prices(2000, seed=0)
    model = house_model(data)
    train = data.drop(columns=["price"])
    out = {"rows": size}
    for label, scale in (("clean", 1.0), ("scaled", factor)):
        with tempfile.TemporaryDirectory() as tmp:
            store = VersionStore(str(Path(tmp) / "board"))
            b = bundle(model, train, name="house")
            store.write(b)
            rng = np.random.default_rng(seed + size)
            frame = train.iloc[rng.integers(0, len(train), size * windows)].reset_index(drop=True)
            if scale != 1.0:
                frame[column] = np.round(frame[column] * scale).astype(frame[column].dtype)
            t = time.perf_counter()
            write_windows(store, b, frame, size)
            t_write = time.perf_counter() - t
            t = time.perf_counter()
            with open_monitor(store, "house", b.meta,
                              sample=store.sample("house", b.version)) as mon:
                drift = mon.drift("day")
            t_drift = time.perf_counter() - t
        verdicts = window_verdicts(drift)
        verdicts = verdicts[verdicts["columns"] > 0]
        flagged = verdicts["window_drifted"].fillna(False).astype(bool)
        out[f"{label}_flagged"] = flagged.mean()
        out[f"{label}_old"] = old_rule(drift).reindex(verdicts["window_start"]).fillna(False).mean()
        if label == "clean":
            out["judged"] = (verdicts["judged"] == verdicts["columns"]).mean()
            out["min_n"] = ", ".join(f"{m} {int(v)}" for m, v in drift.groupby("method")["min_n"]
                                     .max().items() if pd.notna(v))
        else:
            hit = drift[drift["column"] == column]["drifted"].fillna(False).astype(bool)
            out["column_hit"] = hit.mean()
        out[f"{label}_seconds"] = t_write + t_drift
        out[f"{label}_drift_seconds"] = t_drift
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=1000)
    p.add_argument("--sizes", default="30,60,200,1000")
    p.add_argument("--column", default="sqft_living")
    p.add_argument("--factor", type=float, default=1.6)
    p.add_argument("--seed", type=int, default=14)
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{args.windows} windows per size; clean = drawn from the training sample; "
          f"scaled = {args.column} x {args.factor}")
    print(f"{'rows':>6} {'clean flagged':>14} {'(old rule)':>10} {'scaled flagged':>15} "
          f"{'(old rule)':>10} {'column hit':>10} {'all judged':>10} {'drift s':>8}  min_n")
    for size in sizes:
        r = run(size, args.windows, args.column, args.factor, args.seed)
        print(f"{size:>6} {r['clean_flagged']:>14.1%} {r['clean_old']:>10.1%} "
              f"{r['scaled_flagged']:>15.1%} {r['scaled_old']:>10.1%} {r['column_hit']:>10.1%} "
              f"{r['judged']:>10.1%} {r['clean_drift_seconds'] + r['scaled_drift_seconds']:>8.1f}"
              f"  {r['min_n']}", flush=True)


if __name__ == "__main__":
    main()
