"""Helpers for the monitoring tests: real prediction-log segments and stored versions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from core import bundle
from core.store.predlog import build_table, write_segment


def store_version(store: Any, model: Any, data: pd.DataFrame, target: str, name: str) -> Any:
    """Write ``model`` with ``data`` (minus ``target``) as the reference sample."""
    b = bundle(model, data.drop(columns=[target]), name=name)
    store.write(b)
    return b


def write_log(store: Any, b: Any, frame: pd.DataFrame, ts: Sequence[Any], *,
              request_size: int = 1, failed: Sequence[int] = (), seed: int = 0,
              proba: bool = True) -> pd.DataFrame:
    """Log ``frame`` (features) as served by bundle ``b``: rows grouped into requests of
    ``request_size`` rows at time ``ts[i]`` of each request's first row. Requests whose
    index is in ``failed`` are logged as failures. Returns the logged rows with their
    ``source_row`` (index in ``frame``), ``request_id``, ``row``, ``ts``, ``prediction``
    (and ``proba``) columns."""
    rng = np.random.default_rng(seed)
    ts = pd.to_datetime(pd.Series(list(ts)), utc=True).dt.floor("us")
    meta = b.meta
    classes = meta.classes
    entries, out = [], []
    n = len(frame)
    for r, lo in enumerate(range(0, n, request_size)):
        part = frame.iloc[lo:lo + request_size].reset_index(drop=True)
        at = ts.iloc[lo].to_pydatetime()
        rid = uuid.uuid4().hex
        latency = float(rng.uniform(1, 50))
        if r in failed:
            entries.append((at, rid, "predict", 422, latency, None, None, None, "invalid_input"))
            continue
        pred = np.asarray(b.model.predict(part))
        prob = (np.asarray(b.model.predict_proba(part)) if proba and meta.has_proba
                and classes is not None else None)
        entries.append((at, rid, "predict", 200, latency, part, pred, prob, None))
        logged = part.copy()
        logged["source_row"] = frame.index[lo:lo + request_size]
        logged["request_id"] = rid
        logged["row"] = np.arange(len(part))
        logged["ts"] = ts.iloc[lo]
        logged["latency_ms"] = latency
        logged["prediction"] = [str(v) for v in pred] if classes is not None else pred
        if prob is not None:
            logged["proba"] = list(prob)
        out.append(logged)
    kinds = {c.name: c.kind for c in meta.prototype.columns}
    by_day: dict[str, list] = {}
    for e in entries:
        by_day.setdefault(pd.Timestamp(e[0]).strftime("%Y-%m-%d"), []).append(e)
    for day, group in by_day.items():
        table = build_table(group, meta.name, b.version, classes, kinds)
        write_segment(store, meta.name, b.version, day, f"test-{uuid.uuid4().hex[:8]}-000001",
                      table)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


MONITOR_PAGE = str(__import__("pathlib").Path(__file__).resolve().parents[1]
                   / "pages" / "monitor.py")


def monitor_page(tab: str | None = None, **params: str) -> Any:
    """The Monitor page under AppTest for ``params`` (query parameters), run with ``tab``
    open when given (only the open tab runs)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(MONITOR_PAGE, default_timeout=120)
    at.query_params.update(params)
    if tab is not None:
        at.session_state["mon_tab"] = tab
    at.run()
    assert not at.exception, at.exception
    return at


def page_texts(at: Any) -> str:
    """Every text element a page shows, one per line."""
    parts = []
    for kind in ("markdown", "info", "success", "caption", "error", "warning"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)
