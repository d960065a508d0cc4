"""Thresholds: mark each window's metrics ok / warning / alert, and each model's status.

A rule names a metric and the values at which it becomes a warning and an alert, and
whether high (``above``) or low (``below``) values are bad. Metric ids:

* built-in metrics by name: ``rmse``, ``mae``, ``mape``, ``r2``, ``accuracy``, ``f1``...
* ``custom:<name>`` for a custom metric;
* ``drift:<column>`` for the drift size of a column (the ``score``: KS D, Cohen's w,
  PSI, JS or normed Wasserstein, higher is more drift). A rule sets the size levels;
  the statistical evidence (p < 0.05 after Benjamini-Hochberg across the window's
  columns) is still required. Without a rule, drift uses the method's levels (see
  :mod:`core.monitoring.drift`), so drift is marked out of the box;
* ``null_share``, ``out_of_range_share``, ``unseen_share``: data quality, the worst
  column of the window;
* ``estimated:<metric>`` for a metric estimated without actuals (``estimated:accuracy``,
  ``estimated:roc_auc``, ``estimated:mae``...; see :mod:`core.monitoring.estimate`),
  judged on the rows it was estimated on.

Rows. A mark is judged on ``n`` rows: rows with actuals for the performance metrics,
rows with logged probabilities for ROC AUC and log loss (``n_proba``), the rows of the
window for custom metrics and data quality, the column's values for drift. Below the
minimum (``Settings.min_rows``, default 30; the method's ``min_n`` for drift) the mark is
"none", never "ok" (drift can still be found on fewer values when the evidence is there).

Headline (:func:`headline`): the worst mark over the latest ``Settings.lookback``
windows (default 3) that have at least one judged mark, naming the metric and the
window; "none" with the reason when nothing could be judged.

Rules, the window a model is watched with, ``min_rows`` and ``lookback`` are saved per
model as records of kind ``monitor_settings`` (the latest wins).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import pandas as pd

from core.errors import FixativeError, InvalidArgument
from core.model.bundle import finite_number
from core.monitoring import custom as custom_metrics
from core.monitoring import limits
from core.monitoring.drift import METHODS
from core.monitoring.estimate import PREFIX as ESTIMATED
from core.monitoring.estimate import estimated as estimate_metrics
from core.monitoring.monitor import open_monitor
from core.monitoring.windows import parse_window
from core.store.protocols import StoreLike

RECORD_KIND = "monitor_settings"
MIN_ROWS = 30
LOOKBACK = 3
# Metrics judged on the rows with logged probabilities (their ``n_proba``).
PROBA_METRICS = ("roc_auc", "log_loss")
STATUSES = ("none", "ok", "warning", "alert")
QUALITY = ("null_share", "out_of_range_share", "unseen_share")


@dataclass(frozen=True)
class Rule:
    metric: str
    warning: float | None = None
    alert: float | None = None
    direction: str = "above"

    def __post_init__(self) -> None:
        if not str(self.metric or "").strip():
            raise InvalidArgument("A threshold needs a metric name.")
        if self.direction not in ("above", "below"):
            raise InvalidArgument(f"direction must be 'above' or 'below', got {self.direction!r}.")
        for label in ("warning", "alert"):
            value = getattr(self, label)
            if value is not None and not np.isfinite(float(value)):
                raise InvalidArgument(f"The {label} level of {self.metric} must be a finite "
                                      "number.")
        if self.warning is None and self.alert is None:
            raise InvalidArgument(f"The threshold for {self.metric} needs a warning or an alert "
                                  "level.")
        if self.warning is not None and self.alert is not None:
            w, a = float(self.warning), float(self.alert)
            if (self.direction == "above" and w > a) or (self.direction == "below" and w < a):
                worse = "above" if self.direction == "above" else "below"
                raise InvalidArgument(f"For {self.metric}, alert ({a:g}) must be {worse} or equal "
                                      f"to warning ({w:g}) when {self.direction} is bad.")

    def status(self, value: Any) -> str:
        if value is None or (isinstance(value, float) and not np.isfinite(value)) or pd.isna(value):
            return "none"
        v = float(value)
        bad = (lambda t: v > t) if self.direction == "above" else (lambda t: v < t)
        if self.alert is not None and bad(float(self.alert)):
            return "alert"
        if self.warning is not None and bad(float(self.warning)):
            return "warning"
        return "ok"


@dataclass
class Settings:
    window: str = "week"
    rules: list[Rule] = field(default_factory=list)
    min_rows: int = MIN_ROWS
    lookback: int = LOOKBACK

    def __post_init__(self) -> None:
        for label in ("min_rows", "lookback"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidArgument(
                    f"{label} must be a whole number of at least 1, got {value!r}.")

    def rule(self, metric: str) -> Rule | None:
        for r in self.rules:
            if r.metric == metric:
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"window": self.window, "rules": [asdict(r) for r in self.rules],
                "min_rows": self.min_rows, "lookback": self.lookback}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        rules = []
        for r in data.get("rules") or []:
            rules.append(Rule(metric=str(r.get("metric")), warning=_num(r.get("warning")),
                              alert=_num(r.get("alert")),
                              direction=str(r.get("direction") or "above")))
        return cls(window=str(data.get("window") or "week"), rules=rules,
                   min_rows=_count(data.get("min_rows"), MIN_ROWS, "min_rows"),
                   lookback=_count(data.get("lookback"), LOOKBACK, "lookback"))


def _count(value: Any, default: int, label: str) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    number = finite_number(value, label)
    if number != int(number):
        raise InvalidArgument(f"{label} must be a whole number, got {value!r}.")
    return int(number)


def _num(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return finite_number(value, "A threshold")


def load(store: StoreLike, name: str) -> Settings:
    records = store.records(RECORD_KIND, name)
    return Settings.from_dict(records[-1].payload) if records else Settings()


def save(store: StoreLike, name: str, settings: Settings, user: str | None = None) -> Settings:
    parse_window(settings.window)
    seen = set()
    for r in settings.rules:
        if r.metric in seen:
            raise InvalidArgument(f"Two thresholds for {r.metric}; keep one.")
        seen.add(r.metric)
    store.add_record(RECORD_KIND, name, settings.to_dict(), user=user)
    return settings


MARK_COLUMNS = ["window_start", "metric", "value", "warning", "alert", "direction", "n",
                "min_n", "status"]


def evaluate(settings: Settings, metrics: pd.DataFrame | None = None,
             drift: pd.DataFrame | None = None,
             custom: pd.DataFrame | None = None,
             estimated: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long table: window_start, metric, value, warning, alert, direction, the rows it
    was judged on (``n``) and their minimum (``min_n``), status."""
    rows: list[dict[str, Any]] = []
    min_rows = settings.min_rows

    def add(start: Any, metric: str, value: Any, rule: Rule | None, n: Any, min_n: Any,
            status: str | None = None) -> None:
        n = int(n) if n is not None and not pd.isna(n) else 0
        if status is None:
            status = rule.status(value) if rule else "none"
            if n < min_n:
                status = "none"
        rows.append({"window_start": start, "metric": metric,
                     "value": float(value) if value is not None and not pd.isna(value) else np.nan,
                     "warning": rule.warning if rule else np.nan,
                     "alert": rule.alert if rule else np.nan,
                     "direction": rule.direction if rule else "", "n": n,
                     "min_n": min_n, "status": status})

    rows_of: dict[Any, int] = {}
    if metrics is not None and not metrics.empty:
        rows_of = dict(zip(metrics["window_start"], metrics["n"]))
        skip = {"window_start", "window_end", "version", "n", "n_actual", "n_proba", "note"}
        for col in [c for c in metrics.columns if c not in skip]:
            rule = settings.rule(col)
            if rule is None:
                continue
            counts = metrics["n_proba"] if col in PROBA_METRICS and "n_proba" in metrics \
                else metrics["n_actual"]
            for start, value, n in zip(metrics["window_start"], metrics[col], counts):
                add(start, col, value, rule, n, min_rows)
    if estimated is not None and not estimated.empty:
        for col in [c for c in estimated.columns if f"{c}_lower" in estimated.columns]:
            rule = settings.rule(f"{ESTIMATED}{col}")
            if rule is None:
                continue
            for start, value, n in zip(estimated["window_start"], estimated[col],
                                       estimated["n"]):
                add(start, f"{ESTIMATED}{col}", value, rule, n, min_rows)
    if custom is not None and not custom.empty:
        for col in [c for c in custom.columns if c not in ("window_start", "window_end")]:
            rule = settings.rule(f"custom:{col}")
            if rule is None:
                continue
            for start, value in zip(custom["window_start"], custom[col]):
                add(start, f"custom:{col}", value, rule, rows_of.get(start, 0), min_rows)
    if drift is not None and not drift.empty:
        # pandas types the records' keys as Hashable; the drift frame's columns are str
        for rec in cast(list[dict[str, Any]], drift.to_dict("records")):
            metric = f"drift:{rec['column']}"
            rule = settings.rule(metric)
            # A "below" rule on drift was a p-value level, from before the score became a
            # size; the p-value is now judged after BH, so the method's levels apply.
            if rule is None or rule.direction == "below":
                info = METHODS[rec["method"]]
                rule = Rule(metric, warning=info.warning, alert=info.alert, direction="above")
            min_n = int(rec["min_n"]) if pd.notna(rec.get("min_n")) else 0
            add(rec["window_start"], metric, rec["score"], rule, rec["n"], min_n,
                status=drift_status(rec, rule))
        for measure in QUALITY:
            rule = settings.rule(measure)
            if rule is None or measure not in drift:
                continue
            worst_col = drift.groupby("window_start", sort=True)[measure].max()
            size = drift.groupby("window_start", sort=True)["n"].max()
            for start, value in worst_col.items():
                add(start, measure, value, rule, rows_of.get(start, size.get(start, 0)),
                    min_rows)
    return pd.DataFrame(rows, columns=MARK_COLUMNS)


