"""Store benchmark: small-model writes against vetiver, whole ``python -m core`` commands
against pins one-liners, listing at 1,000 versions against pins-python, big-model writes.

    python bench/store_bench.py [--versions 1000] [--models 200] [--megabytes 50]
                                [--dir DIR] [--sections small,cli,listing,big]

Prints figures; asserts nothing. Targets:

- small: a small model's write (``core.bundle`` + ``store.write``, warm process) at most
  2x ``vetiver.vetiver_pin_write`` of the same model;
- cli: ``python -m core versions NAME`` at 1,000 versions, the whole process, at most
  0.4x a Python one-liner calling pins' ``pin_versions``; ``python -m core list`` at 200
  models at most 0.4x one calling ``pin_list``;
- listing: 1,000 writes in a loop (a newly fitted model each), total and the median of
  the last 100 against the first 100, beside the same loop of ``vetiver_pin_write``: the
  cost does not grow with the number of versions; listing one pin's versions at least
  20x faster than pins' ``pin_versions`` on the same board;
- big: writing a 50 MB model through the store at most 1.5x a plain copy of the same
  bytes to the same disk.

A summary at the end lists every figure of issue #20 as a ratio to its anchor, with
its target, so one run (``--sections small,cli,listing``) reports them all.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.neighbors import KNeighborsRegressor  # noqa: E402

from core.model.bundle import bundle  # noqa: E402
from core.store.versionstore import VersionStore  # noqa: E402


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median, min) seconds over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.3f} ms"


# (figure, ratio, target or None, what was compared), printed together at the end
SUMMARY: list[tuple[str, float, float | None, str]] = []


def _loop(write: Callable[[int], object], n: int) -> list[float]:
    """Seconds of each of ``n`` calls ``write(i)``."""
    each = []
    for i in range(n):
        t = time.perf_counter()
        write(i)
        each.append(time.perf_counter() - t)
    return each


def _vetiver(folder: Path) -> tuple[Any, Any]:
    """A versioned pins board folder and vetiver's model class, quiet: vetiver and pins
    print a model-card reminder (and pins a note) on every write."""
    import logging

    import pins
    import pins.utils
    import vetiver
    import vetiver.utils

    logging.getLogger("vetiver").setLevel(logging.WARNING)
    logging.getLogger("pins").setLevel(logging.WARNING)
    vetiver.utils.modelcard_options.quiet = True
    pins.utils.pins_options.quiet = True
    board = pins.board_folder(str(folder), allow_pickle_read=True, versioned=True)
    return board, vetiver.VetiverModel


def listing(root: Path, n_versions: int) -> None:
    import pins
    import vetiver

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 4)), columns=["a", "b", "c", "d"])
    model = LinearRegression().fit(X, X @ np.array([1.0, 2.0, -1.0, 0.5]))
    small = bundle(model, X, name="small", metrics={"rmse": 0.1})
    board = root / "listing"
    store = VersionStore(board)

    # A newly fitted model for every write, as a training loop makes (pins stores nothing
    # when a pickle's hash equals the latest version's); fitted before the clock starts.
    y = X @ np.array([1.0, 2.0, -1.0, 0.5])
    fitted = [LinearRegression().fit(X, y + i * 1e-6) for i in range(2 * n_versions)]
    each = _loop(lambda i: store.write(bundle(fitted[i], X, name="small",
                                              metrics={"rmse": 0.1})), n_versions)
    vboard, vetiver_model = _vetiver(root / "listing-vetiver")
    theirs = _loop(lambda i: vetiver.vetiver_pin_write(
        vboard, vetiver_model(fitted[n_versions + i], "small", prototype_data=X)), n_versions)
    k = min(100, n_versions)
    print(f"{n_versions} writes of a small model in a loop, each a newly fitted "
          "LinearRegression on 200 rows:")
    figures: dict[str, tuple[float, float]] = {}
    for who, times in (("core.bundle + store.write", each),
                       ("VetiverModel + vetiver_pin_write", theirs)):
        total, first, last = sum(times), statistics.median(times[:k]), \
            statistics.median(times[-k:])
        figures[who] = (total, last / first)
        print(f"  {who:34} total {total:7.1f} s ({total / n_versions * 1000:.1f} ms per "
              f"write); median of the first {k} {ms(first)}, of the last {k} {ms(last)} "
              f"(last/first {last / first:.2f})")
    ours_total, ours_growth = figures["core.bundle + store.write"]
    their_total, their_growth = figures["VetiverModel + vetiver_pin_write"]
    SUMMARY.append((f"{n_versions} writes in a loop, total ÷ vetiver's",
                    ours_total / their_total, None, f"{ours_total:.1f} s vs "
                    f"{their_total:.1f} s"))
    SUMMARY.append((f"  ours: median of the last {k} writes ÷ of the first {k}", ours_growth,
                    None, f"vetiver's {their_growth:.2f}x; 1.00x is no growth"))

    t = time.perf_counter()
    versions = store.versions("small")
    first = time.perf_counter() - t
    assert len(versions) == n_versions, len(versions)
    assert len(vboard.pin_versions("small")) == n_versions
    print(f"first listing after the writes (index sync of {n_versions} new versions): "
          f"{ms(first)}")

    repeat = 50
    warm_versions, _ = timed(lambda: store.versions("small"), repeat)
    warm_models, _ = timed(store.list_models, repeat)

    def cold_versions() -> None:
        VersionStore(board).versions("small")  # new process-like instance: no memory cache

    other = VersionStore(board)  # another process, with its own index connection
    other_model = bundle(model, X, name="other")

    def timed_after(change: Callable[[], object], repeat: int) -> float:
        times = []
        for _ in range(repeat):
            change()  # untimed
            t = time.perf_counter()
            store.versions("small")
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    cold, _ = timed(cold_versions, 20)
    elsewhere = timed_after(lambda: other.write(other_model), 20)
    read_latest, _ = timed(lambda: store.read("small"), 20)
    pboard = pins.board_folder(str(board), allow_pickle_read=True)
    pins_versions, _ = timed(lambda: pboard.pin_versions("small"), 20)
    assert len(pboard.pin_versions("small")) == n_versions
    # last: it adds versions to the pin
    same_model = timed_after(lambda: other.write(small), 20)
    assert len(store.versions("small")) == n_versions + 20

    print(f"\nlisting at {n_versions} versions (median):")
    print(f"  store.versions(name), unchanged board  {ms(warm_versions)}")
    print(f"  store.list_models(), unchanged board    {ms(warm_models)}")
    print(f"  store.versions(name), fresh store       {ms(cold)}   (the listing kept on disk "
          "at the last index answer)")
    print(f"  store.versions(name), after another process wrote another model "
          f"{ms(elsewhere)}")
    print(f"  store.versions(name), after another process wrote a version of it "
          f"{ms(same_model)}   (its new folder read, kept listing reused)")
    print(f"  store.read(name) latest                 {ms(read_latest)}")
    print(f"  pins pin_versions(name)                 {ms(pins_versions)}")
    print("  ratio pin_versions / store.versions:  "
          f"unchanged board {pins_versions / warm_versions:7.1f}x | "
          f"other model changed {pins_versions / elsewhere:5.1f}x | "
          f"fresh store {pins_versions / cold:5.1f}x | "
          f"this model changed {pins_versions / same_model:5.1f}x   (target >= 20x)")


def small_write(root: Path, repeat: int) -> None:
    """A small model's write, warm process: Fixative's bundle + write against vetiver's
    VetiverModel + vetiver_pin_write of the same model, alternated."""
    import vetiver

    board, _ = _vetiver(root / "small-vetiver")
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(50, 4)), columns=["a", "b", "c", "d"])
    y = X @ np.array([1.0, 2.0, -1.0, 0.5])
    # A new model for every write: pins stores nothing when the pickle's hash equals the
    # latest version's ("Your pin will not be stored"), which would time a no-op.
    models = iter([LinearRegression().fit(X, y + i * 1e-6) for i in range(4 * repeat + 8)])
    store = VersionStore(root / "small-fixative")
    v_models = iter([vetiver.VetiverModel(next(models), "small", prototype_data=X)
                     for _ in range(repeat + 2)])

    def ours_bundle() -> object:
        return bundle(next(models), X, name="small")

    def ours() -> None:
        store.write(bundle(next(models), X, name="small"))

    def theirs_write() -> None:
        vetiver.vetiver_pin_write(board, next(v_models))

    def theirs() -> None:
        vetiver.vetiver_pin_write(board, vetiver.VetiverModel(next(models), "small",
                                                              prototype_data=X))

    for fn in (ours, theirs, theirs_write):  # warm: first-use imports and lookups
        fn()
    times: dict[str, list[float]] = {"ours": [], "bundle": [], "theirs": [], "write": []}
    for _ in range(repeat):  # alternated, so a slow spell hits every side
        for key, fn in (("ours", ours), ("bundle", ours_bundle), ("theirs", theirs),
                        ("write", theirs_write)):
            times[key].append(timed(fn, 1)[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nwriting a small model (LinearRegression, 50 rows; median of {repeat}, "
          "alternated, warm process):")
    print(f"  core.bundle + store.write                          {ms(med['ours'])}")
    print(f"    of which core.bundle                             {ms(med['bundle'])}")
    print(f"  vetiver.vetiver_pin_write                          {ms(med['write'])}")
    print(f"  vetiver.VetiverModel + vetiver_pin_write           {ms(med['theirs'])}")
    print(f"  ratio ours / vetiver_pin_write {med['ours'] / med['write']:5.2f}x  "
          "(target <= 2x) | ours / VetiverModel + vetiver_pin_write "
          f"{med['ours'] / med['theirs']:5.2f}x")
    SUMMARY.append(("small write, warm: bundle + store.write ÷ vetiver_pin_write",
                    med["ours"] / med["write"], 2.0,
                    f"{med['ours'] * 1000:.1f} vs {med['write'] * 1000:.1f} ms"))


def _process_s(code: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole process; CPU (user + system) is the steadier
    figure on a machine shared with other work."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(code, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cli(root: Path, n_versions: int, n_models: int, repeat: int) -> None:
    """Whole processes: ``python -m core versions|list`` against pins one-liners."""
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(50, 4)), columns=["a", "b", "c", "d"])
    model = LinearRegression().fit(X, X @ np.array([1.0, 2.0, -1.0, 0.5]))
    versions_board = root / "cli-versions"
    models_board = root / "cli-models"
    store = VersionStore(versions_board)
    one = bundle(model, X, name="small", metrics={"rmse": 0.1})
    for _ in range(n_versions):
        store.write(one)
    many = VersionStore(models_board)
    for i in range(n_models):
        many.write(bundle(model, X, name=f"model-{i:03d}"))
    store.versions("small")  # the index is up to date, as after any earlier command
    many.list_models()

    python = sys.executable
    pins_line = "import pins; pins.board_folder({!r}, allow_pickle_read=True).{}"
    runs = {
        "core versions": [python, "-m", "core", "versions", "small", "--store",
                          str(versions_board)],
        "pins pin_versions": [python, "-c", pins_line.format(str(versions_board),
                                                             "pin_versions('small')")],
        "core list": [python, "-m", "core", "list", "--store", str(models_board)],
        "pins pin_list": [python, "-c", pins_line.format(str(models_board), "pin_list()")],
    }
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [base.get("PYTHONPATH")])])
    # Installed packages come with compiled bytecode; so do ours here, kept out of the
    # tree. The second set compiles Fixative's modules on every run, as a checkout with
    # PYTHONDONTWRITEBYTECODE=1 does (pins' bytecode is in site-packages either way).
    cached = dict(base, PYTHONPYCACHEPREFIX=str(root / "pycache"))
    uncached = dict(base, PYTHONDONTWRITEBYTECODE="1")
    for code in runs.values():
        _process_s(code, cached)  # warm: bytecode written, files in the page cache
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    times |= {f"{k}, no bytecode cache": [] for k in runs if k.startswith("core")}
    for _ in range(repeat):
        for key, code in runs.items():
            times[key].append(_process_s(code, cached))
            if key.startswith("core"):
                times[f"{key}, no bytecode cache"].append(_process_s(code, uncached))
    wall = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    print(f"\nwhole processes (median of {repeat}, alternated; {n_versions} versions of one "
          f"model, {n_models} models of one version; the index and the listings kept on "
          "disk are up to date, as after any earlier command):")
    print(f"  {'':42} {'wall':>12} {'CPU':>12}")
    for key in times:
        print(f"  {key:42} {ms(wall[key])} {ms(cpu[key])}")
    for ours, theirs in (("core versions", "pins pin_versions"), ("core list", "pins pin_list")):
        nocache = ours + ", no bytecode cache"
        print(f"  ratio {ours} / {theirs}: wall {wall[ours] / wall[theirs]:5.2f}x, CPU "
              f"{cpu[ours] / cpu[theirs]:5.2f}x (target <= 0.4x); without bytecode cache: "
              f"wall {wall[nocache] / wall[theirs]:5.2f}x, CPU {cpu[nocache] / cpu[theirs]:5.2f}x")
    for ours, theirs, what in (("core versions", "pins pin_versions",
                                f"python -m core versions NAME at {n_versions} versions"),
                               ("core list", "pins pin_list",
                                f"python -m core list at {n_models} models")):
        SUMMARY.append((f"{what} ÷ pins one-liner, wall", wall[ours] / wall[theirs], 0.4,
                        f"{wall[ours] * 1000:.0f} vs {wall[theirs] * 1000:.0f} ms"))
        SUMMARY.append(("  the same, CPU", cpu[ours] / cpu[theirs], 0.4,
                        f"{cpu[ours] * 1000:.0f} vs {cpu[theirs] * 1000:.0f} ms"))


def big_write(root: Path, megabytes: int) -> None:
    rng = np.random.default_rng(1)
    n_features = 10
    rows = megabytes * 1024 * 1024 // (8 * (n_features + 1))
    X = pd.DataFrame(rng.normal(size=(rows, n_features)),
                     columns=[f"f{i}" for i in range(n_features)])
    y = rng.normal(size=rows)
    model = KNeighborsRegressor(n_neighbors=3, algorithm="brute").fit(X, y)
    big = bundle(model, X.head(500), name="big")

    src = root / "big-source.joblib"
    joblib.dump(model, src)
    size = src.stat().st_size
    copies = root / "copies"
    copies.mkdir()
    store = VersionStore(root / "big-board")

    # Each copy goes to a new file, as each version does: overwriting one file again
    # and again measured 30-40 % faster here than writing a new one.
    serial = itertools.count()

    def plain_copy() -> None:
        shutil.copyfile(src, copies / f"copy-{next(serial)}.joblib")

    def copy_fsync() -> None:
        with open(src, "rb") as f, open(copies / f"sync-{next(serial)}.joblib", "wb") as g:
            shutil.copyfileobj(f, g, 1 << 20)
            g.flush()
            os.fsync(g.fileno())

    def store_write() -> None:
        store.write(big)

    repeat = 7
    store_s, copy_s, sync_s = [], [], []
    for _ in range(repeat):  # alternated, so a slow spell of the disk hits all three
        for fn, times in ((store_write, store_s), (plain_copy, copy_s), (copy_fsync, sync_s)):
            os.sync()  # untimed: no run pays for the dirty pages an earlier one left
            times.append(timed(fn, 1)[0])
    store_s, copy_s, sync_s = (statistics.median(x) for x in (store_s, copy_s, sync_s))
    # Copies back to back: each one waits for the kernel to write out the last one's
    # dirty pages, as a steady stream of writes does.
    plain_copy()
    sustained_s, _ = timed(plain_copy, repeat)
    data = src.read_bytes()
    sha_s, _ = timed(lambda: hashlib.sha256(data).digest(), 3)
    print(f"\nwriting a {size / 1e6:.1f} MB model (median of {repeat}):")
    print(f"  store.write (pickle + sha256 + xxh64 + fsync + rename)   {ms(store_s)}")
    print(f"  plain copy (shutil.copyfile), clean page cache           {ms(copy_s)}")
    print(f"  plain copy, back to back (sustained)                     {ms(sustained_s)}")
    print(f"  plain copy + fsync                                       {ms(sync_s)}")
    print(f"  sha256 of the same bytes in memory, for scale             {ms(sha_s)}")
    print(f"  ratio store / plain copy: clean cache {store_s / copy_s:5.2f}x | back to back "
          f"{store_s / sustained_s:5.2f}x | with fsync {store_s / sync_s:5.2f}x   "
          "(target <= 1.5x)")
    # The store must record a sha256 of the file, so no write can beat hashing its
    # bytes; nor can a durable write beat a copy that reaches the disk.
    floor_s = max(sha_s, sync_s)
    print(f"  floor for a durable write that records a sha256: max(sha256, copy + fsync) "
          f"{ms(floor_s)}")
    print(f"  ratio sha256 alone / plain copy (clean cache) {sha_s / copy_s:5.2f}x | "
          f"store / floor {store_s / floor_s:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7,
                        help="runs of each whole-process command (small writes: 5x this)")
    parser.add_argument("--dir", help="where to write (default: a temporary folder)")
    parser.add_argument("--sections", default="small,cli,listing,big",
                        help="comma-separated: small, cli, listing, big")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    root = Path(tempfile.mkdtemp(prefix="fixative-bench-", dir=args.dir))
    try:
        if "small" in sections:
            small_write(root, args.repeat * 5)
        if "cli" in sections:
            cli(root, args.versions, args.models, args.repeat)
        if "listing" in sections:
            listing(root, args.versions)
        if "big" in sections:
            big_write(root, args.megabytes)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if SUMMARY:
        print(f"\nsummary (python {' '.join(sys.argv)}):")
        for what, ratio, target, detail in SUMMARY:
            verdict = "" if target is None else \
                f"target <= {target:g}x: {'met' if ratio <= target else 'NOT MET'}"
            print(f"  {what:68} {ratio:6.2f}x  ({detail}) {verdict}")


if __name__ == "__main__":
    main()
