"""What commands print: aligned tables for people, JSON for programs.

Kept free of the store's modules: :mod:`core.cli.quick` prints a listing kept on disk
through the same functions the full commands use, so both print the same bytes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from core.times import iso

MODEL_COLUMNS = ("name", "latest", "n_versions", "aliases", "task", "model_class", "updated")
EMPTY_STORE = ("The store is empty. Add a model with: python -m core write MODEL_FILE "
               "--name NAME [--sample CSV]")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Plain aligned columns, for people; ``--json`` is the form for programs."""
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(cell, value))
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("\n", " ")


def print_models(rows: Sequence[dict[str, Any]], as_json: bool) -> None:
    """The models listing: ``rows`` are each model's fields (as ``vars(ModelInfo)``)."""
    if as_json:  # as ModelInfo.to_dict gives them: times as ISO text in UTC
        print_json([{k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()}
                    for row in rows])
    elif not rows:
        print(EMPTY_STORE, file=sys.stderr)
    else:
        print_table(rows, MODEL_COLUMNS)
