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


# -- sign-in throttle ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_wrong_passwords_double_the_wait_after_the_free_tries():
    clock = Clock()
    t = access.SignInThrottle(clock)
    for _ in range(t.free):
        assert t.wait("a") == 0
        t.failed("a")
    assert t.wait("a") == 2.0
    assert t.wait("b") == 0  # another address is not slowed
    waits = []
    for _ in range(12):
        clock.now += t.wait("a")
        assert t.wait("a") == 0
        t.failed("a")
        waits.append(t.wait("a"))
    assert waits[:4] == [4.0, 8.0, 16.0, 32.0]
    assert max(waits) == t.longest == waits[-1]
    clock.now += 1.0
    assert t.wait("a") == t.longest - 1.0


def test_the_right_password_clears_the_address_and_quiet_forgets_it():
    clock = Clock()
    t = access.SignInThrottle(clock)
    for _ in range(t.free + 2):
        t.failed("a")
        t.failed("b")
    assert t.wait("a") > 0 and t.wait("b") > 0
    t.succeeded("a")
    assert t.wait("a") == 0 and t.wait("b") > 0
    clock.now += t.window + 1  # a quiet window: b starts over
    assert t.wait("b") == 0
    t.failed("b")
    assert t.wait("b") == 0  # one wrong password after the window is free again


def test_the_throttle_remembers_a_bounded_number_of_addresses():
    t = access.SignInThrottle(Clock())
    t.capacity = 100
    for i in range(t.free):
        t.failed("guesser")
    for i in range(500):  # an attacker rotating addresses
        t.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(t._wrong) == t.capacity
    assert t.wait("guesser") == 0  # the quietest were forgotten first


@pytest.mark.parametrize("address, key", [
    (None, "loopback"), ("", "loopback"), (42, "loopback"),
    ("192.0.2.7", "192.0.2.7"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same /64: the same client
    ("fe80::1%eth0", "fe80::/64"),
    ("not an address", "unknown"), ("1.2.3.4.5", "unknown"), ("x" * 10_000, "unknown"),
])
def test_client_keys(address, key):
    assert access.client_key(address) == key
