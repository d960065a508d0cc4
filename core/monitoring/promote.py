"""Promote a challenger: move the alias to it, with the comparison as evidence.

:func:`promote` compares the challenger with the version the alias points at
(:mod:`core.monitoring.compare`), refuses unless the verdict is "challenger better"
(``force`` overrides, and is recorded), moves the alias (kept in the alias history like
any move) and writes a ``promotion`` record on the board that names that alias event
and holds the comparison summary. :func:`promotions` lists the alias moves that were
promotions, with their evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import InvalidArgument, NotFound
from core.monitoring.compare import BETTER, comparison_for
from core.store.names import validate_alias, validate_name, validate_version
from core.store.protocols import StoreLike

RECORD_KIND = "promotion"


@dataclass
class Promotion:
    name: str
    alias: str
    from_version: str | None
    to_version: str
    at: Any
    user: str
    alias_event: str
    forced: bool
    evidence: dict[str, Any]


def promote(store: Any, name: str, alias: str, challenger: str | None = None, *,
            force: bool = False, window: str | None = None, since: Any = None,
            until: Any = None, user: str | None = None) -> Promotion:
    """Point ``alias`` of model ``name`` at ``challenger`` (a version of ``name``; default:
    the one that served as the alias's challenger most recently), recording the comparison
    as evidence. Refused unless the comparison says "challenger better", or ``force``."""
    name, alias = validate_name(name), validate_alias(alias)
    current = store.aliases(name).get(alias)
    if current is None:
        raise NotFound(f"Model '{name}' has no alias '{alias}' to promote a challenger to; set "
                       f"it first (python -m core alias {name} {alias} VERSION).")
    ref = None
    if challenger is not None and str(challenger).strip():
        text = str(challenger).strip()
        version = text.split("@", 1)[1] if text.startswith(f"{name}@") else text
        ref = f"{name}@{validate_version(version)}"
    comparison = comparison_for(store, f"{name}@{current}", ref, window=window, since=since,
                                until=until)
    target = comparison.challenger.split("@", 1)[1]
    if comparison.verdict != BETTER and not force:
        raise InvalidArgument(
            f"Not promoted: the comparison of {comparison.challenger} with {name}:{alias} "
            f"({name}@{current}) says '{comparison.verdict}'. {comparison.reason} Promote "
            "anyway with force (--force), which the record says.")
    event = store.set_alias(name, alias, target, user=user)
    record = store.add_record(RECORD_KIND, name, {
        "alias": alias, "from_version": current, "to_version": target,
        "alias_event": event.id, "forced": bool(force and comparison.verdict != BETTER),
        "evidence": comparison.summary()}, version=target, user=user)
    return Promotion(name, alias, current, target, record.at, record.user, event.id,
                     bool(record.payload["forced"]), record.payload["evidence"])


def promotions(store: StoreLike, name: str) -> list[Promotion]:
    """The promotions of model ``name``, oldest first (each an alias move with evidence)."""
    out = []
    for r in store.records(RECORD_KIND, validate_name(name)):
        p = r.payload
        out.append(Promotion(name, str(p.get("alias")), p.get("from_version"),
                             str(p.get("to_version")), r.at, r.user, str(p.get("alias_event")),
                             bool(p.get("forced")), dict(p.get("evidence") or {})))
    return out
