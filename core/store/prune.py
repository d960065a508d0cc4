"""Which versions a prune removes: one rule, for the store that deletes them and for the
workbench that names them before asking.

Kept: the newest ``keep`` versions, versions younger than ``days`` days, the latest
version and every version an alias points at.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from core.times import as_utc


def prune_plan(versions: Sequence[Any], keep: int | None = None, days: float | None = None,
               now: datetime | None = None, aliased: Iterable[str] = ()) -> list[Any]:
    """The versions (oldest first) a prune with these rules removes; none without rules.

    ``versions`` are oldest first and have ``version``, ``created`` and ``aliases``;
    ``aliased`` names more versions an alias points at.
    """
    if keep is None and days is None:
        return []
    ordered = list(versions)
    if not ordered:
        return []
    kept = {ordered[-1].version} | set(aliased)
    kept |= {v.version for v in ordered if getattr(v, "aliases", None)}
    if keep:
        kept |= {v.version for v in ordered[-keep:]}
    if days is not None:
        cutoff = _cutoff(now or datetime.now(UTC), float(days))
        kept |= {v.version for v in ordered if as_utc(v.created, "created") >= cutoff}
    return [v for v in ordered if v.version not in kept]


def _cutoff(now: datetime, days: float) -> datetime:
    try:
        return now - timedelta(days=days)
    except OverflowError:  # before the calendar starts: every version is younger
        return datetime.min.replace(tzinfo=UTC)
