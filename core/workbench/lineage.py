"""Tables of a version's recorded parameters and lineage, for the Models page.

Everything comes from the stored metadata (:mod:`core.model.params`); no model file is
loaded to show them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from core.model.bundle import BundleMeta
from core.model.compare import Change
from core.model.params import lineage_summary, value_text


def lineage_rows(meta: BundleMeta) -> list[tuple[str, str]]:
    """(field, value) rows: training data and code, as recorded or "not recorded"."""
    return lineage_summary(meta.lineage, meta.metrics_data)


def params_frame(meta: BundleMeta) -> pd.DataFrame | None:
    """One row per recorded parameter (key, value); None when none were recorded."""
    params = (meta.lineage or {}).get("params")
    if not isinstance(params, dict):
        return None
    return pd.DataFrame([(k, value_text(v)) for k, v in params.items()],
                        columns=["parameter", "value"])


def steps_frame(meta: BundleMeta) -> pd.DataFrame | None:
    """The nested estimators (pipeline steps, ColumnTransformer branches) and classes."""
    found = (meta.lineage or {}).get("steps")
    if not isinstance(found, list) or not found:
        return None
    return pd.DataFrame([(str(s.get("path", "")), str(s.get("class", ""))) for s in found
                         if isinstance(s, dict)], columns=["step", "class"])


def params_diff_frame(changes: Sequence[Change], old: str, new: str) -> pd.DataFrame:
    """A compare table of parameter changes, one column per version."""
    return pd.DataFrame([{"parameter": c.field, old: str(c.old), new: str(c.new)}
                         for c in changes], columns=["parameter", old, new])
