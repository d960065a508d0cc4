"""Model cards: automatic content, person-written sections, safe rendering, exports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from markupsafe import escape
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from starlette.testclient import TestClient

from core.cards import card as cards
from core.cards import markup, svgcharts
from core.errors import InvalidArgument, NotFound
from core.model.bundle import bundle
from core.serving.app import create_app
from core.store.versionstore import VersionStore

ROOT = Path(__file__).resolve().parents[2]

HOSTILE = "\n".join([
    "<script>alert('x')</script>",
    "<img src=x onerror=alert(1)>",
    "[click me](javascript:alert(1)) [also](JAVASCRIPT:alert(2)) [enc](java&#115;cript:alert(3))",
    "[tab](java\tscript:alert(4)) [data](data:text/html;base64,PHNjcmlwdD4=)",
    "</textarea></div></section> {{ 7+7 }} {% if true %}jinja{% endif %} ${7+7}",
    "![tracker](https://tracker.example/pixel.png)",
    "`{python} open('PWNED_INLINE', 'w')` {{< include /etc/passwd >}}",
    "",
    "```{python}",
    "open('PWNED_CHUNK', 'w')",
    "```",
    "",
    "   ```{python}",
    "open('PWNED_INDENTED', 'w')",
    "   ```",
    "",
    "---",
    "title: injected",
    "---",
    "",
    "$\\href{javascript:alert(5)}{math}$ \\input{/etc/passwd} <!-- comment -->",
    "[x]{onclick=alert(6)} `<b>`{=html}",
])


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory, house_data, house_model, churn_data, churn_model):
    store = VersionStore(str(tmp_path_factory.mktemp("cards") / "board"))
    features = house_data.drop(columns=["price"])
    store.write(bundle(house_model, features, name="house", metrics={"rmse": 45000.0},
                       description="first try", user="ana"))
    info = store.write(bundle(house_model, features, name="house",
                              metrics={"rmse": 41000.5, "r2": 0.87},
                              description="House prices in King County",
                              tags=["demo", "regression"], user="ana"))
    store.set_alias("house", "production", info.version, user="ben")
    store.write(bundle(churn_model, churn_data.drop(columns=["churned"]), name="churn",
                       metrics={"accuracy": 0.74}, user="carla"))
    store.write(bundle(churn_model, name="churn-bare", user="carla"))
    return store


def _latest(store, name):
    return store.versions(name)[-1].version


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.css = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.css += data


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def _assert_inert(html: str) -> None:
    """No script, no fetched resource, no event handler, no dangerous link."""
    parsed = _parse(html)
    for tag, attrs in parsed.tags:
        assert tag not in {"script", "img", "iframe", "object", "embed", "link", "form",
                           "input", "textarea", "base", "meta"} or (
            tag == "meta" and set(attrs) <= {"charset", "http-equiv", "content", "name"}), tag
        for attr, value in attrs.items():
            assert not attr.startswith("on"), (tag, attr)
            assert attr not in {"src", "srcset", "formaction", "background", "poster"}, attr
            if attr in ("href", "xlink:href"):
                assert re.match(r"(#|https?://|mailto:)", value or ""), value
    assert "url(" not in parsed.css and "@import" not in parsed.css


def _sections_of(qmd: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", qmd, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


CHUNK = re.compile(r"^[ \t]*```+[ \t]*\{[ \t]*python[^}]*\}[ \t]*\n(.*?)^[ \t]*```+[ \t]*$",
                   re.M | re.S)


def _run_chunks(qmd: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the .qmd's Python chunks in order, as Quarto's Jupyter engine would."""
    code = "\n".join(CHUNK.findall(qmd))
    script = cwd / "chunks.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(script)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


# -- automatic content ----------------------------------------------------------------------


