"""``python -m core monitor``: metrics, drift and status of a model from the command line.

    python -m core monitor NAME[@VERSION|:ALIAS] [--window week] [--since 30d]
        [--until 2025-06-01] [--source all|log|upload] [--format table|csv|json]
        [--what all|metrics|estimated|drift|traffic|status|comparison]
        [--challenger NAME@VERSION]
    python -m core monitor-status [NAME] [--format table|csv|json]

Exit code 0 whatever the status (it is printed); 1 with a one-line error on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import pandas as pd

from core.cli.output import escape_formula, exact_number, plain_number, table_text
from core.cli.store import open_store, store_argument
from core.errors import InvalidArgument
from core.monitoring.monitor import SOURCES

FORMATS = ("table", "csv", "json")
WHAT = ("all", "metrics", "estimated", "drift", "traffic", "status", "comparison")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("monitor", help="metrics, drift and status of a model per time window")
    p.add_argument("ref", metavar="NAME[@VERSION|:ALIAS]")
    p.add_argument("--window", default=None,
                   help="hour, day, week, month or a period such as 6h (default: the model's "
                        "saved setting, else week)")
    p.add_argument("--since", default=None, help="start (2025-03-01, 2025-03-01T12:00Z, 30d)")
    p.add_argument("--until", default=None, help="end, exclusive (same forms as --since)")
    p.add_argument("--reference", default=None, metavar="FROM..UNTIL",
                   help="measure drift against the rows of this period instead of the "
                        "training sample, e.g. 2025-03-01..2025-03-08; with --what estimated "
                        "its rows with actuals are also the estimation's reference")
    p.add_argument("--source", default="all", choices=SOURCES,
                   help="log: served predictions; upload: data scored with 'score' or in the "
                        "workbench; all (default, as the workbench's Monitor page): both")
    p.add_argument("--format", default="table", choices=FORMATS)
    p.add_argument("--what", default="all", choices=WHAT)
    p.add_argument("--challenger", default=None, metavar="NAME@VERSION",
                   help="with --what comparison: the version to compare with (default: the "
                        "one that served as a challenger most recently)")
    store_argument(p)
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("promote", help="move an alias to its challenger, with the comparison "
                                       "as evidence")
    p.add_argument("name", metavar="NAME")
    p.add_argument("alias", metavar="ALIAS")
    p.add_argument("--challenger", default=None, metavar="VERSION",
                   help="the version to promote (default: the one that served as the "
                        "alias's challenger most recently)")
    p.add_argument("--force", action="store_true",
                   help="promote even when the comparison does not say 'challenger better' "
                        "(the record says it was forced)")
    p.add_argument("--window", default=None, help="comparison windows (default day)")
    p.add_argument("--since", default=None, help="compare from (2025-03-01, 30d)")
    p.add_argument("--until", default=None, help="compare until, exclusive")
    store_argument(p)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("promotions", help="the alias moves that were promotions, with evidence")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--format", default="table", choices=("table", "json"))
    store_argument(p)
    p.set_defaults(func=cmd_promotions)

    p = sub.add_parser("monitor-status", help="at a glance: ok / warning / alert of every "
                                              "aliased model")
    p.add_argument("name", nargs="?", default=None, metavar="NAME")
    p.add_argument("--format", default="table", choices=FORMATS)
    store_argument(p)
    p.set_defaults(func=cmd_status)


def _json_ready(frame: pd.DataFrame) -> list[dict[Hashable, Any]]:
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].map(lambda t: t.isoformat() if pd.notna(t) else None)
    out = out.astype(object).where(out.notna(), None)
    records = out.to_dict("records")
    for r in records:
        for k, v in r.items():
            if isinstance(v, float) and not np.isfinite(v):
                r[k] = None
            elif isinstance(v, np.generic):
                r[k] = v.item()
    return records


def _cells(frame: pd.DataFrame, number: Callable[[float], str],
           text: Callable[[str], str], when: str) -> pd.DataFrame:
    """``frame`` as strings: numbers by ``number``, text by ``text``, times by ``when``."""
    out = pd.DataFrame(index=frame.index)
    for i, col in enumerate(frame.columns):
        s = frame.iloc[:, i]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_integer_dtype(s):
            cells = s.astype(str)
        elif pd.api.types.is_float_dtype(s):
            cells = s.map(lambda v: number(float(v)))
        elif pd.api.types.is_datetime64_any_dtype(s):
            cells = s.dt.strftime(when).fillna("")
        else:
            cells = s.map(lambda v: _cell(v, number, text, when))
        out[text(str(col))] = cells.astype(object)
    return out


def _cell(v: Any, number: Callable[[float], str], text: Callable[[str], str],
          when: str) -> str:
    if v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return number(float(v))
    if isinstance(v, pd.Timestamp):
        return v.strftime(when)
    return text(str(v))


def _print_frame(frame: pd.DataFrame, fmt: str, title: str | None = None) -> None:
    """CSV (exact numbers, formulas escaped) or an aligned table (plain numbers)."""
    if fmt == "csv":
        _cells(frame, exact_number, escape_formula, "%Y-%m-%dT%H:%M:%SZ").to_csv(
            sys.stdout, index=False)
        return
    if title:
        print(f"== {title} ==")
    if frame.empty:
        print("(nothing)")
    else:
        shown = _cells(frame, plain_number, table_text, "%Y-%m-%d %H:%M")
        with pd.option_context("display.max_rows", 500, "display.max_columns", 50,
                               "display.width", 200):
            print(shown.to_string(index=False))
    print()


def reference_period(text: str | None) -> tuple[str, str] | None:
    """``FROM..UNTIL`` as the (start, end) of a drift reference; None when not given."""
    if text is None or not text.strip():
        return None
    start, sep, end = text.partition("..")
    if not sep or not start.strip() or not end.strip():
        raise InvalidArgument(f"--reference takes FROM..UNTIL, e.g. 2025-03-01..2025-03-08; got "
                              f"{text[:60]!r}.")
    return start.strip(), end.strip()


def cmd_monitor(args: argparse.Namespace) -> int:
    from core.monitoring.report import build

    if args.what == "comparison":
        return _comparison(args)
    if args.challenger is not None:
        raise InvalidArgument("--challenger goes with --what comparison.")
    if args.format == "csv" and args.what in ("all", "status"):
        raise InvalidArgument("CSV holds one table: add --what metrics, --what drift or "
                              "--what traffic (or use --format json for everything).")
    store = open_store(args)
    report = build(store, args.ref, window=args.window, since=args.since, until=args.until,
                   source=args.source, reference=reference_period(args.reference),
                   estimate=args.what == "estimated")
    est = report.estimated
    head = report.headline
    latest = report.marks[report.marks["window_start"].isin(head.windows)]
    problems = latest[latest["status"].isin(["warning", "alert"])]
    if args.format == "json":
        out: dict[str, Any] = {"model": report.name, "version": report.version,
                               "window": report.window, "status": head.status,
                               "status_metric": head.metric or None,
                               "status_window": (head.window_start.isoformat()
                                                 if head.window_start is not None else None),
                               "status_message": head.message, "notes": report.notes}
        if args.what in ("all", "metrics"):
            out["metrics"] = _json_ready(report.table())
        if args.what == "estimated" or (args.what == "all" and est.attrs):
            out["estimated"] = _json_ready(est)
            out["estimation"] = {k: est.attrs.get(k, "") for k in
                                 ("method", "reason", "calibration", "reference")}
        if args.what in ("all", "drift"):
            out["drift"] = _json_ready(report.drift)
        if args.what in ("all", "traffic"):
            out["traffic"] = _json_ready(report.traffic)
        if args.what in ("all", "status"):
            out["marks"] = _json_ready(problems)
        print(json.dumps(out, indent=2))
        return 0
    if args.format == "csv":
        frame = {"metrics": report.table(), "drift": report.drift, "estimated": est,
                 "traffic": report.traffic}[args.what]
        _print_frame(frame, "csv")
        return 0
    status = head.status.upper() if head.status != "none" else "none yet"
    print(f"{report.name}@{report.version} · {report.window} windows · status: {status}")
    print(f"  {head.message}")
    if report.metrics.empty and not report.failed:
        print("No predictions logged in this range. Deploy the model (python -m core serve) or "
              "score new data (python -m core score NAME FILE --time COLUMN).")
        return 0
    print()
    if args.what in ("all", "metrics"):
        _print_frame(report.table(), "table", "metrics")
    if args.what == "estimated" or (args.what == "all" and est.attrs):
        _print_estimated(est)
    if args.what in ("all", "drift"):
        _print_frame(report.drift_summary(), "table",
                     "drift (columns with evidence after Benjamini-Hochberg and an alert-level "
                     "size)")
    if args.what in ("all", "traffic"):
        _print_frame(report.traffic, "table", "traffic")
    if args.what in ("all", "status"):
        _print_frame(problems[["window_start", "metric", "value", "n", "warning", "alert",
                               "status"]], "table",
                     "warnings and alerts in the windows the status is judged on")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def _comparison(args: argparse.Namespace) -> int:
    from core.monitoring.compare import comparison_for

    c = comparison_for(open_store(args), args.ref, args.challenger, window=args.window,
                       since=args.since, until=args.until)
    if args.format == "json":
        print(json.dumps({**c.summary(), "windows": _json_ready(c.windows)}, indent=2))
        return 0
    if args.format == "csv":
        _print_frame(c.windows, "csv")
        return 0
    print(f"{c.challenger} (challenger) against {c.champion} (champion) · {c.metric}")
    print(f"verdict: {c.verdict}")
    print(f"  {c.reason}")
    print()
    _print_frame(c.windows, "table", f"per window: {c.metric} of each on the same rows, "
                                     "challenger minus champion with its 95% interval")
    lat = ", ".join(f"{k.replace('_ms', '')} {plain_number(v)} ms" for k, v in c.latency.items()
                    if v is not None and np.isfinite(v))
    print(f"latency: {lat or 'none logged'}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from core.monitoring.promote import promote

    p = promote(open_store(args), args.name, args.alias, args.challenger, force=args.force,
                window=args.window, since=args.since, until=args.until)
    ev = p.evidence
    print(f"{p.name}:{p.alias} now points at {p.to_version} (was {p.from_version})"
          f"{' (forced)' if p.forced else ''}.")
    print(f"evidence: {ev.get('verdict')}. {table_text(str(ev.get('reason') or ''))}")
    return 0


def cmd_promotions(args: argparse.Namespace) -> int:
    from core.monitoring.promote import promotions

    found = promotions(open_store(args), args.name)
    if args.format == "json":
        print(json.dumps([{**p.__dict__, "at": p.at.isoformat()} for p in found], indent=2))
        return 0
    if not found:
        print(f"No promotions of '{args.name}' yet. Run a challenger (python -m core serve "
              f"{args.name}:ALIAS --shadow {args.name}@VERSION), then promote it "
              f"(python -m core promote {args.name} ALIAS).")
        return 0
    for p in found:
        print(f"{p.at:%Y-%m-%d %H:%M} {p.alias}: {p.from_version} -> {p.to_version} by "
              f"{table_text(p.user)}{' (forced)' if p.forced else ''}: "
              f"{p.evidence.get('verdict')} ({table_text(str(p.evidence.get('reason') or ''))})")
    return 0


def _print_estimated(est: pd.DataFrame) -> None:
    if est.attrs.get("reason"):
        print("== estimated metrics (without actuals) ==")
        print(est.attrs["reason"])
        print()
        return
    _print_frame(est, "table", "estimated metrics (without actuals), with their bands")
    for key in ("calibration", "reference"):
        if est.attrs.get(key):
            print(f"{key}: {est.attrs[key]}")
    print()


def cmd_status(args: argparse.Namespace) -> int:
    from core.monitoring.thresholds import status, status_frame
    from core.serving.heartbeat import served_versions

    store = open_store(args)
    # aliased versions, and the versions endpoints serve without an alias
    frame = status_frame(status(store, args.name, also=served_versions(store)))
    if args.format == "json":
        print(json.dumps(_json_ready(frame), indent=2))
    elif frame.empty:
        print("Nothing deployed: no alias points at a version and no endpoint is serving. "
              "Point an alias at a version (python -m core alias ...) or start an endpoint "
              "(python -m core endpoints start ...) to watch it here.")
    else:
        _print_frame(frame, args.format)
    return 0
