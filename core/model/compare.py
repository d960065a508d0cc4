"""What changed between two versions of a model: metadata, metrics, prototype, environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.model.bundle import BundleMeta
from core.model.params import NOT_RECORDED, params_diff, params_of
from core.model.prototype import Column, Prototype

# Metadata fields compared one to one (the rest have their own sections).
META_FIELDS = ("model_class", "library", "task", "classes", "has_proba", "description",
               "tags", "user", "created")


@dataclass
class Change:
    """One field that differs: ``old`` in the first version, ``new`` in the second."""

    field: str
    old: Any
    new: Any


@dataclass
class ColumnChange:
    column: str
    what: str  # "added", "removed", "retyped", "nullable", "categories", "range"
    old: Any = None
    new: Any = None


@dataclass
class VersionDiff:
    old_version: str
    new_version: str
    metadata: list[Change] = field(default_factory=list)
    metrics: list[Change] = field(default_factory=list)
    prototype: list[ColumnChange] = field(default_factory=list)
    environment: list[Change] = field(default_factory=list)
    # Recorded parameters that differ (text of each side; NOT_RECORDED for a version
    # written before parameters were recorded), and all of them for "show all".
    params: list[Change] = field(default_factory=list)
    all_params: list[Change] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.metadata or self.metrics or self.prototype or self.environment
                    or self.params)

    def columns(self, what: str) -> list[str]:
        return [c.column for c in self.prototype if c.what == what]

    def summary(self) -> str:
        """One sentence a person can read at a glance."""
        if self.identical:
            return f"{self.old_version} and {self.new_version} do not differ."
        parts = []
        for what in ("added", "removed", "retyped"):
            cols = self.columns(what)
            if cols:
                parts.append(f"{len(cols)} column(s) {what} ({', '.join(cols[:5])}"
                             f"{', …' if len(cols) > 5 else ''})")
        if self.params:
            if any(NOT_RECORDED in (c.old, c.new) for c in self.params):
                parts.append("parameters recorded for one version only")
            else:
                parts.append(f"{len(self.params)} parameter(s) changed ("
                             + ", ".join(c.field for c in self.params[:5])
                             + (", …" if len(self.params) > 5 else "") + ")")
        if self.metrics:
            parts.append(f"{len(self.metrics)} metric(s) changed")
        if self.metadata:
            parts.append("metadata: " + ", ".join(c.field for c in self.metadata))
        if self.environment:
            parts.append(f"{len(self.environment)} environment change(s)")
        return f"From {self.old_version} to {self.new_version}: " + "; ".join(parts) + "."


def compare(old: BundleMeta, new: BundleMeta, old_version: str = "old",
            new_version: str = "new") -> VersionDiff:
    """Differences from ``old`` to ``new``."""
    return VersionDiff(
        old_version=old_version,
        new_version=new_version,
        metadata=_dict_changes({f: getattr(old, f) for f in META_FIELDS},
                               {f: getattr(new, f) for f in META_FIELDS}),
        metrics=_dict_changes(old.metrics, new.metrics),
        prototype=compare_prototypes(old.prototype, new.prototype),
        environment=compare_environments(old.environment, new.environment),
        params=compare_params(old, new),
        all_params=compare_params(old, new, only_changed=False),
    )


def compare_params(old: BundleMeta, new: BundleMeta, only_changed: bool = True
                   ) -> list[Change]:
    """Recorded parameters, as text, that differ (all of them with ``only_changed=False``).

    Neither version recorded any: nothing to compare, so no change. One did: a single
    change saying which one has none."""
    a, b = params_of(old.lineage), params_of(new.lineage)
    if a is None and b is None:
        return []
    if a is None or b is None:
        structure = [Change("parameters", NOT_RECORDED if a is None else f"{len(a)} recorded",
                            NOT_RECORDED if b is None else f"{len(b)} recorded")]
        if only_changed:
            return structure
    return [Change(k, x, y) for k, x, y in params_diff(a, b, only_changed)]


def _dict_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    keys = list(old) + [k for k in new if k not in old]
    return [Change(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]


def compare_prototypes(old: Prototype, new: Prototype) -> list[ColumnChange]:
    """Columns added, removed or retyped, then narrower changes of kept columns."""
    old_cols = {c.name: c for c in old.columns}
    new_cols = {c.name: c for c in new.columns}
    out = [ColumnChange(n, "added", None, _kind(new_cols[n])) for n in new_cols
           if n not in old_cols]
    out += [ColumnChange(n, "removed", _kind(old_cols[n]), None) for n in old_cols
            if n not in new_cols]
    for name, a in old_cols.items():
        b = new_cols.get(name)
        if b is None:
            continue
        if (a.kind, a.dtype) != (b.kind, b.dtype):
            out.append(ColumnChange(name, "retyped", _kind(a), _kind(b)))
            continue
        if a.nullable != b.nullable:
            out.append(ColumnChange(name, "nullable", a.nullable, b.nullable))
        if (a.categories or None) != (b.categories or None):
            gone = sorted(set(map(str, a.categories or [])) - set(map(str, b.categories or [])))
            came = sorted(set(map(str, b.categories or [])) - set(map(str, a.categories or [])))
            out.append(ColumnChange(name, "categories", gone or None, came or None))
        if (a.min, a.max) != (b.min, b.max) and a.kind in ("int", "float"):
            out.append(ColumnChange(name, "range", _range(a), _range(b)))
    return out


def _kind(col: Column) -> str:
    return f"{col.kind} ({col.dtype})" if col.dtype else col.kind


def _range(col: Column) -> str | None:
    return col.range_text()


def compare_environments(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Python and package versions that differ (a package missing on one side is None)."""
    out = []
    for key in ("python", "platform"):
        if old.get(key) != new.get(key):
            out.append(Change(key, old.get(key), new.get(key)))
    old_pk = old.get("packages") or {}
    new_pk = new.get("packages") or {}
    for pkg in sorted(set(old_pk) | set(new_pk)):
        if old_pk.get(pkg) != new_pk.get(pkg):
            out.append(Change(pkg, old_pk.get(pkg), new_pk.get(pkg)))
    return out