def test_regression_card_automatic_content(store):
    version = _latest(store, "house")
    card = cards.card_data(store, "house", version)
    assert (card.name, card.version, card.board) == ("house", version, store.url)
    assert (card.model_class, card.library, card.task) == ("Pipeline", "sklearn", "regression")
    assert card.aliases == ["production"] and card.user == "ana"
    assert card.tags == ["demo", "regression"]
    assert card.metrics == {"rmse": 41000.5, "r2": 0.87}
    assert card.environment["python"].count(".") == 2
    assert "scikit-learn" in card.environment["packages"]
    cols = {c.name: c for c in card.columns}
    assert list(cols) == ["bedrooms", "bathrooms", "sqft_living", "grade", "yr_built", "zipcode"]
    assert cols["bedrooms"].kind == "int" and cols["bedrooms"].range_text() == "1 to 6"
    assert cols["zipcode"].kind == "category" and "98004" in cols["zipcode"].range_text()
    assert cols["sqft_living"].numeric and "mean" in cols["sqft_living"].summary()
    assert card.n_reference_rows == 800 and card.prediction.numeric
    assert [c.name for c in card.group_columns] == ["zipcode"]
    assert [r.current for r in card.history] == [True, False]
    assert card.history[0].aliases == ["production"] and card.history[1].metrics == {
        "rmse": 45000.0}
    assert card.metric_names() == ["rmse", "r2"]
    assert card.missing == []

    html = cards.render_html(card)
    for text in ("Model card: house", version, "production", "Pipeline", "from sklearn",
                 "House prices in King County", "scikit-learn", "Version history",
                 "41000.5", "Across versions", "800 training rows", "sqft_living",
                 "98001", "first try"):
        assert text in html, text
    # one histogram per numeric column and the prediction, one bar chart for zipcode,
    # one trend line per metric recorded in more than one version
    assert html.count("<svg") == 5 + 1 + 1 + 1
    # a card is shared: it never shows where the server keeps its store
    assert str(store.url) not in html and str(store.url).rstrip("/").rsplit("/", 1)[0] \
        not in html
    for s in cards.SECTIONS:
        assert f'<section id="{s.key}">' in html and str(escape(s.prompt)) in html


def test_classification_card_automatic_content(store):
    card = cards.card_data(store, "churn")  # latest when no version is given
    assert card.version == _latest(store, "churn")
    assert card.task == "binary" and card.classes == ["no", "yes"] and card.has_proba
    assert card.task_text == "binary classification (no, yes)"
    assert [c.name for c in card.group_columns] == ["plan"]
    plan = next(c for c in card.columns if c.name == "plan")
    assert plan.categorical and plan.range_text() == "basic, premium, standard"
    assert card.prediction.categorical
    assert set(card.prediction.profile["frequencies"]) <= {"no", "yes"}
    html = cards.render_html(card)
    for text in ("binary classification (no, yes)", "with class probabilities",
                 "accuracy", "0.74", "plan", "basic", "premium"):
        assert text in html, text
    assert "Across versions" not in html  # a single version: nothing to compare


def test_card_without_sample_or_metrics_says_how_to_add_them(store):
    card = cards.card_data(store, "churn-bare")
    assert card.n_reference_rows is None and card.prediction is None
    assert all(c.profile is None for c in card.columns)
    hows = " ".join(m.how for m in card.missing)
    assert "--sample FILE" in hows and "--metric" in hows
    html = cards.render_html(card)
    assert "This card is incomplete" in html
    assert "No training sample was stored" in html and "--sample FILE" in html
    assert "No metrics were recorded" in html and "--metric rmse=41200" in html
    assert "<svg" not in html
    # the prototype still comes from feature_names_in_
    assert "tenure_months" in html and "unknown" in html


def test_card_of_a_bundle_outside_the_store(house_data, house_model):
    b = bundle(house_model, house_data.drop(columns=["price"]), name="draft")
    card = cards.card_data_from_bundle(b)
    assert card.version is None and card.history == [] and card.board is None
    assert any("not been written to a store" in m.what for m in card.missing)
    html = cards.card_html_for_bundle(b)
    assert "Not written to a store" in html and "sqft_living" in html
    with pytest.raises(InvalidArgument, match="has not been written to a store"):
        cards.render_qmd(card)


def test_unknown_model_or_version(store):
    with pytest.raises(NotFound, match="No model 'nope'"):
        cards.card_data(store, "nope")
    with pytest.raises(NotFound, match="No version '20200101T000000Z-00000' of model 'house'"):
        cards.card_data(store, "house", "20200101T000000Z-00000")


# -- person-written sections and their history -----------------------------------------------


