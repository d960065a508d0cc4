"""Card: write the model card section by section, share it read-only, export HTML/.qmd.

``?model=NAME&version=V`` (or ``&alias=A``) opens a card; adding ``&view=card`` shows
it read-only, without any editing controls (the link to share).
"""

from __future__ import annotations

import difflib
import tempfile
from pathlib import Path

import streamlit as st

from core.cards import card as cards
from core.cards import markup
from core.errors import FixativeError
from core.model.bundle import current_user
from core.workbench import cardview, ui

_MESSAGE = "card_message"
_REF = "card_ref"
_DRAFTS = "card_drafts"


def _draft_key(key: str) -> str:
    return f"card_text_{key}"


def _load(store, name: str, version: str, segment: str | None = None) -> cards.CardData:
    try:
        card, problem = cardview.card_for(store, name, version, segment)
    except FixativeError as exc:
        st.error(f"The card of {name}@{version} cannot be shown: {exc.message}")
        st.stop()
    if problem:
        st.warning(problem)
    return card


def _segment(name: str, version: str) -> str | None:
    """The input column the results on served predictions are broken down by."""
    choices = cardview.segment_choices(ui.cached_meta(name, version))
    picked = st.selectbox("Results on served predictions, per value of", ["(overall only)",
                          *choices], key="card_segment_column",
                          help="Quantitative analyses show the metrics on predictions with "
                               "actuals overall and, if you pick an input column, per value "
                               "of it.")
    return None if picked == "(overall only)" else picked


def _save(store, name: str, version: str) -> None:
    """Button callback: runs before the script, so the page then shows the saved text."""
    key = st.session_state["card_section"]
    text = st.session_state.get(_draft_key(key), "")
    user = (st.session_state.get("card_user") or "").strip() or None
    title = cards.section(key).title
    try:
        record = cards.save_section(store, name, version, key, text, user=user)
    except FixativeError as exc:
        st.session_state[_MESSAGE] = ("error", f"'{title}' was not saved: {exc.message}")
        return
    if record is None:
        st.session_state[_MESSAGE] = ("info", f"'{title}' has no changes to save.")
    else:
        st.session_state[_MESSAGE] = ("success", f"Saved '{title}'.")


def _page_url() -> str:
    url = None
    try:
        url = st.context.url
    except Exception:  # no browser context (a script run, a test)
        url = None
    return url or "./card"


def shared_view(html: str, fragment: str, file_stem: str) -> None:
    """The read-only card of a shared link, without editing controls."""
    if ui.link_problem():  # a shared card shows what the link names, or nothing
        st.error(f"{ui.link_problem()}. Ask whoever shared it for a new link.")
        st.stop()
    st.html(fragment)
    st.download_button("Download this card (HTML)", data=html, file_name=f"{file_stem}.html",
                       mime="text/html", key="card_view_download")
    st.stop()


def session_drafts(card: cards.CardData) -> dict[str, str]:
    """The unsaved drafts of ``card``'s version, by section."""
    # Unsaved drafts live outside the widgets' state (Streamlit drops the state of a text
    # area that is not drawn, i.e. of every section but the one shown); they belong to one
    # version and start from the stored texts when another is chosen.
    if st.session_state.get(_REF) != card.ref:
        for k in cards.SECTION_KEYS:
            st.session_state.pop(_draft_key(k), None)
        st.session_state[_DRAFTS] = {}
        st.session_state[_REF] = card.ref
    return st.session_state[_DRAFTS]


def write_tab(store, card: cards.CardData, drafts: dict[str, str], name: str,
              version: str) -> None:
    st.text_input("Your name (recorded with every edit)", value=current_user(), key="card_user")
    key = st.selectbox("Section", cards.SECTION_KEYS, key="card_section",
                       format_func=lambda k: cards.section(k).title)
    sec = cards.section(key)
    st.markdown(f"**What belongs here:** {sec.prompt}")
    saved = card.text(key)
    if _draft_key(key) not in st.session_state:
        st.session_state[_draft_key(key)] = drafts.get(key, saved)
    left, right = st.columns(2)
    text = left.text_area("Markdown", key=_draft_key(key), height=340, placeholder=sec.prompt,
                          help="Markdown: **bold**, *italic*, lists, tables, links. HTML is "
                               "shown as text, never run.")
    drafts[key] = text
    with right:
        st.caption("Preview")
        st.html(markup.to_html(text) or "<p><em>Nothing written yet.</em></p>")
    if text != saved:
        st.caption("Unsaved changes.")
    st.button("Save section", key="card_save", type="primary", on_click=_save,
              args=(store, name, version))
    message = st.session_state.pop(_MESSAGE, None)
    if message:
        getattr(st, message[0])(message[1])
    st.caption("Sections not written yet show their prompt on the card. The automatic parts "
               "(model, data, metrics, history) come from the store.")


