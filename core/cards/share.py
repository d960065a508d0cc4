"""Share links: signed, revocable tokens that open one card without the workbench.

A link names what it shows and carries a token::

    <workbench>/card?model=NAME&version=V&share=TOKEN     one version's card
    <workbench>/card?model=NAME&alias=A&share=TOKEN       the card of whichever version
                                                          the alias points to when opened

``TOKEN`` is ``ID.SIGNATURE``: a random id, and an HMAC-SHA256 (with the board's share
secret) of the model, what the link points to and the id. Opening a link checks, in
this order, that the token is well formed, that the signature matches what the link
names (compared in constant time), and that the board holds the link's ``share``
record and no revocation of it. Any failure gives the same :class:`InvalidShareLink`,
which names nothing the link pointed to.

The secret is ``$FIXATIVE_SHARE_SECRET`` when set; otherwise a random key kept under
the board's system folder, created on first use and never shown. Changing it (or
deleting that file) invalidates every link at once; revoking one link records a
``revoke`` event for it. Links and revocations are append-only ``share`` records of
the model, so the Card page lists who made each link and when.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from core import settings
from core.errors import FixativeError, InvalidArgument, NotFound
from core.store import paths
from core.store.names import validate_alias, validate_name, validate_version

SHARE_KIND = "share"
# Longest token accepted: an id and a signature are 22 + 1 + 43 characters.
MAX_TOKEN_CHARS = 128
_ID_BYTES = 16
_SECRET_BYTES = 32
MIN_SECRET_CHARS = 32
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
_TOKEN_RE = re.compile(r"^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$")
_CONTEXT = b"fixative-share-link-v1"

INVALID_MESSAGE = ("This share link does not open a card: it may have been revoked, changed "
                   "or cut short. Ask whoever shared it for a new link.")


class InvalidShareLink(NotFound):
    """A share link that does not open a card (one message, whatever the reason)."""

    code = "invalid_share_link"

    def __init__(self) -> None:
        super().__init__(INVALID_MESSAGE)


@dataclass(frozen=True)
class ShareLink:
    """One link: what it points to, who made it and when, and whether it was revoked."""

    id: str
    name: str
    version: str | None
    alias: str | None
    token: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def target(self) -> str:
        """``NAME@VERSION`` or ``NAME:ALIAS``."""
        return f"{self.name}@{self.version}" if self.version else f"{self.name}:{self.alias}"

    def query(self) -> str:
        """The link's query string (``model=..&version=..&share=..``)."""
        return link_query(self.name, self.token, version=self.version, alias=self.alias)

    def url(self, base: str) -> str:
        """The full link, ``base`` being the workbench's address (``http://host:8501``)."""
        return f"{card_url(base)}?{self.query()}"


# -- secret ----------------------------------------------------------------------------

def secret(store: Any, create: bool) -> bytes | None:
    """The share secret; a new one is written to the board when ``create`` and none exists
    (None when there is none and ``create`` is false)."""
    from_env = settings.share_secret()
    if from_env is not None:
        if len(from_env) < MIN_SECRET_CHARS:
            raise InvalidArgument(
                f"{settings.SHARE_SECRET_ENV} is {len(from_env)} characters long; share links "
                f"need at least {MIN_SECRET_CHARS}. Set it to a long random text, e.g. the "
                "output of: python -c \"import secrets; print(secrets.token_urlsafe(32))\".")
        return from_env.encode("utf-8")
    path = paths.share_secret_file(store)
    fs = store.fs
    if not fs.exists(path):
        if not create:
            return None
        _write_new_secret(store, path)
    with fs.open(path, "rb") as fh:
        raw = fh.read(4 * _SECRET_BYTES + 1)
    key = raw.strip()
    if len(key) < MIN_SECRET_CHARS:
        raise FixativeError(f"The share secret at {path} is damaged (too short). Delete it: a "
                            "new one is made on the next share, and existing links stop working.")
    return key


