"""How long each workbench page's script run takes on a big store.

Fills a temporary store with 200 models and 2,000 versions (small real models), plus one
monitored model (the example house-price forest, stored with its training sample) with
50,000 logged predictions over 8 weeks and actuals for 30 % of them. Then runs every page
of ``app.py`` under ``streamlit.testing.v1.AppTest`` and prints the time of a run right
after the index changed (cached reads are keyed on the store's change marker, so all of
them are stale) and the median of warm runs. Target: under 1 s. The Monitor page's first
report of the monitored model's data (metrics and drift over every window, computed once
and then cached until the model's data change) is printed apart.

    python bench/pages_bench.py [--models 200] [--versions-per-model 10] [--store DIR]
                                [--predictions 50000] [--weeks 8]
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = ["pages/home.py", "pages/upload.py", "pages/models.py", "pages/deploy.py",
         "pages/card.py", "pages/monitor.py"]


def fill(store_dir: str, n_models: int, per_model: int) -> float:
    from sklearn.linear_model import LinearRegression

    from core.model import examples
    from core.model.bundle import bundle
    from core.store.versionstore import VersionStore

    data = examples.house_prices(300, seed=0)
    features = data.drop(columns=["price", "zipcode"])
    model = LinearRegression().fit(features, data["price"])
    template = bundle(model, features, name="model", tags=["bench"])
    store = VersionStore(store_dir)
    start = time.perf_counter()
    for m in range(n_models):
        for v in range(per_model):
            # Same model, new metadata: what matters here is the size of the index.
            b = copy.deepcopy(template)
            b.meta.name = f"model-{m:03d}"
            b.meta.description = f"version {v}"
            b.meta.metrics = {"rmse": 40000.0 + v}
            info = store.write(b)
        store.set_alias(info.name, "production", info.version)
    return time.perf_counter() - start


MONITORED = "house-monitored"


def fill_monitored(store_dir: str, n_rows: int, weeks: int) -> float:
    """The example house model with ``n_rows`` logged predictions spread over ``weeks``
    (requests of 1-8 rows, one log segment per day as a busy server's flushes merge into),
    and actuals for 30 % of the rows, saved as the Monitor page saves them."""
    import numpy as np
    import pandas as pd

    from core.model import examples
    from core.model.bundle import bundle
    from core.monitoring.actuals import save_actuals
    from core.store.predlog import build_table, write_segment
    from core.store.versionstore import VersionStore

    start = time.perf_counter()
    store = VersionStore(store_dir)
    train = examples.house_prices(2000, seed=0)
    model = examples.house_model(train)
    b = bundle(model, train.drop(columns=["price"]), name=MONITORED, metrics={"rmse": 41000.0})
    info = store.write(b)
    store.set_alias(MONITORED, "production", info.version)
    rng = np.random.default_rng(7)
    data = examples.house_prices(n_rows, seed=11)
    features = data.drop(columns=["price"])
    predictions = model.predict(features)
    t0 = pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(weeks=weeks)
    seconds = np.sort(rng.uniform(0, weeks * 7 * 86400, n_rows))
    sizes = rng.integers(1, 9, n_rows)
    bounds = np.minimum(np.cumsum(np.concatenate([[0], sizes])), n_rows)
    bounds = np.unique(bounds)
    entries_by_day: dict[str, list] = {}
    ids = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        ts = (t0 + pd.Timedelta(milliseconds=int(seconds[lo] * 1000))).to_pydatetime()
        rid = f"bench-{lo:08d}"
        ids += [(rid, r) for r in range(hi - lo)]
        entry = (ts, rid, "predict", 200, float(rng.uniform(2, 30)), features.iloc[lo:hi],
                 predictions[lo:hi], None, None, None)
        entries_by_day.setdefault(f"{ts:%Y-%m-%d}", []).append(entry)
    kinds = {c.name: c.kind for c in b.meta.prototype.columns}
    for day, entries in entries_by_day.items():
        table = build_table(entries, MONITORED, info.version, None, kinds)
        write_segment(store, MONITORED, info.version, day, "bench-000001", table)
    truth = pd.DataFrame(ids, columns=["request_id", "row"])
    truth["price"] = data["price"].to_numpy()[: len(truth)]
    truth = truth.sample(frac=0.3, random_state=3)
    save_actuals(store, MONITORED, truth, key_column="request_id", actual_column="price",
                 row_column="row")
    return time.perf_counter() - start


# What each page's title starts with; Card and Monitor show an empty state (st.info)
# instead while no model is picked.
TITLES = {"pages/home.py": "Fixative", "pages/upload.py": "Upload a model",
          "pages/models.py": "Models", "pages/deploy.py": "Deploy",
          "pages/card.py": "Model card", "pages/monitor.py": "Monitor"}


def _change_index() -> None:
    """Move an alias, as another process would: every cached index read is now stale."""
    from core.store.versionstore import VersionStore

    store = VersionStore(os.environ["FIXATIVE_STORE"])
    ids = [v.version for v in store.versions("model-000")]
    current = store.aliases("model-000").get("bench")
    store.set_alias("model-000", "bench", ids[0] if current != ids[0] else ids[1])


def run_page(page: str, params: dict[str, str], warm_runs: int,
             section: str | None = None) -> tuple[float, float]:
    """Seconds for one run right after the index changed (every cached read stale), and
    the median of ``warm_runs`` runs with the index unchanged."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(params)
    at.run()  # registers the app's pages; imports are warm after the first page
    at.switch_page(page)
    if section is not None:
        at.run()
        at.segmented_control(key="models_section").set_value(section)
    _change_index()
    t0 = time.perf_counter()
    at.run()
    cold = time.perf_counter() - t0
    if at.exception:
        raise SystemExit(f"{page} raised: {at.exception[0].message}")
    shown = at.title[0].value if at.title else None
    if not (shown or "").startswith(TITLES[page]) and not (shown is None and at.info):
        raise SystemExit(f"{page} was not shown (title {shown!r})")
    warm = []
    for _ in range(warm_runs):
        t0 = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - t0)
    return cold, statistics.median(warm)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--versions-per-model", type=int, default=10)
    parser.add_argument("--store", help="reuse (or create) this store instead of a temp one")
    parser.add_argument("--warm-runs", type=int, default=5)
    parser.add_argument("--predictions", type=int, default=50_000,
                        help="logged predictions of the monitored model")
    parser.add_argument("--weeks", type=int, default=8, help="weeks they are spread over")
    parser.add_argument("--monitored-only", action="store_true",
                        help="time only the pages of the monitored model")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="fixative-bench-")
    store_dir = args.store or os.path.join(tmp.name, "store")
    os.environ["FIXATIVE_STORE"] = store_dir
    os.environ.pop("FIXATIVE_PASSWORD", None)
    if not Path(store_dir, ".fixative").exists():
        took = fill(store_dir, args.models, args.versions_per_model)
        n = args.models * args.versions_per_model
        print(f"filled store: {args.models} models, {n} versions in {took:.1f} s "
              f"({1000 * took / n:.1f} ms per write)")
    if not Path(store_dir, MONITORED).exists():
        took = fill_monitored(store_dir, args.predictions, args.weeks)
        print(f"monitored model {MONITORED}: {args.predictions:,} logged predictions over "
              f"{args.weeks} weeks, actuals for 30 %, in {took:.1f} s")

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    selected = {"model": f"model-{args.models // 2:03d}"}
    run_page(PAGES[-1], selected, 1)  # warm the imports (plotly, pyarrow...) once
    print(f"{'page':<32} {'after change':>13} {'warm run':>10}")
    worst = worst_cold = 0.0
    for page in [] if args.monitored_only else PAGES:
        for label, params in ((page, {}), (f"{page} (model picked)", selected)):
            cold, warm = run_page(page, params, args.warm_runs)
            worst, worst_cold = max(worst, warm), max(worst_cold, cold)
            print(f"{label:<32} {cold:>12.3f}s {warm:>9.3f}s")
    sections = () if args.monitored_only else ("Reference profile", "Compare", "Aliases",
                                                 "Delete and prune")
    for section in sections:
        cold, warm = run_page("pages/models.py", selected, args.warm_runs, section)
        worst, worst_cold = max(worst, warm), max(worst_cold, cold)
        print(f"{'  models: ' + section:<32} {cold:>12.3f}s {warm:>9.3f}s")
    monitored = {"model": MONITORED}
    # The Monitor page's first report of this data is computed, not read: timed apart.
    first, _ = run_page("pages/monitor.py", monitored, 1)
    print(f"{'pages/monitor.py first report':<32} {first:>12.3f}s {'':>10}")
    for page in ("pages/monitor.py", "pages/card.py", "pages/models.py"):
        cold, warm = run_page(page, monitored, args.warm_runs)
        worst, worst_cold = max(worst, warm), max(worst_cold, cold)
        print(f"{page + ' (monitored)':<32} {cold:>12.3f}s {warm:>9.3f}s")
    print(f"slowest warm run: {worst:.3f} s, slowest run after a change: {worst_cold:.3f} s "
          f"({'under' if max(worst, worst_cold) < 1 else 'OVER'} the 1 s target)")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
