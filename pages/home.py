"""Home: what Fixative does, the store's status, and a first step on an empty store."""

from __future__ import annotations

import streamlit as st

from core.errors import FixativeError
from core.store.upload import store_examples
from core.workbench import ui
from core.workbench.catalog import models_frame

store = ui.get_store()
models = ui.cached_models()

st.title("Fixative")
st.write(
    "Fixative keeps fitted models stable after training: **version** a model with its "
    "input schema, training profile and environment; **deploy** it as a REST endpoint; "
    "**document** it with a model card; and **monitor** it once predictions flow.")

st.subheader("Store")
st.caption(f"Open store: `{ui.store_location()}` (set `FIXATIVE_STORE` to open another)")
n_versions = sum(int(m.n_versions) for m in models)
c1, c2, c3 = st.columns(3)
c1.metric("Models", len(models))
c2.metric("Versions", n_versions)
c3.metric("Last update", max((str(m.updated)[:16] for m in models), default="never"))

if not models:
    st.info(
        "The store is empty. Upload your own model file on the **Upload** page, or add the "
        "example models (a house-price regression and a churn classifier, trained here on "
        "generated data) to click through every page at once.")
    if st.button("Add the example models", key="home_add_examples", type="primary"):
        bar = st.progress(0.0, text="Training the example models")
        try:
            infos = store_examples(store, progress=lambda f, text: bar.progress(f, text=text))
        except FixativeError as exc:
            st.error(f"The example models could not be stored: {exc.message}")
            st.stop()
        ui.select(infos[0].name)
        st.rerun()
    ui.link("pages/upload.py", "Upload a model file")
    st.stop()

st.success(f"{len(models)} model(s) with {n_versions} version(s) in the store.")
st.markdown(
    "**Next steps:** pick a model in the sidebar, then open **Models** to browse its "
    "versions, compare them and move aliases, or **Upload** a new version.")
ui.link("pages/models.py", "Browse models")
ui.link("pages/upload.py", "Upload a model file")
st.subheader("Recently updated")
st.dataframe(models_frame(models).head(10), hide_index=True, key="home_recent")
