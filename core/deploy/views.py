"""Views of local endpoints for the workbench: tables, recent requests, client code."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.deploy.endpoints import Endpoint, EndpointStatus
from core.deploy.probes import metadata
from core.errors import InvalidArgument
from core.model.bundle import ModelBundle
from core.numbers import readable
from core.serving.docs_page import BASE_URL, examples
from core.store import predlog

# -- recent requests ---------------------------------------------------------------------

RECENT_COLUMNS = ["ts", "request_id", "route", "status", "rows", "prediction", "latency_ms",
                  "error_code"]
# A request of many rows shows its first few predictions.
SHOWN_PREDICTIONS = 3


def _number(value: Any) -> str:
    if isinstance(value, float):
        return readable(value)
    return str(value)


def predictions_text(first: Sequence[Any] | None, rows: int | None = None) -> str:
    """A request's predictions as a short text: ``412,345``, or ``a, b, c … (10 rows)``;
    ``first`` holds at least the first few, ``rows`` says how many the request had."""
    values = [v for v in (first if first is not None else []) if v is not None]
    if not values:
        return ""
    count = max(rows or 0, len(values))
    text = ", ".join(_number(v) for v in values[:SHOWN_PREDICTIONS])
    return text + (f" … ({count:,} rows)" if count > SHOWN_PREDICTIONS else "")


def recent_requests(store: Any, endpoint: Endpoint, n: int = 20) -> pd.DataFrame:
    """The last ``n`` requests logged for the endpoint's version since it started.

    One row per request (newest first): time, request id, route, HTTP status, number
    of input rows, the predictions (the first few of a batch), latency and error code.
    Reads the prediction log, which the server flushes about once a second, so the newest
    requests can take that long to show.
    """
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10_000:
        raise InvalidArgument(f"n must be a whole number between 1 and 10000, got {n!r}.")
    import duckdb  # only the workbench's endpoint view needs it

    started = pd.Timestamp(endpoint.started)
    if started.tzinfo is None:
        started = started.tz_localize("UTC")
    con = duckdb.connect()
    try:
        predlog.log_relation(store, con, endpoint.name,
                             versions=[endpoint.version]).create_view("fx_log")
        frame = con.execute(
            "SELECT min(ts) AS ts, request_id, any_value(route) AS route, "
            "any_value(status) AS status, count(\"row\") AS rows, "
            "list(prediction ORDER BY \"row\") FILTER (WHERE \"row\" < $shown) "
            "AS prediction, "
            "any_value(latency_ms) AS latency_ms, any_value(error_code) AS error_code "
            "FROM fx_log WHERE ts >= $started GROUP BY request_id "
            "ORDER BY ts DESC LIMIT $n",
            {"started": started.to_pydatetime(), "n": n,
             "shown": SHOWN_PREDICTIONS}).df()
        rows = frame["rows"].astype(int).tolist()
    finally:
        con.close()
    # a failed request has no rows, so no list (DuckDB's NULL, NA in pandas)
    frame["prediction"] = [
        predictions_text(list(p) if isinstance(p, (list, tuple, np.ndarray)) else None, r)
        for p, r in zip(frame["prediction"], rows, strict=True)]
    return frame[RECENT_COLUMNS]


# -- for the workbench ---------------------------------------------------------------------

def endpoints_frame(statuses: Sequence[EndpointStatus]) -> pd.DataFrame:
    """One row per endpoint, for a table."""
    rows = [{"model": s.endpoint.name, "version": s.endpoint.version,
             "alias": s.endpoint.alias or "", "url": s.endpoint.url + "/", "status": s.status,
             "requests": s.requests, "errors": s.errors, "workers": s.endpoint.workers,
             "pid": s.endpoint.pid, "started": pd.Timestamp(s.endpoint.started),
             "challenger": _challenger_cell(s.endpoint), "id": s.endpoint.id}
            for s in statuses]
    columns = ["model", "version", "alias", "url", "status", "requests", "errors", "workers",
               "pid", "started", "challenger", "id"]
    return pd.DataFrame(rows, columns=columns)


def _challenger_cell(endpoint: Endpoint) -> str:
    c = endpoint.challenger
    if c is None:
        return ""
    return f"{c.mode} {c.ref}" + ("" if c.share is None else f" ({c.share * 100:.4g}%)")


def history_frame(records: Sequence[Any]) -> pd.DataFrame:
    """Endpoint starts and stops from the board's records, newest first."""
    rows = [{"at": r.at, "event": r.payload.get("event"),
             "version": r.version or r.payload.get("version"),
             "alias": r.payload.get("alias") or "", "port": r.payload.get("port"),
             "machine": r.payload.get("machine"), "user": r.user,
             "challenger": _recorded_challenger(r.payload.get("challenger")),
             "id": r.payload.get("id")}
            for r in reversed(list(records))]
    return pd.DataFrame(rows, columns=["at", "event", "version", "alias", "port", "machine",
                                       "user", "challenger", "id"])


def _recorded_challenger(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    share = value.get("share")
    return (f"{value.get('mode', '')} {value.get('name', '')}@{value.get('version', '')}"
            + (f" ({share * 100:.4g}%)" if isinstance(share, float) else ""))


def client_examples(meta: Any, url: str, *, auth: bool = False) -> dict[str, str]:
    """Copy-paste client code for an endpoint at ``url``: the docs page's own examples
    (curl, Python requests, vetiver, R httr2) with the real address filled in."""
    blocks = examples(ModelBundle(model=None, meta=meta), auth=auth)
    return {title: code.replace(BASE_URL, url.rstrip("/")) for title, code in blocks.items()}


def served_engine(endpoint: Endpoint, timeout: float = 2.0) -> str:
    """Which engine a running endpoint serves with and how its graph was judged, from its
    ``/metadata`` (a server that asks for a token does not say)."""
    return engine_text(*metadata(endpoint, timeout))


def engine_text(doc: dict[str, Any] | None, why: str = "") -> str:
    """The engine line of a ``/metadata`` document (``why``: why there is none)."""
    from core.serving.engine import text

    try:
        return text(doc["user"]["engine"]) if doc is not None else f"not shown: {why}"
    except (KeyError, TypeError, ValueError):
        return "not shown: the server did not say"


def challenger_text(endpoint: Endpoint, doc: dict[str, Any] | None, why: str = "") -> str:
    """What runs next to the endpoint's version, from its record, with the shadow
    challenger's counts from its ``/metadata`` document ``doc`` when it gave them."""
    option = endpoint.challenger
    if option is None:
        return "No challenger runs next to this version."
    text = f"Challenger: {option.text}."
    live = doc.get("challenger") if isinstance(doc, dict) else None
    if option.mode != "shadow":
        return text
    if not isinstance(live, dict):
        return text + (f" Counts not shown: {why}." if why else
                       " Counts not shown: the server does not report a challenger.")
    counts = []
    for key, word in (("scored", "scored"), ("failed", "failed"), ("dropped", "dropped"),
                      ("queued", "waiting")):
        value = live.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            counts.append(f"{value:,} {word}")
    return text + (f" Requests since it started: {', '.join(counts)}." if counts else "")
