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
