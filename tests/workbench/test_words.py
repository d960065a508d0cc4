"""Values as people read them, and the glossary's terms."""

from __future__ import annotations

import pytest

from core.workbench import words


@pytest.mark.parametrize("value, text", [
    (0.873104958230194, "0.873105"),
    (41234.123456789012, "41,234.1"),
    (50000.0, "50,000"),
    (1234567, "1,234,567"),
    (1e-7, "1e-07"),
    (1234567.5, "1,234,568"),  # a large value never in exponent form
    (-987654.321, "-987,654"),
    (123456.78, "123,457"),
    (float("inf"), "inf"),
    (1e20, "1e+20"),
    (float("nan"), "nan"),
    (None, "—"),
    (True, "yes"),
    (["a", "b"], "a, b"),
    ([], "—"),
    ({"b", "a"}, "a, b"),
    ({"n_estimators": 300, "max_depth": None}, "n_estimators: 300, max_depth: —"),
    ("['a', 'b']", "['a', 'b']"),  # text stays text
])
def test_shown(value, text):
    assert words.shown(value) == text


def test_glossary_terms_are_plain_sentences():
    for term, text in words.GLOSSARY.items():
        assert term == term.lower() and text.endswith(".") and len(text) < 400
