"""A heartbeat names the replica's challenger; a forged challenger field never breaks a
listing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core.serving.heartbeat import KIND, challenger_text, parse_record

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def _record(**extra) -> bytes:
    doc = {"kind": KIND, "id": "r1", "model": "house", "version": "v1",
           "last_seen": "2026-03-02T12:00:00Z", **extra}
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("spec", "text"), [
    ({"name": "house", "version": "v2", "mode": "shadow", "share": None},
     "house@v2 (shadow)"),
    ({"name": "house", "version": "v2", "mode": "canary", "share": 0.1},
     "house@v2 (canary 10%)"),
    ({"name": "house", "version": "v2", "mode": "canary", "share": 0.125},
     "house@v2 (canary 12.5%)"),
])
def test_challenger_text(spec, text):
    assert challenger_text(spec) == text


@pytest.mark.parametrize(("value", "read"), [
    ("house@v2 (shadow)", "house@v2 (shadow)"),
    (None, None),
    ("", None),
    (["a", "list"], None),
    ({"name": "x"}, None),
    (12, None),
    ("x" * 1000, "x" * 200),
])
def test_a_forged_challenger_field_is_read_safely(value, read):
    replica = parse_record(_record(challenger=value), name="r1", mtime=None, now=NOW,
                           stale=60)
    assert replica.challenger == read
    assert (replica.model, replica.version) == ("house", "v1")


def test_a_record_without_a_challenger_reads_as_before():
    assert parse_record(_record(), name="r1", mtime=None, now=NOW, stale=60).challenger is None
