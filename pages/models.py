"""Models: browse the store, inspect and compare versions, move aliases, delete and prune."""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from core.errors import FixativeError
from core.model.compare import compare
from core.workbench import catalog, lineage, ui, words
from core.workbench.charts import profile_figure


@st.cache_data(show_spinner=False, max_entries=32)
def _profile_figures(location: str, name: str, version: str) -> list:
    # A version never changes, so its figures are built once.
    profile = ui.cached_meta(name, version).profile or {}
    figures = []
    for col, prof in (profile.get("columns") or {}).items():
        fig = profile_figure(prof, title=col)
        fig.update_layout(height=220)
        figures.append(fig)
    return figures


SECTIONS = ["Details", "Reference profile", "Compare", "Aliases", "Delete and prune"]


def models_table(models: list) -> None:
    """The searchable table of models; a click selects a model."""
    search = st.text_input("Search", key="models_search",
                           placeholder="name, task, library, alias, description or tag")
    hits = [v.name for v in ui.cached_search(search.strip())] if search.strip() else []
    table = catalog.models_frame(models, search, also=hits)
    if table.empty:
        st.info(f"No model matches '{search}'. Clear the search to see all {len(models)} models.")
    else:
        event = st.dataframe(table, hide_index=True, key="models_table", on_select="rerun",
                             selection_mode="single-row",
                             column_config={"updated": st.column_config.DatetimeColumn(
                                 "updated", format="YYYY-MM-DD HH:mm")})
        rows = event.selection.rows if event is not None else []
        picked = table.iloc[rows[0]]["name"] if rows else None
        # React to a new click only: the row stays ticked while the sidebar picks others.
        if picked != st.session_state.get("models_table_picked"):
            st.session_state["models_table_picked"] = picked
            if picked is not None and picked != ui.selected_ref()[0]:
                ui.select(picked)
                st.rerun()


def details_section(name: str, version: str, by_id: dict) -> None:
    meta = ui.cached_meta(name, version)
    info = by_id[version]
    st.subheader(f"{name}@{version}")
    st.write(meta.description or "_No description._")
    details = pd.DataFrame([
        ("class", meta.model_summary), ("library", meta.library), ("task", meta.task),
        ("classes", ", ".join(map(str, meta.classes or [])) or "—"),
        ("predict_proba", "yes" if meta.has_proba else "no"),
        ("aliases", ", ".join(sorted(info.aliases or [])) or "—"),
        ("tags", words.shown(meta.tags)), ("user", meta.user), ("created", meta.created),
        ("size", f"{int(info.size or 0):,} bytes"), ("hash", info.hash),
        *lineage.lineage_rows(meta),
    ], columns=["field", "value"])
    # every row in view (the automatic height stops at ten and hides the hash)
    st.dataframe(details, hide_index=True, key="models_meta",
                 height=ui.table_height(len(details)))
    for note in meta.notes:
        st.caption(note)
    st.markdown("**Metrics**")
    if meta.metrics:
        st.dataframe(pd.DataFrame(sorted(meta.metrics.items()), columns=["metric", "value"]),
                     hide_index=True, key="models_metrics")
    else:
        st.caption("No metrics recorded. Add them when you upload the next version.")
    params_table(meta)
    st.markdown("**Input columns**")
    inputs = catalog.prototype_frame(meta.prototype)
    # every column in view: the automatic height stops at ten rows
    st.dataframe(inputs, hide_index=True, key="models_prototype",
                 height=ui.table_height(len(inputs)))
    words.glossary("input columns", "alias")
    st.markdown("**Environment**")
    st.dataframe(catalog.environment_frame(meta.environment), hide_index=True,
                 key="models_environment")
    compiled_section(name, version)


def compiled_section(name: str, version: str) -> None:
    store = ui.get_store()
    st.markdown("**Compiled engine**")
    try:
        report = store.compiled(name, version)
    except FixativeError as exc:
        st.error(exc.message)
        report = None
    st.caption(catalog.compiled_text(report))
    if st.button("Compile to ONNX" if report is None else "Compile again", key="models_compile",
                 help="Convert the model with skl2onnx and compare it with the model on the "
                      "stored sample."):
        try:
            with st.spinner("Compiling…"):
                text = catalog.compile_version(store, name, version)
        except FixativeError as exc:
            st.error(exc.message)
        else:
            ui.flash(text)
            st.rerun()