def test_edits_are_kept_with_history_and_the_model_files_stay_unchanged(store):
    version = _latest(store, "churn")
    folder = store.path("churn", version)
    before = {p: store.fs.cat_file(p) for p in store.fs.find(folder)}

    first = cards.save_section(store, "churn", version, "intended_use", "Rank customers.",
                               user="ana")
    second = cards.save_section(store, "churn", version, "intended_use",
                                "Rank customers for retention calls.\n\nNot for pricing.",
                                user="ben")
    cards.save_section(store, "churn", version, "caveats", "Trained on one year.", user="ana")
    assert first.payload == {"section": "intended_use", "text": "Rank customers."}
    assert second.user == "ben" and second.version == version
    assert cards.save_section(store, "churn", version, "caveats", "Trained on one year.") is None
    assert len(store.records("card", "churn", version)) == 3

    card = cards.card_data(store, "churn", version)
    assert card.text("intended_use").startswith("Rank customers for retention")
    assert card.sections["intended_use"].user == "ben"
    assert card.sections["intended_use"].n_edits == 2
    assert [(e.section.key, e.user) for e in card.edits] == [
        ("caveats", "ana"), ("intended_use", "ben"), ("intended_use", "ana")]
    assert card.edits[1].previous == "Rank customers." and card.edits[2].previous == ""
    assert card.edits[0].at >= card.edits[1].at >= card.edits[2].at
    html = cards.render_html(card)
    assert "<p>Not for pricing.</p>" in html and "Written by ben" in html and "(2 edits)" in html
    # the other version of another model is untouched
    assert cards.card_data(store, "house").text("intended_use") == ""
    assert {p: store.fs.cat_file(p) for p in store.fs.find(folder)} == before


@pytest.mark.parametrize("key, text, error, match", [
    ("nonsense", "x", InvalidArgument, "no card section 'nonsense'; use one of model_details"),
    ("", "x", InvalidArgument, "no card section ''"),
    ("intended_use", None, InvalidArgument, "must be a string, got NoneType"),
    ("intended_use", 42, InvalidArgument, "must be a string, got int"),
    ("intended_use", "x" * (cards.MAX_TEXT_CHARS + 1), InvalidArgument,
     "has 50,001 characters; a card section holds at most 50,000"),
])
def test_saving_bad_input_is_refused_and_writes_nothing(store, key, text, error, match):
    version = _latest(store, "house")
    n = len(store.records("card", "house", version))
    with pytest.raises(error, match=match):
        cards.save_section(store, "house", version, key, text)
    assert len(store.records("card", "house", version)) == n


def test_saving_for_a_missing_version_or_model_is_refused(store):
    with pytest.raises(NotFound, match="No version '20200101T000000Z-00000'"):
        cards.save_section(store, "house", "20200101T000000Z-00000", "ethics", "x")
    with pytest.raises(NotFound, match="No model 'ghost'"):
        cards.save_section(store, "ghost", "20200101T000000Z-00000", "ethics", "x")


def test_a_huge_text_within_the_limit_is_stored_and_rendered(store):
    version = _latest(store, "churn-bare")
    text = ("A long paragraph. " * 3000)[: cards.MAX_TEXT_CHARS]
    cards.save_section(store, "churn-bare", version, "data", text)
    html = cards.render_html(cards.card_data(store, "churn-bare", version))
    assert html.count("A long paragraph.") == 2777


def test_records_from_other_writers_are_ignored(store):
    version = _latest(store, "churn-bare")
    store.add_record("card", "churn-bare", {"section": "unknown", "text": "x"}, version=version)
    store.add_record("card", "churn-bare", {"section": "ethics", "text": 12}, version=version)
    card = cards.card_data(store, "churn-bare", version)
    assert card.text("ethics") == "" and all(e.section.key != "unknown" for e in card.edits)


# -- hostile text ---------------------------------------------------------------------------


