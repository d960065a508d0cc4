"""Board paths: the actuals folder names round-trip any column name, with or without rows."""

from __future__ import annotations

import pytest

from core.store.paths import on_dir, on_from_dir, row_keyed_dir


@pytest.mark.parametrize("on", ["request_id", "zipcode", "customer id", "a+row", "=1+2",
                                "../x", "ключ", "%41", "a/b\x00"])
@pytest.mark.parametrize("by_row", [False, True])
def test_actuals_folders_round_trip(on, by_row):
    folder = on_dir(on, by_row)
    assert folder.startswith("by-") and "/" not in folder and "\x00" not in folder
    assert on_from_dir(folder) == on
    # request_id always matches its row; another column only when the upload had rows
    assert row_keyed_dir(folder) == (by_row or on == "request_id")


def test_a_column_named_like_the_suffix_is_not_taken_for_it():
    assert on_dir("x+row") != on_dir("x", by_row=True)
    assert not row_keyed_dir(on_dir("x+row"))
