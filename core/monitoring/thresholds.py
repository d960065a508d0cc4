"""Thresholds: mark each window's metrics ok / warning / alert, and each model's status.

A rule names a metric and the values at which it becomes a warning and an alert, and
whether high (``above``) or low (``below``) values are bad. Metric ids:

* built-in metrics by name: ``rmse``, ``mae``, ``mape``, ``r2``, ``accuracy``, ``f1``...
* ``custom:<name>`` for a custom metric;
* ``drift:<column>`` for the drift score of a column (p-value or distance, as the
  column's method gives it). Without a rule, drift uses the method's defaults (see
  :mod:`core.monitoring.drift`), so drift is marked out of the box;
* ``null_share``, ``out_of_range_share``, ``unseen_share``: data quality, the worst
  column of the window.

Rules and the window a model is watched with are saved per model as records of kind
``monitor_settings`` (the latest wins).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from core.errors import FixativeError, InvalidArgument
from core.model.bundle import finite_number
from core.monitoring import custom as custom_metrics
from core.monitoring.drift import METHODS
from core.monitoring.monitor import open_monitor
from core.monitoring.windows import parse_window
from core.store.protocols import StoreLike

RECORD_KIND = "monitor_settings"
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

    def rule(self, metric: str) -> Rule | None:
        for r in self.rules:
            if r.metric == metric:
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"window": self.window, "rules": [asdict(r) for r in self.rules]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        rules = []
        for r in data.get("rules") or []:
            rules.append(Rule(metric=str(r.get("metric")), warning=_num(r.get("warning")),
                              alert=_num(r.get("alert")),
                              direction=str(r.get("direction") or "above")))
        return cls(window=str(data.get("window") or "week"), rules=rules)


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


def evaluate(settings: Settings, metrics: pd.DataFrame | None = None,
             drift: pd.DataFrame | None = None,
             custom: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long table: window_start, metric, value, warning, alert, direction, status."""
    rows: list[dict[str, Any]] = []

    def add(start: Any, metric: str, value: Any, rule: Rule | None) -> None:
        rows.append({"window_start": start, "metric": metric,
                     "value": float(value) if value is not None and not pd.isna(value) else np.nan,
                     "warning": rule.warning if rule else np.nan,
                     "alert": rule.alert if rule else np.nan,
                     "direction": rule.direction if rule else "",
                     "status": rule.status(value) if rule else "none"})

    if metrics is not None and not metrics.empty:
        skip = {"window_start", "window_end", "version", "n", "n_actual", "note"}
        for col in [c for c in metrics.columns if c not in skip]:
            rule = settings.rule(col)
            if rule is None:
                continue
            for start, value in zip(metrics["window_start"], metrics[col]):
                add(start, col, value, rule)
    if custom is not None and not custom.empty:
        for col in [c for c in custom.columns if c not in ("window_start", "window_end")]:
            rule = settings.rule(f"custom:{col}")
            if rule is None:
                continue
            for start, value in zip(custom["window_start"], custom[col]):
                add(start, f"custom:{col}", value, rule)
    if drift is not None and not drift.empty:
        for rec in drift.to_dict("records"):
            metric = f"drift:{rec['column']}"
            rule = settings.rule(metric)
            if rule is None:
                info = METHODS[rec["method"]]
                rule = Rule(metric, warning=info.warning, alert=info.alert,
                            direction="below" if info.is_test else "above")
            add(rec["window_start"], metric, rec["score"], rule)
        for measure in QUALITY:
            rule = settings.rule(measure)
            if rule is None or measure not in drift:
                continue
            worst = drift.groupby("window_start", sort=True)[measure].max()
            for start, value in worst.items():
                add(start, measure, value, rule)
    return pd.DataFrame(rows, columns=["window_start", "metric", "value", "warning", "alert",
                                       "direction", "status"])


def worst(statuses: Iterable[str]) -> str:
    found = [s for s in statuses if s in STATUSES]
    return max(found, key=STATUSES.index) if found else "none"


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


def status(store: StoreLike, name: str | None = None, now: datetime | None = None
           ) -> list[ModelStatus]:
    """The current status of each aliased (deployed) version, or of ``name``'s aliased
    versions (its latest version when it has no alias): the worst mark in the latest
    window with predictions, over the last three windows."""
    now = now or datetime.now(UTC)
    if name is not None:
        targets = _targets(store, name, include_latest=True)
    else:
        targets = [t for m in store.list_models() for t in _targets(store, m.name)]
    out = []
    for model, version, aliases in targets:
        settings = load(store, model)
        w = parse_window(settings.window)
        end = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else \
            pd.Timestamp(now, tz="UTC")
        key = w.key_of(end)
        since = w.start(key - 2)
        try:
            meta = store.meta(model, version)
            sample = store.sample(model, version)
        except FixativeError as exc:
            out.append(ModelStatus(model, version, aliases, "none", None, 0, [], [],
                                   f"cannot read this version: {exc.message}"))
            continue
        with open_monitor(store, model, meta, versions=[version], since=since,
                          sample=sample) as mon:
            metrics = mon.metrics(w)
            if metrics.empty or metrics["n"].sum() == 0:
                out.append(ModelStatus(model, version, aliases, "none", None, 0, [], [],
                                       f"no predictions since {since:%Y-%m-%d %H:%M} UTC"))
                continue
            latest = metrics[metrics["n"] > 0].iloc[-1]
            start = latest["window_start"]
            drift = mon.drift(w)
            custom = custom_metrics.compute(mon, w, custom_metrics.saved(store, model))
        marks = evaluate(settings, metrics, drift, custom)
        marks = marks[marks["window_start"] == start]
        out.append(ModelStatus(
            model=model, version=version, aliases=aliases, status=worst(marks["status"]),
            window_start=start, n=int(latest["n"]),
            alerts=sorted(marks.loc[marks["status"] == "alert", "metric"]),
            warnings=sorted(marks.loc[marks["status"] == "warning", "metric"])))
    return out


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