def test_hostile_person_text_is_escaped_in_html(store):
    version = _latest(store, "house")
    cards.save_section(store, "house", version, "ethics", HOSTILE, user="<b>mallory</b>")
    html = cards.render_html(cards.card_data(store, "house", version))
    _assert_inert(html)
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;/textarea&gt;&lt;/div&gt;&lt;/section&gt;" in html
    ethics = html.split('<section id="ethics">')[1].split("</section>")[0]
    # the only link left is the image's, turned into a plain link: nothing is fetched
    assert [a.get("href") for t, a in _parse(ethics).tags if t == "a"] == [
        "https://tracker.example/pixel.png"]
    assert "[click me](javascript:alert(1))" in ethics  # shown as text, not a link
    # template syntax is shown, never evaluated
    assert "{{ 7+7 }}" in ethics and "{% if true %}jinja{% endif %}" in ethics
    # (judged on the written text alone: the "edited" line's clock may read 12:14)
    written = ethics.split('<p class="edited">')[0]
    assert "${7+7}" in written and "14" not in written
    assert "&lt;b&gt;mallory&lt;/b&gt;" in ethics


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory):
    rng = np.random.default_rng(0)
    evil_col, plans = "<script>alert(1)</script>", ["<img src=x onerror=alert(1)>",
                                                    "{{ 7*7 }}", "```{python}"]
    frame = pd.DataFrame({evil_col: rng.normal(size=300), "plan": rng.choice(plans, 300)})
    y = frame[evil_col] * 2 + frame["plan"].map(dict(zip(plans, [0, 1, 2], strict=True)))
    model = Pipeline([
        ("prep", ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore"), ["plan"])],
                                   remainder="passthrough")),
        ("lr", LinearRegression()),
    ]).fit(frame, y)
    store = VersionStore(str(tmp_path_factory.mktemp("hostile") / "board"))
    info = store.write(bundle(model, frame, name="evil",
                              description="<iframe src=//evil></iframe> `{python} 1`",
                              tags=["<svg onload=alert(1)>"], metrics={"<b>m</b>": 1.0},
                              user="</td><script>x</script>"))
    cards.save_section(store, "evil", info.version, "caveats", HOSTILE)
    return store, info.version


def test_hostile_training_data_and_metadata_are_escaped_in_html(hostile_store):
    store, version = hostile_store
    html = cards.render_html(cards.card_data(store, "evil", version))
    _assert_inert(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the column name
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # a category, in text and SVG
    assert "&lt;iframe src=//evil&gt;&lt;/iframe&gt;" in html
    assert "&lt;svg onload=alert(1)&gt;" in html


def test_qmd_neutralises_hostile_text(hostile_store, tmp_path):
    store, version = hostile_store
    qmd = cards.render_qmd(cards.card_data(store, "evil", version))
    person = _sections_of(qmd)["Caveats and recommendations"].split("```{python}")[0]
    assert not re.search(r"^[ \t]*(`{3,}|~{3,})[ \t]*\{", person, re.M)
    assert "`{" not in person and "{{<" not in person
    assert not re.search(r"(?<!\\)<(script|img|!--)", person)
    assert not re.search(r"\]\((?i:javascript|data):", person)
    assert not re.search(r"(?<!\\)!\[", person) and not re.search(r"(?<!\\)\$", person)
    assert "\ntitle: injected" in person and "\n* * *\n" in person  # no YAML block
    # the chunks are exactly the export's own
    assert len(CHUNK.findall(qmd)) == 8
    done = _run_chunks(qmd, tmp_path)
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob("PWNED*"))
    # Fenced code blocks (the example call) show their text as it is, never as HTML.
    out = re.sub(r"^(`{3,})(bash|python)\n.*?\n\1$", "", done.stdout, flags=re.S | re.M)
    assert "{{<" not in out
    assert "<script" not in out.replace("\\<script", "").replace("&lt;script", "")
    assert "<img" not in out.replace("\\<img", "")
    assert "\\{\\{ 7\\*7 \\}\\}" in out  # a category shown literally in a table
    for block in re.findall(r"```\{=html\}\n(.*?)\n```", out, re.S):
        assert block.startswith("<svg") and "<script" not in block


# -- HTML document ----------------------------------------------------------------------------


