"""Memory under hostile bodies: peak RSS growth of one server, over its idle RSS.

    python bench/hostile_bench.py [--concurrent 4] [--mib 18]

Starts the prediction server (the house example model, default limits, one uvicorn
process on 127.0.0.1), lets it settle, and sends ``--concurrent`` bodies of ``--mib``
MiB at once, sampling the server's RSS (psutil) every 10 ms. Twice, each on a fresh
server: empty records (``[{},{},...]``, the issue's 470 MB per body), then valid
records of the same size (95,000 rows, under the 100,000-row limit, each padded with a
field the model does not use). Prints the peak growth over idle for both, side by side, with the
status codes. The hostile figure must stay under 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
SERVE = """
import sys, uvicorn
from core.model import examples
from core.model.bundle import bundle
from core.serving.app import create_app
data = examples.house_prices(2000, seed=0)
model = examples.house_model(data, n_estimators=20)
app = create_app(bundle(model, data.drop(columns=["price"]), name="house"), tokens=[],
                 log=False)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hostile_body(mib: int) -> bytes:
    n = mib * 2**20 // 3
    return b"[" + b"{}," * (n - 1) + b"{}]"


def valid_body(mib: int, max_rows: int = 95_000) -> tuple[bytes, int]:
    """Records of the house example filling ``mib`` MiB in at most ``max_rows`` rows (under
    the row limit): each record carries a "note" field the model does not use (dropped,
    with a warning) to reach the size with six real columns."""
    sys.path.insert(0, str(ROOT))
    from core.model import examples

    sample = examples.house_prices(2000, seed=1).drop(columns=["price"])
    records = json.loads(sample.to_json(orient="records"))
    plain = len(json.dumps(records, separators=(",", ":"))) / len(records)
    rows = max_rows
    pad = max(0, int(mib * 2**20 / rows - plain - len(',"note":""')))
    note = "x" * pad
    body = [dict(records[i % len(records)], note=note) for i in range(rows)]
    return json.dumps(body, separators=(",", ":")).encode(), rows


def measure(bodies: list[bytes], label: str) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not start")
        warm = [{"bedrooms": 3, "bathrooms": 2.0, "sqft_living": 1800, "grade": 7,
                 "yr_built": 1990, "zipcode": "98103"}]
        for _ in range(5):
            requests.post(url + "/predict", json=warm, timeout=30)
        time.sleep(1.0)
        server = psutil.Process(proc.pid)
        idle = server.memory_info().rss
        peak = idle
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, server.memory_info().rss)
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.monotonic()
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda b: requests.post(
                url + "/predict", data=b, headers={"content-type": "application/json"},
                timeout=300), bodies))
        seconds = time.monotonic() - t0
        time.sleep(0.5)
        done.set()
        sampler.join()
        after = server.memory_info().rss
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"label": label, "idle_mb": idle / 1e6, "peak_growth_mb": (peak - idle) / 1e6,
            "after_growth_mb": (after - idle) / 1e6, "seconds": seconds,
            "statuses": sorted({r.status_code for r in answers}),
            "message": answers[0].json().get("error", {}).get("message", "")[:120]
            if answers[0].status_code != 200 else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--mib", type=int, default=18)
    args = parser.parse_args()
    if not 1 <= args.concurrent <= 16 or not 1 <= args.mib <= 19:
        parser.error("--concurrent 1..16, --mib 1..19 (the body limit is 20 MiB)")
    hostile = hostile_body(args.mib)
    valid, rows = valid_body(args.mib)
    results = [
        measure([hostile] * args.concurrent,
                f"{args.concurrent} x {len(hostile) / 2**20:.1f} MiB of [{{}},{{}},...]"),
        measure([valid] * args.concurrent,
                f"{args.concurrent} x {len(valid) / 2**20:.1f} MiB of valid records "
                f"({rows:,} rows)"),
    ]
    print(f"{'bodies':<52} {'idle MB':>8} {'peak +MB':>9} {'after +MB':>10} "
          f"{'seconds':>8}  status")
    for r in results:
        print(f"{r['label']:<52} {r['idle_mb']:>8.0f} {r['peak_growth_mb']:>9.0f} "
              f"{r['after_growth_mb']:>10.0f} {r['seconds']:>8.1f}  {r['statuses']}")
    if results[0]["message"]:
        print(f"hostile answer: {results[0]['message']}")
    ok = results[0]["peak_growth_mb"] < 1000
    print(f"hostile peak growth under 1 GB: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
