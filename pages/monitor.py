"""Monitor: performance, drift and traffic of a model over time; actuals and new data.

Everything shown comes from :func:`core.monitoring.report.build`, the same function the
CLI and the exported Quarto dashboard call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.deploy import endpoints
from core.errors import FixativeError
from core.monitoring import cbpe, dle, thresholds
from core.monitoring import custom as custom_metrics
from core.monitoring.actuals import (
    actual_column_guess,
    read_table,
    save_actuals,
    score_upload,
    truth_column_guess,
)
from core.monitoring.estimate import PREFIX as ESTIMATED
from core.monitoring.monitor import open_ref
from core.monitoring.performance import (
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    REGRESSION_METRICS,
)
from core.monitoring.report import render_qmd
from core.monitoring.thresholds import QUALITY, Rule, Settings
from core.serving import heartbeat
from core.workbench import challenger, charts, reports, ui, watching, words

WINDOWS = ["hour", "day", "week", "month", "other"]
SOURCE_LABELS = {"log": "Served predictions (log)", "upload": "Uploaded data",
                 "all": "Both"}
_MESSAGE = "mon_message"
TABS = ["Performance", "Drift", "Traffic", "Custom metrics", "Thresholds", "Upload", "Export",
        "All models", "Estimated", "Alerts", "Challenger"]


@dataclass
class Choice:
    """What the controls at the top of the page chose."""

    ref: str
    window: str
    since: str
    until: str
    source: str
    all_versions: bool
    reference: tuple[str, str] | None


def _say() -> None:
    message = st.session_state.pop(_MESSAGE, None)
    if message:
        getattr(st, message[0])(message[1])


def _uploaded_table(label: str, key: str, what: str) -> pd.DataFrame | None:
    """A CSV/Parquet upload as a table; None when absent, or unreadable (reason shown)."""
    uploaded = st.file_uploader(label, type=["csv", "parquet"], key=key)
    if uploaded is None:
        return None
    try:
        return read_table(uploaded.getvalue(), uploaded.name, what)
    except FixativeError as exc:
        st.error(exc.message)
        return None


def controls(meta: Any, settings: Settings, name: str, version: str) -> Choice:
    c1, c2, c3, c4 = st.columns([1.2, 1.2, 1, 1])
    scope = c1.radio("Rows of", ["this version", "all versions"], key="mon_scope",
                     horizontal=True)
    # Both by default: a newcomer's first rows are as likely uploaded as served.
    source = c2.selectbox("Source", list(SOURCE_LABELS), format_func=SOURCE_LABELS.get,
                          index=list(SOURCE_LABELS).index("all"), key="mon_source")
    default_window = settings.window if settings.window in WINDOWS else "other"
    window_choice = c3.selectbox("Window", WINDOWS, index=WINDOWS.index(default_window),
                                 key="mon_window")
    window = window_choice
    if window_choice == "other":
        window = c3.text_input("Period",
                               value=settings.window if default_window == "other" else "6h",
                               key="mon_period", help="e.g. 15min, 6h, 3d, 2w")
    since = c4.text_input("Since", key="mon_since", placeholder="e.g. 2025-03-01 or 30d")
    until = c4.text_input("Until", key="mon_until", placeholder="e.g. 2025-04-01 (exclusive)")
    return Choice(ref=f"{name}@{version}", window=window, since=since, until=until,
                  source=source, all_versions=scope == "all versions",
                  reference=drift_reference(meta))


def drift_reference(meta: Any) -> tuple[str, str] | None:
    with st.expander("Drift reference", expanded=not meta.profile):
        st.caption("Drift compares each window with the training sample stored with the "
                   "version" + ("" if meta.profile else " (this version has none)")
                   + ". To compare with a period of logged rows instead, give its start and "
                   "end.")
        r1, r2 = st.columns(2)
        ref_from = r1.text_input("Reference from", key="mon_ref_from",
                                 placeholder="e.g. 2025-03-01")
        ref_until = r2.text_input("Reference until", key="mon_ref_until",
                                  placeholder="e.g. 2025-03-08 (exclusive)")
    reference = (ref_from, ref_until) if ref_from.strip() and ref_until.strip() else None
    if reference is None and (ref_from.strip() or ref_until.strip()):
        st.warning("Give both ends of the drift reference; until then drift uses the training "
                   "sample.")
    return reference


def load_report(name: str, choice: Choice) -> Any:
    try:
        return reports.cached_report(name, choice.ref, window=choice.window, since=choice.since,
                                     until=choice.until, source=choice.source,
                                     all_versions=choice.all_versions,
                                     reference=choice.reference)
    except FixativeError as exc:
        st.error(exc.message)
        st.stop()


def summary(report: Any, settings: Settings, ref: str) -> bool:
    """The status line; whether the range has any predictions."""
    has_rows = not report.metrics.empty and report.metrics["n"].sum() > 0
    head = report.headline
    status_text = {"alert": "🔴 alert", "warning": "🟠 warning", "ok": "🟢 ok",
                   "none": "⚪ not judged yet"}[head.status]
    m1, m2, m3 = st.columns(3)
    m1.metric(f"Status (latest {settings.lookback} windows with enough rows)", status_text,
              help=head.message)
    m2.metric("Predictions", f"{int(report.metrics['n'].sum()) if has_rows else 0:,}")
    m3.metric("Rows with actuals",
              f"{int(report.metrics['n_actual'].sum()) if has_rows else 0:,}")
    st.caption(head.message)
    if not has_rows:
        st.info(f"No predictions of {ref} in this range. Deploy the model and send it requests, "
                "or upload data to score in the **Upload** tab below; then upload actuals to "
                "see its performance.")
    for note in report.notes:
        st.caption(note)
    return has_rows


def performance_tab(meta: Any, settings: Settings, report: Any, has_rows: bool, name: str,
                    version: str) -> None:
    names = list(CLASSIFICATION_METRICS if meta.classes is not None else REGRESSION_METRICS)
    names += [c for c in report.custom.columns if c not in ("window_start", "window_end")]
    metric = st.selectbox("Metric", names, key="mon_metric")
    rule = settings.rule(metric) or settings.rule(f"custom:{metric}")
    frame = report.table()
    if has_rows and report.metrics["n_actual"].sum() == 0 and metric in REGRESSION_METRICS + \
            CLASSIFICATION_METRICS:
        st.info("No actuals yet: upload the true values in the **Upload** tab to score the "
                "predictions.")
    st.plotly_chart(charts.metric_figure(frame, metric, warning=rule.warning if rule else None,
                                         alert=rule.alert if rule else None,
                                         direction=rule.direction if rule else "above"),
                    key="mon_metric_chart")
    st.dataframe(frame, key="mon_metrics_table", hide_index=True)
    st.download_button("Download metrics (CSV)", frame.to_csv(index=False),
                       file_name=f"{name}-{version}-{report.window}-metrics.csv",
                       mime="text/csv", key="mon_download_csv")


def drift_tab(name: str, meta: Any, report: Any, choice: Choice) -> None:
    if report.drift.empty:
        st.info("No drift yet: it needs logged rows and a reference, which a version gets when "
                "it is stored with a training sample.")
        return
    st.plotly_chart(charts.drift_heatmap(report.drift), key="mon_drift_heatmap")
    columns = list(dict.fromkeys(report.drift["column"]))
    column = st.selectbox("Compare one column with the reference", columns,
                          key="mon_drift_column")
    starts = list(dict.fromkeys(report.drift["window_start"]))
    start = st.selectbox("Window", starts, index=len(starts) - 1, key="mon_drift_window",
                         format_func=lambda t: f"{t:%Y-%m-%d %H:%M}")
    profile = meta.profile or {}
    feature = column[len("input_"):] if column.startswith("input_") and \
        column[len("input_"):] in (profile.get("columns") or {}) else column
    entry = (profile.get("prediction") if column == "prediction"
             else (profile.get("columns") or {}).get(feature))
    if entry:
        end = report.drift.loc[report.drift["window_start"] == start, "window_end"].iloc[0]
        current = reports.cached_column_values(name, choice.ref, column, start, end,
                                               choice.source)
        st.plotly_chart(charts.profile_figure(entry, current, title=column),
                        key="mon_drift_profile")
    st.dataframe(report.drift[report.drift["window_start"] == start], hide_index=True,
                 key="mon_drift_table")
    words.glossary("drift", "reference profile", "window")


def traffic_tab(report: Any) -> None:
    st.plotly_chart(charts.traffic_figure(report.traffic), key="mon_traffic_chart")
    st.dataframe(report.traffic, hide_index=True, key="mon_traffic_table")


def custom_tab(store: Any, name: str, meta: Any, ref: str) -> None:
    """The saved custom metrics and a form for a new one."""
    saved = custom_metrics.saved(store, name)
    example_name, example_sql = custom_metrics.example(meta)
    if saved:
        st.dataframe(pd.DataFrame([m.to_dict() for m in saved]), hide_index=True,
                     key="mon_custom_list")
    else:
        st.caption("No custom metrics yet. Write one below, e.g. a business figure such as "
                   f"`{example_sql}`.")
    with st.form("mon_custom_form"):
        cm_name = st.text_input("Name", key="mon_custom_name", placeholder=example_name)
        cm_sql = st.text_area("SQL aggregate over the logged rows of a window",
                              key="mon_custom_sql", placeholder=example_sql)
        cm_desc = st.text_input("Description", key="mon_custom_desc")
        cm_dir = st.selectbox("Worse when", ["above", "below"], key="mon_custom_dir")
        if st.form_submit_button("Save custom metric"):
            try:
                with open_ref(store, ref) as mon:
                    custom_metrics.save(store, mon, custom_metrics.CustomMetric(
                        cm_name, cm_sql, cm_desc, cm_dir))
                st.session_state[_MESSAGE] = ("success", f"Saved custom metric {cm_name}.")
                st.rerun()
            except FixativeError as exc:
                st.error(exc.message)
    st.caption("Columns: " + ", ".join(reports.cached_columns(name, ref)))
    words.glossary("custom metric")
    if saved:
        gone = st.selectbox("Remove a custom metric", [m.name for m in saved],
                            key="mon_custom_delete")
        if st.button("Remove", key="mon_custom_delete_button"):
            custom_metrics.delete(store, name, gone)
            st.session_state[_MESSAGE] = ("success", f"Removed custom metric {gone}.")
            st.rerun()


def thresholds_tab(store: Any, name: str, meta: Any, settings: Settings, report: Any) -> None:
    saved = custom_metrics.saved(store, name)
    builtins = CLASSIFICATION_METRICS if meta.classes is not None else REGRESSION_METRICS
    estimable = cbpe.METRICS if meta.classes is not None else dle.METRICS
    rule_names = ([*builtins] + [f"{ESTIMATED}{m}" for m in estimable]
                  + [f"custom:{m.name}" for m in saved]
                  + [f"drift:{c}" for c in dict.fromkeys(report.drift.get("column", []))]
                  + list(QUALITY))
    if settings.rules:
        st.dataframe(pd.DataFrame([r.__dict__ for r in settings.rules]), hide_index=True,
                     key="mon_rules_table")
    else:
        st.caption("No thresholds yet. Drift is judged with each test's usual levels until "
                   "you set your own here.")
    # Outside the form, so choosing a metric fills in its saved rule, or the direction
    # that is worse for it (an accuracy is worse below, an error above).
    r_metric = st.selectbox("Metric", list(dict.fromkeys(rule_names)), key="mon_rule_metric")
    if st.session_state.get("_mon_rule_for") != r_metric:
        st.session_state["_mon_rule_for"] = r_metric
        existing = settings.rule(r_metric)
        base = r_metric.removeprefix(ESTIMATED)
        higher_better = base in builtins and base not in LOWER_IS_BETTER
        st.session_state["mon_rule_dir"] = (existing.direction if existing else
                                            "below" if higher_better else "above")
        for key, value in (("mon_rule_warning", existing.warning if existing else None),
                           ("mon_rule_alert", existing.alert if existing else None)):
            st.session_state[key] = "" if value is None else f"{value:g}"
    with st.form("mon_rule_form"):
        r_dir = st.selectbox("Worse when", ["above", "below"], key="mon_rule_dir")
        r_warn = st.text_input("Warning at", key="mon_rule_warning")
        r_alert = st.text_input("Alert at", key="mon_rule_alert")
        r_window = st.text_input("Watch with windows of", value=settings.window,
                                 key="mon_rule_window")
        r_min_rows = st.number_input("Judge a window from (rows)", min_value=1,
                                     value=settings.min_rows, step=1, key="mon_rule_min_rows",
                                     help="Below this many rows (with actuals, for the "
                                          "performance metrics) a window is not judged, "
                                          "so it is never 'ok'.")
        r_lookback = st.number_input("Status over the latest windows", min_value=1,
                                     value=settings.lookback, step=1, key="mon_rule_lookback")
        if st.form_submit_button("Save threshold"):
            try:
                new = Rule(r_metric, warning=thresholds._num(r_warn),
                           alert=thresholds._num(r_alert), direction=r_dir)
                rules = [r for r in settings.rules if r.metric != r_metric] + [new]
                thresholds.save(store, name, Settings(window=r_window.strip() or "week",
                                                      rules=rules, min_rows=int(r_min_rows),
                                                      lookback=int(r_lookback)))
                st.session_state[_MESSAGE] = ("success", f"Saved the threshold for {r_metric}.")
                st.rerun()
            except FixativeError as exc:
                st.error(exc.message)
    problems = report.marks[report.marks["status"].isin(["warning", "alert"])]
    if problems.empty:
        st.caption("No window in this range is at warning or alert.")
    else:
        st.markdown("**Windows at warning or alert**")
        st.dataframe(problems, hide_index=True, key="mon_marks_table")
    words.glossary("threshold", "window", "drift")


def actuals_upload(store: Any, name: str, meta: Any) -> None:
    st.subheader("Actuals")
    words.glossary("actuals", label="What are actuals?")
    st.caption("A CSV or Parquet file with a key (usually the request id the server returned) "
               "and the true value.")
    table = _uploaded_table("Actuals file", "mon_actuals", "actuals file")
    if table is None:
        return
    cols = list(table.columns)
    a1, a2, a3, a4 = st.columns(4)
    key_col = a1.selectbox("Key column", cols, key="mon_actuals_key",
                           index=cols.index("request_id") if "request_id" in cols else 0)
    value_col = a2.selectbox("True value column", cols, key="mon_actuals_value",
                             index=cols.index(actual_column_guess(cols)))
    logged_cols = ["request_id"] + [c.name for c in meta.prototype.columns]
    on = a3.selectbox("Matches logged column", logged_cols, key="mon_actuals_on")
    row_col = a4.selectbox("Row column (batched requests)", ["(none)", *cols],
                           key="mon_actuals_row",
                           index=cols.index("row") + 1 if "row" in cols else 0)
    if st.button("Save actuals", key="mon_actuals_save"):
        try:
            saved_a = save_actuals(store, name, table, key_column=key_col,
                                   actual_column=value_col, on=on,
                                   row_column=None if row_col == "(none)" else row_col,
                                   classes=meta.classes, log_columns=logged_cols)
            st.session_state[_MESSAGE] = (
                "success" if saved_a.matched != 0 else "warning", saved_a.summary())
            st.rerun()
        except FixativeError as exc:
            st.error(exc.message)


def data_upload(store: Any, name: str, version: str, meta: Any) -> None:
    st.subheader("New data to score")
    st.caption(f"Inputs of {name}, a time column and optionally the true value. Every row "
               f"is scored by {version}, and the rows and their predictions are saved in the "
               "store with the model's monitoring data.")
    data = _uploaded_table("Data file", "mon_data", "data file")
    if data is None:
        return
    cols = list(data.columns)
    guess = next((c for c in cols if c.lower() in ("ts", "time", "timestamp", "date")), cols[0])
    d1, d2 = st.columns(2)
    time_col = d1.selectbox("Time column", cols, index=cols.index(guess), key="mon_data_time")
    truth = truth_column_guess(data, [c.name for c in meta.prototype.columns], meta.classes,
                               exclude=[time_col])
    truth_col = d2.selectbox("True value column", ["(none)", *cols], key="mon_data_truth",
                             index=0 if truth is None else cols.index(truth) + 1)
    # The file stays in the uploader after scoring: a second click would keep its rows
    # twice, so it asks first.
    data_key = (version, hashlib.sha256(st.session_state["mon_data"].getvalue())
                .hexdigest()[:16], time_col, truth_col)
    scored: dict = st.session_state.setdefault("mon_scored", {})
    again = True
    if data_key in scored:
        st.warning(f"This file was scored and kept a moment ago ({scored[data_key]:,} rows); "
                   "keeping it again would count its rows twice.")
        again = st.checkbox("Score and keep it again anyway", key="mon_data_again")
    if st.button("Score and keep", key="mon_data_score", disabled=not again):
        bar = st.progress(0.0, text="Loading the model")
        try:
            b = store.read(name, version)
            done = score_upload(store, b, data, time_column=time_col,
                                actual_column=None if truth_col == "(none)" else truth_col,
                                progress=lambda f, text: bar.progress(min(f, 1.0), text=text))
            scored[data_key] = done.rows
            notes = "".join(f" Note: {w}." for w in done.warnings)
            if any("'prediction'" in w for w in done.warnings):
                notes += (" The file's own predictions are not used: every row is scored "
                          f"by {version}.")
            st.session_state[_MESSAGE] = (
                "success", f"Scored {done.rows:,} rows in {done.seconds:.1f} s; they show "
                           f"under the sources 'Both' and 'Uploaded data'.{notes}")
            st.rerun()
        except FixativeError as exc:
            bar.empty()
            st.error(exc.message)


def export_tab(store: Any, name: str, version: str, choice: Choice) -> None:
    st.caption("A Quarto dashboard whose Python chunks run these same queries against this "
               "store: render it with `quarto render` where Fixative is installed.")
    qmd = render_qmd(store, choice.ref, window=choice.window, since=choice.since or None,
                     until=choice.until or None, source=choice.source,
                     all_versions=choice.all_versions,
                     project_root=str(Path(__file__).resolve().parent.parent))
    st.download_button("Download monitoring dashboard (.qmd)", qmd,
                       file_name=f"{name}-{version}-monitoring.qmd", mime="text/markdown",
                       key="mon_download_qmd")


def all_models_tab(store: Any) -> None:
    st.caption("The status of every version that has an alias or is served by an endpoint "
               "running here or reporting to this board, each in its model's saved window.")
    if st.button("Check all deployed models", key="mon_status_all"):
        served = [(s.endpoint.name, s.endpoint.version)
                  for s in endpoints.list_endpoints(store, probe=False) if s.alive]
        served += heartbeat.served_versions(store)  # replicas elsewhere (a fleet)
        frame = thresholds.status_frame(thresholds.status(store, also=served))
        if frame.empty:
            st.info("Nothing deployed yet: start an endpoint on the Deploy page, or point an "
                    "alias such as production at a version on the Models page.")
        else:
            st.dataframe(frame, hide_index=True, key="mon_status_table")


def main() -> None:
    store = ui.get_store()
    name, version = ui.require_model()
    meta = ui.cached_meta(name, version)
    st.title(f"Monitor · {name}")
    _say()
    settings = thresholds.load(store, name)
    choice = controls(meta, settings, name, version)
    report = load_report(name, choice)
    has_rows = summary(report, settings, choice.ref)
    # Tabs that keep their place across reruns (a form's error stays in view), and only
    # the open one runs.
    tabs = dict(zip(TABS, st.tabs(TABS, key="mon_tab", on_change="rerun"), strict=True))
    sections = {
        "Performance": lambda: performance_tab(meta, settings, report, has_rows, name,
                                               version),
        "Drift": lambda: drift_tab(name, meta, report, choice),
        "Traffic": lambda: traffic_tab(report),
        "Custom metrics": lambda: custom_tab(store, name, meta, choice.ref),
        "Thresholds": lambda: thresholds_tab(store, name, meta, settings, report),
        "Upload": lambda: (actuals_upload(store, name, meta),
                           data_upload(store, name, version, meta)),
        "Export": lambda: export_tab(store, name, version, choice),
        "All models": lambda: all_models_tab(store),
        "Estimated": lambda: watching.estimated_section(
            store, choice.ref, choice.window, since=choice.since or None,
            until=choice.until or None, source=choice.source,
            all_versions=choice.all_versions, reference=choice.reference),
        "Alerts": lambda: watching.watch_section(store, name, version),
        "Challenger": lambda: challenger.comparison_section(
            store, name, version, choice.window, since=choice.since, until=choice.until),
    }
    for label, tab in tabs.items():
        if tab.open is not False:  # None: a Streamlit that does not track tabs runs them all
            with tab:
                sections[label]()


main()