def uses_estimates(settings: Settings) -> bool:
    """Whether a rule judges an estimated metric (estimation runs only then)."""
    return any(r.metric.startswith(ESTIMATED) for r in settings.rules)


def drift_status(rec: Mapping[str, Any], rule: Rule) -> str:
    """A drift mark: the rule's level on the size when the evidence is there (BH-adjusted
    p below 0.05), "ok" without evidence on enough values, "none" otherwise."""
    from core.monitoring.drift import ALPHA

    q = rec.get("p_adjusted")
    if q is None or pd.isna(q):
        return "none"
    level = rule.status(rec["score"]) if q < ALPHA else "ok"
    drifted = rec.get("drifted")
    if level == "ok" and (drifted is None or pd.isna(drifted)):
        return "none"  # too few values to rule drift out
    return level


def worst(statuses: Iterable[str]) -> str:
    found = [s for s in statuses if s in STATUSES]
    return max(found, key=STATUSES.index) if found else "none"


@dataclass
class Headline:
    """The status a face of monitoring shows first, and what it rests on."""

    status: str
    metric: str = ""
    window_start: pd.Timestamp | None = None
    value: float = float("nan")
    n: int = 0
    message: str = ""
    windows: list[pd.Timestamp] = field(default_factory=list)


def headline(marks: pd.DataFrame, lookback: int = LOOKBACK) -> Headline:
    """The worst mark over the latest ``lookback`` windows with at least one judged mark
    (the marks' own statuses: rows below a metric's minimum are already "none")."""
    if marks is None or marks.empty:
        return Headline("none", message="no thresholds apply yet: no metric has a rule, and "
                                        "drift needs logged rows and a reference")
    judged = marks[marks["status"] != "none"]
    if judged.empty:
        return Headline("none", message=_why_none(marks))
    windows = sorted(judged["window_start"].unique())[-int(lookback):]
    recent = judged[judged["window_start"].isin(windows)]
    status = worst(recent["status"])
    top = recent[recent["status"] == status].sort_values("window_start", kind="stable")
    pick = top.iloc[-1]
    start = pd.Timestamp(pick["window_start"])
    span = f"{len(windows)} latest window{'s' if len(windows) > 1 else ''} with enough rows"
    latest = marks[marks["window_start"] == marks["window_start"].max()]
    short = sorted(set(latest.loc[(latest["status"] == "none")
                                  & (latest["n"] < latest["min_n"]), "metric"]))
    unjudged = (f"; too few rows in the latest window to judge {', '.join(short[:4])}"
                f"{' and more' if len(short) > 4 else ''}") if short else ""
    if status == "ok":
        message = (f"ok: every metric and drift check judged in the {span} is within its "
                   f"levels{unjudged}")
        return Headline(status, window_start=start, n=int(pick["n"]), message=message,
                        windows=list(windows))
    others = len(top) - 1
    more = (f" (and {others} more {'warnings' if status == 'warning' else 'alerts'})"
            if others > 1 else f" (and 1 more {status})" if others else "")
    message = (f"{status}: {pick['metric']} = {pick['value']:.4g} in the window of "
               f"{start:%Y-%m-%d %H:%M} UTC, on {int(pick['n']):,} rows{more}; judged over the "
               f"{span}{unjudged}")
    return Headline(status, metric=str(pick["metric"]), window_start=start,
                    value=float(pick["value"]), n=int(pick["n"]), message=message,
                    windows=list(windows))


