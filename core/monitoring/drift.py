"""Drift and data quality per window, against the version's reference or a reference window.

Every input column and the prediction are compared, window by window, with the
reference: the profile stored with the version (quantile bins with counts for
numbers, frequencies for categories; :mod:`core.model.profile`) plus its row sample, or a
window of logged data the person chose.

Methods. Each gives a statistic, a p-value for "nothing drifted" (how unusual the
statistic is for a window of this size, :mod:`core.monitoring.calibration`) and a
size, the ``score``, on which the practical levels apply:

============= ======= ============================== ======================= =============
method        columns statistic                      p-value                 size (score):
                                                                             warning/alert
============= ======= ============================== ======================= =============
ks            numeric two-sample Kolmogorov-Smirnov  SciPy: exact up to      D 0.1 / 0.2
                      D, raw values                  10,000 values
chisquare     both    chi-square, 2 x k table        chi-square distribution Cohen's w
                      (reference, current), no Yates or simulated (*)        0.3 / 0.5
wasserstein   numeric Wasserstein-1 / std of the     KS on the same values   0.05 / 0.1
                      reference, raw values          (asymptotic)
jensenshannon both    Jensen-Shannon distance,       simulated               0.05 / 0.1
                      base 2 (0..1)
psi           both    population stability index     simulated               0.1 / 0.25
============= ======= ============================== ======================= =============

(*) simulated when a reference bin expects fewer than 5 current values.

Verdict of a column in a window (``drifted``): the window's p-values are adjusted
across its columns with Benjamini-Hochberg (``p_adjusted``); a column drifted when
``p_adjusted < 0.05`` (statistical evidence) **and** its size reaches the alert level
(practical size). Evidence with a size between the warning and the alert level marks a
warning. A column with fewer values than its method's minimum (``min_n``: where the
method's no-drift 95th percentile falls below its alert size) can be found drifted but
never "no drift" (``drifted`` is null, the note says why); below ``FLOOR`` (10) values
nothing is judged. ``judged_on`` says what the verdict rests on. A window is drifted
when any of its columns is (BH keeps the chance of a false alarm in a clean window at
5 %); :func:`window_verdicts` gives the share of drifted columns too (Evidently's
dataset drift is a share of at least 0.5, which misses one drifted column out of seven).

Conventions, and where they differ from Evidently's (0.4) and NannyML's (0.10): JS in
base 2, as both; PSI and JS on the reference's own quantile bins (ten, or a bin per
value of an integer column) where Evidently re-bins reference and current together
into 30 equal-width bins and NannyML uses Doane bins of the reference; chi-square
without Yates' correction (NannyML uses SciPy's default, which applies it to 2 x 2
tables, i.e. boolean columns; Yates is conservative); zero shares are 0.0001 for PSI
(as Evidently). Neither library calibrates PSI or JS for the window size or corrects
for the number of columns. The README shows the numbers side by side on one example.

Default: numeric columns with at most 1000 current values in the window use ``ks``,
larger ones ``wasserstein`` (KS evidence, Wasserstein size: on a big window the test
alone flags differences too small to matter); categorical columns ``chisquare`` up to
1000 values and ``jensenshannon`` above. Numeric columns without raw reference values
(the prediction, or a version stored without a sample) default to ``psi`` on the
profile's bins.

Binned methods (psi, chisquare, jensenshannon) use counts per reference bin (numbers)
or per reference category, with unseen categories in one extra bucket. Raw methods
(ks, wasserstein) use the whole reference sample and at most ``RAW_ROWS`` current
values per window, a uniform sample chosen reproducibly by hashing the timestamp and
row (all values when the window has no more; the note says when it sampled).

Cost. Three DuckDB scans, whatever the number of columns and windows: one computes, per
window, the null and out-of-range counts of every numeric column and the bin counts of
those whose method is binned (a column with raw reference values uses ks or
wasserstein by default, so its bins are counted only when a binned method is chosen);
one counts the values of the categorical columns (one GROUP BY each); one draws the
sample of the raw columns. NumPy and SciPy then work on those small results; the
simulated no-drift distributions are cached per method, bins and window size.

Data quality, per column and window: the share of nulls, of values outside the
training range (numbers) and of categories never seen in training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from core.errors import InvalidArgument
from core.monitoring import calibration
from core.monitoring.references import ColumnReference, references, references_from_window
from core.monitoring.windows import parse_window

if TYPE_CHECKING:
    from core.monitoring.monitor import Monitor

SMALL = 1000
# Fewer values than this in a window: the statistic is shown but drift is not judged.
MIN_VALUES = calibration.FLOOR
RAW_ROWS = 5000
PSI_EPS = calibration.PSI_EPS
ALPHA = calibration.ALPHA
OTHER = "(other)"
UNSEEN = "(unseen)"


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    kinds: tuple[str, ...]
    raw: bool
    # Whether the statistic comes with a classic test's p-value (ks, chisquare).
    is_test: bool
    # Practical size levels on the ``score`` (higher is more drift).
    alert: float
    warning: float
    size_label: str = ""


METHODS: dict[str, Method] = {
    "ks": Method("ks", "Kolmogorov-Smirnov", ("numeric",), True, True, 0.2, 0.1, "D"),
    "chisquare": Method("chisquare", "chi-square", ("numeric", "categorical"), False,
                        True, 0.5, 0.3, "Cohen's w"),
    "wasserstein": Method("wasserstein", "Wasserstein distance (normed)", ("numeric",), True,
                          False, 0.1, 0.05, "W/std"),
    "jensenshannon": Method("jensenshannon", "Jensen-Shannon distance",
                            ("numeric", "categorical"), False, False, 0.1, 0.05, "JS"),
    "psi": Method("psi", "PSI", ("numeric", "categorical"), False, False, 0.25, 0.1, "PSI"),
}


def method_info(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise InvalidArgument(f"Unknown drift method {name!r}; use one of "
                              f"{', '.join(METHODS)}.") from None


def default_method(kind: str, n_current: int, has_raw: bool) -> str:
    if kind == "numeric":
        if not has_raw:
            return "psi"
        return "ks" if n_current <= SMALL else "wasserstein"
    return "chisquare" if n_current <= SMALL else "jensenshannon"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _value_sql(ref: ColumnReference) -> str:
    q = _quote(ref.column)
    if ref.is_bool:
        return f"CASE WHEN {q} IS NULL THEN NULL WHEN {q}::BOOLEAN THEN 'True' ELSE 'False' END"
    return f"{q}::VARCHAR"


def _bound(value: float, integer: bool, above: bool = False) -> str:
    """A literal for ``x < value`` (or ``x > value`` when ``above``); for an integer column
    the equivalent integer, so DuckDB compares integers instead of casting every value."""
    v = float(value)
    if integer and np.isfinite(v) and abs(v) < 2**62:
        return str(int(np.floor(v)) if above else int(np.ceil(v)))
    return repr(v)


def _aggregates(refs: Sequence[ColumnReference], kind: str,
                types: Mapping[str, str] | None = None,
                binned: Sequence[int] | None = None) -> list[str]:
    """Per-window aggregates of the ``kind`` columns: non-null count, values outside the
    training range and, for the references whose index is in ``binned`` (all when None),
    the cumulative count below each interior bin edge."""
    out = []
    for i, r in enumerate(refs):
        if r.kind != kind:
            continue
        q = _quote(r.column)
        out.append(f"count({q}) AS nn_{i}")
        if r.kind == "numeric":
            integer = str((types or {}).get(r.column, "")).upper() in (
                "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                "UINTEGER", "UBIGINT")
            if binned is None or i in binned:
                for j, e in enumerate((r.edges or [])[1:-1]):
                    out.append(f"count_if({q} < {_bound(e, integer)}) AS c_{i}_{j}")
            outside = []
            if r.lo is not None:
                outside.append(f"{q} < {_bound(r.lo, integer)}")
            if r.hi is not None:
                outside.append(f"{q} > {_bound(r.hi, integer, above=True)}")
            if outside:
                out.append(f"count_if({' OR '.join(outside)}) AS out_{i}")
    return out


def _needs_bins(r: ColumnReference, methods: Mapping[str, str]) -> bool:
    """Whether a numeric column's drift uses its bin counts: with raw reference values
    both default methods (ks, wasserstein) compare raw values instead."""
    chosen = methods.get(r.column)
    if chosen is not None:
        return not METHODS[chosen].raw
    return not r.has_raw


def _categorical_counts(mon: Monitor, k: str, refs: Sequence[ColumnReference],
                        by_key: dict[int, dict[str, Any]]) -> None:
    """Add ``nn_i``, ``h_i`` (value -> count) and ``u_i`` (unseen) per window for
    categorical columns: one GROUP BY per column (faster than IN-lists or histograms)."""
    for i, r in enumerate(refs):
        if r.kind != "categorical":
            continue
        counts = mon.query(f"SELECT {k} AS k, {_value_sql(r)} AS v, count(*) AS c "
                           f"FROM monitoring_log WHERE status < 400 AND {_quote(r.column)} "
                           "IS NOT NULL GROUP BY ALL")
        known = set(r.known) if r.known is not None else None
        row: dict[str, Any] | None
        for row in by_key.values():
            row[f"nn_{i}"], row[f"h_{i}"] = 0, {}
            if known is not None:
                row[f"u_{i}"] = 0
        for key, v, c in counts.itertuples(index=False):
            row = by_key.get(int(key))
            if row is None:
                continue
            row[f"nn_{i}"] += int(c)
            row[f"h_{i}"][str(v)] = row[f"h_{i}"].get(str(v), 0) + int(c)
            if known is not None and str(v) not in known:
                row[f"u_{i}"] += int(c)


def _current_counts(row: Mapping[str, Any], i: int, r: ColumnReference) -> np.ndarray:
    nn = int(row[f"nn_{i}"] or 0)
    if r.kind == "numeric":
        m = len(r.edges or []) - 2
        cum = [int(row[f"c_{i}_{j}"] or 0) for j in range(m)]
        bounds = [0, *cum, nn]
        return np.diff(np.asarray(bounds, dtype=float))
    hist = row.get(f"h_{i}") or {}
    counts = [float(hist.get(c, 0)) for c in (r.categories or [])]
    counts.append(float(nn - sum(counts)))
    return np.asarray(counts)


def binned_statistic(method: str, ref: np.ndarray, cur: np.ndarray) -> tuple[float, float | None]:
    """(statistic, p-value or None) of a binned method on aligned reference/current counts."""
    ref = np.asarray(ref, dtype=float)
    cur = np.asarray(cur, dtype=float)
    if method == "psi":
        r = np.clip(ref / ref.sum(), PSI_EPS, None)
        c = np.clip(cur / cur.sum(), PSI_EPS, None)
        return float(np.sum((c - r) * np.log(c / r))), None
    if method == "jensenshannon":
        return float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2)), None
    if method == "chisquare":
        keep = (ref + cur) > 0
        if keep.sum() < 2:
            return 0.0, 1.0
        res = stats.chi2_contingency(np.vstack([ref[keep], cur[keep]]), correction=False)
        return float(res.statistic), float(res.pvalue)
    raise InvalidArgument(f"{method} is not a binned method.")


def raw_statistic(method: str, ref: np.ndarray, cur: np.ndarray, *,
                  ref_sorted: np.ndarray | None = None,
                  ref_std: float | None = None) -> tuple[float, float | None]:
    """(statistic, p-value or None) of a raw method; ``ref_sorted``/``ref_std`` (the
    reference sorted, its standard deviation) spare recomputing them per window."""
    if method == "ks":
        res = stats.ks_2samp(ref, cur)
        return float(res.statistic), float(res.pvalue)
    if method == "wasserstein":
        std = float(np.std(ref)) if ref_std is None else ref_std
        norm = max(std, 0.001)
        u = np.sort(ref) if ref_sorted is None else ref_sorted
        return _wasserstein_sorted(u, np.sort(cur)) / norm, None
    raise InvalidArgument(f"{method} needs binned counts, not raw values.")


def ks_asymptotic_p(ref_sorted: np.ndarray, cur: np.ndarray) -> float:
    """Two-sided two-sample KS p-value from Kolmogorov's distribution at n·m/(n+m), as
    ``scipy.stats.ks_2samp(..., method="asymp")``, reusing the sorted reference (the
    evidence for a Wasserstein verdict: windows of over 1000 values)."""
    v = np.sort(cur)
    both = np.concatenate((ref_sorted, v))
    d = np.max(np.abs(ref_sorted.searchsorted(both, "right") / len(ref_sorted)
                      - v.searchsorted(both, "right") / len(v)))
    n, m = len(v), len(ref_sorted)
    return float(np.clip(stats.kstwo.sf(d, round(n * m / (n + m))), 0, 1))


def _wasserstein_sorted(u: np.ndarray, v: np.ndarray) -> float:
    """Wasserstein-1 distance of two sorted samples: the area between their empirical
    CDFs (as ``scipy.stats.wasserstein_distance``, without sorting the inputs again)."""
    if len(u) == 0 or len(v) == 0:
        raise InvalidArgument("The Wasserstein distance needs values on both sides.")
    both = np.concatenate((u, v))
    both.sort(kind="mergesort")
    deltas = np.diff(both)
    u_cdf = u.searchsorted(both[:-1], "right") / len(u)
    v_cdf = v.searchsorted(both[:-1], "right") / len(v)
    return float(np.sum(np.abs(u_cdf - v_cdf) * deltas))


def compute(mon: Monitor, window: Any = "week", *, reference: tuple[Any, Any] | None = None,
            methods: Mapping[str, str] | None = None,
            columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Drift and data quality: one row per window and column (see the module docstring).

    ``methods`` maps a column to a method to use instead of the default; ``columns``
    limits the columns compared.
    """
    w = parse_window(window)
    methods = dict(methods or {})
    for col, m in methods.items():
        method_info(m)
    notes: list[str]
    if reference is not None:
        refs, notes = references_from_window(mon, *reference), []
    else:
        refs, notes = references(mon)
    if columns is not None:
        wanted = set(columns)
        unknown = wanted - {r.column for r in refs}
        if unknown:
            raise InvalidArgument(f"No reference for {', '.join(sorted(unknown))}; drift covers "
                                  f"{', '.join(r.column for r in refs) or 'no column'}.")
        refs = [r for r in refs if r.column in wanted]
    for col, m in methods.items():
        ref = next((r for r in refs if r.column == col), None)
        if ref is None:
            raise InvalidArgument(f"No reference for column {col!r}.")
        info = METHODS[m]
        if ref.kind not in info.kinds:
            fits = ", ".join(k for k, v in METHODS.items() if ref.kind in v.kinds)
            raise InvalidArgument(f"{info.label} does not apply to the {ref.kind} column {col!r}; "
                                  f"use one of {fits}.")
        if info.raw and not ref.has_raw:
            raise InvalidArgument(f"{info.label} needs raw reference values for {col!r}, and this "
                             "version has no row sample; use psi, chisquare or jensenshannon.")
    cols = COLUMNS
    k = w.key_sql()
    by_key: dict[int, dict[str, Any]] = {}
    if refs and mon.has_rows:
        binned = [i for i, r in enumerate(refs) if r.kind == "numeric" and _needs_bins(r, methods)]
        parts = _aggregates(refs, "numeric", mon.types, binned)
        agg = mon.query(f"SELECT {k} AS k, count(*) AS n{''.join(', ' + p for p in parts)} "
                        f"FROM monitoring_log WHERE status < 400 GROUP BY k")
        # the query names every column, so the records' keys are strings
        records = cast(list[dict[str, Any]], agg.to_dict("records"))
        by_key = {int(row["k"]): row for row in records}
    keys = mon.windows(w, list(by_key))
    if not refs or not keys:
        frame = pd.DataFrame(columns=cols)
        frame.attrs["notes"] = notes
        return frame
    _categorical_counts(mon, k, refs, by_key)
    raw = _raw_values(mon, k, refs, methods, by_key)
    rows = []
    for key in keys:
        row = by_key.get(key)
        start, end = w.start(key), w.end(key)
        rows += judge([_column_row(r, i, row, raw.get(key, {}).get(r.column), methods,
                                   start, end) for i, r in enumerate(refs)])
    frame = pd.DataFrame(rows, columns=cols)
    frame.attrs["notes"] = notes
    return frame