def test_html_is_self_contained_and_print_friendly(store):
    first = store.versions("house")[0].version  # no person-written text
    html = cards.render_html(cards.card_data(store, "house", first))
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert "@media print" in html
    _assert_inert(html)
    parsed = _parse(html)
    assert [a["href"] for t, a in parsed.tags if t == "a"] == [
        f"#{s.key}" for s in cards.SECTIONS]
    fragment = cards.render_html(cards.card_data(store, "house", first), fragment=True)
    assert fragment.lstrip().startswith("<style>") and "<html" not in fragment
    # plots as data: images there (sanitisers such as Streamlit's drop inline SVG)
    assert "<svg" not in fragment
    images = [a for t, a in _parse(fragment).tags if t == "img"]
    assert len(images) == html.count("<svg") == 8
    assert all(a["src"].startswith("data:image/svg+xml;base64,") for a in images)
    assert {a["alt"] for a in images} >= {"distribution of bedrooms", "rmse by version"}


# -- Quarto export ------------------------------------------------------------------------------


def test_qmd_has_front_matter_text_in_place_and_chunks_that_rebuild_the_card(store, tmp_path):
    version = _latest(store, "house")
    cards.save_section(store, "house", version, "intended_use",
                       "Estimate **sale prices** of listings.\n\n```python\nx = {'a': 1}\n```",
                       user="ana")
    qmd = cards.render_qmd(cards.card_data(store, "house", version))
    assert qmd.startswith("---\n")
    front = yaml.safe_load(qmd.split("---\n")[1])
    assert front["title"] == "Model card: house" and front["subtitle"] == f"Version {version}"
    assert front["format"]["html"]["embed-resources"] is True
    sections = _sections_of(qmd)
    assert list(sections) == [s.title for s in cards.SECTIONS]
    # person text in place, a code example in it kept verbatim but not executable
    assert sections["Intended use"].strip().startswith("Estimate **sale prices** of listings.")
    assert "```python\nx = {'a': 1}\n```" in sections["Intended use"]
    assert sections["Important factors"].strip().startswith("<!-- Groups, environments")

    done = _run_chunks(qmd, tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    shown = version.replace("-", "\\-")
    for text in ("**Model:** Pipeline\\(ColumnTransformer\\(OneHotEncoder\\, passthrough\\) → "
                 "RandomForestRegressor\\) from sklearn, regression", f"**Version:** {shown}",
                 "aliases: production", "| rmse | 41000\\.5 |", "Across versions",
                 "| bedrooms | int | no | 1 to 6 |", "**sqft\\_living** (int)",
                 "```{=html}\n<svg", "Evaluation results, each on the data named",
                 "computed on data set not recorded", "**Parameters** (", "```bash\ncurl"):
        assert text in out, text


def test_render_with_quarto_needs_quarto(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InvalidArgument, match="Quarto is not installed .*built-in HTML card"):
        cards.render_with_quarto(tmp_path / "card.qmd")


@pytest.mark.skipif(cards.quarto_path() is None,
                    reason="the Quarto CLI is not on PATH (it cannot be installed here; the "
                           "workbench image installs it)")
def test_render_with_quarto(store, tmp_path):
    qmd = tmp_path / "house.qmd"
    qmd.write_text(cards.render_qmd(cards.card_data(store, "house")), encoding="utf-8")
    html = cards.render_with_quarto(qmd).read_text(encoding="utf-8")
    assert "Model card: house" in html and "sqft_living" in html


# -- sharing and serving ------------------------------------------------------------------------


def test_card_route_serves_the_current_card(store):
    version = _latest(store, "churn")
    served = store.read("churn", version=version)
    with TestClient(create_app(served, store=store, log=False)) as client:
        resp = client.get("/card")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in resp.headers["content-security-policy"]
        assert "Model card: churn" in resp.text and version in resp.text
        # a text written while the server runs shows up on the next request
        cards.save_section(store, "churn", version, "ethics", "Written *after* deployment.")
        assert "Written <em>after</em> deployment." in client.get("/card").text
        wrong = client.post("/card")
        assert wrong.status_code == 405 and wrong.json()["error"]["code"]


def test_card_route_without_a_store(house_data, house_model):
    b = bundle(house_model, house_data.drop(columns=["price"]), name="local")
    with TestClient(create_app(b, log=False)) as client:
        resp = client.get("/card")
    assert resp.status_code == 200 and "Not written to a store" in resp.text


# -- the pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url, shown", [
    ("https://example.org/a?b=1", True), ("http://example.org", True),
    ("mailto:team@example.org", True), ("#metrics", True), ("docs/model.md", True),
    ("../up", True), ("/abs", True),
    ("javascript:alert(1)", False), ("JaVaScRiPt:alert(1)", False),
    (" javascript:alert(1)", False), ("java\nscript:alert(1)", False),
    ("vbscript:msgbox", False), ("data:text/html,x", False), ("file:///etc/passwd", False),
    ("//evil.example/x", False), ("ftp://example.org", False),
])
def test_links_are_limited_to_safe_schemes(url, shown):
    html = markup.to_html(f"[link](<{url}>)")
    assert ("<a href=" in html) is shown, html