def _write_new_secret(store: Any, path: str) -> None:
    key = secrets.token_urlsafe(_SECRET_BYTES).encode("ascii")
    if store.is_local:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:  # exclusive and private: two first shares at once keep the same key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return
    store.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with store.fs.open(path, "wb") as fh:
        fh.write(key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _signature(key: bytes, name: str, version: str | None, alias: str | None,
               link_id: str) -> str:
    target = f"version\n{version}" if version else f"alias\n{alias}"
    message = b"\n".join([_CONTEXT, name.encode("utf-8"), target.encode("utf-8"),
                          link_id.encode("ascii")])
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def _target(version: str | None, alias: str | None) -> tuple[str | None, str | None]:
    if (version is None) == (alias is None):
        raise InvalidArgument("A share link points to one version or to one alias; give "
                              "exactly one of them.")
    return (validate_version(version), None) if version is not None else (
        None, validate_alias(alias))


# -- making, listing, revoking -----------------------------------------------------------

def create(store: Any, name: str, *, version: str | None = None, alias: str | None = None,
           user: str | None = None) -> ShareLink:
    """A new link to ``name``'s version (or to its alias, following it), recorded on the board."""
    name = validate_name(name)
    version, alias = _target(version, alias)
    if version is not None:
        version = store.resolve(f"{name}@{version}")[1]  # NotFound names what exists
    else:
        store.resolve(f"{name}:{alias}")
    key = secret(store, create=True)
    assert key is not None
    link_id = _b64(secrets.token_bytes(_ID_BYTES))
    payload = {"action": "create", "id": link_id, "alias": alias}
    record = store.add_record(SHARE_KIND, name, payload, version=version, user=user)
    return ShareLink(id=link_id, name=name, version=version, alias=alias,
                     token=f"{link_id}.{_signature(key, name, version, alias, link_id)}",
                     created_at=record.at, created_by=record.user)


def _links(store: Any, name: str, key: bytes | None) -> dict[str, ShareLink]:
    made: dict[str, ShareLink] = {}
    revoked: dict[str, tuple[datetime, str]] = {}
    for rec in store.records(SHARE_KIND, name):  # oldest first
        payload: Mapping[str, Any] = rec.payload
        link_id = payload.get("id")
        if not isinstance(link_id, str) or not _ID_RE.fullmatch(link_id):
            continue  # a record from a foreign writer: ignored, never fatal
        if payload.get("action") == "create" and link_id not in made:
            alias = payload.get("alias") if rec.version is None else None
            if rec.version is None and not isinstance(alias, str):
                continue
            sig = _signature(key, name, rec.version, alias, link_id) if key else ""
            made[link_id] = ShareLink(id=link_id, name=name, version=rec.version, alias=alias,
                                      token=f"{link_id}.{sig}", created_at=rec.at,
                                      created_by=rec.user)
        elif payload.get("action") == "revoke" and link_id not in revoked:
            revoked[link_id] = (rec.at, rec.user)
    out = {}
    for link_id, link in made.items():
        if link_id in revoked:
            at, by = revoked[link_id]
            link = replace(link, revoked_at=at, revoked_by=by)
        out[link_id] = link
    return out


def links(store: Any, name: str) -> list[ShareLink]:
    """Every link ever made to ``name``'s cards, newest first, revoked ones included."""
    key = secret(store, create=False)
    return sorted(_links(store, validate_name(name), key).values(),
                  key=lambda link: link.created_at, reverse=True)


def revoke(store: Any, name: str, link_id: str, user: str | None = None) -> ShareLink:
    """Stop link ``link_id`` of model ``name`` from opening anything, from now on."""
    name = validate_name(name)
    found = _links(store, name, secret(store, create=False)).get(str(link_id))
    if found is None:
        raise NotFound(f"{name} has no share link with id {str(link_id)[:40]!r}; the Card page "
                       "lists its links.")
    if not found.active:
        return found
    record = store.add_record(SHARE_KIND, name, {"action": "revoke", "id": found.id},
                              version=found.version, user=user)
    return replace(found, revoked_at=record.at, revoked_by=record.user)


# -- opening -----------------------------------------------------------------------------

def open_link(store: Any, name: object, token: object, *, version: object = None,
              alias: object = None) -> tuple[str, str]:
    """``(name, version)`` of the card a link opens; :class:`InvalidShareLink` otherwise.

    ``name``, ``version``, ``alias`` and ``token`` are the link's query parameters as
    given (any text, or None); nothing is read from the board before the signature
    over them checks out.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise InvalidShareLink()
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        raise InvalidShareLink()
    try:
        name = validate_name(name)
        ver, ali = _target(version or None, alias or None)  # type: ignore[arg-type]
        key = secret(store, create=False)
    except FixativeError:
        raise InvalidShareLink() from None
    if key is None:
        raise InvalidShareLink()
    link_id, given = match.groups()
    expected = _signature(key, name, ver, ali, link_id)
    if not hmac.compare_digest(given.encode("ascii"), expected.encode("ascii")):
        raise InvalidShareLink()
    try:
        found = _links(store, name, key).get(link_id)
        if found is None or not found.active or (found.version, found.alias) != (ver, ali):
            raise InvalidShareLink()
        return store.resolve(f"{name}@{ver}" if ver else f"{name}:{ali}")
    except InvalidShareLink:
        raise
    except FixativeError:  # the version was deleted, the alias removed
        raise InvalidShareLink() from None


# -- URLs --------------------------------------------------------------------------------

def link_query(name: str, token: str, *, version: str | None = None,
               alias: str | None = None) -> str:
    params = {"model": name, **({"version": version} if version else {"alias": alias or ""}),
              "share": token}
    return urlencode(params)


def card_url(base: str) -> str:
    """The Card page's address under the workbench's ``base`` address."""
    base = base.strip()
    if not re.match(r"^https?://[^\s/?#]+", base):
        raise InvalidArgument(f"The base URL {base[:80]!r} is not an http(s) address; give the "
                              "workbench's address as people open it, e.g. "
                              "http://fixative.example.org:8501.")
    base = base.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return base if base.endswith("/card") else f"{base}/card"
