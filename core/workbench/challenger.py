"""The Monitor page's Challenger tab: the comparison of a challenger with this version,
and promoting it (see :mod:`core.monitoring.compare` and :mod:`core.monitoring.promote`)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.errors import FixativeError, NotFound, UnsafeModel
from core.monitoring.compare import BETTER, WORSE, comparison_for
from core.monitoring.promote import promote, promotions
from core.workbench import ui


def comparison_section(store: Any, name: str, version: str, window: str, *,
                       since: Any = None, until: Any = None) -> None:
    """This version as the champion against its challenger, per window, with a verdict."""
    st.caption("A challenger runs next to this version on the same endpoint (shadow: it "
               "scores every request in the background). Both are scored on the same rows "
               "once actuals are uploaded.")
    other = st.text_input("Challenger version (empty: the one that ran most recently)",
                          key="mon_ch_version", max_chars=200).strip()
    ref = f"{name}@{other.split('@', 1)[-1]}" if other else None
    try:
        with st.spinner("Comparing"):
            c = comparison_for(store, f"{name}@{version}", ref, window=window,
                               since=since or None, until=until or None)
    except NotFound as exc:
        st.info(f"{exc.message} To start one: python -m core serve {name}@{version} "
                f"--shadow {name}@OTHER_VERSION --port 8080, then upload actuals for its "
                "requests on the Upload tab.")
        return
    except FixativeError as exc:
        st.error(exc.message)
        return
    say = st.success if c.verdict == BETTER else st.warning if c.verdict == WORSE else st.info
    say(f"{c.challenger} against {c.champion}: {c.verdict}. {c.reason}")
    st.dataframe(c.windows, hide_index=True, key="mon_ch_table")
    lat = ", ".join(f"{k.replace('_ms', '').replace('_', ' ')} {v:.1f} ms"
                    for k, v in c.latency.items() if v is not None and v == v)
    st.caption(f"Latency per request: {lat or 'none logged'}. 'champion' and 'challenger' "
               f"columns are each one's {c.metric}; 'difference' is challenger minus champion "
               "with its 95% interval.")
    _promote_form(store, name, version, c)


def _promote_form(store: Any, name: str, version: str, c: Any) -> None:
    aliases = sorted(a for a, v in store.aliases(name).items() if v == version)
    if not aliases:
        st.caption(f"No alias points at {name}@{version}, so there is nothing to promote from. "
                   "Point one at it on the Models page to promote a challenger here.")
        return
    alias = st.selectbox("Alias to move", aliases, key="mon_ch_alias")
    force = st.checkbox("Promote even though the comparison does not say better",
                        key="mon_ch_force", disabled=c.verdict == BETTER)
    if st.button(f"Promote {c.challenger} to {name}:{alias}", key="mon_ch_promote"):
        try:
            p = promote(store, name, alias, c.challenger, force=force)
        except FixativeError as exc:
            st.error(exc.message)
            return
        st.success(f"{name}:{p.alias} now points at {p.to_version} (was {p.from_version}); "
                   "the comparison is kept with the alias history.")
    done = promotions(store, name)
    if done:
        st.caption("Earlier promotions: " + "; ".join(
            f"{p.at:%Y-%m-%d} {p.alias} {p.from_version} → {p.to_version}"
            f"{' (forced)' if p.forced else ''}" for p in done[-5:]))


# -- the Deploy page: a challenger next to an endpoint ------------------------------------

MODES = {"none": "none", "shadow": "shadow: scores every request in the background",
         "canary": "canary: answers a share of requests"}
SHARE_HELP = ("Percent of prediction requests the challenger answers in canary mode (above 0, "
              "below 100). Requests with the same X-Fixative-Key header always go the same "
              "way.")
MONITOR_POINTER = ("Compare the two on the Monitor page's Challenger tab (with {ref} chosen) "
                   "once actuals are uploaded for its requests; only shadow traffic is "
                   "compared row by row.")


@st.cache_data(show_spinner=False, ttl=600, max_entries=64)
def _candidates(_store: Any, location: str, change: str, name: str, version: str
                ) -> list[str]:
    from core.deploy.challenger import challenger_candidates

    return challenger_candidates(_store, name, version)


def candidates(store: Any, name: str, version: str) -> list[str]:
    """Versions that can challenge ``name@version`` (this model's others, then other
    models with the same inputs), reused until the store changes."""
    return _candidates(store, str(store.url), str(store.change_marker()), name, version)


def _label(name: str) -> Any:
    def label(ref: str) -> str:
        model, _, version = ref.partition("@")
        return f"version {version}" if model == name else f"{model}, version {version}"
    return label


def challenger_inputs(store: Any, name: str, version: str, key: str,
                      modes: Any = MODES) -> tuple[str | None, str | None, str]:
    """Challenger widgets (inside a form): mode, version and canary share. Returns the
    ``shadow`` and ``canary`` arguments of :func:`core.deploy.endpoints.start_endpoint`
    (None, None without a challenger) and what is missing ('' when nothing)."""
    try:
        options = candidates(store, name, version)
    except FixativeError:  # the version is gone or unreadable: nothing can challenge it
        options = []
    col_mode, col_ref, col_share = st.columns([2, 3, 1])
    mode = col_mode.selectbox("Challenger", list(modes), key=f"{key}_mode",
                              format_func=modes.__getitem__,
                              help="Another version next to this one on the same endpoint.")
    ref = col_ref.selectbox("Challenger version", options, key=f"{key}_ref",
                            format_func=_label(name), disabled=not options,
                            placeholder="no version takes the same inputs")
    share = col_share.number_input("Canary share (%)", min_value=0.1, max_value=99.9,
                                   value=10.0, step=1.0, key=f"{key}_share", help=SHARE_HELP)
    if not options:
        st.caption(f"No other version takes the inputs of {name}@{version}. Upload another "
                   "version of this model (or a model with the same columns) to run it as a "
                   "challenger.")
    if mode == "none":
        return None, None, ""
    if not ref:
        return None, None, (f"There is no version to run as a challenger of {name}@{version}: "
                            "upload another version of this model first, or choose none.")
    if mode == "shadow":
        return ref, None, ""
    return None, f"{ref}:{float(share):g}%", ""


def show_error(exc: FixativeError, challenger: str | None = None) -> None:
    """A refused start or change: its first line as an error, a server log below it, and
    how to trust a ``challenger`` (REF or REF:SHARE) that was refused as unsafe."""
    first, _, rest = exc.message.partition("\n")
    st.error(first)
    ref = (challenger or "").rpartition(":")[0] if "%" in (challenger or "") else challenger
    if isinstance(exc, UnsafeModel) and ref and first.startswith(ref):
        st.caption("Here the trust box covers only the served version's names. To run this "
                   "challenger, start the endpoint on the command line with --trust for the "
                   "names above (python -m core endpoints start REF --shadow REF2 --trust "
                   "NAME).")
    if rest:
        st.code(rest, language="text")


def endpoint_challenger(store: Any, endpoint: Any, doc: dict[str, Any] | None,
                        why: str) -> None:
    """What challenger a running endpoint has (with its shadow counts from ``/metadata``
    ``doc``), and controls to change or stop it."""
    from core.deploy import endpoints as deploy
    from core.deploy.views import challenger_text

    st.markdown("**Challenger**")
    st.caption(challenger_text(endpoint, doc, why))
    current = endpoint.challenger
    with st.form(f"deploy_ch_form_{endpoint.id}"):
        shadow, canary, missing = challenger_inputs(
            store, endpoint.name, endpoint.version, f"deploy_ch_{endpoint.id}",
            modes={k: v for k, v in MODES.items() if k != "none"})
        change = st.form_submit_button("Restart with this challenger" if current else
                                       "Restart with a challenger")
    stop = current is not None and st.button("Stop the challenger",
                                             key=f"deploy_ch_stop_{endpoint.id}")
    st.caption("The server restarts on the same port with the same settings; requests sent "
               "during the restart fail. A challenger that does not fit is refused and the "
               "endpoint keeps running as it is. "
               + MONITOR_POINTER.format(ref=f"{endpoint.name}@{endpoint.version}"))
    if not (change or stop):
        return
    if stop:
        shadow = canary = None
    elif missing:
        st.error(missing)
        return
    with st.spinner(f"Restarting {endpoint.label}…"):
        try:
            after = deploy.set_challenger(store, endpoint, shadow=shadow, canary=canary,
                                          stop=bool(stop))
        except FixativeError as exc:
            show_error(exc, shadow or canary)
            return
    what = after.challenger.text if after.challenger else "no challenger"
    ui.flash(f"{after.label} runs with {what}.")
    st.rerun()
