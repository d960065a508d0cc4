"""Everything the Monitor page, the CLI and the Quarto export show, computed once.

:func:`build` opens the monitoring view for a model reference and returns the metrics,
custom metrics, drift, traffic and threshold marks for one window size and range, so
that every face of monitoring runs the same queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.errors import InvalidArgument
from core.monitoring import custom as custom_metrics
from core.monitoring import limits, thresholds
from core.monitoring.drift import window_verdicts
from core.monitoring.estimate import estimated as estimate_metrics
from core.monitoring.monitor import TRAFFIC_COLUMNS, open_ref
from core.monitoring.performance import CLASSIFICATION_METRICS, REGRESSION_METRICS
from core.monitoring.windows import parse_window
from core.store.paths import (
    SYSTEM_DIR,
    actuals_dir,
    alias_events,
    log_dir,
    record_events,
    scored_dir,
)
from core.store.protocols import StoreLike
from core.times import parse_time


@dataclass
class Report:
    name: str
    version: str
    window: str
    metrics: pd.DataFrame
    custom: pd.DataFrame
    drift: pd.DataFrame
    traffic: pd.DataFrame
    marks: pd.DataFrame
    settings: thresholds.Settings
    notes: list[str] = field(default_factory=list)
    # Parts that could not be computed (metrics, drift, traffic) and why.
    failed: dict[str, str] = field(default_factory=dict)
    # Estimated metrics (core.monitoring.estimate); empty unless asked for or a rule uses them.
    estimated: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def headline(self) -> thresholds.Headline:
        """Worst mark over the latest windows with enough rows, from the same marks as
        the table (see :func:`core.monitoring.thresholds.headline`)."""
        if "metrics" in self.failed:
            return thresholds.Headline("none", message="not judged: the metrics "
                                                       f"{self.failed['metrics']}")
        if self.metrics.empty or self.metrics["n"].sum() == 0:
            return thresholds.Headline("none", message="no predictions in this range")
        return thresholds.headline(self.marks, self.settings.lookback)

    @property
    def status(self) -> str:
        return self.headline.status

    def table(self) -> pd.DataFrame:
        """Metrics and custom metrics side by side, one row per window (for CSV)."""
        custom = self.custom.drop(columns=["window_end"], errors="ignore")
        if custom.shape[1] <= 1:
            return self.metrics
        return self.metrics.merge(custom, on="window_start", how="left")

    def drift_summary(self) -> pd.DataFrame:
        """Per window: columns compared and judged, how many drifted (which), their share
        and the window's verdict (:func:`core.monitoring.drift.window_verdicts`)."""
        return window_verdicts(self.drift)


def build(store: StoreLike, ref: str, *, window: str | None = None, since: Any = None,
          until: Any = None, source: str = "log", reference: tuple[Any, Any] | None = None,
          all_versions: bool = False, estimate: bool = False) -> Report:
    """The monitoring report of ``NAME``, ``NAME@VERSION`` or ``NAME:ALIAS``.

    ``window`` defaults to the model's saved setting (``week`` if none). Metrics are
    estimated without actuals (``Report.estimated``) when ``estimate`` is true or a
    threshold judges an estimated metric; ``reference`` is then also their reference.
    """
    name, version = store.resolve(str(ref or "").strip() or "?")
    settings = thresholds.load(store, name)
    w = parse_window(window or settings.window)
    failed: dict[str, str] = {}

    def part(what: str, compute: Callable[[], pd.DataFrame], columns: list[str]
             ) -> pd.DataFrame:
        # A part stopped by the query limits is reported; the others carry on.
        try:
            return compute()
        except limits.STOPPED as exc:
            failed[what] = limits.reason(exc)
            return pd.DataFrame(columns=["window_start", "window_end", *columns])

    with open_ref(store, ref, source=source, since=since, until=until,
                  all_versions=all_versions, reference=reference) as mon:
        counts = ["n", "n_actual", "n_proba"] if mon.is_classifier else ["n", "n_actual"]
        names = CLASSIFICATION_METRICS if mon.is_classifier else REGRESSION_METRICS
        metrics = part("metrics", lambda: mon.metrics(w, min_rows=settings.min_rows),
                       [*counts, *names, "note"])
        custom = part("custom metrics", lambda: custom_metrics.compute(
            mon, w, custom_metrics.saved(store, name)), [])
        drift = part("drift", lambda: mon.drift(w, reference=reference), ["column", "n"])
        traffic = part("traffic", lambda: mon.traffic(w), TRAFFIC_COLUMNS)
        est = (part("estimated metrics", lambda: estimate_metrics(
                    mon, w, reference=reference, min_rows=settings.min_rows), [])
               if estimate or thresholds.uses_estimates(settings) else pd.DataFrame())
    notes = [f"{what} {why}" for what, why in failed.items()]
    notes += list(drift.attrs.get("notes", []))
    notes += [f"custom metric {k}: {v}" for k, v in custom.attrs.get("errors", {}).items()]
    if est.attrs.get("reason"):
        notes.append(f"estimated metrics: {est.attrs['reason']}")
    marks = thresholds.evaluate(settings, metrics, drift if "drift" not in failed else None,
                                custom, est)
    return Report(name=name, version=version, window=w.label, metrics=metrics, custom=custom,
                  drift=drift, traffic=traffic, marks=marks, settings=settings, notes=notes,
                  failed=failed, estimated=est)


