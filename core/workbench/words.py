"""Plain words for the pages: the few terms that must stay, explained where they appear,
and values shown the way people read them (``0.8731`` not ``0.873104958230194``, tags as
``a, b`` not ``['a', 'b']``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from core.numbers import readable

GLOSSARY: dict[str, str] = {
    "input columns": "The columns a model takes as input, with what was seen in training: "
                     "kind, whether empty values occurred, categories or range, an example. "
                     "Requests are checked against them (other tools call this the input "
                     "schema or prototype).",
    "reference profile": "A summary of the training sample stored with a version (how the "
                         "values of each column were spread). New data is compared with it "
                         "to see whether the inputs have changed.",
    "alias": "A name such as production or staging that points at one version. Moving it "
             "switches what the name serves; every move is recorded.",
    "window": "A stretch of time, such as a day or a week, over which predictions are "
              "counted and scored together.",
    "actuals": "The true values, known later (the price a house sold for), matched to the "
               "predictions that were made for them to measure how good the predictions "
               "were.",
    "drift": "A change in how the inputs or predictions are spread compared with the "
             "reference. It warns that the model now sees data unlike its training data, "
             "before actuals can show whether its predictions got worse.",
    "threshold": "A level of a metric at which a window is marked warning or alert. A "
                 "window with too few rows is not judged.",
    "custom metric": "A figure of your own, written as a SQL aggregate over the logged "
                     "rows of a window, such as the average prediction per square foot.",
}


def glossary(*terms: str, label: str = "What these words mean") -> None:
    """A closed expander explaining ``terms`` (keys of :data:`GLOSSARY`)."""
    with st.expander(label):
        for term in terms:
            st.markdown(f"**{term.capitalize()}**: {GLOSSARY[term]}")


def shown(value: Any) -> str:
    """A value as a person reads it in a table: numbers to six significant digits with
    thousands separators, lists and sets as ``a, b``, mappings as ``k: v``, nothing as
    ``—``."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return readable(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {shown(v)}" for k, v in value.items()) or "—"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return ", ".join(shown(v) for v in items) or "—"
    return str(value)
