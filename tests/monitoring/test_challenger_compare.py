"""Champion against challenger on logged pairs with actuals: the statistics against a
direct computation with scikit-learn and scipy, the verdict, and bad input."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from challenger_helpers import START, log_as, values_store  # noqa: F401  (fixture)
from scipy import stats
from sklearn.dummy import DummyRegressor
from sklearn.metrics import accuracy_score, mean_absolute_error

from core.errors import InvalidArgument, InvalidName, NotFound
from core.model.bundle import bundle
from core.monitoring.actuals import save_actuals
from core.monitoring.compare import (
    BETTER,
    UNKNOWN,
    WORSE,
    compare,
    find_challenger,
    paired_stats,
    verdict,
)
from core.store.versionstore import VersionStore


def test_values_match_direct_computation(values_store):  # noqa: F811
    store, vs, y, a, b, keep, ts = values_store
    c = compare(store, f"flat@{vs[0]}", f"flat@{vs[1]}", window="day")
    s = c.overall
    ya, aa, bb = y[keep], a[keep], b[keep]
    assert s.n == keep.sum()
    assert s.champion == pytest.approx(mean_absolute_error(ya, aa))
    assert s.challenger == pytest.approx(mean_absolute_error(ya, bb))
    test = stats.ttest_rel(np.abs(bb - ya), np.abs(aa - ya))
    ci = test.confidence_interval(0.95)
    assert s.difference == pytest.approx(np.mean(np.abs(bb - ya) - np.abs(aa - ya)))
    assert (s.ci_low, s.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert s.p_value == pytest.approx(test.pvalue)
    assert s.disagreement == pytest.approx(np.mean(np.abs(aa - bb)))
    assert c.verdict == BETTER and "MAE" in c.reason and f"{s.n:,} rows" in c.reason
    assert c.latency["champion_p50_ms"] == 4.0 and c.latency["challenger_p50_ms"] == 9.0
    # per day: the same statistics on that day's rows
    assert len(c.windows) == 2
    day = np.array([t.date() == START.date() for t in ts])
    first = c.windows.iloc[0]
    rows = keep & day
    assert first["n_actual"] == rows.sum() and first["n_pairs"] == day.sum()
    assert first["champion"] == pytest.approx(mean_absolute_error(y[rows], a[rows]))
    assert first["mean_abs_diff"] == pytest.approx(np.mean(np.abs(a[day] - b[day])))
    assert c.summary()["overall"]["n"] == s.n


def test_the_same_model_twice_is_never_a_verdict(values_store):  # noqa: F811
    store, vs, *_ = values_store
    c = compare(store, f"flat@{vs[0]}", f"flat@{vs[2]}")
    assert c.verdict == UNKNOWN and "no difference on any row" in c.reason
    assert c.overall.difference == 0 and c.overall.disagreement == 0
    assert c.rows_needed is None


def test_swapped_roles_say_worse(values_store):  # noqa: F811
    store, vs, *_ = values_store
    assert compare(store, f"flat@{vs[1]}", f"flat@{vs[0]}").verdict == WORSE


def test_too_few_rows_are_not_yet_known(values_store):  # noqa: F811
    store, vs, *_ = values_store
    c = compare(store, f"flat@{vs[0]}", f"flat@{vs[1]}", until=START + timedelta(minutes=40))
    assert c.overall.n < 30
    assert c.verdict == UNKNOWN and c.rows_needed == 30 and "at least 30" in c.reason


def test_finds_the_challenger_from_the_log(values_store, tmp_path, house_data):  # noqa: F811
    store, vs, *_ = values_store
    assert find_challenger(store, "flat", vs[0]) in (f"flat@{vs[1]}", f"flat@{vs[2]}")
    bare = VersionStore(str(tmp_path / "board"))
    x = house_data.drop(columns=["price"])
    v0 = bare.write(bundle(DummyRegressor().fit(x, house_data.price), x, name="flat")).version
    bare.write(bundle(DummyRegressor().fit(x, house_data.price), x, name="flat"))
    with pytest.raises(NotFound, match="has served as a challenger"):
        find_challenger(bare, "flat", v0)


def test_bad_comparisons_are_refused(values_store):  # noqa: F811
    store, vs, *_ = values_store
    with pytest.raises(InvalidArgument, match="both flat@"):
        compare(store, f"flat@{vs[0]}", f"flat@{vs[0]}")
    with pytest.raises(InvalidArgument, match="alpha"):
        compare(store, f"flat@{vs[0]}", f"flat@{vs[1]}", alpha=2)
    with pytest.raises(InvalidArgument):
        compare(store, f"flat@{vs[0]}", f"flat@{vs[1]}", window="fortnight; DROP TABLE x")
    with pytest.raises(InvalidName, match="not allowed"):
        compare(store, f"flat@{vs[0]}", "flat@../../etc")
    with pytest.raises(NotFound):
        compare(store, f"flat@{vs[0]}", "flat@20240503T101500Z-0a1b2")


def test_labels_match_sklearn_and_mcnemar(tmp_path, churn_model, churn_data):
    store = VersionStore(str(tmp_path / "board"))
    x = churn_data.drop(columns=["churned"])
    va = store.write(bundle(churn_model, x, name="churn")).version
    vb = store.write(bundle(churn_model, x, name="churn")).version
    rng = np.random.default_rng(5)
    n = 300
    y = rng.choice(["no", "yes"], n)
    flip = lambda p: np.where(rng.random(n) < p, np.where(y == "no", "yes", "no"), y)  # noqa: E731
    a, b = flip(0.3), flip(0.2)
    ts = [START + timedelta(minutes=i) for i in range(n)]
    frame = x.head(n).reset_index(drop=True)
    log_as(store, "churn", va, frame, a, ts, "champion", classes=["no", "yes"])
    log_as(store, "churn", vb, frame, b, ts, "challenger", classes=["no", "yes"])
    save_actuals(store, "churn", pd.DataFrame({"id": [f"q{i}" for i in range(n)], "y": y}),
                 key_column="id", actual_column="y", classes=["no", "yes"])
    c = compare(store, f"churn@{va}", f"churn@{vb}")
    s = c.overall
    assert c.kind == "labels" and c.metric == "accuracy"
    assert s.champion == pytest.approx(accuracy_score(y, a))
    assert s.challenger == pytest.approx(accuracy_score(y, b))
    only_b = int(np.sum((b == y) & (a != y)))
    only_a = int(np.sum((a == y) & (b != y)))
    assert s.p_value == pytest.approx(stats.binomtest(only_b, only_a + only_b).pvalue)
    ci = stats.ttest_rel((b == y).astype(float), (a == y).astype(float)).confidence_interval()
    assert (s.ci_low, s.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert s.disagreement == pytest.approx(np.mean(a != b))
    assert "disagreement" in c.windows.columns
    expected = BETTER if s.p_value < 0.05 else UNKNOWN
    assert c.verdict == expected and "McNemar" in c.reason


def test_verdict_names_the_rows_needed_for_a_small_difference():
    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, 60)
    a = y + rng.normal(0, 1, 60)
    b = a + rng.normal(0.01, 0.05, 60)
    s = paired_stats("values", y, a, b)
    call, reason, needed = verdict("values", s, metric="MAE")
    assert call == UNKNOWN and needed is not None and needed > 60
    assert f"about {needed:,} rows" in reason and "60 rows" in reason


def test_monitor_command_prints_the_comparison(values_store, capsys):  # noqa: F811
    import json

    from core.cli.main import main

    store, vs, *_ = values_store
    board = str(store.url)
    assert main(["monitor", f"flat@{vs[0]}", "--what", "comparison", "--challenger",
                 f"flat@{vs[1]}", "--store", board]) == 0
    out = capsys.readouterr().out
    assert "verdict: challenger better" in out and "Judged on MAE" in out
    assert f"flat@{vs[1]} (challenger) against flat@{vs[0]} (champion)" in out
    assert main(["monitor", f"flat@{vs[0]}", "--what", "comparison", "--challenger",
                 f"flat@{vs[1]}", "--store", board, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == BETTER and len(doc["windows"]) == 2
    assert main(["monitor", f"flat@{vs[0]}", "--what", "comparison", "--challenger",
                 f"flat@{vs[1]}", "--store", board, "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("window_start,window_end,n_pairs")


@pytest.mark.parametrize(("args", "message"), [
    (["--what", "metrics", "--challenger", "flat"], "goes with --what comparison"),
    (["--what", "comparison", "--challenger", "=cmd|' /C calc'!A0"], "error: "),
    (["--what", "comparison", "--challenger", "flat@nope", "--window", "0h"], "error: "),
])
def test_monitor_comparison_refuses_bad_input(values_store, capsys, args, message):  # noqa: F811
    from core.cli.main import main

    store, vs, *_ = values_store
    assert main(["monitor", f"flat@{vs[0]}", "--store", str(store.url), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
