"""Server CPU per request of this checkout against another one, in alternating rounds.

    python bench/serve_ab.py OTHER_CHECKOUT [--rounds 5] [--duration 6] [--rows 1000]
                                            [--concurrency 4] [--engine onnx|sklearn]

How a change to the server moves its cost, which the machine's swings hide when runs are
compared across minutes: each round starts the server of each checkout in turn (its own
``bench/serve_fixative.py``, so its own ``core``, with this interpreter), on the
benchmark model stored on /tmp/bench/fxboard (see ``serve_bench.store_model``), pinned
to CPU 0; the shared harness's ``load.py`` (wrk) sends ``--rows``-row requests at
``--concurrency`` from CPU 1 for 2 s of warm-up and ``--duration`` s measured. Server
CPU per request is read from /proc (user + system time of the server process over the
measured requests). Prints every round and the medians; the other checkout needs a
``bench/serve_fixative.py`` that takes ``--engine`` and ``--board`` (2026-12-04 on).

Example: ``git worktree add /tmp/before HEAD~3 && python bench/serve_ab.py /tmp/before``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from serve_bench import (  # noqa: E402
    BENCH_PY,
    BOARD,
    HARNESS,
    free_port,
    store_model,
    wait_healthy,
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(url: str, body: Path, concurrency: int, seconds: float) -> dict:
    out = subprocess.run([BENCH_PY, str(HARNESS / "load.py"), url, "--body-file", str(body),
                          "-c", str(concurrency), "-d", str(seconds), "--warmup", "0",
                          "--json", "--cpus", "1"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def one_round(tree: Path, args: argparse.Namespace, body: Path) -> tuple[float, float]:
    """(server CPU ms per request, requests per second) of one fresh server of ``tree``."""
    port = free_port()
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, str(tree / "bench" / "serve_fixative.py"),
         str(port), "--engine", args.engine, "--board", BOARD],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        try:
            wait_healthy(port, server)
        except RuntimeError:
            raise SystemExit(f"the server of {tree} did not start") from None
        url = f"http://127.0.0.1:{port}/predict"
        load(url, body, args.concurrency, 2)
        before = cpu_seconds(server.pid)
        result = load(url, body, args.concurrency, args.duration)
        used = cpu_seconds(server.pid) - before
        return used * 1e3 / max(result["requests"], 1), result["rps"]
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("other", type=Path, help="another checkout of this repository")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--rows", type=int, choices=(1, 100, 1000), default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--engine", choices=("onnx", "sklearn"), default="onnx")
    args = ap.parse_args()
    other = args.other.resolve()
    if not (other / "bench" / "serve_fixative.py").is_file():
        raise SystemExit(f"{other} has no bench/serve_fixative.py: give a checkout of this "
                         "repository (git worktree add DIR REF).")
    body = Path(f"/tmp/bench/bodies/rows{args.rows}.json")
    if not body.is_file():
        raise SystemExit(f"{body} is missing: set up the shared harness first (see README).")
    if not Path(BOARD).is_dir():
        store_model()
    trees = {"this": HERE.parent, "other": other}
    seen: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for r in range(args.rounds):
        for name, tree in trees.items():
            cpu, rps = one_round(tree, args, body)
            seen[name].append((cpu, rps))
            print(f"round {r + 1} {name:5s} {cpu:6.2f} ms CPU/request  {rps:8.1f} req/s",
                  flush=True)
    medians = {name: (statistics.median(c for c, _ in v), statistics.median(q for _, q in v))
               for name, v in seen.items()}
    for name, (cpu, rps) in medians.items():
        print(f"{name} ({trees[name]}): median {cpu:.2f} ms CPU/request, {rps:.1f} req/s")
    ratio = medians["this"][0] / medians["other"][0]
    print(f"this / other, CPU per request: {ratio:.2f}")


if __name__ == "__main__":
    main()
