"""``python -m core card``: formats, output files, and one-line errors for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cards import card as cards
from core.cli.main import main
from core.model.bundle import bundle
from core.store.versionstore import VersionStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory, churn_data, churn_model):
    store = VersionStore(str(tmp_path_factory.mktemp("cli-card") / "board"))
    features = churn_data.drop(columns=["churned"])
    first = store.write(bundle(churn_model, features, name="churn", metrics={"auc": 0.8}))
    store.write(bundle(churn_model, features, name="churn", metrics={"auc": 0.82}))
    store.set_alias("churn", "production", first.version)
    cards.save_section(store, "churn", first.version, "intended_use", "Retention calls.")
    return store


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["card", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str, match: str) -> None:
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert match in err, err


def test_html_card_for_an_alias(store, tmp_path, capsys):
    first = store.versions("churn")[0].version
    out_file = tmp_path / "card.html"
    code, out, err = _run(capsys, "churn:production", "--store", store.url,
                          "--out", str(out_file))
    assert code == 0 and err == ""
    assert out == f"Wrote the html card of churn@{first} (alias production) to {out_file}\n"
    html = out_file.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and f"<code>{first}</code> (this card)" in html
    assert "<p>Retention calls.</p>" in html


def test_qmd_from_the_suffix_and_default_file_name(store, tmp_path, capsys, monkeypatch):
    latest = store.versions("churn")[-1].version
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(capsys, "churn", "--store", store.url, "--format", "qmd")
    assert code == 0
    written = tmp_path / f"churn-{latest}.card.qmd"
    assert written.read_text(encoding="utf-8").startswith("---\ntitle: \"Model card: churn\"")
    code, _, _ = _run(capsys, f"churn@{latest}", "--store", store.url, "--out", "x.qmd")
    assert code == 0 and "```{python}" in (tmp_path / "x.qmd").read_text(encoding="utf-8")


def test_stdout(store, capsys):
    code, out, err = _run(capsys, "churn", "--store", store.url, "--out", "-")
    assert code == 0 and out.startswith("<!DOCTYPE html>") and err == ""


def test_existing_file_is_kept_unless_forced(store, tmp_path, capsys):
    target = tmp_path / "card.html"
    target.write_text("precious", encoding="utf-8")
    code, _, err = _run(capsys, "churn", "--store", store.url, "--out", str(target))
    assert code == 1
    _one_line_error(err, "already exists; pass --force to overwrite it")
    assert target.read_text(encoding="utf-8") == "precious"
    code, _, _ = _run(capsys, "churn", "--store", store.url, "--out", str(target), "--force")
    assert code == 0 and target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["card.html"]  # no temporary file left


@pytest.mark.parametrize("args, match", [
    (["", "--out", "-"], "model reference is empty"),
    (["nope", "--out", "-"], "No model 'nope'"),
    (["chrun", "--out", "-"], "Did you mean 'churn'?"),
    (["churn@20200101T000000Z-00000", "--out", "-"], "No version '20200101T000000Z-00000'"),
    (["churn:canary", "--out", "-"], "No alias 'canary' for model 'churn'"),
    (["../../etc/passwd", "--out", "-"], "model name '../../etc/passwd' is not allowed"),
    (["churn@", "--out", "-"], "The version is empty"),
    (["churn:a:b", "--out", "-"], "alias 'a:b' is not allowed"),
    (["x" * 5000, "--out", "-"], "characters long; use at most 128"),
    (["<script>\n", "--out", "-"], "is not allowed"),
    (["churn", "--format", "pdf"], "Unknown card format 'pdf'; use --format html or"),
    (["churn", "--out", ""], "--out is empty"),
    (["churn", "--out", "card.qmd", "--format", "html"],
     "--out 'card.qmd' names a .qmd file but --format is html; change one so they agree."),
    (["churn", "--out", "/no/such/folder/card.html"], "The folder '/no/such/folder' does not"),
])
def test_bad_arguments_give_one_line_errors(store, capsys, args, match):
    code, out, err = _run(capsys, *args, "--store", store.url)
    assert code == 1 and out == ""
    _one_line_error(err, match)


def test_out_is_a_folder(store, tmp_path, capsys):
    code, _, err = _run(capsys, "churn", "--store", store.url, "--out", str(tmp_path))
    assert code == 1
    _one_line_error(err, "is a folder; give a file name inside it")
    assert list(tmp_path.iterdir()) == []


def test_missing_reference_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["card"])
    assert exc.value.code == 2
    assert "the following arguments are required: ref" in capsys.readouterr().err


def test_real_command_line(store, tmp_path):
    env = {**os.environ, "FIXATIVE_STORE": store.url, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "core", "card", "churn:production", "--out",
                           str(tmp_path / "c.qmd")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "```{python}" in (tmp_path / "c.qmd").read_text(encoding="utf-8")
    bad = subprocess.run([sys.executable, "-m", "core", "card", "ghost"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: No model 'ghost'") and bad.stderr.count("\n") == 1


# -- share links ---------------------------------------------------------------------------

def _link_of(url: str) -> dict[str, str]:
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    assert parts.path.endswith("/card")
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def test_link_to_a_version_and_to_an_alias(store, capsys):
    from core.cards import share

    first, latest = (v.version for v in store.versions("churn"))
    code, out, err = _run(capsys, "churn", "--link", "--store", store.url)
    assert code == 0 and err == ""
    assert out.startswith("http://127.0.0.1:8501/card?") and out.count("\n") == 1
    params = _link_of(out.strip())
    assert (params["model"], params["version"]) == ("churn", latest)
    assert share.open_link(store, "churn", params["share"], version=latest) == ("churn", latest)

    code, out, _ = _run(capsys, "churn:production", "--link", "--store", store.url,
                        "--base-url", "https://fx.example.org/team/")
    assert code == 0 and out.startswith("https://fx.example.org/team/card?")
    params = _link_of(out.strip())
    assert "version" not in params and params["alias"] == "production"
    assert share.open_link(store, "churn", params["share"], alias="production") == (
        "churn", first)
    # both links are listed on the board, who made them and what they point to
    targets = [link.target for link in share.links(store, "churn")]
    assert targets[:2] == ["churn:production", f"churn@{latest}"]


@pytest.mark.parametrize(("args", "match"), [
    (["churn", "--link", "--base-url", "javascript:alert(1)"], "is not an http(s) address"),
    (["churn", "--link", "--base-url", ""], "is not an http(s) address"),
    (["churn", "--link", "--out", "x.html"], "--link prints a share link"),
    (["churn", "--base-url", "http://h"], "--base-url goes with --link"),
    (["churn:nosuch", "--link"], "No alias 'nosuch'"),
    (["churn@20000101T000000Z-00000", "--link"], "20000101T000000Z-00000"),
    (["../etc", "--link"], "name"),
])
def test_bad_link_requests_record_nothing(store, capsys, args, match):
    from core.cards import share

    before = len(share.links(store, "churn"))
    code, out, err = _run(capsys, *args, "--store", store.url)
    assert code != 0 and out == ""
    _one_line_error(err, match)
    assert len(share.links(store, "churn")) == before