COLUMNS = ["window_start", "window_end", "column", "kind", "method", "n", "statistic",
           "p_value", "score", "warning", "alert", "min_n", "p_adjusted", "drifted",
           "judged_on", "null_share", "out_of_range_share", "unseen_share", "note"]


def _raw_values(mon: Monitor, k: str, refs: Sequence[ColumnReference],
                methods: Mapping[str, str], by_key: Mapping[int, Mapping[str, Any]]
                ) -> dict[int, dict[str, np.ndarray]]:
    """Current values (sampled to RAW_ROWS per window) of columns whose method is raw."""
    need = []
    for i, r in enumerate(refs):
        if r.kind != "numeric" or not r.has_raw:
            continue
        chosen = methods.get(r.column)
        if chosen is not None:
            if METHODS[chosen].raw:
                need.append(r.column)
            continue
        # Default methods for numeric columns with raw references are both raw.
        if any(int(row[f"nn_{i}"] or 0) > 0 for row in by_key.values()):
            need.append(r.column)
    if not need or not by_key:
        return {}
    mod = 1_000_003
    # The sampling threshold of window k is thr[k - first + 1]: a list lookup per row is
    # far cheaper than joining every row to a table of thresholds.
    first, last = min(by_key), max(by_key)
    thr = [0] * (last - first + 1)
    for key, row in by_key.items():
        thr[key - first] = int(np.ceil(mod * min(1.0, RAW_ROWS / max(int(row["n"]), 1))))
    select = ", ".join(_quote(c) for c in need)
    data = mon.con.execute(f"""
        SELECT k, {select} FROM (
            SELECT {k} AS k, {select}, hash(epoch_us(ts), "row") % {mod} AS h
            FROM monitoring_log WHERE status < 400)
        WHERE h < $thr[k - {first} + 1]""", {"thr": thr}).fetchnumpy()
    keys = np.asarray(data["k"], dtype=np.int64)
    if not len(keys):  # the sample missed every row (e.g. rows that repeat one (ts, row))
        return {}
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    cuts = np.flatnonzero(np.diff(keys)) + 1
    starts = np.r_[0, cuts]
    out: dict[int, dict[str, np.ndarray]] = {int(keys[a]): {} for a in starts}
    for c in need:
        values = _as_float(data[c])[order]
        for a, part in zip(starts, np.split(values, cuts)):
            out[int(keys[a])][c] = part[np.isfinite(part)]
    return out


