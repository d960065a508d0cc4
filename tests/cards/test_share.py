"""Share links: signed, revocable tokens for one version's card or for an alias."""

from __future__ import annotations

import ast
import inspect
import os
import shutil
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sklearn.linear_model import LinearRegression

from core.cards import share
from core.errors import InvalidArgument, NotFound
from core.model.bundle import bundle
from core.store import paths
from core.store.versionstore import VersionStore


@pytest.fixture(scope="module")
def template(tmp_path_factory, house_data):
    """A board with two versions of 'house' (alias production on the first) and 'other'."""
    folder = tmp_path_factory.mktemp("share-template") / "board"
    store = VersionStore(str(folder))
    features = house_data.drop(columns=["price"]).select_dtypes("number").head(200)
    model = LinearRegression().fit(features, house_data["price"].head(200))
    versions = [store.write(bundle(model, features, name=n, user="ana")).version
                for n in ("house", "house", "other")]
    store.set_alias("house", "production", versions[0], user="ana")
    return folder, versions


@pytest.fixture
def board(template, tmp_path, monkeypatch):
    """A fresh copy of the template board for each test."""
    monkeypatch.delenv("FIXATIVE_SHARE_SECRET", raising=False)
    folder, versions = template
    shutil.copytree(folder, tmp_path / "board")
    return VersionStore(str(tmp_path / "board")), versions


def _params(link: share.ShareLink) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(link.query()).items()}


def _open(store, params: dict[str, str | None]):
    return share.open_link(store, params.get("model"), params.get("share"),
                           version=params.get("version"), alias=params.get("alias"))


def test_version_link_opens_that_version_only(board):
    store, (v1, v2, other) = board
    link = share.create(store, "house", version=v1, user="ben")
    params = _params(link)
    assert params == {"model": "house", "version": v1, "share": link.token}
    assert _open(store, params) == ("house", v1)
    assert (link.created_by, link.active, link.target) == ("ben", True, f"house@{v1}")
    # the same token with another version, another model, an alias: nothing
    for edited in ({**params, "version": v2}, {**params, "model": "other", "version": other},
                   {"model": "house", "alias": "production", "share": link.token},
                   {**params, "version": None}, {**params, "model": None}):
        with pytest.raises(share.InvalidShareLink) as err:
            _open(store, edited)
        assert err.value.message == share.INVALID_MESSAGE
        assert v1 not in err.value.message and "house" not in err.value.message


def test_alias_link_follows_the_alias(board):
    store, (v1, v2, _) = board
    link = share.create(store, "house", alias="production")
    assert link.version is None and link.target == "house:production"
    assert _open(store, _params(link)) == ("house", v1)
    store.set_alias("house", "production", v2)
    assert _open(store, _params(link)) == ("house", v2)
    with pytest.raises(share.InvalidShareLink):  # edited to another alias
        _open(store, {**_params(link), "alias": "staging"})
    store.remove_alias("house", "production")
    with pytest.raises(share.InvalidShareLink):  # the alias is gone: nothing to show
        _open(store, _params(link))


def test_forged_and_truncated_signatures(board):
    store, (v1, _, _) = board
    link = share.create(store, "house", version=v1)
    params = _params(link)
    link_id, sig = link.token.split(".")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    other_id = ("B" if link_id[0] != "B" else "C") + link_id[1:]
    for token in (f"{link_id}.{flipped}", f"{link_id}.{sig[:-1]}", link_id, f"{other_id}.{sig}",
                  f"{link_id}.{sig}=", f"{link_id}.{sig}\n", f" {link.token}", sig,
                  link.token.upper()):
        with pytest.raises(share.InvalidShareLink):
            _open(store, {**params, "share": token})
    # a signature made with another key does not open the link
    os.environ["FIXATIVE_SHARE_SECRET"] = "x" * 40
    try:
        forged = share.create(store, "house", version=v1)
    finally:
        del os.environ["FIXATIVE_SHARE_SECRET"]
    with pytest.raises(share.InvalidShareLink):
        _open(store, _params(forged))


@pytest.mark.parametrize("token", [None, "", ".", "a" * 10_000_000, "💥" * 60, "\x00" * 66,
                                   "../../etc/passwd", "' OR 1=1 --", 42, ["a"], "A" * 22 + "." +
                                   "A" * 43])
def test_garbage_and_huge_tokens(board, token):
    store, (v1, _, _) = board
    share.create(store, "house", version=v1)
    with pytest.raises(share.InvalidShareLink):
        share.open_link(store, "house", token, version=v1)