def params_table(meta) -> None:
    st.markdown("**Parameters**")
    params = lineage.params_frame(meta)
    if params is None:
        st.caption("Parameters not recorded: this version was written before Fixative recorded "
                   "them. Write the model again to record them.")
        return
    steps = lineage.steps_frame(meta)
    if steps is not None:
        st.dataframe(steps, hide_index=True, key="models_steps")
    st.dataframe(params, hide_index=True, key="models_params")


def profile_section(name: str, version: str) -> None:
    st.subheader(f"{name}@{version}: reference profile")
    figures = _profile_figures(ui.store_location(), name, version)
    if not figures:
        st.info("No reference profile: this version was stored without a training sample. "
                "Upload the next version with a sample of its training features.")
        return
    st.caption("How the values of each input were spread in the training sample. A bar's "
               "area is its share of the rows, so a wide range of values makes a low bar.")
    words.glossary("reference profile", "drift")
    grid = st.columns(3)
    for i, fig in enumerate(figures):
        grid[i % 3].plotly_chart(fig, key=f"models_profile_{i}")


def compare_section(name: str, versions: list, ids_newest_first: list[str]) -> None:
    if len(versions) < 2:
        st.info(f"{name} has one version; upload another to compare.")
        return
    c1, c2 = st.columns(2)
    old_v = c1.selectbox("From", ids_newest_first, index=1, key="models_cmp_old")
    new_v = c2.selectbox("To", ids_newest_first, index=0, key="models_cmp_new")
    diff = compare(ui.cached_meta(name, old_v), ui.cached_meta(name, new_v), old_v, new_v)
    st.write(diff.summary())
    sections = [("Metadata", diff.metadata), ("Metrics", diff.metrics),
                ("Environment", diff.environment)]
    for title, changes in sections:
        if changes:
            st.markdown(f"**{title}**")
            st.dataframe(pd.DataFrame(
                [{"field": c.field, old_v: words.shown(c.old), new_v: words.shown(c.new)}
                 for c in changes]),
                hide_index=True, key=f"models_cmp_{title.lower()}")
    params_compare(diff, old_v, new_v)
    if diff.prototype:
        st.markdown("**Input columns**")
        st.dataframe(pd.DataFrame(
            [{"column": c.column, "change": c.what, old_v: words.shown(c.old),
              new_v: words.shown(c.new)} for c in diff.prototype]),
            hide_index=True, key="models_cmp_prototype")


def params_compare(diff, old_v: str, new_v: str) -> None:
    st.markdown("**Parameters**")
    show_all = st.toggle("Show all parameters", key="models_cmp_all_params")
    changes = diff.all_params if show_all else diff.params
    if not changes:
        st.caption("No parameters were recorded for either version." if not diff.all_params
                   else "The recorded parameters are the same.")
        return
    st.dataframe(lineage.params_diff_frame(changes, old_v, new_v), hide_index=True,
                 key="models_cmp_params")


def aliases_section(store, name: str, version: str, ids_newest_first: list[str]) -> None:
    aliases = ui.cached_aliases(name)
    if aliases:
        st.dataframe(pd.DataFrame(sorted(aliases.items()), columns=["alias", "version"]),
                     hide_index=True, key="models_aliases")
    else:
        st.caption("No aliases yet. Point `production` at the version you serve.")
    with st.form("models_alias_form"):
        alias = st.text_input("Alias", value="production", key="models_alias_name")
        target = st.selectbox("Version", ids_newest_first,
                              index=ids_newest_first.index(version), key="models_alias_version")
        move = st.form_submit_button("Set alias", key="models_alias_set")
    if move:
        try:
            store.set_alias(name, alias.strip(), target)
        except FixativeError as exc:
            st.error(exc.message)
        else:
            ui.flash(f"Alias {alias.strip()} of {name} now points at {target}.")
            st.rerun()
    st.markdown("**History**")
    history = ui.cached_alias_history(name)
    if history:
        st.dataframe(catalog.alias_history_frame(history), hide_index=True,
                     key="models_alias_history")
    else:
        st.caption("No alias has been set or moved yet.")


