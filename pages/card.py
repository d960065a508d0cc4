"""Card: write the model card section by section, share it, export HTML/.qmd.

``?model=NAME&version=V`` (or ``&alias=A``) opens a card. The Share tab makes signed,
revocable share links (core.cards.share), lists them and revokes them; app.py shows the
card of such a link alone (core.workbench.shared).
"""

from __future__ import annotations

import difflib
import tempfile
from pathlib import Path

import streamlit as st

from core.cards import card as cards
from core.cards import markup, share
from core.errors import FixativeError
from core.model.bundle import current_user
from core.workbench import cardview, ui

_MESSAGE = "card_message"
_REF = "card_ref"
_DRAFTS = "card_drafts"
_SHARE_MESSAGE = "card_share_message"
_MAX_LISTED = 50


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


def _base_url() -> str | None:
    try:
        return st.context.url or None
    except Exception:  # no browser context (a script run, a test)
        return None


def _link_url(link: share.ShareLink) -> str:
    base = _base_url()
    if base:
        try:
            return link.url(base)
        except FixativeError:
            pass
    return f"./card?{link.query()}"


def _make_link(store, name: str, version: str) -> None:
    """Button callback: a new share link to this version or to the chosen alias."""
    kind, target = st.session_state.get("card_share_target") or ("version", version)
    user = (st.session_state.get("card_user") or "").strip() or None
    try:
        link = (share.create(store, name, version=target, user=user) if kind == "version"
                else share.create(store, name, alias=target, user=user))
    except FixativeError as exc:
        st.session_state[_SHARE_MESSAGE] = ("error", f"No link was made: {exc.message}")
        return
    st.session_state[_SHARE_MESSAGE] = ("success", f"Made a share link to {link.target}. "
                                        "Copy it from the list below.")


def _revoke(store, name: str, link_id: str) -> None:
    user = (st.session_state.get("card_user") or "").strip() or None
    try:
        link = share.revoke(store, name, link_id, user=user)
    except FixativeError as exc:
        st.session_state[_SHARE_MESSAGE] = ("error", exc.message)
        return
    st.session_state[_SHARE_MESSAGE] = ("success", f"Revoked the link to {link.target}: it "
                                        "opens nothing from now on.")


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


def links_list(store, name: str) -> None:
    """Every share link of the model: what it points to, who made it and when, revoke."""
    try:
        made = share.links(store, name)
    except FixativeError as exc:
        st.error(f"The share links of {name} cannot be listed: {exc.message}")
        return
    if not made:
        st.caption(f"No share links to {name}'s cards yet. Make one above.")
        return
    st.markdown(f"**Share links to {name}'s cards** (newest first)")
    for link in made[:_MAX_LISTED]:
        with st.container(border=True):
            left, right = st.columns([5, 1])
            follows = " (follows the alias)" if link.alias else ""
            left.markdown(f"`{link.target}`{follows} · made by {link.created_by or 'unknown'} "
                          f"on {cards.when(link.created_at)}")
            if link.active:
                left.code(_link_url(link), language=None)
                right.button("Revoke", key=f"card_revoke_{link.id}", on_click=_revoke,
                             args=(store, name, link.id))
            else:
                assert link.revoked_at is not None
                left.caption(f"Revoked by {link.revoked_by or 'unknown'} on "
                             f"{cards.when(link.revoked_at)}; it opens nothing.")
    if len(made) > _MAX_LISTED:
        st.caption(f"Showing the newest {_MAX_LISTED} of {len(made)} links.")


def share_tab(store, card: cards.CardData, html: str, name: str, version: str,
              file_stem: str) -> None:
    st.markdown("**Share this card.** A share link opens this card alone: no sidebar, no "
                "other page, and no password even when the workbench has one. Anyone with "
                "the link can read the card until you revoke the link.")
    targets = [("version", version)] + [("alias", a) for a in card.aliases]
    st.radio("Link to", targets, key="card_share_target",
             format_func=lambda t: (f"this version ({t[1]})" if t[0] == "version" else
                                    f"the alias '{t[1]}' (shows whichever version it points "
                                    "to when opened)"))
    st.button("Make a share link", key="card_share_make", type="primary", on_click=_make_link,
              args=(store, name, version))
    message = st.session_state.pop(_SHARE_MESSAGE, None)
    if message:
        getattr(st, message[0])(message[1])
    links_list(store, name)
    st.divider()
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
    card = _load(store, name, version, _segment(name, version))
    html = cards.render_html(card)
    fragment = cards.render_html(card, fragment=True)
    file_stem = f"{name}-{version}.card"
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
        share_tab(store, card, html, name, version, file_stem)


main()