def _why_none(marks: pd.DataFrame) -> str:
    short = marks[marks["n"] < marks["min_n"]].sort_values("window_start", kind="stable")
    if short.empty:
        return "nothing could be judged yet (no values in the windows with rules)"
    last = short.iloc[-1]
    what = "values" if str(last["metric"]).startswith("drift:") else "rows"
    return (f"not enough rows to judge: {last['metric']} has {int(last['n'])} {what} in the "
            f"window of {pd.Timestamp(last['window_start']):%Y-%m-%d %H:%M} UTC and is judged "
            f"from {int(last['min_n'])}")


@dataclass
class ModelStatus:
    model: str
    version: str
    aliases: list[str]
    status: str
    window_start: pd.Timestamp | None
    n: int
    alerts: list[str]
    warnings: list[str]
    message: str = ""
    # the mark the status rests on: its metric, value and levels
    metric: str = ""
    value: float = float("nan")
    warning: float | None = None
    alert: float | None = None


def status(store: StoreLike, name: str | None = None, now: datetime | None = None,
           also: Iterable[tuple[str, str]] = ()) -> list[ModelStatus]:
    """The current status of each aliased (deployed) version, or of ``name``'s aliased
    versions (its latest version when it has no alias): the :func:`headline` of the
    model's saved window over its last ``lookback`` windows. ``now`` judges as of that
    time (rows logged after it are left out). Estimated metrics, when a rule uses them,
    take every row with actuals before those windows as their reference.

    ``also``: more ``(model, version)`` pairs to judge, such as the versions running
    endpoints serve without an alias (of ``name`` only, when it is given).
    """

    # A given time is a check as of then (the watcher catching up): later rows are out.
    until = pd.Timestamp(now) if now is not None else None
    now = now or datetime.now(UTC)
    if name is not None:
        targets = _targets(store, name, include_latest=True)
    else:
        targets = [t for m in store.list_models() for t in _targets(store, m.name)]
    seen = {(m, v) for m, v, _ in targets}
    for model, version in also:
        if (model, version) not in seen and (name is None or model == name):
            seen.add((model, version))
            targets.append((model, version, []))
    out = []
    for model, version, aliases in targets:
        settings = load(store, model)
        w = parse_window(settings.window)
        end = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else \
            pd.Timestamp(now, tz="UTC")
        key = w.key_of(end)
        since = w.start(key - settings.lookback + 1)
        try:
            meta = store.meta(model, version)
            sample = store.sample(model, version)
        except FixativeError as exc:
            out.append(ModelStatus(model, version, aliases, "none", None, 0, [], [],
                                   f"cannot read this version: {exc.message}"))
            continue
        # Estimates learn from the rows with actuals before the judged windows.
        ref = (None, since) if uses_estimates(settings) else None
        upto = until if until is not None and until > since else None
        try:
            with open_monitor(store, model, meta, versions=[version], since=since, until=upto,
                              sample=sample, reference=ref) as mon:
                metrics = mon.metrics(w, min_rows=settings.min_rows)
                if metrics.empty or metrics["n"].sum() == 0:
                    out.append(ModelStatus(model, version, aliases, "none", None, 0, [], [],
                                           f"no predictions since {since:%Y-%m-%d %H:%M} UTC"))
                    continue
                drift = mon.drift(w)
                custom = custom_metrics.compute(mon, w, custom_metrics.saved(store, model))
                est = (estimate_metrics(mon, w, reference=ref, min_rows=settings.min_rows)
                       if ref is not None else None)
        except limits.STOPPED as exc:
            # One model's oversized log never holds the status of the others.
            out.append(ModelStatus(model, version, aliases, "none", None, 0, [], [],
                                   f"not judged: a monitoring query {limits.reason(exc)}"))
            continue
        marks = evaluate(settings, metrics, drift, custom, est)
        head = headline(marks, settings.lookback)
        recent = marks[marks["window_start"].isin(head.windows)]
        errors = custom.attrs.get("errors", {})
        message = head.message + "".join(f"; custom metric {k} failed: {v}"
                                         for k, v in errors.items())
        levels = _levels(marks, head)
        out.append(ModelStatus(
            model=model, version=version, aliases=aliases, status=head.status,
            window_start=head.window_start, n=head.n,
            alerts=sorted(set(recent.loc[recent["status"] == "alert", "metric"])),
            warnings=sorted(set(recent.loc[recent["status"] == "warning", "metric"])),
            message=message, metric=head.metric, value=head.value,
            warning=levels[0], alert=levels[1]))
    return out