def delete_section(store, name: str, version: str, versions: list, by_id: dict,
                   ids_newest_first: list[str]) -> None:
    st.markdown("**Delete one version**")
    doomed_id = st.selectbox("Version to delete", ids_newest_first,
                             index=ids_newest_first.index(version), key="models_delete_version")
    doomed = by_id[doomed_id]
    confirm = st.checkbox(catalog.delete_message(doomed), key=f"models_delete_ok_{doomed_id}")
    if st.button("Delete version", key="models_delete", disabled=not confirm):
        try:
            store.delete(name, doomed_id, force=bool(doomed.aliases))
        except FixativeError as exc:
            st.error(exc.message)
        else:
            ui.flash(f"Deleted {name}@{doomed_id}.")
            ui.select(name if len(versions) > 1 else None)
            st.rerun()
    st.markdown("**Prune old versions**")
    c1, c2 = st.columns(2)
    keep = c1.number_input("Keep the newest", min_value=1, value=5, step=1, key="models_keep")
    use_days = c2.checkbox("Only versions older than", key="models_use_days")
    days = c2.number_input("days", min_value=1, value=30, step=1, key="models_days",
                           disabled=not use_days)
    plan = store.prune_plan(name, keep=int(keep), days=int(days) if use_days else None)
    st.caption("The latest version and versions with an alias are always kept.")
    # A different plan needs a fresh confirmation, so the plan is part of the key.
    plan_key = hashlib.sha256("-".join(v.version for v in plan).encode()).hexdigest()[:12]
    sure = st.checkbox(catalog.prune_message(name, plan), disabled=not plan,
                       key=f"models_prune_ok_{plan_key}")
    if st.button("Prune", key="models_prune", disabled=not (plan and sure)):
        try:
            removed = store.prune(name, keep=int(keep), days=int(days) if use_days else None)
        except FixativeError as exc:
            st.error(exc.message)
        else:
            ui.flash(f"Pruned {len(removed)} version(s) of {name}: {', '.join(removed)}.")
            st.rerun()


def main() -> None:
    store = ui.get_store()
    st.title("Models")
    ui.show_flash()
    models = ui.cached_models()
    if not models:
        st.info("The store has no models yet. Upload a model file on the Upload page, or add "
                "the example models on the Home page.")
        ui.link("pages/upload.py", "Upload a model file")
        ui.link("pages/home.py", "Add the example models")
        st.stop()
    models_table(models)

    name, version = ui.selected_ref()
    if name is None:
        st.info("Select a model in the table or in the sidebar to see its versions.")
        st.stop()
    versions = ui.cached_versions(name)
    if not versions:
        st.info(f"{name} has no versions left. Upload one on the Upload page.")
        st.stop()
    by_id = {v.version: v for v in versions}
    version = version if version in by_id else versions[-1].version
    ids_newest_first = [v.version for v in reversed(versions)]

    st.header(name)
    st.plotly_chart(catalog.timeline_figure(versions), key="models_timeline")
    st.dataframe(catalog.versions_frame(versions), hide_index=True, key="models_versions")

    # Only the chosen section runs: profile plots and history cost time on big stores.
    section = st.segmented_control("Section", SECTIONS, default="Details",
                                   key="models_section", label_visibility="collapsed") \
        or "Details"
    if section == "Details":
        details_section(name, version, by_id)
    elif section == "Reference profile":
        profile_section(name, version)
    elif section == "Compare":
        compare_section(name, versions, ids_newest_first)
    elif section == "Aliases":
        aliases_section(store, name, version, ids_newest_first)
    elif section == "Delete and prune":
        delete_section(store, name, version, versions, by_id, ids_newest_first)


main()
