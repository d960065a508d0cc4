"""Fixative workbench: ``streamlit run app.py`` (or ``python -m core workbench``).

Opens the store named by ``$FIXATIVE_STORE`` (default ``./fixative-store``). When
``$FIXATIVE_PASSWORD`` is set, every page asks for it first; a share link
(``/card?...&share=TOKEN``) shows one card alone, without asking. Listening beyond this
machine without a password shows nothing but how to fix that.
"""

from __future__ import annotations

import streamlit as st

from core.workbench import access, shared, ui

st.set_page_config(page_title="Fixative", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", default=True),
    st.Page("pages/upload.py", title="Upload"),
    st.Page("pages/models.py", title="Models"),
    st.Page("pages/deploy.py", title="Deploy"),
    st.Page("pages/card.py", title="Card"),
    st.Page("pages/monitor.py", title="Monitor"),
]

if problem := access.exposed_message(st.get_option("server.address")):
    st.error(problem)
elif shared.requested():
    shared.run()
elif ui.authenticated():
    ui.sidebar()
    st.navigation(PAGES).run()
else:
    # Until the password is given every address runs the sign-in page, so no other
    # page's script can be reached, and the page asked for runs once it is given.
    st.navigation(ui.login_pages(PAGES), position="hidden").run()
