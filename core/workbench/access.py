"""Who may use the workbench: the bind rule and the sign-in cookie.

**Bind rule.** The workbench listens on 127.0.0.1 unless told otherwise
(``.streamlit/config.toml``). Listening on any other address without
``$FIXATIVE_PASSWORD`` would let anyone on the network upload, trust, deploy or delete,
so every page then shows only :func:`exposed_message` (the launcher,
``python -m core workbench --public``, refuses to start at all).

**Sign-in cookie.** After the password is given, the browser keeps a session cookie
``fixative_session`` = ``EXPIRY.NONCE.SIGNATURE`` (HMAC-SHA256 with a key derived from
the board's share secret and the password), so a reload or a new tab does not ask again.
Changing the password or the secret signs everyone out; the cookie also expires after
:data:`SESSION_SECONDS`. It is written by the page's JavaScript (Streamlit has no other
way to set a cookie), so it cannot be HttpOnly; it is ``SameSite=Strict`` and ``Secure``
over https.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from typing import Any

from core import settings
from core.cards import share

COOKIE = "fixative_session"
SESSION_SECONDS = 12 * 3600
_MAX_COOKIE_CHARS = 200
_COOKIE_RE = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})")
_CONTEXT = b"fixative-session-cookie-v1"


# -- bind rule ---------------------------------------------------------------------------

def is_loopback(address: object) -> bool:
    """True when ``address`` reaches this machine only (unset or empty: every interface)."""
    text = str(address or "").strip().strip("[]")
    if text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def exposed_message(address: object) -> str | None:
    """Why the workbench must not run when it listens on ``address``; None when it may."""
    if is_loopback(address) or settings.password():
        return None
    where = str(address or "").strip() or "every network interface"
    return (f"The workbench is listening on {where} with no password, so anyone who can reach "
            f"this machine could upload, trust, deploy or delete models. Set "
            f"{settings.PASSWORD_ENV} to a password and restart it, or listen on this machine "
            "only (server.address = \"127.0.0.1\", the default in .streamlit/config.toml).")


# -- sign-in cookie ------------------------------------------------------------------------

def _key(store: Any) -> bytes:
    secret = share.secret(store, create=True)
    assert secret is not None
    password = (settings.password() or "").encode("utf-8")
    return hmac.new(secret, _CONTEXT + b"\n" + hashlib.sha256(password).digest(),
                    hashlib.sha256).digest()


def _sign(key: bytes, body: str) -> str:
    digest = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_cookie(store: Any, now: float | None = None) -> str:
    """A new signed sign-in cookie value, valid for :data:`SESSION_SECONDS`."""
    expiry = int(now if now is not None else time.time()) + SESSION_SECONDS
    body = f"{expiry}.{secrets.token_urlsafe(12)}"
    return f"{body}.{_sign(_key(store), body)}"


def cookie_valid(store: Any, value: object, now: float | None = None) -> bool:
    """Whether ``value`` is a sign-in cookie this board signed, for this password, unexpired."""
    if not isinstance(value, str) or len(value) > _MAX_COOKIE_CHARS:
        return False
    match = _COOKIE_RE.fullmatch(value)
    if match is None:
        return False
    expiry, nonce, given = match.groups()
    if int(expiry) <= (now if now is not None else time.time()):
        return False
    expected = _sign(_key(store), f"{expiry}.{nonce}")
    return hmac.compare_digest(given.encode("ascii"), expected.encode("ascii"))


def set_cookie_script(value: str) -> str:
    """The script that stores the sign-in cookie for this browser session."""
    if not _COOKIE_RE.fullmatch(value):
        raise ValueError("not a sign-in cookie value")
    return ("<script>document.cookie = '" + COOKIE + "=" + value + "; path=/; SameSite=Strict'"
            " + (location.protocol === 'https:' ? '; Secure' : '');</script>")


def clear_cookie_script() -> str:
    return (f"<script>document.cookie = '{COOKIE}=; path=/; SameSite=Strict; "
            "expires=Thu, 01 Jan 1970 00:00:00 GMT';</script>")


# -- sign-in throttle ----------------------------------------------------------------------

class SignInThrottle:
    """Wrong passwords slow the next tries from the same address.

    The first :attr:`free` wrong passwords within :attr:`window` seconds cost nothing;
    after that each try must wait, 2 s doubling up to :attr:`longest` (15 minutes), and a
    try made too early is refused without the password being looked at. A right password
    clears the address. One Streamlit server is one process, so this holds for every
    session of the workbench; at most :attr:`capacity` addresses are remembered (the
    longest quiet ones are forgotten first). Behind a proxy every visitor has the proxy's
    address: a guessing visitor then slows everyone's sign-in, never opens it.
    """

    free = 5
    window = 900.0
    longest = 900.0
    capacity = 10_000

    def __init__(self, clock: Any = time.monotonic) -> None:
        import threading

        self._clock = clock
        self._lock = threading.Lock()
        # address -> (wrong passwords in the window, time of the last one)
        self._wrong: dict[str, tuple[int, float]] = {}

    def _count(self, client: str, now: float) -> tuple[int, float]:
        count, last = self._wrong.get(client, (0, now))
        if now - last > self.window:
            self._wrong.pop(client, None)
            return 0, now
        return count, last

    def wait(self, client: str) -> float:
        """Seconds before ``client`` may try again (0: now)."""
        with self._lock:
            now = self._clock()
            count, last = self._count(client, now)
            if count < self.free:
                return 0.0
            delay = min(self.longest, 2.0 ** (count - self.free + 1))
            return max(0.0, last + delay - now)

    def failed(self, client: str) -> None:
        with self._lock:
            now = self._clock()
            count, _ = self._count(client, now)
            self._wrong.pop(client, None)  # re-inserted last: the dict stays in quiet order
            self._wrong[client] = (count + 1, now)
            while len(self._wrong) > self.capacity:
                self._wrong.pop(next(iter(self._wrong)))

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._wrong.pop(client, None)

    def reset(self) -> None:
        """Forget every address (a restart does the same)."""
        with self._lock:
            self._wrong.clear()


THROTTLE = SignInThrottle()


def client_key(address: object) -> str:
    """The throttle's key for a connection's address (None: a loopback visitor)."""
    if not isinstance(address, str) or not address:
        return "loopback"
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))  # one client holds a /64
    return str(ip)
