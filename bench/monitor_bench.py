"""Monitoring benchmark: 10 million logged predictions, weekly metrics plus drift.

Writes a year of prediction-log segments of the benchmark house-price model
(13 features, distributions of ``../shared/bench/make_model.py``; predictions are
synthetic, no model is fitted) in the prediction log's own Parquet format, with
actuals for 30 % of the rows, then times in a fresh process:

* Fixative: weekly metrics (joined to the actuals) plus drift and data quality of
  every feature and the prediction, via :func:`core.monitoring.monitor_frames`;
* ``vetiver.compute_metrics`` on the same rows with actuals, under a time limit,
  extrapolated from the share of windows it finished if it runs out of time.

Prints figures; asserts nothing. Usage::

    python bench/monitor_bench.py [--rows 10000000] [--dir /tmp/fixative-monitor-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH_DIR = ROOT.parent / "shared" / "bench"
MODEL = "bench-house"
VERSION = "20250101T000000Z-bench"
START = pd.Timestamp("2025-01-01", tz="UTC")


def _bench_data(n: int, seed: int) -> pd.DataFrame:
    sys.path.insert(0, str(BENCH_DIR))
    from make_model import make_data  # the benchmark model's own data generator

    return make_data(n, seed=seed)


def _features() -> list[str]:
    sys.path.insert(0, str(BENCH_DIR))
    from make_model import FEATURES

    return list(FEATURES)


def reference_meta(seed: int = 1):
    """BundleMeta with the reference profile of the benchmark model's training sample."""
    from core.bundle import BundleMeta
    from core.profile import build_profile, row_sample
    from core.prototype import Prototype

    data = _bench_data(20_000, seed)
    sample = data.sample(n=2000, random_state=0).reset_index(drop=True)
    features = sample[_features()]
    prototype = Prototype.from_frame(features)
    rng = np.random.default_rng(seed)
    preds = sample["price"].to_numpy() * rng.lognormal(0, 0.1, len(sample))
    meta = BundleMeta(name=MODEL, model_class="RandomForestRegressor", library="sklearn",
                      task="regression", prototype=prototype,
                      profile=build_profile(features, prototype, preds))
    return meta, row_sample(features)


def write_log(board: Path, n: int, seed: int = 1, actual_share: float = 0.3) -> dict:
    """Write ``n`` logged rows as daily segments plus one actuals file; returns counts."""
    from core.board import Board
    from core.monitoring import LOG_SCHEMA_BASE, actuals_dir, log_dir

    store = Board(str(board))

    rng = np.random.default_rng(seed)
    data = _bench_data(n, seed)
    features = _features()
    span_us = 365 * 86400 * 10**6
    start_us = START.value // 1000
    # Requests of 1 (70 %), 10 (25 %) or 100 (5 %) rows.
    sizes = rng.choice(np.array([1, 10, 100]), size=n, p=[0.7, 0.25, 0.05])
    cum = np.cumsum(sizes)
    k = int(np.searchsorted(cum, n)) + 1
    sizes = sizes[:k].copy()
    sizes[-1] -= int(cum[k - 1] - n)
    nreq = len(sizes)
    req_ts = np.sort(rng.integers(start_us, start_us + span_us, nreq))
    req_of_row = np.repeat(np.arange(nreq), sizes)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    row = (np.arange(n) - starts).astype(np.int32)
    ts = req_ts[req_of_row]
    req_ids = np.char.add("r", np.char.zfill(np.arange(nreq).astype(str), 9))
    request_id = req_ids[req_of_row]
    failed_req = rng.random(nreq) < 0.003
    failed = failed_req[req_of_row]
    status = np.where(failed, 422, 200).astype(np.int16)
    latency = (rng.lognormal(1.5, 0.4, nreq) + 0.05 * sizes)[req_of_row]
    # Inputs drift in the second half of the year: bigger, newer houses.
    late = ts >= (START + pd.Timedelta(days=182)).value // 1000
    data.loc[late, "sqft_living"] = (data.loc[late, "sqft_living"] * 1.15).astype(np.int64)
    data.loc[late, "yr_built"] = np.minimum(data.loc[late, "yr_built"] + 10, 2025)
    price = data["price"].to_numpy()
    prediction = price * rng.lognormal(0, 0.12, n)
    frame = {
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "request_id": pa.array(request_id, pa.string()),
        "model": pa.array(np.full(n, MODEL), pa.string()),
        "version": pa.array(np.full(n, VERSION), pa.string()),
        "route": pa.array(np.where(sizes[req_of_row] > 1, "invocations", "predict"), pa.string()),
        "status": pa.array(status, pa.int16()),
        "latency_ms": pa.array(latency, pa.float64()),
        "row": pa.array(row, pa.int32(), mask=failed),
        "error_code": pa.array(np.where(failed, "invalid_input", None), pa.string()),
    }
    assert list(frame) == [f.name for f in LOG_SCHEMA_BASE]
    for col in features:
        values = data[col].astype(str) if col == "zipcode" else data[col]
        arrow_type = pa.string() if col == "zipcode" else pa.from_numpy_dtype(values.dtype)
        frame[col] = pa.array(np.asarray(values), arrow_type, mask=failed)
    frame["prediction"] = pa.array(prediction, pa.float64(), mask=failed)
    frame["proba"] = pa.nulls(n, pa.list_(pa.float64()))
    table = pa.table(frame)
    day = (ts - start_us) // (86400 * 10**6)
    base = Path(log_dir(store, MODEL, VERSION))
    bounds = np.searchsorted(day, np.arange(366))
    for d in range(365):
        lo, hi = int(bounds[d]), int(bounds[d + 1])
        if hi <= lo:
            continue
        date = (START + pd.Timedelta(days=d)).strftime("%Y-%m-%d")
        (base / date).mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(lo, hi - lo), base / date / f"bench-1-00000000-{d:06d}.parquet")
    has_actual = (~failed) & (rng.random(n) < actual_share)
    actuals = pa.table({
        "key": pa.array(request_id[has_actual], pa.string()),
        "row": pa.array(row[has_actual], pa.int32()),
        "actual": pa.array(price[has_actual], pa.float64()),
        "uploaded_at": pa.array(np.full(int(has_actual.sum()), ts[-1]),
                                pa.timestamp("us", tz="UTC")),
    })
    adir = Path(actuals_dir(store, MODEL, "request_id"))
    adir.mkdir(parents=True, exist_ok=True)
    pq.write_table(actuals, adir / "bench-actuals.parquet")
    return {"rows": n, "requests": nreq, "actuals": int(has_actual.sum())}
