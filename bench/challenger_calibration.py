"""Champion/challenger calibration: how often a verdict is declared when it should not be.

Command and last figures: see bench/README.md ("Challenger calibration").

    /work/venv/bin/python bench/challenger_calibration.py [--trials 2000] [--sizes 30,100,1000]
        [--real 20]

The verdict is :func:`core.monitoring.compare.verdict` on
:func:`core.monitoring.compare.paired_stats`, the functions ``compare`` runs on the
paired rows it reads from the board. Cases, each ``--trials`` times per number of
paired rows with actuals:

- *same model*: the challenger is the champion (identical predictions). Any "better"
  or "worse" is a false alarm.
- *equally good*: two models whose errors are independent and alike (values: normal
  errors of one spread; labels: each right with probability 0.8). The null hypothesis
  holds: "better" or "worse" should come up at about alpha (5%).
- *10% better*: the challenger's error spread is 10% smaller (values), or it is right
  with probability 0.84 instead of 0.8 (labels): how often "better" is declared.
- *peeking*: the equally good pair, judged after each of 10 windows of n/10 rows, and
  counted as a false alarm when any look says "better" or "worse": what happens when
  someone watches the verdict every day and stops at the first one.

``--real`` runs the *same model* and *equally good* (values) cases that many times
through the whole path (log segments and actuals on a real board, DuckDB, ``compare``)
at 200 rows, to check that the shortcut and the real path agree.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.monitoring.compare import BETTER, UNKNOWN, WORSE, paired_stats, verdict  # noqa: E402


def draw(kind: str, case: str, n: int, rng: np.random.Generator):
    if kind == "values":
        y = rng.normal(100, 20, n)
        a = y + rng.normal(0, 10, n)
        if case == "same":
            b = a.copy()
        else:
            b = y + rng.normal(0, 9 if case == "better" else 10, n)
        return y, a, b
    y = rng.choice(["no", "yes"], n)
    other = np.where(y == "no", "yes", "no")
    a = np.where(rng.random(n) < 0.8, y, other)
    if case == "same":
        return y, a, a.copy()
    b = np.where(rng.random(n) < (0.84 if case == "better" else 0.8), y, other)
    return y, a, b


def call(kind: str, y, a, b) -> str:
    return verdict(kind, paired_stats(kind, y, a, b))[0]


def rates(kind: str, case: str, n: int, trials: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    counts = {BETTER: 0, WORSE: 0, UNKNOWN: 0}
    for _ in range(trials):
        y, a, b = draw(kind, "equal" if case == "peek" else case, n, rng)
        if case == "peek":
            said = UNKNOWN
            for look in range(1, 11):
                m = n * look // 10
                said = call(kind, y[:m], a[:m], b[:m])
                if said != UNKNOWN:
                    break
            counts[said] += 1
        else:
            counts[call(kind, y, a, b)] += 1
    return {k: v / trials for k, v in counts.items()}


def real_path(trials: int, seed: int) -> dict[str, float]:
    """The same-model and equally-good value cases through log, actuals and compare()."""
    from datetime import UTC, datetime, timedelta

    import pandas as pd
    from sklearn.dummy import DummyRegressor

    from core.model.bundle import bundle
    from core.model.examples import house_prices
    from core.monitoring.actuals import save_actuals
    from core.monitoring.compare import compare
    from core.store.predlog import build_table, write_segment
    from core.store.versionstore import VersionStore

    data = house_prices(200, seed=0)
    x = data.drop(columns=["price"]).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    alarms = {"same": 0, "equal": 0}
    start = datetime(2026, 3, 2, tzinfo=UTC)
    for t in range(trials):
        with tempfile.TemporaryDirectory() as tmp:
            store = VersionStore(str(Path(tmp) / "board"))
            vs = [store.write(bundle(DummyRegressor().fit(x, data.price), x, name="m")).version
                  for _ in range(3)]
            y, a, b = draw("values", "equal", len(x), rng)
            for version, preds, role in ((vs[0], a, "champion"), (vs[1], b, "challenger"),
                                         (vs[2], a, "challenger")):
                entries = [(start + timedelta(minutes=i), f"q{i}", "predict", 200, 1.0,
                            x.iloc[i:i + 1].reset_index(drop=True), np.asarray([preds[i]]),
                            None, None, None) for i in range(len(x))]
                write_segment(store, "m", version, "2026-03-02", f"{role}-{t}",
                              build_table(entries, "m", version, None, {}, role=role))
            save_actuals(store, "m", pd.DataFrame({"id": [f"q{i}" for i in range(len(x))],
                                                   "y": y}), key_column="id", actual_column="y")
            for case, other in (("equal", vs[1]), ("same", vs[2])):
                if compare(store, f"m@{vs[0]}", f"m@{other}").verdict != UNKNOWN:
                    alarms[case] += 1
    return {k: v / trials for k, v in alarms.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--sizes", default="30,100,1000")
    p.add_argument("--real", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"verdicts per case, {args.trials} trials each (alpha 0.05, at least 30 rows)")
    print(f"{'kind':7} {'case':13} {'rows':>6} {'better':>8} {'worse':>8} {'unknown':>8}")
    for kind in ("values", "labels"):
        for case in ("same", "equal", "better", "peek"):
            for n in sizes:
                r = rates(kind, case, n, args.trials, args.seed)
                label = {"same": "same model", "equal": "equally good",
                         "better": "10% better", "peek": "peek x10"}[case]
                print(f"{kind:7} {label:13} {n:>6} {r[BETTER]:>8.3f} {r[WORSE]:>8.3f} "
                      f"{r[UNKNOWN]:>8.3f}")
    if args.real:
        r = real_path(args.real, args.seed)
        print(f"\nreal path (board, actuals, compare), {args.real} trials at 200 rows: "
              f"false alarms same model {r['same']:.3f}, equally good {r['equal']:.3f}")


if __name__ == "__main__":
    main()
