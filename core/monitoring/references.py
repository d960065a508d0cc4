"""What each logged column's current data is compared with, when measuring drift.

The reference of a column is the version's stored profile (quantile bins with counts for
numbers, frequencies for categories) with its row sample, or a window of logged rows the
person chose (:func:`references_from_window`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.errors import InvalidArgument
from core.model.profile import profile_series
from core.monitoring import calibration
from core.store.predlog import feature_column
from core.times import parse_time

if TYPE_CHECKING:
    from core.model.prototype import Column
    from core.monitoring.monitor import Monitor

# Most logged rows a reference window keeps (a deterministic sample by request and row).
REFERENCE_ROWS = 20_000


@dataclass
class ColumnReference:
    """What the current data of one logged column is compared with."""

    column: str
    kind: str
    counts: np.ndarray
    edges: list[float] | None = None
    categories: list[str] | None = None
    known: list[str] | None = None
    lo: float | None = None
    hi: float | None = None
    values: np.ndarray | None = None
    null_share: float = 0.0
    is_bool: bool = False

    @property
    def has_raw(self) -> bool:
        return self.values is not None and len(self.values) > 0

    @functools.cached_property
    def sorted_values(self) -> np.ndarray | None:
        return np.sort(self.values) if self.values is not None else None

    @functools.cached_property
    def std(self) -> float | None:
        return float(np.std(self.values)) if self.values is not None and self.has_raw else None

    def min_n(self, method: str, alert: float) -> int:
        """The fewest current values ``method`` needs to say "no drift" on this reference,
        with ``alert`` the method's alert level on its score."""
        if method == "ks":
            # raw methods are only chosen for a reference with raw values (compute() refuses
            # them otherwise)
            assert self.values is not None
            return calibration.min_n("ks", alert, m=len(self.values))
        if method == "wasserstein":
            assert self.values is not None  # as for ks
            return calibration.min_n("wasserstein", alert, m=len(self.values),
                                     wasserstein_q95_at_100=self.wasserstein_q95)
        return calibration.min_n(method, alert, counts=self.counts)

    @functools.cached_property
    def wasserstein_q95(self) -> float:
        return (calibration.wasserstein_q95(self.values)
                if self.values is not None and self.has_raw else 0.0)


def _finite(values: Any) -> np.ndarray:
    x = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    return x[np.isfinite(x)]


def from_profile(column: str, prof: Mapping[str, Any], *, kind: str = "",
                 values: Any = None, categories: Sequence[Any] | None = None,
                 lo: float | None = None, hi: float | None = None) -> ColumnReference | None:
    """A reference from a profile entry (``core.model.profile.profile_series``) and raw values."""
    ptype = prof.get("type")
    if ptype == "numeric" and prof.get("edges"):
        raw = _finite(values) if values is not None else None
        return ColumnReference(
            column=column, kind="numeric", counts=np.asarray(prof["counts"], dtype=float),
            edges=[float(e) for e in prof["edges"]],
            lo=lo if lo is not None else prof.get("min"),
            hi=hi if hi is not None else prof.get("max"),
            values=raw, null_share=float(prof.get("null_share") or 0.0))
    if ptype == "categorical":
        freq = {str(k): float(v) for k, v in (prof.get("frequencies") or {}).items()}
        other = float(prof.get("other") or 0)
        cats = list(freq)
        counts = [freq[c] for c in cats] + [other]
        known = [str(c) for c in categories] if categories else (cats if not other else None)
        return ColumnReference(column=column, kind="categorical",
                               counts=np.asarray(counts, dtype=float), categories=cats,
                               known=known, null_share=float(prof.get("null_share") or 0.0),
                               is_bool=kind == "bool")
    return None


def references(mon: Monitor) -> tuple[list[ColumnReference], list[str]]:
    """References of every input column and the prediction from the version's profile.

    Returns the references and notes on columns that cannot be compared.
    """
    meta = mon.meta
    profile = meta.profile or {}
    cols = profile.get("columns") or {}
    sample = mon.sample
    refs: list[ColumnReference] = []
    notes: list[str] = []
    if not profile:
        notes.append("This version has no reference profile (it was stored without a training "
                     "sample); measure drift against a period of logged rows instead: "
                     "'Drift reference' on the Monitor page, or --reference FROM..UNTIL "
                     "with python -m core monitor.")
        return refs, notes
    for c in meta.prototype.columns:
        log_col = feature_column(c.name)
        prof = cols.get(c.name)
        if prof is None or log_col not in mon.columns:
            notes.append(f"{c.name}: not in the profile or the log")
            continue
        values = sample[c.name] if sample is not None and c.name in sample.columns else None
        ref = from_profile(log_col, prof, kind=c.kind, values=values, categories=c.categories,
                           lo=c.min, hi=c.max)
        if ref is None:
            notes.append(f"{c.name}: no distribution recorded ({c.kind})")
        else:
            refs.append(ref)
    pred = profile.get("prediction")
    if pred and "prediction" in mon.columns:
        ref = from_profile("prediction", pred)
        if ref is not None:
            refs.append(ref)
    return refs, notes


def references_from_window(mon: Monitor, start: Any, end: Any) -> list[ColumnReference]:
    """References built from logged rows in ``[start, end)`` (at most REFERENCE_ROWS)."""
    t0, t1 = parse_time(start), parse_time(end)
    if t0 is None or t1 is None or t1 <= t0:
        raise InvalidArgument("A reference window needs a start before its end.")
    where = (f"status < 400 AND ts >= make_timestamptz({t0.value // 1000}) "
             f"AND ts < make_timestamptz({t1.value // 1000})")
    n = mon.con.execute(f"SELECT count(*) FROM monitoring_ref WHERE {where}").fetchall()[0][0]
    if n == 0:
        raise InvalidArgument(f"No logged rows between {t0:%Y-%m-%d %H:%M} and {t1:%Y-%m-%d %H:%M} "
                              "UTC to use as the reference; pick a window with predictions.")
    frac = min(1.0, REFERENCE_ROWS / n)
    thr = int(np.ceil(frac * 1_000_003))
    rows = mon.query(f"SELECT * EXCLUDE (proba) FROM monitoring_ref WHERE {where} "
                     f"AND hash(request_id, \"row\") % 1000003 < {thr}")
    refs = []
    specs: list[tuple[str, Column | None]] = [(feature_column(c.name), c)
                                              for c in mon.meta.prototype.columns]
    specs.append(("prediction", None))
    for log_col, col in specs:
        if log_col not in rows.columns:
            continue
        s = rows[log_col]
        if col is not None:
            kind = col.kind
        else:
            kind = "category" if mon.is_classifier else "float"
        if kind == "bool":
            s = s.map({True: "True", False: "False"}, na_action="ignore")
        prof = profile_series(s, kind)
        ref = from_profile(log_col, prof, kind=kind,
                           values=s if prof.get("type") == "numeric" else None,
                           categories=col.categories if col is not None else None,
                           lo=col.min if col is not None else None,
                           hi=col.max if col is not None else None)
        if ref is not None:
            refs.append(ref)
    return refs
