"""Streamlit helpers shared by every workbench page.

Pages call :func:`get_store` for the open store, :func:`selected_ref` for the model
picked in the sidebar and :func:`require_model` to stop with advice when nothing is
picked. Index reads go through the ``cached_*`` functions, which are keyed on the
store's change marker so they refresh as soon as anything is written, by this
process or another one.

The selection lives in session state (``fx_model``, ``fx_version``) and in the URL
(``?model=NAME&version=V`` or ``&alias=A``), so a link opens the same model and
version. A page run on its own (as in ``AppTest.from_file("pages/x.py")``) reads the
query parameters when the sidebar has not run.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from core import settings
from core.errors import FixativeError
from core.store.protocols import StoreLike
from core.workbench import access

MODEL_KEY = "fx_model"
VERSION_KEY = "fx_version"
_PENDING_KEY = "_fx_pending_selection"
# What was wrong with the link this session was opened with (set on that first run only).
_LINK_PROBLEM_KEY = "_fx_link_problem"
_AUTH_KEY = "_fx_authenticated"
_LOGIN_KEY = "_fx_login_password"
_LOGIN_WAIT_KEY = "_fx_login_wait"
_COOKIE_KEY = "_fx_session_cookie"
_SIGNED_OUT_KEY = "_fx_signed_out"
_LOGIN_FAILED_KEY = "_fx_login_failed"
LATEST = "latest"

# How long an index read may be reused while the marker is unchanged (the marker is
# the real key; the TTL only bounds memory held by stores nobody opens any more).
_CACHE_TTL = 600


# -- store ---------------------------------------------------------------------------

def store_location() -> str:
    """The board the workbench opens: ``$FIXATIVE_STORE`` or ``./fixative-store``."""
    return settings.store_location()


@st.cache_resource(show_spinner=False)
def _open_store(location: str) -> Any:
    from core.store.versionstore import VersionStore

    return VersionStore(location)


def get_store() -> Any:
    """The open :class:`core.store.versionstore.VersionStore` (one per board and process).

    Stops the page if a password is required and this session has not given it, so
    a page script can never be run around the gate.
    """
    require_access()
    try:
        return _open_store(store_location())
    except FixativeError as exc:
        st.error(f"The store at `{store_location()}` cannot be opened: {exc.message}")
        st.stop()


def marker(store: StoreLike) -> str:
    return str(store.change_marker())


@st.cache_data(show_spinner=False, ttl=_CACHE_TTL, max_entries=64)
def _models(location: str, change: str) -> list[Any]:
    return _open_store(location).list_models()


@st.cache_data(show_spinner=False, ttl=_CACHE_TTL, max_entries=256)
def _versions(location: str, change: str, name: str) -> list[Any]:
    return _open_store(location).versions(name)


@st.cache_data(show_spinner=False, ttl=_CACHE_TTL, max_entries=256)
def _aliases(location: str, change: str, name: str) -> dict[str, str]:
    return dict(_open_store(location).aliases(name))


@st.cache_data(show_spinner=False, ttl=_CACHE_TTL, max_entries=256)
def _alias_history(location: str, change: str, name: str) -> list[Any]:
    return _open_store(location).alias_history(name)


@st.cache_data(show_spinner=False, ttl=_CACHE_TTL, max_entries=256)
def _meta(location: str, name: str, version: str) -> Any:
    # Versions are immutable: their metadata never changes, so no marker in the key.
    return _open_store(location).meta(name, version)


@st.cache_data(show_spinner=False, ttl=_CACHE_TTL, max_entries=256)
def _safety(location: str, name: str, version: str) -> Any:
    # A version's model file never changes: its scan holds as long as the version.
    return _open_store(location).safety_report(name, version)


def cached_safety(name: str, version: str) -> Any:
    """The safety report of a stored version's model file (scanned, never loaded)."""
    get_store()
    return _safety(store_location(), name, version)


@st.cache_data(show_spinner=False, ttl=_CACHE_TTL, max_entries=64)
def _search(location: str, change: str, text: str) -> list[Any]:
    return _open_store(location).search(text=text)


def cached_models() -> list[Any]:
    """``store.list_models()``, reused until the index changes."""
    store = get_store()
    return _models(store_location(), marker(store))


def cached_versions(name: str) -> list[Any]:
    """``store.versions(name)`` (oldest first), reused until the index changes."""
    store = get_store()
    return _versions(store_location(), marker(store), name)


