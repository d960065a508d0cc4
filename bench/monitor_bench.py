"""Monitoring benchmark: 10 million logged predictions, weekly metrics plus drift.

Command and last figures (2-core machine shared with a serving benchmark; load average
1.2-1.3 during the run; 7 fresh-process runs, median (min-max))::

    /work/venv/bin/python bench/monitor_bench.py --repeat 7

    open_monitor      0.16 s (0.15-0.25)
    Monitor.metrics   0.06 s (0.06-0.07)   53 weekly windows, 2,991,019 rows with actuals
    Monitor.drift     2.32 s (2.21-2.47)   14 columns, 742 column-windows
    total             2.54 s (2.41-2.75)   target <= 5 s
    peak RSS          425 MB               target <= 2048 MB
    upload-time join  3.4 s, peak RSS 947 MB (once per upload of actuals; not in total)

    vetiver.compute_metrics on the 2,991,019 joined rows in memory: 1.11 s
    reading and joining those rows from the Parquet into pandas first: 1.68 s
    compute only (vetiver compute vs Monitor.metrics):         18.6x  target >= 10x
    end to end (vetiver load + compute vs open + metrics):     12.6x
    end to end counting Fixative's upload-time join as well:    0.8x

The run before (load 0.5-1.4) gave total 2.79 s (2.58-3.01), metrics 0.07 s, vetiver
1.09 + 1.56 s: 14.7x compute only, 11.2x end to end.

Writes a year of prediction-log segments of the benchmark house-price model
(13 features, distributions of ``../shared/bench/make_model.py``; predictions are
synthetic, no model is fitted) in the prediction log's own Parquet format (one
zstd segment per day, as ``core.store.predlog`` writes them), with actuals for 30 % of the
rows, then:

* materialises the join of the log to the actuals, as :func:`core.monitoring.actuals.save_actuals`
  does after every upload (:func:`core.monitoring.labels.refresh_labels`), timed apart;
* times, in a fresh process per run, Fixative's :func:`core.monitoring.monitor.open_monitor`
  (list the segments, open the sandboxed DuckDB views), ``Monitor.metrics("week")``
  (counts of every logged row per window, RMSE/MAE/MAPE/R² from the materialised
  rows; Parquet read from disk, figures out) and ``Monitor.drift("week")`` (drift and
  data quality of every feature and the prediction against the reference profile);
* times ``vetiver.compute_metrics`` (weekly; mse, mae, mape, r2) on the same rows with
  actuals, as a DataFrame in memory ("compute only"), and apart the DuckDB query that
  reads the Parquet log and actuals and joins them into that DataFrame, which a
  vetiver user needs first ("end to end" adds it). If vetiver runs past
  ``--vetiver-limit`` its time is extrapolated from the windows it finished.

Fixative's metrics read what the upload-time join left (the labelled rows and their
per-minute/hour/day sums), so the last ratio also charges that one-off join to them.
Prints figures; asserts nothing. Usage::

    python bench/monitor_bench.py [--rows 10000000] [--dir /tmp/fixative-monitor-bench]
                                  [--repeat 3]
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
# Bumped when the written data changes, so an older board is written again.
FORMAT = "zstd-1"


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
    from core.model.bundle import BundleMeta
    from core.model.profile import build_profile, row_sample
    from core.model.prototype import Prototype

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
    from core.monitoring.monitor import LOG_SCHEMA_BASE
    from core.store.board import Board
    from core.store.paths import actuals_dir, log_dir

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
        # zstd, as core.store.predlog.write_segment writes the log.
        pq.write_table(table.slice(lo, hi - lo), base / date / f"bench-1-00000000-{d:06d}.parquet",
                       compression="zstd")
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
    pq.write_table(actuals, adir / "bench-actuals.parquet", compression="zstd")
    return {"rows": n, "requests": nreq, "actuals": int(has_actual.sum()), "format": FORMAT}


def materialise(board: str) -> dict:
    """What ``save_actuals`` does after an upload: join the whole log to the actuals once
    (:func:`core.monitoring.labels.refresh_labels`). Timed apart: it runs once per
    upload of actuals, not per query."""
    from core.monitoring.labels import refresh_labels
    from core.store.versionstore import VersionStore

    t0 = time.perf_counter()
    info = refresh_labels(VersionStore(board), MODEL, numeric=True)
    return {"seconds": round(time.perf_counter() - t0, 3), "rows": info.rows if info else 0,
            "peak_rss_mb": round(_peak_rss_mb(), 1)}


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would include the parent's
    peak, which Linux carries across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(board: str, window: str) -> dict:
    """Fixative: weekly metrics plus drift of every feature, timed in this process."""
    from core.monitoring.monitor import open_monitor
    from core.store.versionstore import VersionStore

    meta, sample = reference_meta()
    store = VersionStore(board)
    base_rss = _peak_rss_mb()
    t0 = time.perf_counter()
    with open_monitor(store, MODEL, meta, sample=sample) as mon:
        t1 = time.perf_counter()
        metrics = mon.metrics(window)
        t2 = time.perf_counter()
        drift = mon.drift(window)
        t3 = time.perf_counter()
    return {
        "open_s": round(t1 - t0, 3), "metrics_s": round(t2 - t1, 3),
        "drift_s": round(t3 - t2, 3), "total_s": round(t3 - t0, 3),
        "windows": len(metrics), "rows": int(metrics["n"].sum()),
        "rows_with_actuals": int(metrics["n_actual"].sum()),
        "drift_rows": len(drift), "columns": int(drift["column"].nunique()),
        "drifted_columns_last_window": sorted(
            drift.loc[(drift["window_start"] == drift["window_start"].max())
                      & drift["drifted"].fillna(False).astype(bool), "column"]),
        "peak_rss_mb": round(_peak_rss_mb(), 1), "rss_before_mb": round(base_rss, 1),
        "labelled": mon.labelled,
    }


def measure_vetiver(board: str, limit_s: float) -> dict:
    """vetiver.compute_metrics on the rows with actuals, weekly, with the same four
    regression metrics; run in a thread-free loop we can stop at ``limit_s``."""
    import duckdb
    from sklearn.metrics import (
        mean_absolute_error,
        mean_absolute_percentage_error,
        mean_squared_error,
        r2_score,
    )
    from vetiver import monitor

    t_load = time.perf_counter()
    con = duckdb.connect()
    logs = f"{board}/.fixative/logs/{MODEL}/*/*/*.parquet"
    acts = f"{board}/.fixative/actuals/{MODEL}/by-*/*.parquet"
    df = con.execute(f"""
        SELECT timezone('UTC', l.ts) AS ts, l.prediction, a.actual
        FROM read_parquet('{logs}') l JOIN read_parquet('{acts}') a
          ON l.request_id = a.key AND l.row = a.row
        WHERE l.status < 400""").fetch_df()
    con.close()
    load_s = time.perf_counter() - t_load
    metric_set = [mean_squared_error, mean_absolute_error, mean_absolute_percentage_error,
                  r2_score]
    # compute_metrics walks the windows in order; timing its generator lets us stop it.
    data = df[["actual", "prediction", "ts"]].set_index("ts").sort_index()
    from datetime import timedelta

    windows = 0
    total = int(np.ceil((data.index[-1] - data.index[0]) / timedelta(weeks=1)))
    t0 = time.perf_counter()
    finished = True
    for chunk in monitor._rolling_df(df=data, td=timedelta(weeks=1)):
        for m in metric_set:
            m(y_pred=chunk["prediction"], y_true=chunk["actual"])
        windows += 1
        if time.perf_counter() - t0 > limit_s:
            finished = windows >= total
            break
    spent = time.perf_counter() - t0
    out = {"rows": len(df), "load_s": round(load_s, 3), "windows_done": windows,
           "windows_total": total,
           "seconds": round(spent, 3), "finished": finished}
    # The whole call, as users make it, when the loop above finished in time.
    if finished:
        t0 = time.perf_counter()
        result = monitor.compute_metrics(df, "ts", timedelta(weeks=1), metric_set, "actual",
                                         "prediction")
        out["compute_metrics_s"] = round(time.perf_counter() - t0, 3)
        out["result_rows"] = len(result)
    else:
        out["extrapolated_s"] = round(spent * total / max(windows, 1), 1)
    out["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return out


def _child(mode: str, board: str, extra: str) -> dict:
    res = subprocess.run([sys.executable, __file__, f"--{mode}", board, "--arg", extra],
                         capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dir", default="/tmp/fixative-monitor-bench")
    ap.add_argument("--window", default="week")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (fresh process each)")
    ap.add_argument("--vetiver-limit", type=float, default=300.0,
                    help="seconds vetiver may run before its time is extrapolated")
    ap.add_argument("--measure", metavar="BOARD", help=argparse.SUPPRESS)
    ap.add_argument("--vetiver", metavar="BOARD", help=argparse.SUPPRESS)
    ap.add_argument("--materialise", metavar="BOARD", help=argparse.SUPPRESS)
    ap.add_argument("--arg", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.arg or "week")))
        return
    if args.vetiver:
        print(json.dumps(measure_vetiver(args.vetiver, float(args.arg or 300))))
        return
    if args.materialise:
        print(json.dumps(materialise(args.materialise)))
        return

    board = Path(args.dir) / f"board-{args.rows}"
    marker = board / ".complete.json"
    written = json.loads(marker.read_text()) if marker.exists() else {}
    if written.get("format") == FORMAT:
        print(f"reusing {board}: {written}")
    else:
        import shutil

        shutil.rmtree(board, ignore_errors=True)
        t0 = time.perf_counter()
        written = write_log(board, args.rows)
        written["write_s"] = round(time.perf_counter() - t0, 1)
        marker.write_text(json.dumps(written))
        print(f"wrote {board}: {written}")
    fx = board / ".fixative"
    segments = list((fx / "logs").rglob("*.parquet"))
    log_mib = sum(f.stat().st_size for f in segments) / 2**20
    act_mib = sum(f.stat().st_size for f in (fx / "actuals").glob("*/by-*/*.parquet")) / 2**20
    print(f"parquet on disk: log {log_mib:.0f} MiB ({len(segments)} segments, zstd), "
          f"actuals {act_mib:.0f} MiB")
    lab = _child("materialise", str(board), "")
    lab_mib = sum(f.stat().st_size for f in (fx / "actuals").glob("*/labelled/*.parquet")
                  ) / 2**20
    print(f"join of the log to the actuals, materialised as save_actuals does after each "
          f"upload: {lab['seconds']} s, {lab['rows']:,} labelled rows and per-minute/hour/day "
          f"sums ({lab_mib:.0f} MiB, with the previous one kept), peak RSS "
          f"{lab['peak_rss_mb']} MB (once per upload; not in the query timings below)")

    load = os.getloadavg()
    print(f"load average before timing: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on "
          f"{os.cpu_count()} cores (other work on the machine slows every figure below)")
    runs = [_child("measure", str(board), args.window) for _ in range(args.repeat)]
    print("\nFixative, open_monitor + Monitor.metrics + Monitor.drift (fresh process per run):")
    for i, r in enumerate(runs, 1):
        print(f"  run {i}: open {r['open_s']} s, metrics {r['metrics_s']} s, drift "
              f"{r['drift_s']} s, total {r['total_s']} s, peak RSS {r['peak_rss_mb']} MB "
              f"(labelled rows: {r['labelled']})")
    med = {key: float(np.median([r[key] for r in runs]))
           for key in ("open_s", "metrics_s", "drift_s", "total_s")}
    spread = {key: (min(r[key] for r in runs), max(r[key] for r in runs)) for key in med}
    r0 = runs[0]
    print(f"  {r0['windows']} {args.window} windows, {r0['rows']:,} rows, "
          f"{r0['rows_with_actuals']:,} with actuals, drift of {r0['columns']} columns "
          f"({r0['drift_rows']} column-windows)")
    print(f"  drifted in the last window: {', '.join(r0['drifted_columns_last_window'])}")
    for key, label in (("open_s", "open"), ("metrics_s", "metrics"), ("drift_s", "drift"),
                       ("total_s", "total")):
        print(f"  {label:8s} median {med[key]:.2f} s (min {spread[key][0]:.2f}, "
              f"max {spread[key][1]:.2f}) over {len(runs)} runs")
    print(f"  targets: total <= 5 s -> median {med['total_s']:.2f} s; peak RSS <= 2048 MB -> "
          f"{max(r['peak_rss_mb'] for r in runs)} MB")
    load = os.getloadavg()
    print(f"  load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    vet = _child("vetiver", str(board), str(args.vetiver_limit))
    print("\nvetiver.compute_metrics (the same rows with actuals, weekly, mse/mae/mape/r2):")
    if vet["finished"]:
        seconds = vet.get("compute_metrics_s", vet["seconds"])
        print(f"  {vet['rows']:,} rows, {vet['windows_total']} windows: {seconds} s on the "
              f"DataFrame in memory (peak RSS {vet['peak_rss_mb']} MB)")
    else:
        seconds = vet["extrapolated_s"]
        print(f"  did not finish in {args.vetiver_limit:.0f} s: {vet['windows_done']} of "
              f"{vet['windows_total']} windows in {vet['seconds']} s; extrapolated to "
              f"{seconds} s for all windows")
    print(f"  getting those rows from the Parquet log and actuals into one pandas DataFrame "
          f"(DuckDB join, as a vetiver user must): {vet['load_s']} s")
    ours = med["metrics_s"]
    ours_e2e = med["open_s"] + med["metrics_s"]
    print("\nratios (vetiver time / Fixative time; medians for Fixative):")
    print(f"  compute only: vetiver compute_metrics on the DataFrame in memory {seconds} s vs "
          f"Monitor.metrics {ours:.2f} s (which still reads its Parquet): "
          f"{seconds / ours:.1f}x")
    print(f"  end to end, Parquet on disk to weekly metrics: vetiver load + compute "
          f"{vet['load_s'] + seconds:.2f} s vs open + metrics {ours_e2e:.2f} s: "
          f"{(vet['load_s'] + seconds) / ours_e2e:.1f}x")
    print(f"  end to end, counting Fixative's one-off join at upload too: "
          f"{(vet['load_s'] + seconds) / (ours_e2e + lab['seconds']):.1f}x")
    print(f"  Fixative metrics + drift (total) vs vetiver metrics alone, compute only: "
          f"{seconds / med['total_s']:.1f}x; end to end: "
          f"{(vet['load_s'] + seconds) / med['total_s']:.1f}x")


if __name__ == "__main__":
    main()