def _levels(marks: pd.DataFrame, head: Headline) -> tuple[float | None, float | None]:
    """The warning and alert levels of the mark the headline names."""
    if not head.metric or marks.empty:
        return None, None
    row = marks[(marks["metric"] == head.metric) & (marks["window_start"] == head.window_start)]
    if row.empty:
        return None, None
    w, a = row.iloc[0]["warning"], row.iloc[0]["alert"]
    return (float(w) if pd.notna(w) else None), (float(a) if pd.notna(a) else None)


def _targets(store: StoreLike, name: str, include_latest: bool = False
             ) -> list[tuple[str, str, list[str]]]:
    aliases = store.aliases(name)
    by_version: dict[str, list[str]] = {}
    for alias, version in sorted(aliases.items()):
        by_version.setdefault(version, []).append(alias)
    if not by_version and include_latest:
        versions = store.versions(name)
        if versions:
            by_version[versions[-1].version] = []
    return [(name, v, a) for v, a in by_version.items()]


def status_frame(items: Sequence[ModelStatus]) -> pd.DataFrame:
    return pd.DataFrame([{
        "model": s.model, "version": s.version, "aliases": ", ".join(s.aliases),
        "status": s.status, "window_start": s.window_start, "n": s.n,
        "alerts": ", ".join(s.alerts), "warnings": ", ".join(s.warnings), "message": s.message,
    } for s in items], columns=["model", "version", "aliases", "status", "window_start", "n",
                                "alerts", "warnings", "message"])
