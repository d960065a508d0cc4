"""The Monitor page's Challenger tab: the comparison of a challenger with this version,
and promoting it (see :mod:`core.monitoring.compare` and :mod:`core.monitoring.promote`)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.errors import FixativeError, NotFound
from core.monitoring.compare import BETTER, WORSE, comparison_for
from core.monitoring.promote import promote, promotions


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
