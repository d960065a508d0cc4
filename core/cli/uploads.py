"""``python -m core score`` and ``actuals``: new data and ground truth for monitoring.

    python -m core score NAME[@VERSION|:ALIAS] FILE --time COLUMN [--actual COLUMN]
    python -m core actuals NAME FILE --key COLUMN --actual COLUMN [--on COLUMN]
        [--row COLUMN] [--retract]

Both do what the workbench's Monitor page does with an upload (the same functions,
:func:`core.monitoring.actuals.score_upload` and
:func:`core.monitoring.actuals.save_actuals`): FILE is CSV or Parquet. Exit code 0 when
the rows are kept, 1 with a one-line error (nothing kept) otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli.output import visible
from core.cli.store import open_store, read_input_file, store_argument, trust_argument
from core.errors import InvalidArgument

if TYPE_CHECKING:
    import pandas as pd


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score a CSV/Parquet file of new data with a stored "
                                     "version and keep it for monitoring")
    p.add_argument("ref", metavar="NAME[@VERSION|:ALIAS]")
    p.add_argument("file", metavar="FILE", help="CSV or Parquet: the model's inputs and a time "
                                                "column")
    p.add_argument("--time", required=True, metavar="COLUMN",
                   help="the column with each row's time (UTC unless it has an offset)")
    p.add_argument("--actual", default=None, metavar="COLUMN",
                   help="the column with the true value, kept as actuals")
    trust_argument(p, "a name in the model file to allow although it is not on the safe list "
                      "(only for files you trust)")
    store_argument(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("actuals", help="upload true values for logged or scored predictions")
    p.add_argument("name", metavar="NAME")
    p.add_argument("file", metavar="FILE", help="CSV or Parquet with a key and the true value")
    p.add_argument("--key", required=True, metavar="COLUMN",
                   help="the file's column that identifies the prediction")
    p.add_argument("--actual", required=True, metavar="COLUMN",
                   help="the file's column with the true value (an empty value retracts the "
                        "actual stored earlier for its key)")
    p.add_argument("--on", default="request_id", metavar="COLUMN",
                   help="the logged column the key matches: request_id (default) or one of the "
                        "model's inputs")
    p.add_argument("--row", default=None, metavar="COLUMN",
                   help="the file's column with the row within a batched request; part of the "
                        "key when given")
    p.add_argument("--retract", action="store_true",
                   help="accept a file whose actuals are all empty: it retracts them")
    store_argument(p)
    p.set_defaults(func=cmd_actuals)


def _table(path: str, what: str) -> pd.DataFrame:
    from core.monitoring.actuals import read_table

    return read_table(read_input_file(path, what), Path(path).name, what)


def _check_columns(frame: pd.DataFrame, wanted: dict[str, str | None]) -> None:
    """Each named column is in the file (checked before the model is loaded)."""
    columns = [str(c) for c in frame.columns]
    for flag, col in wanted.items():
        if col is not None and col not in columns:
            shown = ", ".join(columns[:30]) + (" ..." if len(columns) > 30 else "")
            raise InvalidArgument(f"{flag} {col!r} is not a column of the file; its columns are "
                                  f"{shown}.")


def cmd_score(args: argparse.Namespace) -> int:
    from core.monitoring.actuals import score_upload

    store = open_store(args)
    name, version = store.resolve(str(args.ref or "").strip() or "?")
    frame = _table(args.file, "data file")
    _check_columns(frame, {"--time": args.time, "--actual": args.actual})
    bundle = store.read(name, version, trusted=args.trust)
    done = score_upload(store, bundle, frame, time_column=args.time,
                        actual_column=args.actual)
    print(f"Scored {done.rows:,} rows with {name}@{version} in {done.seconds:.1f} s; they count "
          f"in monitoring (python -m core monitor {name}).")
    for warning in done.warnings:
        print(f"note: {visible(_short(warning))}")
    if done.actuals is not None:
        print(visible(done.actuals.summary()))
    return 0


def cmd_actuals(args: argparse.Namespace) -> int:
    from core.monitoring.actuals import save_actuals

    store = open_store(args)
    name, version = store.resolve(str(args.name or "").strip() or "?")
    meta = store.meta(name, version)
    frame = _table(args.file, "actuals file")
    _check_columns(frame, {"--key": args.key, "--actual": args.actual, "--row": args.row})
    logged = ["request_id"] + [c.name for c in meta.prototype.columns]
    saved = save_actuals(store, name, frame, key_column=args.key, actual_column=args.actual,
                         on=args.on, row_column=args.row, classes=meta.classes,
                         log_columns=logged, retract=args.retract)
    print(visible(saved.summary()))
    return 0


def _short(text: str, limit: int = 500) -> str:
    """A note cut to ``limit`` characters: a value can be megabytes long."""
    return text if len(text) <= limit else text[:limit] + " …"
