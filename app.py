"""Fixative workbench: ``streamlit run app.py``.

Opens the store named by ``$FIXATIVE_STORE`` (default ``./fixative-store``). When
``$FIXATIVE_PASSWORD`` is set, every page asks for it first.
"""

from __future__ import annotations

import streamlit as st

from core.workbench import ui

st.set_page_config(page_title="Fixative", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", default=True),
    st.Page("pages/upload.py", title="Upload"),
    st.Page("pages/models.py", title="Models"),
    st.Page("pages/deploy.py", title="Deploy"),
    st.Page("pages/card.py", title="Card"),
    st.Page("pages/monitor.py", title="Monitor"),
]

if ui.authenticated():
    ui.sidebar()
    st.navigation(PAGES).run()
else:
    # Until the password is given the app has a single page, so no other page's
    # script can be reached by its URL.
    st.navigation([st.Page(ui.login_page, title="Sign in", url_path="login")]).run()
