"""Upload: a model file (and optional training sample) becomes a new version."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from core.errors import FixativeError
from core.safety.loader import defined_in_script_message, forbidden_message
from core.store import upload as up
from core.workbench import ui


@dataclass
class Version:
    """What the person wrote about the version to store."""

    name: str
    problem: str | None
    description: str
    metric_rows: Any
    tags_text: str
    metrics_data: str = ""
    metrics_rows: int | None = None
    training_code: str = ""


def intro() -> None:
    st.title("Upload a model")
    last = st.session_state.pop("upload_last", None)
    if last is not None:
        st.success(f"Stored **{last[0]}** version `{last[1]}`.")
        ui.link("pages/models.py", f"Open {last[0]}@{last[1]}", model=last[0], version=last[1])
    st.write("Upload a fitted model saved with `joblib.dump` or `skops.io.dump`. Add a sample "
             "of its training features (CSV or Parquet) to record the input schema and a "
             "reference profile for drift monitoring.")


def safety_section(model_file: Any, model_data: bytes, digest: str) -> tuple[Any, list[str]]:
    """The safety report of the file; the report and the names the person trusted."""
    st.subheader("Safety report")
    try:
        report = up.scan_model(model_data, model_file.name)
    except FixativeError as exc:
        st.error(exc.message)
        st.stop()
    c1, c2, c3 = st.columns(3)
    c1.metric("Format", report.format)
    c2.metric("Size", f"{report.size:,} bytes")
    c3.metric("Imports", len(report.globals))
    with st.expander(f"Everything the file imports ({len(report.globals)})", expanded=False):
        st.dataframe(pd.DataFrame({"import": list(report.globals),
                                   "trusted": [g not in report.untrusted
                                               for g in report.globals]}),
                     hide_index=True, key="upload_globals")
    trusted: list[str] = []
    if report.ok:
        st.success("Every import in this file is on the allowlist of model libraries; it can "
                   "be loaded without running foreign code.")
    elif report.forbidden:
        # No checkbox: these run programs or code, and no model needs them.
        st.error(forbidden_message(report.forbidden, model_file.name))
        st.stop()
    elif scripted := [g for g in report.untrusted if g.startswith("__main__.")]:
        # No checkbox either: trust cannot bring back a function of the training script.
        st.error(defined_in_script_message(scripted, model_file.name))
        st.stop()
    else:
        st.error("This file imports names outside the allowlist. Loading it would run them: "
                 + ", ".join(f"`{g}`" for g in report.untrusted)
                 + ". Do not load files from people you do not trust.")
        # The key includes the file's hash, so trust given to one file never carries over.
        if st.checkbox(up.trust_label(report.untrusted), key=f"upload_trust_{digest}"):
            trusted = list(report.untrusted)
    return report, trusted


def describe_section(model_file: Any) -> Version:
    st.subheader("Describe the version")
    name = st.text_input("Name", value=up.suggest_name(model_file.name), key="upload_name",
                         help="Letters, digits, '-', '_' and '.'; a new name creates a model, "
                              "an existing one adds a version.")
    problem = up.name_problem(name)
    if problem:
        st.error(problem)
    else:
        existing = {m.name for m in ui.cached_models()}
        st.caption(f"Adds a version to `{name}`." if name in existing
                   else f"Creates the model `{name}`.")
    description = st.text_area("Description", key="upload_description")
    st.caption("Metrics measured on held-out data, e.g. rmse 41000.")
    # Empty cells stay blank (not "None"), and a row left blank is ignored.
    metric_rows = st.data_editor(
        pd.DataFrame({"metric": pd.Series([], dtype="str"),
                      "value": pd.Series([], dtype="float")}),
        num_rows="dynamic", key="upload_metrics", hide_index=True, placeholder="",
        column_config={"metric": st.column_config.TextColumn("metric", help="e.g. rmse"),
                       "value": st.column_config.NumberColumn("value", help="e.g. 41000")})
    c1, c2 = st.columns([3, 1])
    metrics_data = c1.text_input("Measured on (the data set's name)", key="upload_metrics_data",
                                 placeholder="e.g. holdout 2026-Q1")
    metrics_rows = c2.number_input("Its rows", min_value=1, value=None, step=1,
                                   key="upload_metrics_rows")
    tags_text = st.text_input("Tags (comma-separated)", key="upload_tags")
    training_code = st.text_input("Training code (a git commit, URL or path)",
                                  key="upload_training_code")
    return Version(name, problem, description, metric_rows, tags_text, metrics_data.strip(),
                   int(metrics_rows) if metrics_rows else None, training_code.strip())


def store_section(store: Any, model_file: Any, model_data: bytes, digest: str,
                  sample_file: Any, report: Any, trusted: list[str], v: Version) -> None:
    """The Store button; stores the version and reruns (stops when not clicked)."""
    name = v.name
    blocked = bool(v.problem) or (not report.ok and not trusted)
    if not report.ok and not trusted:
        st.warning("Tick the box above to trust exactly these imports, or upload another file.")
    # A second click on the same file would store an identical version: ask first.
    sample_digest = (hashlib.sha256(sample_file.getvalue()).hexdigest()[:16]
                     if sample_file is not None else "")
    stored: dict = st.session_state.setdefault("upload_stored", {})
    earlier = stored.get((digest, sample_digest, name))
    if earlier is not None and not blocked:
        st.warning(f"This file is already stored as `{name}@{earlier}`; storing it again adds "
                   "an identical version.")
        blocked = not st.checkbox("Store it again anyway", key=f"upload_again_{digest}")
    if not st.button("Store version", key="upload_submit", type="primary", disabled=blocked):
        st.stop()

    bar = None
    try:
        metrics = up.metrics_from_rows(v.metric_rows)
        tags = up.parse_tags(v.tags_text)
        bar = st.progress(0.0, text="Starting")
        info = up.upload(
            store, model_data, model_file.name, name=name,
            sample_data=sample_file.getvalue() if sample_file is not None else None,
            sample_filename=sample_file.name if sample_file is not None else None,
            description=v.description, metrics=metrics, tags=tags, trusted=trusted,
            progress=lambda f, text: bar.progress(f, text=text),
            metrics_data=v.metrics_data or None, metrics_rows=v.metrics_rows,
            training_code=v.training_code or None)
    except FixativeError as exc:
        if bar is not None:
            bar.empty()  # no progress bar left standing over the error
        st.error(f"Nothing was stored. {exc.message}")
        st.stop()

    # Rerun so the sidebar lists the new version; the message waits in session state.
    stored[(digest, sample_digest, info.name)] = info.version
    st.session_state["upload_last"] = (info.name, info.version)
    ui.select(info.name, info.version)
    st.rerun()


def main() -> None:
    store = ui.get_store()
    intro()
    model_file = st.file_uploader("Model file (.joblib, .pkl, .skops)", key="upload_model",
                                  type=[s.lstrip(".") for s in up.MODEL_SUFFIXES])
    sample_file = st.file_uploader("Training sample (optional: CSV or Parquet)",
                                   key="upload_sample",
                                   type=[s.lstrip(".") for s in up.SAMPLE_SUFFIXES])
    if model_file is None:
        st.info("Choose a model file to start. Nothing is loaded until you have seen its "
                "safety report.")
        st.stop()
    model_data = model_file.getvalue()
    digest = hashlib.sha256(model_data).hexdigest()[:16]
    report, trusted = safety_section(model_file, model_data, digest)
    version = describe_section(model_file)
    store_section(store, model_file, model_data, digest, sample_file, report, trusted, version)


main()
