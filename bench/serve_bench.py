"""Fixative's prediction server against vetiver's, back to back, on the shared harness.

    python bench/serve_bench.py [--duration 10] [--warmup 2] [--repeat 3] [--skip-vetiver]
                                [--engine sklearn|onnx|both]
    python bench/serve_bench.py --shadow-only [--rounds 3] [--duration 8]

Each scenario runs on vetiver's server and then on ours (and logging off, then on),
each in a fresh server process, so slow spells of a shared machine fall on both sides.
Needs ../shared/bench set up (``bash setup.sh``; ``$PY make_model.py``): the benchmark
venv /tmp/benchvenv runs the harness and vetiver's server; Fixative's server runs with
this interpreter (``sys.executable``) via ``bench/serve_fixative.py``. Both servers are
pinned to CPU 0 and the load generator (wrk) to CPU 1. Prints both tables, the ratios
against the issue's targets, a logging on/off comparison and idle memory against a bare
Python process that only loaded the same model; writes /tmp/bench/results/summary.json.

``--engine`` serves the benchmark model from a real board (written once to
/tmp/bench/fxboard, compiled to ONNX when written) the way ``python -m core serve
--engine ...`` does; ``both`` runs vetiver and both engines in the same run, and also
checks the graph's served predictions against ``model.predict`` on the 2,000 sample
rows and measures cold start (process start to the first answered prediction) of the
three servers. Without ``--engine`` the server is built from the joblib file in memory,
as before.

Shadow on/off: the champion's p99 with 1-row requests at concurrency 32, with a
challenger (a second copy of the same model, so as costly) scoring every request in
shadow mode and without one, alternated ``--rounds`` times, each in a fresh server
process on CPU 0 with ``load.py`` (wrk) on CPU 1; the ratio of the medians against the
target (<= 1.2), and how much work the challenger dropped. ``--shadow-only`` runs just
this part, which needs only ``load.py`` and the model of the harness.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESS = (HERE.parent.parent / "shared" / "bench").resolve()
BENCH_PY = "/tmp/benchvenv/bin/python"
RESULTS = Path("/tmp/bench/results")
SERVER = f"{sys.executable} {HERE / 'serve_fixative.py'} {{port}}"
BOARD = "/tmp/bench/fxboard"
FEATURES = ["bedrooms", "bathrooms", "sqft_living", "sqft_lot", "floors", "waterfront",
            "view", "condition", "grade", "yr_built", "zipcode", "lat", "long"]


def store_model() -> dict:
    """Write the benchmark model to a fresh board (compiled when written); its report."""
    import shutil

    import joblib
    import pandas as pd

    sys.path.insert(0, str(HERE.parent))
    os.environ["FIXATIVE_COMPILE"] = "1"
    from core.model.bundle import bundle
    from core.store.versionstore import VersionStore

    shutil.rmtree(BOARD, ignore_errors=True)
    model = joblib.load("/tmp/bench/model.joblib")
    sample = pd.read_parquet("/tmp/bench/sample.parquet")[FEATURES]
    store = VersionStore(BOARD)
    started = time.perf_counter()
    store.write(bundle(model, sample, name="house_price_rf"))
    report = store.compiled("house_price_rf")
    report["write_seconds"] = time.perf_counter() - started
    return report


def engine_server(engine: str) -> str:
    return f"{SERVER} --engine {engine} --board {BOARD}"


def served_accuracy(engine: str) -> dict:
    """Served predictions of all 2,000 sample rows against model.predict."""
    import joblib
    import numpy as np
    import pandas as pd

    port = free_port()
    proc = subprocess.Popen(engine_server(engine).format(port=port).split(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_healthy(port, proc, timeout=120)
        sample = pd.read_parquet("/tmp/bench/sample.parquet")[FEATURES]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict",
                                         data=sample.to_json(orient="records").encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            served = np.asarray(json.loads(answer.read())["predict"])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    expected = joblib.load("/tmp/bench/model.joblib").predict(sample)
    rel = np.abs(served - expected) / np.abs(expected)
    return {"rows": len(sample), "max_rel": float(rel.max()),
            "max_abs": float(np.abs(served - expected).max())}


def cold_start(command: str, cwd: Path, runs: int = 3) -> float:
    """Median seconds from process start to the first answered 1-row prediction."""
    body = (Path("/tmp/bench/bodies/rows1.json")).read_bytes()
    times = []
    for _ in range(runs):
        port = free_port()
        started = time.perf_counter()
        proc = subprocess.Popen(["taskset", "-c", "0", *command.format(
            port=port, python=BENCH_PY).split()], cwd=cwd, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            while True:
                try:
                    request = urllib.request.Request(
                        f"http://127.0.0.1:{port}/predict", data=body,
                        headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(request, timeout=5) as answer:
                        answer.read()
                    break
                except OSError:
                    if time.perf_counter() - started > 120:
                        raise
                    time.sleep(0.01)
            times.append(time.perf_counter() - started)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    return statistics.median(times)


def run_harness(label: str, server: str, scenarios: str, args: argparse.Namespace,
                port: int) -> dict:
    cmd = [BENCH_PY, str(HARNESS / "run_bench.py"), "--label", label, "--server", server,
           "--port", str(port), "--server-cpus", "0", "--load-cpus", "1",
           "--duration", str(args.duration), "--warmup", str(args.warmup),
           "--repeat", str(args.repeat), "--scenarios", scenarios, "--out", str(RESULTS)]
    print(f"\n$ {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=HARNESS, check=True)
    return json.loads((RESULTS / f"{label}.json").read_text())


def interleaved(servers: dict[str, str], scenarios: str, args: argparse.Namespace,
                port: int) -> dict[str, dict]:
    """Each scenario on every server in turn, so that a noisy neighbour on this shared
    machine hits both sides of a comparison alike."""
    merged: dict[str, dict] = {label: {"label": label, "scenarios": [], "rounds": {}}
                               for label in servers}
    for scenario in scenarios.split(","):
        runs: dict[str, list[dict]] = {label: [] for label in servers}
        for _ in range(args.rounds):
            for label, server in servers.items():
                part = run_harness(f"{label}-{scenario}", server, scenario, args, port)
                runs[label].extend(part["scenarios"])
                merged[label]["versions"] = part.get("versions")
        for label, found in runs.items():
            # in round order, for the paired (same round) ratios
            merged[label]["rounds"][scenario] = [s["median_run"] for s in found]
            # the round with the median req/s, like run_bench.py does for repeats
            ranked = sorted(found, key=lambda s: s["median_run"]["rps"])
            merged[label]["scenarios"].append(ranked[len(ranked) // 2])
    for label, result in merged.items():
        (RESULTS / f"{label}.json").write_text(json.dumps(result, indent=1))
    return merged


def by_scenario(result: dict) -> dict[str, dict]:
    return {s["scenario"]: s["median_run"] for s in result["scenarios"]}


def paired(num: dict, den: dict, scenario: str, field: str) -> list[float]:
    """Ratios of the runs that ran back to back (round k of one against round k of the
    other): a slow spell of the machine falls on both runs of a pair."""
    a, b = num.get("rounds", {}).get(scenario, []), den.get("rounds", {}).get(scenario, [])
    return sorted(x[field] / y[field] for x, y in zip(a, b))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def bare_model_rss() -> float:
    """RSS of a Python process (this interpreter) that has only loaded the model."""
    code = ("import joblib, time, sys; m = joblib.load('/tmp/bench/model.joblib'); "
            "print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", code],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1)
        return rss_mb(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Return once the server on ``port`` answers /healthz; RuntimeError if it exits or
    does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the server did not start") from None
            time.sleep(0.01)


def server_idle_rss(port: int) -> float:
    proc = subprocess.Popen(["taskset", "-c", "0", *SERVER.format(port=port).split()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_healthy(port, proc)
        time.sleep(2)
        return rss_mb(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shadow_run(shadow: bool, args: argparse.Namespace) -> dict:
    """One server (shadow on or off) under 1-row requests at c=32; wrk's figures, with the
    challenger's counts from /metadata when shadow is on."""
    port = free_port()
    engine = args.engine if args.engine in ("sklearn", "onnx") else None
    cmd = ["taskset", "-c", "0", *SERVER.format(port=port).split(),
           *(["--engine", engine, "--board", BOARD] if engine else []),
           *(["--shadow"] if shadow else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_healthy(port, proc)
        py = BENCH_PY if Path(BENCH_PY).exists() else sys.executable
        out = subprocess.run([py, str(HARNESS / "load.py"), f"http://127.0.0.1:{port}/predict",
                              "--rows", "1", "-c", "32", "-d", str(args.duration), "--warmup",
                              str(args.warmup), "--cpus", "1", "--json"],
                             cwd=HARNESS, check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if shadow:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metadata", timeout=5) as r:
                result["challenger"] = json.loads(r.read())["challenger"]
        return result
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def shadow_bench(args: argparse.Namespace) -> dict:
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for label, on in (("off", False), ("on", True)):
            runs[label].append(shadow_run(on, args))
    engine = args.engine if args.engine in ("sklearn", "onnx") else "sklearn (in memory)"
    print(f"\n**Shadow on/off: 1 row, c=32 (champion's answers), engine {engine}**\n")
    print("| round | off req/s | off p99 ms | on req/s | on p99 ms | p99 on/off | challenger "
          "scored / dropped | share scored |\n|---|---|---|---|---|---|---|---|")
    for i, (off, on) in enumerate(zip(runs["off"], runs["on"]), 1):
        ch = on.get("challenger", {})
        done, dropped = ch.get("scored", 0), ch.get("dropped", 0)
        share = done / (done + dropped) if done + dropped else float("nan")
        print(f"| {i} | {off['rps']:.0f} | {off['p99_ms']:.1f} | {on['rps']:.0f} | "
              f"{on['p99_ms']:.1f} | {on['p99_ms'] / off['p99_ms']:.2f} | "
              f"{done} / {dropped} | {share:.1%} |")
    med = {k: statistics.median(r["p99_ms"] for r in v) for k, v in runs.items()}
    ratio = med["on"] / med["off"]
    print(f"\nchampion p99 shadow on / off (<= 1.2): {ratio:.2f} "
          f"({med['on']:.1f} ms against {med['off']:.1f} ms, median of {args.rounds} rounds)")
    return {"runs": runs, "p99_ratio": ratio}


def table(title: str, result: dict) -> str:
    lines = [f"**{title}**", "",
             "| scenario | req/s | rows/s | p50 ms | p99 ms | server CPU ms/req |",
             "|---|---|---|---|---|---|"]
    for s in result["scenarios"]:
        m = s["median_run"]
        lines.append(f"| {s['rows']} row{'s' if s['rows'] > 1 else ''}, c={s['concurrency']} | "
                     f"{m['rps']:.1f} | {m['rows_per_s']:.0f} | {m['p50_ms']:.1f} | "
                     f"{m['p99_ms']:.1f} | {m['srv_cpu_ms_per_req']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate the servers this many times per scenario (noisy machines)")
    ap.add_argument("--scenarios", default="1x1,1x8,1x32,100x4,1000x4")
    ap.add_argument("--log-scenarios", default="1x1,1x32")
    ap.add_argument("--skip-vetiver", action="store_true",
                    help="reuse /tmp/bench/results/vetiver.json from an earlier run")
    ap.add_argument("--engine", choices=("sklearn", "onnx", "both"), default=None,
                    help="serve from a board with this engine (both: vetiver and both "
                         "engines in one run, plus accuracy and cold start)")
    ap.add_argument("--shadow-only", action="store_true",
                    help="only the champion's p99 with shadow on and off")
    args = ap.parse_args()
    if args.shadow_only:
        if not Path("/tmp/bench/model.joblib").exists():
            sys.exit(f"make the model first: cd {HARNESS} && {BENCH_PY} make_model.py")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "shadow.json").write_text(json.dumps(shadow_bench(args), indent=1))
        return
    if not Path(BENCH_PY).exists() or not Path("/tmp/bench/model.joblib").exists():
        sys.exit(f"set up the harness first: cd {HARNESS} && bash setup.sh && "
                 f"{BENCH_PY} make_model.py")
    RESULTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    if args.engine:
        engines(args, port)
        return
    servers = {"vetiver": "{python} serve_vetiver.py {port}", "fixative": SERVER}
    if args.skip_vetiver:
        vet = json.loads((RESULTS / "vetiver.json").read_text())
        ours = run_harness("fixative", SERVER, args.scenarios, args, port)
    else:
        both = interleaved(servers, args.scenarios, args, port)
        vet, ours = both["vetiver"], both["fixative"]
    log_board = "/tmp/bench/logboard"
    logs = interleaved({"fixative-nolog": SERVER,
                        "fixative-log": f"{SERVER} --log-board {log_board}"},
                       args.log_scenarios, args, port)
    log_on, log_off = logs["fixative-log"], logs["fixative-nolog"]
    shadow = shadow_bench(args)
    bare = bare_model_rss()
    idle = server_idle_rss(free_port())

    v, o = by_scenario(vet), by_scenario(ours)
    on, off = by_scenario(log_on), by_scenario(log_off)
    wanted = [  # (label, numerator, denominator, scenario, field)
        ("1x1 req/s (>= 1.1)", ours, vet, "1x1", "rps"),
        ("1x32 req/s (>= 8)", ours, vet, "1x32", "rps"),
        ("1x32 p99 ours/vetiver (<= 0.25)", ours, vet, "1x32", "p99_ms"),
        ("1000x4 rows/s (>= 1.7)", ours, vet, "1000x4", "rows_per_s"),
        ("logging on/off req/s, 1x1 (>= 0.9)", log_on, log_off, "1x1", "rps"),
        ("logging on/off req/s, 1x32 (>= 0.9)", log_on, log_off, "1x32", "rps"),
    ]
    # --scenarios / --log-scenarios may run a subset: give the ratios that were measured.
    ratios, pairs = {}, {}
    for label, num, den, sc, field in wanted:
        n, d = by_scenario(num), by_scenario(den)
        if sc in n and sc in d:
            ratios[label] = n[sc][field] / d[sc][field]
            pairs[label] = paired(num, den, sc, field)
    ratios["idle RSS server/bare model (<= 1.5)"] = idle / bare
    ratios["shadow on/off champion p99, 1x32 (<= 1.2)"] = shadow["p99_ratio"]
    print("\n" + table("vetiver 0.2.6 (VetiverAPI, FastAPI)", vet))
    print("\n" + table("Fixative (create_app, Starlette)", ours))
    print("\n" + table("Fixative, prediction log on", log_on))
    print("\n" + table("Fixative, prediction log off", log_off))
    print(f"\nidle RSS: server {idle:.0f} MB, bare Python with the model {bare:.0f} MB")
    print("\n| ratio (target) | median rounds | same-round pairs: median (min-max) |\n"
          "|---|---|---|")
    for k, val in ratios.items():
        p = pairs.get(k) or []
        spread = (f"{statistics.median(p):.2f} ({p[0]:.2f}-{p[-1]:.2f}, {len(p)} pairs)"
                  if p else "")
        print(f"| {k} | {val:.2f} | {spread} |")
    summary = {"ratios": ratios, "paired_ratios": pairs, "idle_rss_mb": idle, "bare_rss_mb": bare,
               "vetiver": v, "fixative": o, "log_on": on, "log_off": off}
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1))


