"""The bind rule and the signed sign-in cookie."""

from __future__ import annotations

import time

import pytest

from core.store.versionstore import VersionStore
from core.workbench import access


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("FIXATIVE_PASSWORD", "correct horse")
    monkeypatch.delenv("FIXATIVE_SHARE_SECRET", raising=False)
    return VersionStore(str(tmp_path / "board"))


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1", True), ("127.0.1.1", True), ("::1", True), ("[::1]", True),
    ("localhost", True), (" LOCALHOST ", True), ("0.0.0.0", False), ("::", False),
    ("", False), (None, False), ("192.0.2.2", False), ("example.org", False),
    ("127.0.0.1.evil.example", False),
])
def test_is_loopback(address, loopback):
    assert access.is_loopback(address) is loopback


def test_exposed_message(monkeypatch):
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    assert access.exposed_message("127.0.0.1") is None
    assert "listening on every network interface with no password" in access.exposed_message(None)
    assert "Set FIXATIVE_PASSWORD" in access.exposed_message("0.0.0.0")
    monkeypatch.setenv("FIXATIVE_PASSWORD", "  ")  # only spaces: no password
    assert access.exposed_message("0.0.0.0") is not None
    monkeypatch.setenv("FIXATIVE_PASSWORD", "set")
    assert access.exposed_message("0.0.0.0") is None


def test_cookie_round_trip_and_expiry(store):
    now = time.time()
    value = access.make_cookie(store, now=now)
    assert access.cookie_valid(store, value, now=now)
    assert access.cookie_valid(store, value, now=now + access.SESSION_SECONDS - 1)
    assert not access.cookie_valid(store, value, now=now + access.SESSION_SECONDS + 1)
    assert "correct horse" not in value


def test_cookie_is_bound_to_the_password_and_the_secret(store, monkeypatch):
    value = access.make_cookie(store)
    monkeypatch.setenv("FIXATIVE_PASSWORD", "another one")
    assert not access.cookie_valid(store, value)
    monkeypatch.setenv("FIXATIVE_PASSWORD", "correct horse")
    assert access.cookie_valid(store, value)
    monkeypatch.setenv("FIXATIVE_SHARE_SECRET", "s" * 40)
    assert not access.cookie_valid(store, value)


def test_forged_edited_and_garbage_cookies(store):
    value = access.make_cookie(store)
    expiry, nonce, sig = value.split(".")
    later = str(int(expiry) + 10**6)
    for bad in (f"{later}.{nonce}.{sig}",                        # extended expiry
                f"{expiry}.{'A' * 16}.{sig}",                     # other nonce
                f"{expiry}.{nonce}.{sig[:-1]}",                   # cut short
                f"{expiry}.{nonce}.{'A' * 43}",                   # forged signature
                value + "=", value + "\n", " " + value, value.upper(), "", ".", "x" * 10**6,
                "💥" * 50, None, 123, ["a"], f"-1.{nonce}.{sig}"):
        assert not access.cookie_valid(store, bad), bad


def test_cookie_scripts_only_carry_cookie_values(store):
    value = access.make_cookie(store)
    script = access.set_cookie_script(value)
    assert f"fixative_session={value}; path=/; SameSite=Strict" in script
    with pytest.raises(ValueError):
        access.set_cookie_script("x'; alert(1); '")
    assert "expires=Thu, 01 Jan 1970" in access.clear_cookie_script()
