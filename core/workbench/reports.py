"""Cached monitoring reads for the Monitor page.

A report over weeks of logged predictions takes seconds (drift of every column above
all), and Streamlit runs the page script again on every click. The reads here are
cached under :func:`core.monitoring.report.data_token`, which changes as soon as a
version, alias, custom metric, threshold, log segment, scored upload or actuals file of
the model changes, so a rerun that changes nothing reuses them and any change shows at
once. Ranges relative to now (``since 30d``) move with the clock: entries live at most
a minute.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.monitoring.monitor import open_ref
from core.monitoring.report import Report, build, column_values, data_token
from core.workbench import ui

# Relative ranges ("since 30d") move with the clock; the data token covers the rest.
_TTL = 60


@st.cache_data(show_spinner="Computing metrics and drift…", ttl=_TTL, max_entries=32)
def _report(_store: Any, location: str, token: str, ref: str, window: str, since: str,
            until: str, source: str, all_versions: bool,
            reference: tuple[str, str] | None) -> Report:
    return build(_store, ref, window=window, since=since or None, until=until or None,
                 source=source, all_versions=all_versions, reference=reference)


def cached_report(name: str, ref: str, *, window: str, since: str = "", until: str = "",
                  source: str = "log", all_versions: bool = False,
                  reference: tuple[str, str] | None = None) -> Report:
    """:func:`core.monitoring.report.build`, reused while the model's data is unchanged."""
    store = ui.get_store()
    return _report(store, ui.store_location(), data_token(store, name), ref, window, since,
                   until, source, all_versions, reference)


@st.cache_data(show_spinner=False, ttl=_TTL, max_entries=32)
def _columns(_store: Any, location: str, token: str, ref: str) -> list[str]:
    with open_ref(_store, ref) as mon:
        return list(mon.columns)


def cached_columns(name: str, ref: str) -> list[str]:
    """The columns of the ``monitoring`` view a custom metric can use."""
    store = ui.get_store()
    return _columns(store, ui.store_location(), data_token(store, name), ref)


@st.cache_data(show_spinner=False, ttl=_TTL, max_entries=64)
def _values(_store: Any, location: str, token: str, ref: str, column: str, start: Any,
            end: Any, source: str) -> pd.Series:
    return column_values(_store, ref, column, start, end, source=source)


def cached_column_values(name: str, ref: str, column: str, start: Any, end: Any,
                         source: str) -> pd.Series:
    """A sample of one logged column in one window, for the reference-vs-current chart."""
    store = ui.get_store()
    return _values(store, ui.store_location(), data_token(store, name), ref, column, start, end,
                   source)