@pytest.mark.parametrize("name", ["../house", "", "h" * 10_000, "house' OR '1'='1", None, "nope"])
def test_hostile_model_names(board, name):
    store, (v1, _, _) = board
    link = share.create(store, "house", version=v1)
    with pytest.raises(share.InvalidShareLink):
        share.open_link(store, name, link.token, version=v1)


def test_revoked_link_opens_nothing_and_stays_listed(board):
    store, (v1, _, _) = board
    kept = share.create(store, "house", version=v1, user="ana")
    gone = share.create(store, "house", alias="production", user="ana")
    revoked = share.revoke(store, "house", gone.id, user="ben")
    assert (revoked.active, revoked.revoked_by) == (False, "ben")
    with pytest.raises(share.InvalidShareLink):
        _open(store, _params(gone))
    assert _open(store, _params(kept)) == ("house", v1)
    listed = share.links(store, "house")
    assert [link.id for link in listed] == [gone.id, kept.id]  # newest first
    assert [link.active for link in listed] == [False, True]
    assert listed[1].token == kept.token  # the link can be copied again from the list
    assert share.revoke(store, "house", gone.id).revoked_by == "ben"  # revoking twice: a no-op
    with pytest.raises(NotFound, match="no share link with id"):
        share.revoke(store, "house", "x" * 500)
    with pytest.raises(NotFound):  # another model's link id
        share.revoke(store, "other", kept.id)


def test_link_to_a_deleted_version_opens_nothing(board):
    store, (_, v2, _) = board
    link = share.create(store, "house", version=v2)
    store.delete("house", v2)
    with pytest.raises(share.InvalidShareLink):
        _open(store, _params(link))


def test_create_checks_its_target(board):
    store, (v1, _, _) = board
    with pytest.raises(InvalidArgument, match="exactly one"):
        share.create(store, "house")
    with pytest.raises(InvalidArgument, match="exactly one"):
        share.create(store, "house", version=v1, alias="production")
    with pytest.raises(NotFound):
        share.create(store, "house", version="20200101T000000Z-00000")
    with pytest.raises(NotFound):
        share.create(store, "house", alias="staging")
    assert share.links(store, "house") == []


def test_secret_is_private_made_once_and_never_in_a_record(board):
    store, (v1, _, _) = board
    secret = Path(paths.share_secret_file(store))
    assert not secret.exists()
    with pytest.raises(share.InvalidShareLink):  # no key yet: nothing opens, none is made
        share.open_link(store, "house", "A" * 22 + "." + "A" * 43, version=v1)
    assert not secret.exists()
    first = share.create(store, "house", version=v1)
    key = secret.read_bytes()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(key) >= 32
    share.create(store, "house", version=v1)
    assert secret.read_bytes() == key
    records = " ".join(str(r.payload) for r in store.records(share.SHARE_KIND, "house"))
    assert key.decode() not in records and first.token not in records
    # Deleting the key invalidates every link at once.
    secret.unlink()
    share.create(store, "house", version=v1)
    with pytest.raises(share.InvalidShareLink):
        _open(store, _params(first))


def test_secret_from_the_environment(board, monkeypatch):
    store, (v1, _, _) = board
    monkeypatch.setenv("FIXATIVE_SHARE_SECRET", "short")
    with pytest.raises(InvalidArgument, match="at least 32"):
        share.create(store, "house", version=v1)
    monkeypatch.setenv("FIXATIVE_SHARE_SECRET", "k" * 48)
    link = share.create(store, "house", version=v1)
    assert not Path(paths.share_secret_file(store)).exists()
    assert _open(store, _params(link)) == ("house", v1)
    monkeypatch.setenv("FIXATIVE_SHARE_SECRET", "j" * 48)
    with pytest.raises(share.InvalidShareLink):
        _open(store, _params(link))


def test_signature_compare_is_constant_time():
    source = inspect.getsource(share.open_link)
    tree = ast.parse(source.strip())
    compares = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)
                and any("sig" in ast.unparse(s) or "given" in ast.unparse(s) or
                        "expected" in ast.unparse(s) for s in [n.left, *n.comparators])]
    assert compares == []  # no == on the signature...
    assert "hmac.compare_digest(given" in source  # ...but hmac's constant-time compare


def test_urls(board):
    store, (v1, _, _) = board
    link = share.create(store, "house", version=v1)
    url = link.url("https://fx.example.org:8501/")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "fx.example.org:8501", "/card")
    assert share.card_url("http://h/team/card?x=1") == "http://h/team/card"
    for bad in ("javascript:alert(1)", "fx.example.org", "", "ftp://h"):
        with pytest.raises(InvalidArgument, match="not an http"):
            share.card_url(bad)