def cached_aliases(name: str) -> dict[str, str]:
    store = get_store()
    return _aliases(store_location(), marker(store), name)


def cached_alias_history(name: str) -> list[Any]:
    store = get_store()
    return _alias_history(store_location(), marker(store), name)


def cached_meta(name: str, version: str) -> Any:
    get_store()
    return _meta(store_location(), name, version)


def cached_search(text: str) -> list[Any]:
    store = get_store()
    return _search(store_location(), marker(store), text)


# -- access --------------------------------------------------------------------------

def password_required() -> bool:
    return bool(settings.password())


def check_password(given: str) -> bool:
    """Constant-time comparison with ``$FIXATIVE_PASSWORD``; open when it is unset."""
    expected = settings.password()
    if not expected:
        return True
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def authenticated() -> bool:
    """Signed in this session, or carrying a valid sign-in cookie (see core.workbench.access)."""
    if not password_required() or st.session_state.get(_AUTH_KEY):
        return True
    if st.session_state.get(_SIGNED_OUT_KEY):
        return False
    try:
        cookie = st.context.cookies.get(access.COOKIE)
    except Exception:  # no browser context (a script run, a test)
        cookie = None
    if cookie is None:
        return False
    try:
        valid = access.cookie_valid(_open_store(store_location()), cookie)
    except (FixativeError, OSError):  # no store, no key: sign in again
        valid = False
    if valid:
        st.session_state[_AUTH_KEY] = True
    return valid


def store_for_share_link() -> Any:
    """The open store WITHOUT the password gate: only for showing a shared card, whose
    link is checked by :func:`core.cards.share.open_link` before anything is read."""
    return _open_store(store_location())


