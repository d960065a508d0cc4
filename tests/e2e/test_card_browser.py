"""The HTML model card of the example house model in a real chromium, offline."""

from __future__ import annotations

import pytest

from core.cards import card as cards
from core.cards import share
from core.model import examples
from core.model.bundle import bundle
from core.store.versionstore import VersionStore

pytestmark = pytest.mark.browser

WRITTEN = {
    "model_details": "Random forest on one-hot zipcodes and the numeric features, trained by "
                     "the **pricing team**. Questions: [pricing@example.org](mailto:"
                     "pricing@example.org).",
    "intended_use": "Estimate sale prices of single-family homes for listing advice.\n\n"
                    "- Not for mortgage or credit decisions.\n- Not outside the zipcodes seen.",
    "ethics": "<script>alert('card')</script><img src=x onerror=alert(2)> stays text.",
}


@pytest.fixture(scope="module")
def card_file(tmp_path_factory, house_data, house_model):
    folder = tmp_path_factory.mktemp("card-browser")
    store = VersionStore(str(folder / "board"))
    features = house_data.drop(columns=["price"])
    store.write(bundle(house_model, features, name="house-prices", metrics={"rmse": 45210.0},
                       description="First forest", user="ana"))
    better = examples.house_model(house_data, n_estimators=20)
    info = store.write(bundle(better, features, name="house-prices",
                              metrics={"rmse": 41876.0, "mae": 30114.0, "r2": 0.87},
                              description="House prices from generated King County sales",
                              tags=["example", "regression"], user="ana"))
    store.set_alias("house-prices", "production", info.version, user="ben")
    for key, text in WRITTEN.items():
        cards.save_section(store, "house-prices", info.version, key, text, user="ana")
    path = folder / "house-prices.card.html"
    path.write_text(cards.render_html(cards.card_data(store, "house-prices", info.version)),
                    encoding="utf-8")
    return path, info.version


def test_card_renders_offline_and_looks_right(page, screenshot, card_file):
    path, version = card_file
    requests: list[str] = []
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    shot = screenshot(page, "card-house-prices")

    assert [r for r in requests if not r.startswith(("file:", "data:"))] == []
    assert dialogs == [] and errors == []
    assert page.title() == f"Model card: house-prices ({version})"
    assert page.locator("h1").inner_text() == "Model card: house-prices"
    assert page.locator("h2").all_inner_texts() == [s.title for s in cards.SECTIONS]
    assert page.locator("#intended_use li").all_inner_texts() == [
        "Not for mortgage or credit decisions.", "Not outside the zipcodes seen."]
    assert "<script>alert('card')</script>" in page.locator("#ethics .written").inner_text()
    # every distribution plot and trend line is drawn with a real size
    plots = page.locator("svg")
    assert plots.count() == 5 + 1 + 1 + 1  # rmse is the one metric in both versions
    for i in range(plots.count()):
        box = plots.nth(i).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 30
    assert page.locator("tr.current").count() == 2  # history and across-versions rows
    # a narrow window keeps everything readable: no horizontal scrolling
    page.set_viewport_size({"width": 700, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth") <= 700
    assert shot.stat().st_size > 50_000


def test_card_prints(page, screenshot, card_file):
    path, _ = card_file
    page.goto(path.as_uri())
    page.emulate_media(media="print")
    assert not page.locator(".toc").is_visible()
    screenshot(page, "card-house-prices-print")
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000


def test_share_link_in_the_workbench(page, screenshot, workbench_factory, card_file):
    path, version = card_file
    bench = workbench_factory(store=path.parent / "board")
    link = share.create(VersionStore(str(path.parent / "board")), "house-prices",
                        alias="production")
    page.goto(link.url(bench.url))
    card = page.locator(".fx-card")
    card.locator("h1").wait_for(timeout=60_000)
    assert card.locator("h1").inner_text() == "Model card: house-prices"
    assert card.locator("h2").all_inner_texts() == [s.title for s in cards.SECTIONS]
    # the page's HTML sanitiser drops inline SVG, so the plots come as data: images
    plots = card.locator("figure img")
    assert plots.count() == 8
    for i in range(plots.count()):
        assert plots.nth(i).evaluate("img => img.complete && img.naturalWidth") > 100
    assert f"{version} (this card)" in card.locator("tr.current").first.inner_text()
    # the card alone: no sidebar, no pages, nothing to type into, no save button
    assert page.locator('[data-testid="stSidebar"]').count() == 0
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    assert page.locator("textarea, input").count() == 0
    assert page.get_by_role("button", name="Save section").count() == 0
    assert page.get_by_role("button", name="Download this card (HTML)").count() == 1
    # Streamlit scrolls inside its own container: a window as tall as the card shows it all
    height = int(card.evaluate("el => el.getBoundingClientRect().height")) + 300
    page.set_viewport_size({"width": 1400, "height": height})
    screenshot(page, "card-share-link")
