"""Champion against challenger, on the same rows: per window and a verdict.

Rows are paired on ``request_id`` and ``row``: a request the champion answered and the
challenger scored in shadow (see :mod:`core.serving.challenger`) is one pair, whichever
replica served it (the server gives each request a random id unless the client sends
one; an id logged twice by one version is left unpaired, and the reason says so), and the
actual uploaded for it (matched to the champion's rows, :mod:`core.monitoring.join`)
scores both. Only pairs with an actual count for the metrics; disagreement and
latency use every pair and every logged request.

Statistics, for each window and for the whole range:

- values (regression): each version's MAE and RMSE; the difference of their MAE
  (challenger minus champion, negative is better) with a 95% confidence interval and
  p-value from the paired t-test on the rows' absolute errors
  (``scipy.stats.ttest_rel``); the mean absolute difference between the two versions'
  predictions.
- labels (classification): each version's accuracy; the difference (challenger minus
  champion, positive is better) with the paired t interval on the rows' correctness
  (1 right, 0 wrong), and the exact McNemar test (a binomial test on the rows exactly
  one of them got right) for the p-value; how often their labels disagree.
- latency: median and p99 of each version's logged request latency (ms).

The verdict, on the whole range: **challenger better** or **worse** when the test's
p-value is under ``alpha`` (0.05) on at least ``min_rows`` pairs; otherwise **not yet
known**, with an estimate of the pairs needed to tell a difference of the size seen
(80% power). A verdict is judged once over the range asked for: looking again every
window and stopping at the first "better" raises the false-alarm rate above
``alpha`` (``bench/challenger_calibration.py`` measures it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from core.errors import InvalidArgument, NotFound
from core.monitoring.monitor import open_monitor
from core.monitoring.windows import parse_window
from core.store.paths import log_dir, segment_files
from core.store.protocols import StoreLike

BETTER, WORSE, UNKNOWN = "challenger better", "challenger worse", "not yet known"
ALPHA = 0.05
MIN_ROWS = 30
POWER_Z = 0.8416  # one-sided z of 80% power
DISAGREE = {"labels": "disagreement", "values": "mean_abs_diff"}


@dataclass
class Stats:
    """The paired statistics of one set of rows."""

    n: int
    champion: float
    challenger: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    sd: float
    # labels: share of rows whose labels differ; values: mean |champion - challenger|
    disagreement: float

    def to_dict(self) -> dict[str, Any]:
        return {k: _num(v) for k, v in self.__dict__.items()}


@dataclass
class Comparison:
    """Champion against challenger; ``windows`` has one row per window."""

    champion: str
    challenger: str
    kind: str  # "values" or "labels"
    metric: str
    windows: pd.DataFrame
    overall: Stats
    verdict: str
    reason: str
    rows_needed: int | None
    since: str | None = None
    until: str | None = None
    latency: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-able: what was compared, the overall statistics and the verdict."""
        return {"champion": self.champion, "challenger": self.challenger, "kind": self.kind,
                "metric": self.metric, "verdict": self.verdict, "reason": self.reason,
                "rows_needed": self.rows_needed, "since": self.since, "until": self.until,
                "overall": self.overall.to_dict(),
                "latency": {k: _num(v) for k, v in self.latency.items()}}