def _run_inside_app() -> None:
    """Rerun through ``app.py`` when Streamlit ran a page script on its own.

    A ``pages/`` folder next to ``app.py`` makes Streamlit treat the app as an old
    style multipage app until some session has run ``st.navigation``: on a freshly
    started server a link such as ``/models?model=x`` would run ``pages/models.py``
    bare, without the sidebar, the picker or the password gate. Switching that mode
    off and rerunning routes the same URL through ``app.py`` instead.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - layout of a future Streamlit
        return
    if getattr(PagesManager, "uses_pages_directory", None):
        PagesManager.uses_pages_directory = False
        st.rerun()


def require_access() -> None:
    """Stop the page unless the session has signed in (or no password is set)."""
    _run_inside_app()
    if not authenticated():
        st.warning("This workbench is protected by a password. Sign in on the home page.")
        st.stop()


def _sign_in() -> None:
    """Form callback: runs before the next script run, so that run already shows the page
    the URL asked for (and the model it named) when the password is right."""
    given = st.session_state.get(_LOGIN_KEY) or ""
    # The typed password must not linger in session state.
    st.session_state.pop(_LOGIN_KEY, None)
    client = _client()
    wait = access.THROTTLE.wait(client)
    if wait > 0:  # too early after wrong passwords: not even compared
        st.session_state[_LOGIN_WAIT_KEY] = wait
        return
    if not check_password(given):
        access.THROTTLE.failed(client)
        st.session_state[_LOGIN_FAILED_KEY] = True
        return
    access.THROTTLE.succeeded(client)
    st.session_state[_AUTH_KEY] = True
    st.session_state.pop(_SIGNED_OUT_KEY, None)
    try:
        st.session_state[_COOKIE_KEY] = access.make_cookie(_open_store(store_location()))
    except (FixativeError, OSError):
        pass  # signed in for this session only


def _client() -> str:
    try:
        address = st.context.ip_address
    except Exception:  # no browser context (a script run, a test)
        address = None
    return access.client_key(address)


def login_page() -> None:
    """The only page offered until the password is given."""
    st.title("Fixative")
    st.write("This workbench is protected by a password. Ask its administrator for it.")
    with st.form("fx_login"):
        st.text_input("Password", type="password", key=_LOGIN_KEY)
        st.form_submit_button("Sign in", on_click=_sign_in)
    if st.session_state.get(_SIGNED_OUT_KEY):
        st.html(access.clear_cookie_script(), unsafe_allow_javascript=True)
    wait = st.session_state.pop(_LOGIN_WAIT_KEY, None)
    if wait:
        st.error(f"Too many wrong passwords from this address: try again in "
                 f"{math.ceil(wait)} s. Each further wrong password doubles the wait (up to "
                 "15 minutes); the right one clears it.")
    elif st.session_state.pop(_LOGIN_FAILED_KEY, False):
        left = access.THROTTLE.wait(_client())
        st.error("Wrong password. Try again." if not left else
                 f"Wrong password. Try again in {math.ceil(left)} s.")


def login_pages(pages: list[Any]) -> list[Any]:
    """The sign-in page under every page's address (the first page being the default), so
    the URL asked for is kept and that page runs once the password is given."""
    return [st.Page(login_page, title="Sign in", default=i == 0,
                    url_path=page.url_path or "home") for i, page in enumerate(pages)]


def _sign_out() -> None:
    st.session_state[_AUTH_KEY] = False
    st.session_state[_SIGNED_OUT_KEY] = True
    st.session_state.pop(_COOKIE_KEY, None)


def session_controls() -> None:
    """Keeps the sign-in cookie set, and offers to sign out, when a password is required."""
    if not password_required():
        return
    cookie = st.session_state.get(_COOKIE_KEY)
    if cookie:
        with st.sidebar:
            st.html(access.set_cookie_script(cookie), unsafe_allow_javascript=True)
    st.sidebar.button("Sign out", key="fx_sign_out", on_click=_sign_out)


# -- messages that survive a rerun ---------------------------------------------------

_FLASH_KEY = "_fx_flash"


def flash(text: str) -> None:
    """Show ``text`` as a success message on the next run (after ``st.rerun()``)."""
    st.session_state[_FLASH_KEY] = text


def show_flash() -> None:
    text = st.session_state.pop(_FLASH_KEY, None)
    if text:
        st.success(text)


# -- selection -----------------------------------------------------------------------

def _query(key: str) -> str | None:
    value = st.query_params.get(key)
    return value or None


def select(name: str | None, version: str | None = None) -> None:
    """Ask the sidebar picker to show ``name``/``version`` from the next run on.

    Safe to call after the picker's widgets have been drawn in this run (widget
    state cannot be changed then, so the request waits in session state).
    """
    st.session_state[_PENDING_KEY] = (name, version)


def _apply_pending(model_names: list[str]) -> None:
    pending = st.session_state.pop(_PENDING_KEY, None)
    if pending is not None:
        name, version = pending
        st.session_state[MODEL_KEY] = name if name in model_names else None
        st.session_state[VERSION_KEY] = version or LATEST
        return
    if MODEL_KEY in st.session_state:
        return
    # First run of the session: take the selection from the URL.
    name, version, problem = _from_url(model_names)
    if problem:
        st.session_state[_LINK_PROBLEM_KEY] = problem
    if name is None:
        return
    st.session_state[MODEL_KEY] = name
    st.session_state[VERSION_KEY] = version or LATEST


def _from_url(model_names: list[str] | None = None
              ) -> tuple[str | None, str | None, str | None]:
    """(model, version, problem) named by the URL; a model, version or alias that does
    not exist is a problem to show, never a silent switch to something else. The problem
    says what is wrong; :func:`_told` adds what is shown instead."""
    name = _query("model")
    if name is None:
        return None, None, None
    names = model_names if model_names is not None else [m.name for m in cached_models()]
    if name not in names:
        return None, None, f"The link names the model '{name}', which is not in this store"
    version, alias = _query("version"), _query("alias")
    versions = [v.version for v in cached_versions(name)]
    if version and version not in versions:
        return name, None, (f"The link names version '{version}' of {name}, which does not "
                            "exist (it may have been deleted)")
    if not version and alias:
        aliases = cached_aliases(name)
        version = aliases.get(alias)
        if version is None:
            known = ", ".join(sorted(aliases)) or "none"
            return name, None, f"{name} has no alias '{alias}' (its aliases: {known})"
    return name, version, None


def _told(problem: str, name: str | None) -> str:
    """A link's problem with what the sidebar shows instead."""
    return problem + ("; showing the latest version." if name is not None else
                      "; choose a model in the sidebar.")


def link_problem() -> str | None:
    """What was wrong with the link this run was opened with, if anything."""
    return st.session_state.get(_LINK_PROBLEM_KEY)


def _version_label(version: str, aliases: Mapping[str, str], latest: str | None) -> str:
    if version == LATEST:
        return f"latest ({latest})" if latest else "latest"
    tags = [a for a, v in sorted(aliases.items()) if v == version]
    return f"{version} [{', '.join(tags)}]" if tags else version