def history_tab(card: cards.CardData) -> None:
    if not card.edits:
        st.info("No section has been written yet. Write one on the Write tab and save it; "
                "every save is kept here with who made it and when.")
        return
    st.dataframe(
        [{"when": cards.when(e.at), "section": e.section.title, "by": e.user,
          "characters": len(e.text), "change": len(e.text) - len(e.previous)}
         for e in card.edits],
        key="card_history_table", hide_index=True, width="stretch")
    for i, e in enumerate(card.edits[:20]):
        with st.expander(f"{cards.when(e.at)} · {e.section.title}"):
            st.text(f"By {e.user or 'unknown'}")
            diff = "\n".join(difflib.unified_diff(
                e.previous.splitlines(), e.text.splitlines(), "before", "after",
                lineterm=""))
            st.code(diff or "(no change in the text)", language="diff")


def share_tab(card: cards.CardData, html: str, name: str, version: str,
              file_stem: str) -> None:
    base = _page_url()
    st.markdown("**Read-only link to this version** (shows the card without editing controls)")
    st.code(f"{base}?{cards.share_query(name, version=version)}", language=None)
    for alias in card.aliases:
        st.markdown(f"**Link that follows the alias `{alias}`** (always shows the version "
                    "it points to)")
        st.code(f"{base}?{cards.share_query(name, alias=alias)}", language=None)
    c1, c2 = st.columns(2)
    c1.download_button("Download HTML", data=html, file_name=f"{file_stem}.html",
                       mime="text/html", key="card_download_html",
                       help="One file that opens offline, with its plots; prints well.")
    c2.download_button("Download .qmd", data=cards.render_qmd(card),
                       file_name=f"{file_stem}.qmd", mime="text/markdown",
                       key="card_download_qmd",
                       help="A Quarto document whose chunks rebuild the card from the store.")
    if cards.quarto_path():
        if st.button("Render with Quarto", key="card_quarto"):
            with st.spinner("Rendering with Quarto"), tempfile.TemporaryDirectory() as tmp:
                qmd = Path(tmp) / f"{file_stem}.qmd"
                qmd.write_text(cards.render_qmd(card), encoding="utf-8")
                try:
                    rendered = cards.render_with_quarto(qmd).read_bytes()
                except FixativeError as exc:
                    st.error(exc.message)
                else:
                    st.download_button("Download the Quarto HTML", data=rendered,
                                       file_name=f"{file_stem}.quarto.html", mime="text/html",
                                       key="card_quarto_download")
    else:
        st.caption("Quarto is not installed here, so the .qmd cannot be rendered on this "
                   "machine; the HTML card above needs no Quarto.")


def main() -> None:
    store = ui.get_store()
    name, version = ui.require_model()
    shared = st.query_params.get("view") == "card"
    card = _load(store, name, version, None if shared else _segment(name, version))
    html = cards.render_html(card)
    fragment = cards.render_html(card, fragment=True)
    file_stem = f"{name}-{version}.card"
    if shared:
        shared_view(html, fragment, file_stem)
    drafts = session_drafts(card)

    st.title(card.title)
    st.caption(f"Version {version}" + (f" · aliases: {', '.join(card.aliases)}" if card.aliases
                                       else "") + f" · {card.task_text}")

    write, view, history, share = st.tabs(["Write", "Card", "Edit history", "Share and export"])
    with write:
        write_tab(store, card, drafts, name, version)
    with view:
        st.html(fragment)
    with history:
        history_tab(card)
    with share:
        share_tab(card, html, name, version, file_stem)


main()