def _as_float(values: Any) -> np.ndarray:
    """A fetched column as float64, nulls (a masked array's masked entries) as NaN."""
    if isinstance(values, np.ma.MaskedArray):
        return np.ma.filled(values.astype(float), np.nan)
    arr = np.asarray(values)
    if arr.dtype == object:
        return pd.to_numeric(pd.Series(arr), errors="coerce").to_numpy(dtype=float)
    return arr.astype(float)


def _column_row(r: ColumnReference, i: int, row: Mapping[str, Any] | None,
                raw: np.ndarray | None, methods: Mapping[str, str],
                start: pd.Timestamp, end: pd.Timestamp) -> dict[str, Any]:
    """One column in one window: statistic, p-value, size and quality; the verdict
    comes from :func:`judge`, which sees the window's other columns."""
    n_rows = int(row["n"]) if row else 0
    nn = int(row[f"nn_{i}"] or 0) if row else 0
    method = methods.get(r.column) or default_method(r.kind, nn, r.has_raw)
    info = METHODS[method]
    out: dict[str, Any] = {"window_start": start, "window_end": end, "column": r.column,
                           "kind": r.kind, "method": method, "n": nn, "statistic": np.nan,
                           "p_value": np.nan, "score": np.nan, "warning": info.warning,
                           "alert": info.alert, "min_n": np.nan, "p_adjusted": np.nan,
                           "drifted": None, "judged_on": "", "null_share": np.nan,
                           "out_of_range_share": np.nan, "unseen_share": np.nan, "note": "",
                           "_how": ""}
    if row is None or n_rows == 0:
        out["note"] = "no predictions in this window"
        return out
    out["null_share"] = (n_rows - nn) / n_rows
    if nn == 0:
        out["note"] = "only nulls in this window"
        return out
    if r.kind == "numeric":
        outside = int(row.get(f"out_{i}") or 0)
        has_range = r.lo is not None or r.hi is not None
        out["out_of_range_share"] = outside / nn if has_range else np.nan
    elif f"u_{i}" in row:
        out["unseen_share"] = int(row[f"u_{i}"] or 0) / nn
    if info.raw:
        if raw is None or len(raw) == 0:
            out["note"] = "no finite values in this window"
            return out
        assert r.values is not None  # compute() refuses raw methods without raw values
        statistic, p = raw_statistic(method, r.values, raw, ref_sorted=r.sorted_values,
                                     ref_std=r.std)
        size = statistic
        if method == "wasserstein":
            assert r.sorted_values is not None  # set whenever r.values is
            p = ks_asymptotic_p(r.sorted_values, raw)
            out["_how"] = "KS asymptotic"
        else:
            out["_how"] = "asymptotic" if max(len(raw), len(r.values)) > 10_000 else "exact"
        out["n_judged"] = len(raw)
        if len(raw) < nn:
            out["note"] = (f"{info.label} on a sample of {len(raw):,} of {nn:,} values "
                           f"against all {len(r.values):,} reference values")
    else:
        if r.counts.sum() <= 0:
            out["note"] = "the reference has no values"
            return out
        cur = _current_counts(row, i, r)
        statistic, p_asym = binned_statistic(method, r.counts, cur)
        p, out["_how"] = calibration.binned_p(method, r.counts, cur, statistic, p_asym)
        size = calibration.cohen_w(r.counts, cur) if method == "chisquare" else statistic
    out["statistic"] = statistic
    out["p_value"] = p
    out["score"] = size
    out["min_n"] = r.min_n(method, METHODS[method].alert)
    return out