def data_token(store: StoreLike, name: str) -> str:
    """A key that changes whenever anything a report of model ``name`` reads changes: its
    version folders, alias moves, custom metrics and thresholds, and the files of its
    prediction log, scored uploads and actuals (name, size, time). Changes to other
    models leave it alone.

    Listing those folders costs milliseconds against seconds for a report, so a face that
    shows reports can cache them under this key and stay exact.
    """
    import hashlib

    digest = hashlib.sha256(name.encode())
    fs = store.fs
    events = [store.path(SYSTEM_DIR, *alias_events(name)),
              store.path(SYSTEM_DIR, *record_events(custom_metrics.RECORD_KIND, name)),
              store.path(SYSTEM_DIR, *record_events(thresholds.RECORD_KIND, name))]
    for folder in [store.path(name), *events]:
        try:
            names = sorted(fs.ls(folder, detail=False))
        except FileNotFoundError:
            names = []
        digest.update(("\0".join(names) + "\n").encode())
    for folder in (log_dir(store, name), scored_dir(store, name), actuals_dir(store, name)):
        try:
            found = fs.find(folder, detail=True)
        except FileNotFoundError:
            found = {}
        for path in sorted(found):
            info = found[path]
            stamp = info.get("mtime") or info.get("LastModified") or info.get("ETag") or ""
            digest.update(f"{path}\0{info.get('size')}\0{stamp}\n".encode())
    return digest.hexdigest()[:32]


def column_values(store: StoreLike, ref: str, column: str, start: Any, end: Any, *,
                  source: str = "log", limit: int = 5000) -> pd.Series:
    """Up to ``limit`` logged values of ``column`` in ``[start, end)`` (a uniform sample),
    for a reference-vs-current chart."""
    with open_ref(store, ref, source=source, since=start, until=end) as mon:
        if column not in mon.columns or column in ("proba",):
            raise InvalidArgument(f"{column!r} is not a logged column.")
        n = mon.con.execute("SELECT count(*) FROM monitoring_log WHERE status < 400"
                            ).fetchall()[0][0]
        if n == 0:
            return pd.Series([], dtype=object, name=column)
        quoted = '"' + column.replace('"', '""') + '"'
        frac = min(1.0, int(limit) / n)
        thr = int(frac * 1_000_003) + 1
        data = mon.query(f"SELECT {quoted} AS v FROM monitoring_log WHERE status < 400 "
                         f"AND hash(request_id, \"row\") % 1000003 < {thr} LIMIT {int(limit)}")
    return data["v"].rename(column)


def render_qmd(store: StoreLike, ref: str, *, window: str, since: Any = None, until: Any = None,
               source: str = "log", all_versions: bool = False,
               project_root: str | None = None) -> str:
    """A Quarto dashboard (.qmd) whose Python chunks rebuild this report.

    Every value is written as a Python literal (``repr``), never pasted as code or
    markdown, so names and paths cannot inject anything into the document.
    """
    import json
    from importlib import resources
    from string import Template

    parse_window(window)
    name, version = store.resolve(ref)

    def when(value: Any) -> str:
        t = parse_time(value)
        return repr(t.isoformat()) if t is not None else "None"

    path_setup = (f"sys.path.insert(0, {str(project_root)!r})" if project_root else "")
    template = resources.files("core.monitoring").joinpath("templates", "monitor.qmd")
    text = template.read_text("utf-8")
    return Template(text).substitute(
        title=json.dumps(f"Monitoring: {name}@{version}"), path_setup=path_setup,
        board=repr(str(store.url)), ref=repr(f"{name}@{version}"), window=repr(window),
        since=when(since), until=when(until), source=repr(source),
        all_versions=repr(bool(all_versions)))