def model_picker() -> tuple[str | None, str | None]:
    """Sidebar selectors for model and version; keeps the URL in step with them."""
    models = cached_models()
    names = [m.name for m in models]
    st.session_state.pop(_LINK_PROBLEM_KEY, None)  # a link's problem is told once
    _apply_pending(names)
    if problem := link_problem():
        st.warning(_told(problem, st.session_state.get(MODEL_KEY)))
    if st.session_state.get(MODEL_KEY) not in names:
        st.session_state[MODEL_KEY] = None
    if not names:
        st.sidebar.caption("No models yet. Add one on the Upload page, or add the examples "
                           "on the Home page.")
        _sync_url(None, None)
        return None, None
    # The value comes from session state (always set above), so no index is passed.
    name = st.sidebar.selectbox("Model", names, key=MODEL_KEY, placeholder="Choose a model")
    if name is None:
        _sync_url(None, None)
        return None, None
    versions = [v.version for v in cached_versions(name)]
    aliases = cached_aliases(name)
    options = [LATEST, *reversed(versions)]
    if st.session_state.get(VERSION_KEY) not in options:
        st.session_state[VERSION_KEY] = LATEST
    latest = versions[-1] if versions else None
    chosen = st.sidebar.selectbox(
        "Version", options, key=VERSION_KEY,
        format_func=lambda v: _version_label(v, aliases, latest))
    version = None if chosen == LATEST else chosen
    _sync_url(name, version)
    return name, version


def _sync_url(name: str | None, version: str | None) -> None:
    wanted = {"model": name, "version": version}
    for key, value in wanted.items():
        if value is None:
            if key in st.query_params:
                del st.query_params[key]
        elif st.query_params.get(key) != value:
            st.query_params[key] = value
    # An alias in the URL has been resolved to a version; drop it once the picker
    # has taken over so the URL names exactly what is shown.
    if "alias" in st.query_params and (name is None or version is not None):
        del st.query_params["alias"]


def sidebar() -> tuple[str | None, str | None]:
    """The store in use and the shared model picker."""
    st.sidebar.caption(f"Store: `{store_location()}`")
    chosen = model_picker()
    session_controls()
    return chosen


def selected_ref() -> tuple[str | None, str | None]:
    """``(name, version)`` picked in the sidebar; version None means the latest.

    Falls back to the URL's query parameters when the sidebar has not run (a page
    script run on its own).
    """
    require_access()
    pending = st.session_state.get(_PENDING_KEY)
    if pending is not None:
        return pending[0], pending[1]
    if MODEL_KEY in st.session_state:
        name = st.session_state.get(MODEL_KEY)
        version = st.session_state.get(VERSION_KEY)
        return name, (None if version in (None, LATEST) else version)
    name, version, problem = _from_url()
    if problem and st.session_state.get(_LINK_PROBLEM_KEY) != problem:
        st.session_state[_LINK_PROBLEM_KEY] = problem
        st.warning(_told(problem, name))
    return name, version


def resolved_ref() -> tuple[str | None, str | None]:
    """Like :func:`selected_ref` but with the latest version spelled out."""
    name, version = selected_ref()
    if name is None or version is not None:
        return name, version
    versions = cached_versions(name)
    return name, (versions[-1].version if versions else None)


def require_model() -> tuple[str, str]:
    """The selected ``(name, version)`` with the latest spelled out; stops when none."""
    name, version = resolved_ref()
    if name is None or version is None:
        if cached_models():
            st.info("Choose a model in the sidebar to continue.")
        else:
            st.info("The store has no models yet. Upload one on the Upload page, or add the "
                    "example models on the Home page.")
            link("pages/upload.py", "Upload a model file")
            link("pages/home.py", "Add the example models")
        st.stop()
    return name, version


def table_height(rows: int) -> int:
    """Pixels for an ``st.dataframe`` that shows ``rows`` rows and its header unscrolled."""
    return 35 * (rows + 1) + 3


def link(page: str, label: str, **params: str) -> None:
    """A link to another page of the app carrying ``params`` in its URL.

    Inside the app this is ``st.page_link``; a page script run on its own has no
    navigation to link into, so it shows the equivalent relative URL instead.
    """
    from streamlit.errors import StreamlitAPIException

    try:
        st.page_link(page, label=label, query_params=params or None)
    except StreamlitAPIException:
        slug = page.rsplit("/", 1)[-1].removesuffix(".py")
        query = urlencode(params)
        st.markdown(f"[{label}](./{slug}{'?' + query if query else ''})")