def judge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Verdicts of one window's columns: BH across them, then evidence and size (see
    the module docstring)."""
    n_of = [int(r.pop("n_judged", r["n"])) for r in rows]
    p = [r["p_value"] if n >= MIN_VALUES else np.nan for r, n in zip(rows, n_of)]
    adjusted = calibration.benjamini_hochberg(p)
    tested = int(np.isfinite(adjusted).sum())
    for r, n, q in zip(rows, n_of, adjusted):
        how = r.pop("_how", "")
        if not np.isfinite(q):
            if np.isfinite(r["p_value"]):
                r["note"] = (f"only {n} value{'s' if n != 1 else ''} in this window: drift is "
                             f"judged from {MIN_VALUES} values")
            continue
        info = METHODS[r["method"]]
        r["p_adjusted"] = float(q)
        evidence = q < ALPHA
        big = r["score"] >= info.alert
        if evidence and big:
            r["drifted"] = True
        elif n >= r["min_n"]:
            r["drifted"] = False
        else:
            r["note"] = _join(r["note"], f"only {n} values: enough to find drift, too few "
                              f"to rule it out ({info.label} needs {int(r['min_n'])})")
        r["judged_on"] = (f"{info.size_label} {r['score']:.3g} (alert at {info.alert:g}); "
                          f"p {r['p_value']:.2g} {how}, {q:.2g} after BH over {tested} "
                          f"column{'s' if tested != 1 else ''} (drift below {ALPHA:g}); "
                          f"n {n} (no-drift verdict from {int(r['min_n'])})")
    return rows


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def window_verdicts(drift: pd.DataFrame) -> pd.DataFrame:
    """Per window: columns compared, judged, drifted (which) and their share; the window
    drifted when any column did (each column's verdict is already corrected for the
    number of columns)."""
    out_cols = ["window_start", "columns", "judged", "drifted", "share", "window_drifted",
                "which"]
    if drift.empty:
        return pd.DataFrame(columns=out_cols)
    rows = []
    for start, g in drift.groupby("window_start", sort=True):
        verdict = g["drifted"]
        hit = g.loc[verdict.eq(True).to_numpy(dtype=bool), "column"].tolist()
        judged = int(verdict.notna().sum())
        rows.append({"window_start": start, "columns": len(g), "judged": judged,
                     "drifted": len(hit), "share": len(hit) / judged if judged else np.nan,
                     "window_drifted": bool(hit) if judged or hit else None,
                     "which": ", ".join(hit)})
    return pd.DataFrame(rows, columns=out_cols)