def engines(args: argparse.Namespace, port: int) -> None:
    """Vetiver and Fixative's engines on the issue's scenarios, in one interleaved run."""
    report = store_model()
    print(f"compiled when written: {report.get('precision')} precision, predictions differ "
          f"by at most {report['predict']['max_rel']:.2g} relative on {report['rows']} rows; "
          f"write + compile took {report['write_seconds']:.1f} s", flush=True)
    chosen = ["sklearn", "onnx"] if args.engine == "both" else [args.engine]
    servers = {"vetiver": "{python} serve_vetiver.py {port}"}
    servers.update({f"fixative-{e}": engine_server(e) for e in chosen})
    results = interleaved(servers, args.scenarios, args, port)
    vet = results["vetiver"]
    for label, result in results.items():
        print("\n" + table(label, result))
    targets = [("1x1 req/s", "1x1", "rps", 8, ">="), ("1x32 req/s", "1x32", "rps", 15, ">="),
               ("1x32 p99", "1x32", "p99_ms", 0.1, "<="),
               ("1000x4 rows/s", "1000x4", "rows_per_s", 4, ">=")]
    ratios: dict[str, dict] = {}
    print("\n| engine | ratio to vetiver (target) | same run | same-round pairs |\n"
          "|---|---|---|---|")
    for e in chosen:
        ours = results[f"fixative-{e}"]
        o, v = by_scenario(ours), by_scenario(vet)
        for label, sc, field, goal, op in targets:
            if sc not in o or sc not in v:
                continue
            value = o[sc][field] / v[sc][field]
            p = paired(ours, vet, sc, field)
            ok = value >= goal if op == ">=" else value <= goal
            ratios.setdefault(e, {})[label] = value
            print(f"| {e} | {label} ({op} {goal}) | {value:.2f} {'met' if ok else 'NOT met'} | "
                  f"{', '.join(f'{x:.2f}' for x in p)} |")
    accuracy = {e: served_accuracy(e) for e in chosen}
    for e, a in accuracy.items():
        print(f"\nserved by {e}: {a['rows']} sample rows, largest difference from "
              f"model.predict {a['max_rel']:.2g} relative ({a['max_abs']:.2g} absolute)")
    cold = {"vetiver": cold_start("{python} serve_vetiver.py {port}", HARNESS)}
    cold.update({f"fixative-{e}": cold_start(engine_server(e), HERE) for e in chosen})
    print("\ncold start (process start to the first answered prediction, median of 3): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in cold.items()))
    summary = {"compile_report": report, "ratios": ratios, "accuracy": accuracy,
               "cold_start_s": cold,
               "results": {k: by_scenario(v) for k, v in results.items()}}
    (RESULTS / "engines_summary.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
