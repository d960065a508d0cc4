"""Promote: the alias moves to a better challenger with the comparison as evidence; a
challenger that is not better is refused unless forced; bad input loses nothing."""

from __future__ import annotations

import json

import pytest
from challenger_helpers import values_store  # noqa: F401  (fixture)

from core.cli.main import main
from core.errors import InvalidArgument, InvalidName, NotFound
from core.monitoring.compare import BETTER
from core.monitoring.promote import promote, promotions


def test_promote_moves_the_alias_and_keeps_the_evidence(values_store):  # noqa: F811
    store, vs, *_ = values_store
    store.set_alias("flat", "production", vs[0])
    # the same model as the champion: not better, so refused, and nothing moves
    with pytest.raises(InvalidArgument, match="Not promoted: .* says 'not yet known'"):
        promote(store, "flat", "production", vs[2])
    assert store.aliases("flat")["production"] == vs[0]
    assert promotions(store, "flat") == []
    p = promote(store, "flat", "production", f"flat@{vs[1]}", user="ana")
    assert store.aliases("flat")["production"] == vs[1]
    assert (p.from_version, p.to_version, p.forced) == (vs[0], vs[1], False)
    assert p.evidence["verdict"] == BETTER and p.evidence["overall"]["n"] > 30
    event = store.alias_history("flat")[-1]
    assert (event.id, event.from_version, event.to_version) == (p.alias_event, vs[0], vs[1])
    [kept] = promotions(store, "flat")
    assert kept.alias_event == event.id and kept.evidence == p.evidence and kept.user == "ana"
    # forced back: recorded as forced, with the evidence against it
    back = promote(store, "flat", "production", vs[0], force=True)
    assert back.forced and back.evidence["verdict"] == "challenger worse"
    assert store.aliases("flat")["production"] == vs[0]


def test_promote_refuses_bad_input(values_store):  # noqa: F811
    store, vs, *_ = values_store
    with pytest.raises(NotFound, match="no alias 'nosuch'"):
        promote(store, "flat", "nosuch", vs[1])
    with pytest.raises(InvalidName):
        promote(store, "flat", "production", "../../x")
    with pytest.raises(InvalidName):
        promote(store, "flat; DROP", "production", vs[1])


def test_promote_command(values_store, capsys):  # noqa: F811
    store, vs, *_ = values_store
    board = str(store.url)
    store.set_alias("flat", "staging", vs[0])
    assert main(["promote", "flat", "staging", "--challenger", vs[2], "--store", board]) == 1
    assert "Not promoted" in capsys.readouterr().err
    assert main(["promote", "flat", "staging", "--challenger", vs[1], "--store", board]) == 0
    out = capsys.readouterr().out
    assert f"flat:staging now points at {vs[1]}" in out and "challenger better" in out
    assert main(["promotions", "flat", "--store", board, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc[-1]["alias"] == "staging" and doc[-1]["evidence"]["verdict"] == BETTER
    assert main(["promotions", "flat", "--store", board]) == 0
    assert "staging" in capsys.readouterr().out
