"""``python -m core card NAME[@VERSION|:ALIAS] --format html|qmd --out FILE``, or
``--link [--base-url URL]`` to print a new share link to the card."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.cli.store import open_store, store_argument
from core.errors import Conflict, InvalidArgument
from core.store.names import parse_ref

FORMATS = ("html", "qmd")
DEFAULT_BASE_URL = "http://127.0.0.1:8501"


def register(sub: argparse._SubParsersAction) -> None:
    card = sub.add_parser(
        "card", help="write a model card as a self-contained HTML page or a Quarto .qmd",
        description="Write the model card of one version: an HTML page that opens offline, "
                    "or a Quarto document whose chunks rebuild the card from the store.")
    card.add_argument("ref", help="model reference: NAME (latest), NAME@VERSION or NAME:ALIAS")
    card.add_argument("--format", default=None,
                      help="html or qmd (default: from the --out suffix, else html)")
    card.add_argument("--out", default=None, metavar="FILE",
                      help="file to write ('-' for standard output; default "
                           "NAME-VERSION.card.html or .qmd in the current folder)")
    card.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    card.add_argument("--link", action="store_true",
                      help="print a new share link instead: to this version, or with "
                           "NAME:ALIAS to whichever version the alias points to when opened "
                           "(revoke it on the workbench's Card page)")
    card.add_argument("--base-url", default=None, metavar="URL",
                      help=f"the workbench's address as people open it, for --link (default "
                           f"{DEFAULT_BASE_URL})")
    card.add_argument("--segment", metavar="COLUMN", default=None,
                      help="an input column: the results on served predictions with actuals "
                           "are also given per value of it")
    card.add_argument("--endpoint", metavar="URL", default=None,
                      help="the server address the 'How to get started' example calls "
                           "(default http://127.0.0.1:8080)")
    card.add_argument("--production", default=None, metavar="WINDOW",
                      help="add the version's realized and estimated metrics of its last "
                           "windows (hour, day, week, month) from its monitoring (HTML)")
    store_argument(card)
    card.set_defaults(func=run)


def _format(requested: str | None, out: str | None) -> str:
    if requested is not None:
        fmt = requested.strip().lower().lstrip(".")
        if fmt not in FORMATS:
            raise InvalidArgument(f"Unknown card format {requested[:40]!r}; use --format html or "
                                  "--format qmd.")
        suffix = Path(out).suffix.lower().lstrip(".") if out and out != "-" else ""
        if suffix in FORMATS and suffix != fmt:
            raise InvalidArgument(f"--out {out!r} names a .{suffix} file but --format is {fmt}; "
                                  f"change one so they agree.")
        return fmt
    if out and out != "-" and Path(out).suffix.lower() == ".qmd":
        return "qmd"
    return "html"


def _target(out: str | None, default_name: str, force: bool) -> Path | None:
    """Where to write (None for stdout), checked before any work is done."""
    if out == "-":
        return None
    if out is not None and not out.strip():
        raise InvalidArgument("--out is empty; give a file name, or '-' for standard output.")
    path = Path(out) if out is not None else Path(default_name)
    if path.is_dir():
        raise InvalidArgument(f"--out {str(path)!r} is a folder; give a file name inside it, e.g. "
                              f"{str(path / default_name)!r}.")
    if not path.parent.is_dir():
        raise InvalidArgument(f"The folder {str(path.parent)!r} does not exist; create it first or "
                              "choose another --out.")
    if path.exists() and not force:
        raise Conflict(f"{str(path)!r} already exists; pass --force to overwrite it.")
    return path


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _link(args: Any) -> int:
    from core.cards import share

    if args.out is not None or args.format is not None or args.force:
        raise InvalidArgument("--link prints a share link; leave out --out, --format and --force "
                              "(or leave out --link to write the card to a file).")
    base = args.base_url if args.base_url is not None else DEFAULT_BASE_URL
    share.card_url(base)  # a bad address fails before anything is recorded
    _, _, alias = parse_ref(args.ref)
    store = open_store(args)
    name, version = store.resolve(args.ref)
    link = (share.create(store, name, alias=alias) if alias
            else share.create(store, name, version=version))
    print(link.url(base))
    return 0


def _endpoint(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
            or parts.fragment or any(ord(c) < 33 or c in "'\"`\\<>" for c in url.strip()):
        raise InvalidArgument(f"--endpoint must be a plain http(s) address such as "
                              f"https://models.example.com/houses, got {url[:80]!r}.")
    return url.strip().rstrip("/")


def _production(store: Any, name: str, version: str, window: str, last: int = 6) -> Any:
    """The version's realized and estimated metrics of its ``last`` windows with rows,
    measured here and handed to the card (cards never import monitoring)."""
    import pandas as pd

    from core.cards.card import ProductionMetrics
    from core.monitoring.estimate import compare, estimated
    from core.monitoring.monitor import open_ref

    with open_ref(store, f"{name}@{version}") as mon:
        est = estimated(mon, window)
        realized = mon.metrics(window)
    if est.attrs.get("reason"):
        shown = realized[realized["n"] > 0].tail(last)
        rows = [{"window_start": f"{t:%Y-%m-%d %H:%M}", "metric": m, "realized": v,
                 "estimated": None, "lower": None, "upper": None}
                for t, row in zip(shown["window_start"], shown.to_dict("records"))
                for m, v in row.items() if m not in ("window_start", "window_end", "n",
                "n_actual", "n_proba", "note") and v is not None and pd.notna(v)]
        return ProductionMetrics(summary=f"realized metrics per {window}; estimates: "
                                         f"{est.attrs['reason']}", rows=rows)
    table = compare(realized, est)
    starts = sorted(est.loc[est["n"] > 0, "window_start"])[-last:]
    table = table[table["window_start"].isin(starts)]

    def num(v: Any) -> float | None:
        return float(v) if v is not None and pd.notna(v) else None

    rows = [{"window_start": f"{r['window_start']:%Y-%m-%d %H:%M}", "metric": r["metric"],
             "realized": num(r["realized"]), "estimated": num(r["estimated"]),
             "lower": num(r["lower"]), "upper": num(r["upper"])}
            for r in table.to_dict("records")]
    return ProductionMetrics(summary=f"per {window}, realized where actuals are in and "
                                     f"estimated without them ({est.attrs['reference']}; "
                                     f"{est.attrs['calibration']})", rows=rows)


def run(args: Any) -> int:
    from core.cards import card as cards
    from core.monitoring import evaluation

    if args.link:
        return _link(args)
    if args.base_url is not None:
        raise InvalidArgument("--base-url goes with --link; add --link to print a share link.")
    _, _, alias = parse_ref(args.ref)  # a malformed reference fails before the store opens
    fmt = _format(args.format, args.out)
    store = open_store(args)
    name, version = store.resolve(args.ref)
    target = _target(args.out, f"{name}-{version}.card.{fmt}", args.force)
    endpoint = _endpoint(args.endpoint)
    results = evaluation.evaluate(store, name, version, segment=args.segment)
    production = (_production(store, name, version, args.production)
                  if args.production else None)
    card = cards.card_data(store, name, version, evaluations=results, segment=args.segment,
                           endpoint=endpoint, production=production)
    text = cards.render_html(card) if fmt == "html" else cards.render_qmd(card)
    if target is None:
        sys.stdout.write(text)
        return 0
    _write_atomically(target, text)
    via = f" (alias {alias})" if alias else ""
    print(f"Wrote the {fmt} card of {name}@{version}{via} to {target}")
    return 0