def test_markdown_renders_and_shifts_headings():
    html = markup.to_html("# Title\n\n**bold** and a table:\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<h3>Title</h3>" in html and "<strong>bold</strong>" in html
    assert "<td>1</td>" in html
    assert markup.to_html("   \n") == "" and markup.to_html(None) == ""
    assert markup.to_html("a\x00b\x07c") == "<p>abc</p>\n"


@pytest.mark.parametrize("text, expected", [
    ("```{python}\nx\n```", "```python\nx\n```"),
    ("~~~{=html}\n<b>\n~~~", "~~~html\n<b>\n~~~"),
    ("```{python}\nx", "\\```python\nx"),  # unclosed: plain text
    ("para\n```{r}\ny\n```", "para\n\\```r\ny\n\\```"),  # no blank line before: plain text
    ("`{python} 1+1`", "`\\{python} 1+1`"),
    ("{{< include x >}}", "\\{\\{< include x >}}"),
    ("```\n{{< meta x >}} `{python} y`\n```", "```\n{{ < meta x >}} ` {python} y`\n```"),
    ("<script>x</script> a < b", "\\<script>x\\</script> a < b"),
    ("[a](javascript:alert(1))", "[a](javascript\u200b:alert(1))"),
    ("![i](/etc/passwd)", "\\![i](/etc/passwd)"),
    ("&#106;avascript", "\\&#106;avascript"),
    ("$x$ \\input{f} \\*", "\\$x\\$ \\\\input\\{f} \\*"),
    ("---\ntitle: x\n---", "* * *\ntitle: x\n---"),
    ("Heading\n---", "Heading\n---"),
])
def test_qmd_text_neutralisation(text, expected):
    assert markup.to_qmd(text) == expected


def test_literal_markdown_shows_values_as_they_are():
    assert markup.literal_md("a|b_c*d") == "a\\|b\\_c\\*d"
    assert markup.literal_md("x\ny") == "x y"
    assert markup.literal_md("y" * 600).endswith("…") and len(markup.literal_md("y" * 600)) == 500


def test_histogram_bars_are_densities():
    svg = svgcharts.histogram_svg([0, 1, 3], [10, 10], label="x")
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert heights[0] == pytest.approx(2 * heights[1])  # same count over half the width
    # integers 0..20 in quantile bins [0, 10) and [10, 20]: the closed last bin holds 11
    discrete = svgcharts.histogram_svg([0, 10, 20], [10, 11], discrete=True)
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', discrete)]
    assert heights[0] == pytest.approx(heights[1])
    assert ">20</text>" in discrete
    # one bin per value (1 and 2, as the profile keeps few integers): the axis ends at 2
    per_value = svgcharts.histogram_svg([1, 2, 3], [10, 20], discrete=True)
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', per_value)]
    assert heights[1] == pytest.approx(2 * heights[0])
    assert ">2</text>" in per_value
    assert "no distribution" in svgcharts.histogram_svg([], [])
    assert svgcharts.histogram_svg([5, 5], [7]).count("<rect") == 1


def test_bar_chart_groups_the_tail_and_escapes_labels():
    freq = {f"<c{i}>": 10 - i for i in range(9)}
    svg = svgcharts.bars_svg(freq, other=5, max_bars=3)
    assert svg.count("<rect") == 4 and "other (6 more)" in svg
    assert "&lt;c0&gt;" in svg and "<c0>" not in svg


@pytest.mark.parametrize("x, text", [(None, "–"), (0.01234, "0.0123"), (12.345, "12.3"),
                                     (1234, "1234"), (45600, "45.6k"), (1.2e6, "1.2M"),
                                     (123.456, "123.5"), (float("nan"), "nan")])
def test_number_format(x, text):
    assert svgcharts.fmt_number(x) == text
