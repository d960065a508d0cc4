"""The card a share link opens: the card alone, with no sidebar and no other page.

A session opened with ``?share=`` in its URL gets a navigation of two hidden pages: the
card at ``/card`` and, at ``/``, the message for a link that names nothing. No workbench
page, no sidebar, no model picker is ever run in it, and it is never signed in: a
password-protected workbench shows the card without asking for the password, and
nothing else.
"""

from __future__ import annotations

import streamlit as st

from core.cards import card as cards
from core.cards import share
from core.errors import FixativeError
from core.workbench import cardview, ui


def requested() -> bool:
    """Whether this run was opened by a share link."""
    return "share" in st.query_params


def _invalid() -> None:
    st.error(share.INVALID_MESSAGE)
    st.stop()


def _card_page() -> None:
    q = st.query_params
    try:
        store = ui.store_for_share_link()
        name, version = share.open_link(store, q.get("model"), q.get("share"),
                                        version=q.get("version"), alias=q.get("alias"))
        # the owner's card, with the results on served predictions (overall)
        card, _problem = cardview.card_for(store, name, version)
    except (FixativeError, OSError):
        _invalid()
        return
    st.html(cards.render_html(card, fragment=True))
    st.download_button("Download this card (HTML)", data=cards.render_html(card),
                       file_name=f"{name}-{version}.card.html", mime="text/html",
                       key="shared_card_download")


def _no_card_page() -> None:
    _invalid()


def run() -> None:
    """Show the shared card (or the one message saying the link opens nothing)."""
    st.navigation([st.Page(_no_card_page, title="Model card", url_path="shared", default=True),
                   st.Page(_card_page, title="Model card", url_path="card")],
                  position="hidden").run()