def _num(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def paired_stats(kind: str, actual: Any, first: Any, second: Any) -> Stats:
    """The statistics of ``second`` (challenger) against ``first`` (champion) on rows
    with ``actual`` (see the module docstring)."""
    y, a, b = (np.asarray(v) for v in (actual, first, second))
    n = len(y)
    if kind == "labels":
        ra = (a.astype(str) == y.astype(str)).astype(float)
        rb = (b.astype(str) == y.astype(str)).astype(float)
        d = rb - ra
        m_a, m_b = (float(ra.mean()), float(rb.mean())) if n else (math.nan, math.nan)
        only_b, only_a = int(np.sum(d > 0)), int(np.sum(d < 0))
        p = (float(stats.binomtest(only_b, only_a + only_b, 0.5).pvalue)
             if only_a + only_b else 1.0)
    else:
        ea = np.abs(a.astype(float) - y.astype(float))
        eb = np.abs(b.astype(float) - y.astype(float))
        d = eb - ea
        m_a, m_b = (float(ea.mean()), float(eb.mean())) if n else (math.nan, math.nan)
        p = math.nan
    mean = float(d.mean()) if n else math.nan
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    lo = hi = math.nan
    if n > 1 and sd > 0:
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
        if kind == "values":
            p = float(stats.ttest_rel(eb, ea).pvalue)
    elif n > 1:  # the same error on every row
        lo = hi = mean
        if kind == "values":
            p = 1.0 if mean == 0 else 0.0
    return Stats(n, m_a, m_b, mean, lo, hi, p, sd, _disagreement(kind, a, b))


def verdict(kind: str, s: Stats, *, alpha: float = ALPHA, min_rows: int = MIN_ROWS,
            metric: str = "") -> tuple[str, str, int | None]:
    """(verdict, what it was judged on, pairs needed or None)."""
    test = ("exact McNemar test on the rows only one version got right" if kind == "labels"
            else "paired t-test on the rows' absolute errors")
    basis = f"Judged on {metric} over {s.n:,} rows with actuals that both versions scored"
    if s.n < min_rows:
        return UNKNOWN, (f"{basis}; a verdict needs at least {min_rows} such rows. Run the "
                         "challenger in shadow and upload actuals for its requests."), min_rows
    better_sign = 1 if kind == "labels" else -1
    if math.isfinite(s.p_value) and s.p_value < alpha and s.difference != 0:
        won = np.sign(s.difference) == better_sign
        return (BETTER if won else WORSE), (f"{basis} ({test}, p = {s.p_value:.3g} < {alpha:g};"
                                            f" difference {s.difference:+.4g}, 95% CI "
                                            f"{s.ci_low:+.4g} to {s.ci_high:+.4g})."), None
    needed = None
    if s.difference != 0 and math.isfinite(s.sd) and s.sd > 0:
        z = float(stats.norm.ppf(1 - alpha / 2)) + POWER_Z
        needed = max(min_rows, int(math.ceil((z * s.sd / abs(s.difference)) ** 2)))
    if needed is None:
        what = (f"{basis} ({test}): no difference on any row, so more rows of the same kind "
                "will not tell them apart.")
    else:
        what = (f"{basis} ({test}, p = {s.p_value:.3g}, not under {alpha:g}); a difference "
                f"of {s.difference:+.4g} needs about {needed:,} rows to be told apart.")
    return UNKNOWN, what, needed


def _rows(store: StoreLike, name: str, version: str, since: Any, until: Any,
          actual: bool) -> pd.DataFrame:
    meta = store.meta(name, version)
    with open_monitor(store, name, meta, versions=[version], since=since, until=until) as mon:
        view = "monitoring" if actual else "monitoring_log"
        cols = "ts, request_id, \"row\", prediction, latency_ms" + (", actual" if actual else "")
        return mon.query(f"SELECT {cols} FROM {view} WHERE status < 400")


def compare(store: StoreLike, champion: str, challenger: str, *, window: str = "day",
            since: Any = None, until: Any = None, alpha: float = ALPHA,
            min_rows: int = MIN_ROWS) -> Comparison:
    """Compare the ``challenger`` (``NAME@VERSION`` or ``NAME:ALIAS``) to the ``champion``
    on the rows both scored, per ``window`` and over ``since``..``until``."""
    if not (0 < alpha < 0.5):
        raise InvalidArgument("alpha must be between 0 and 0.5, e.g. 0.05.")
    if min_rows < 2:
        raise InvalidArgument("min_rows must be at least 2.")
    w = parse_window(window)
    name_a, ver_a = store.resolve(champion)
    name_b, ver_b = store.resolve(challenger)
    if (name_a, ver_a) == (name_b, ver_b):
        raise InvalidArgument(f"The champion and the challenger are both {name_a}@{ver_a}; "
                              "name two versions.")
    meta_a = store.meta(name_a, ver_a)
    kind = "labels" if (meta_a.task in ("binary", "multiclass")
                        or meta_a.classes is not None) else "values"
    metric = "accuracy" if kind == "labels" else "MAE"
    a = _rows(store, name_a, ver_a, since, until, actual=True)
    b = _rows(store, name_b, ver_b, since, until, actual=False)
    for df in (a, b):
        df["k"] = [w.key_of(t) for t in pd.to_datetime(df["ts"], utc=True)]
    # a request id logged twice on one side (a client that sent one X-Request-ID to two
    # replicas, or twice) cannot say which answers belong together: left unpaired
    twice = _ambiguous(a) | _ambiguous(b)
    if twice:
        a, b = (df[~df["request_id"].isin(twice)] for df in (a, b))
    pairs = a.merge(b, on=["request_id", "row"], suffixes=("_a", "_b"))
    scored = pairs[pairs["actual"].notna() & pairs["prediction_a"].notna()
                   & pairs["prediction_b"].notna()]
    overall = paired_stats(kind, scored["actual"], scored["prediction_a"],
                           scored["prediction_b"])
    call, reason, needed = verdict(kind, overall, alpha=alpha, min_rows=min_rows, metric=metric)
    if len(pairs) == 0:
        reason += (f" No request was scored by both {name_a}@{ver_a} and {name_b}@{ver_b}"
                   " in this range.")
    if twice:
        reason += (f" {len(twice):,} request id{'s were' if len(twice) > 1 else ' was'} "
                   "logged more than once by one version (a client re-using X-Request-ID); "
                   "their rows are left out, since they cannot be paired.")
    table = _windows(kind, a, b, pairs, scored, w)
    latency = {f"{role}_{q}_ms": (float(np.nanquantile(df.loc[df["row"].fillna(0) == 0,
                                                              "latency_ms"], p))
                                  if (df["row"].fillna(0) == 0).any() else math.nan)
               for role, df in (("champion", a), ("challenger", b))
               for q, p in (("p50", 0.5), ("p99", 0.99))}
    return Comparison(f"{name_a}@{ver_a}", f"{name_b}@{ver_b}", kind, metric, table, overall,
                      call, reason, needed,
                      since=None if since is None else str(since),
                      until=None if until is None else str(until), latency=latency)


def _ambiguous(df: pd.DataFrame) -> set[str]:
    """Request ids with a row logged more than once."""
    dup = df.duplicated(subset=["request_id", "row"], keep=False)
    return set(df.loc[dup, "request_id"].dropna().astype(str))


def _disagreement(kind: str, first: Any, second: Any) -> float:
    a, b = np.asarray(first), np.asarray(second)
    if not len(a):
        return math.nan
    if kind == "labels":
        return float(np.mean(a.astype(str) != b.astype(str)))
    return float(np.mean(np.abs(a.astype(float) - b.astype(float))))


def _windows(kind: str, a: pd.DataFrame, b: pd.DataFrame, pairs: pd.DataFrame,
             scored: pd.DataFrame, w: Any) -> pd.DataFrame:
    rows = []
    for k in sorted(set(a["k"]) | set(b["k"])):
        part = scored[scored["k_a"] == k]
        s = paired_stats(kind, part["actual"], part["prediction_a"], part["prediction_b"])
        both = pairs[pairs["k_a"] == k]
        row: dict[str, Any] = {"window_start": w.start(k), "window_end": w.end(k),
                               "n_pairs": len(both), "n_actual": s.n,
                               "champion": s.champion, "challenger": s.challenger,
                               "difference": s.difference, "ci_low": s.ci_low,
                               "ci_high": s.ci_high, "p_value": s.p_value,
                               DISAGREE[kind]: _disagreement(kind, both["prediction_a"],
                                                             both["prediction_b"])}
        for role, df in (("champion", a), ("challenger", b)):
            first = df.loc[(df["row"].fillna(0) == 0) & (df["k"] == k), "latency_ms"]
            row[f"{role}_p50_ms"] = float(first.median()) if len(first) else math.nan
        rows.append(row)
    cols = ["window_start", "window_end", "n_pairs", "n_actual", "champion", "challenger",
            "difference", "ci_low", "ci_high", "p_value", DISAGREE[kind],
            "champion_p50_ms", "challenger_p50_ms"]
    return pd.DataFrame(rows, columns=cols)


def find_challenger(store: StoreLike, name: str, champion_version: str) -> str:
    """The version of ``name`` that logged predictions as a challenger most recently
    (``NAME@VERSION``), for a comparison asked without one."""
    found: list[tuple[Any, str]] = []
    for v in store.versions(name):
        version = getattr(v, "version", v)
        if version == champion_version or not segment_files(store, log_dir(store, name),
                                                             [str(version)]):
            continue
        try:
            rows = _roles(store, name, str(version))
        except NotFound:
            continue
        if rows is not None:
            found.append((rows, str(version)))
    if not found:
        raise NotFound(f"No version of '{name}' has served as a challenger to "
                       f"{name}@{champion_version}; serve one with --shadow (or --canary), or "
                       "name it with --challenger NAME@VERSION.")
    return f"{name}@{max(found)[1]}"


def _roles(store: StoreLike, name: str, version: str) -> Any:
    meta = store.meta(name, version)
    with open_monitor(store, name, meta, versions=[version]) as mon:
        if "serving_role" not in mon.columns:
            return None
        last = mon.query("SELECT max(ts) AS t FROM monitoring_log "
                         "WHERE serving_role = 'challenger'")["t"].iloc[0]
        return None if pd.isna(last) else pd.Timestamp(last)


def comparison_for(store: StoreLike, ref: str, challenger: str | None = None, *,
                   window: str | None = None, since: Any = None, until: Any = None
                   ) -> Comparison:
    """The comparison for ``ref`` (the champion: ``NAME``, ``NAME@VERSION`` or
    ``NAME:ALIAS``) against ``challenger``, or, without one, the version of the same
    model that served as its challenger most recently (:func:`find_challenger`)."""
    name, version = store.resolve(str(ref or "").strip() or "?")
    if challenger is None or not str(challenger).strip():
        challenger = find_challenger(store, name, version)
    return compare(store, f"{name}@{version}", str(challenger).strip(),
                   window=window or "day", since=since, until=until)
