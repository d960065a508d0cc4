"""Share links and the password gate in a real chromium against ``streamlit run app.py``."""

from __future__ import annotations

import re

import pytest

from core.cards import share
from core.model.bundle import bundle
from core.store.versionstore import VersionStore

pytestmark = [pytest.mark.process, pytest.mark.browser]

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_data, house_model):
    store = VersionStore(str(tmp_path_factory.mktemp("share-browser") / "board"))
    features = house_data.drop(columns=["price"]).head(300)
    first = store.write(bundle(house_model, features, name="house", description="First"))
    second = store.write(bundle(house_model, features, name="house", description="Second"))
    store.write(bundle(house_model, features, name="secret-model", description="Not shared"))
    store.set_alias("house", "production", first.version)
    return store, first.version, second.version


@pytest.fixture(scope="module")
def gated(workbench_factory, board):
    store = board[0]
    return workbench_factory(store=store.url, env={"FIXATIVE_PASSWORD": PASSWORD})


def _card_only(page) -> None:
    """The page shows the card and nothing of the workbench."""
    page.locator(".fx-card h1").wait_for(timeout=60_000)
    assert page.locator('[data-testid="stSidebar"]').count() == 0
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    assert page.get_by_label("Password", exact=True).count() == 0
    assert page.locator("textarea, input").count() == 0
    assert page.get_by_role("link").filter(has_text=re.compile("Upload|Models|Deploy")).count() == 0


def _nothing(page, *hidden: str) -> None:
    """The one message of a link that opens nothing, and nothing of what it named."""
    message = page.get_by_text(share.INVALID_MESSAGE)
    message.wait_for(timeout=60_000)
    assert message.count() == 1
    assert page.locator(".fx-card").count() == 0
    assert page.locator('[data-testid="stAlertContentWarning"]').count() == 0
    assert page.locator('[data-testid="stSidebar"]').count() == 0
    body = page.locator("body").inner_text()
    for text in hidden:
        assert text not in body


def test_share_link_with_the_password_gate_shows_the_card_alone(gated, board, page, screenshot):
    store, first, _ = board
    link = share.create(store, "house", version=first)
    page.goto(link.url(gated.url))
    _card_only(page)
    assert page.locator(".fx-card h1").inner_text() == "Model card: house"
    assert f"{first} (this card)" in page.locator(".fx-card tr.current").first.inner_text()
    screenshot(page, "share-link-gated")
    # The same browser is not signed in by the link: any other page asks for the password.
    page.goto(f"{gated.url}/models?model=secret-model")
    page.get_by_label("Password", exact=True).wait_for()
    assert page.get_by_text("Not shared").count() == 0


def test_alias_link_follows_the_alias(gated, board, page):
    store, first, second = board
    link = share.create(store, "house", alias="production")
    page.goto(link.url(gated.url))
    _card_only(page)
    assert f"{first} (this card)" in page.locator(".fx-card tr.current").first.inner_text()
    store.set_alias("house", "production", second)
    try:
        page.goto(link.url(gated.url))
        page.get_by_text(f"{second} (this card)").first.wait_for(timeout=60_000)
    finally:
        store.set_alias("house", "production", first)


def test_edited_and_revoked_links_show_nothing(gated, board, page, screenshot):
    store, first, second = board
    link = share.create(store, "house", version=first)
    url = link.url(gated.url)
    for edited in (url.replace(first, second), url.replace("model=house", "model=secret-model"),
                   url[:-4], url.replace("share=", "share=x")):
        page.goto(edited)
        _nothing(page, "Not shared", second)
    screenshot(page, "share-link-edited")
    share.revoke(store, "house", link.id)
    page.goto(url)
    _nothing(page)


def test_sign_in_lands_on_the_page_asked_for_and_survives_a_reload(gated, board, page,
                                                                     screenshot):
    _, first, _ = board
    page.goto(f"{gated.url}/models?model=house&version={first}")
    field = page.get_by_label("Password", exact=True)
    field.wait_for()
    assert "/models" in page.url and f"version={first}" in page.url
    field.fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="house", exact=True).wait_for(timeout=60_000)
    page.get_by_text(f"house@{first}").first.wait_for()
    assert "/models" in page.url and f"version={first}" in page.url
    screenshot(page, "signed-in-landing")
    page.reload()
    page.get_by_role("heading", name="house", exact=True).wait_for(timeout=60_000)
    assert page.get_by_label("Password", exact=True).count() == 0
    # A forged cookie is not a session.
    context = page.context
    context.clear_cookies()
    host = gated.url.split("//", 1)[1].split(":", 1)[0]
    context.add_cookies([{"name": "fixative_session", "value": f"9999999999.{'A' * 16}."
                          f"{'B' * 43}", "domain": host, "path": "/"}])
    page.reload()
    page.get_by_label("Password", exact=True).wait_for()
    # Signing out forgets the cookie too.
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Password", exact=True).wait_for()
    page.reload()
    page.get_by_label("Password", exact=True).wait_for()
