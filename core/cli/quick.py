"""``python -m core list`` answered from the listing kept on disk, before the store loads.

The full command imports the store (board, index, staging, version store and what they
use) to learn, in most runs, that the board has not changed since the models listing
was kept beside the index. This path does only that: it computes the board's change
marker (:mod:`core.store.marker`), reads the listing kept under it
(:mod:`core.store.snapshot`, JSON checked field by field) and prints it through the
functions the full command prints with (:mod:`core.cli.output`).

Anything else answers None and the full command runs: another spelling of the
arguments than ``list [--json] [--store URL]``, a board behind a URL, a missing
folder, a listing that is missing, stale, damaged or not exactly a listing, an error
while reading. So this path can make ``list`` faster, never different.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from core.cli.output import print_models
from core.store.marker import local_marker
from core.store.paths import INDEX_FILE, SYSTEM_DIR, listings_dir, local_root
from core.store.snapshot import Snapshots


def list_options(argv: Sequence[str]) -> tuple[str | None, bool] | None:
    """(``--store`` value, ``--json``) of ``list [--json] [--store URL]`` in any order;
    None for any other command line (argparse then reads it, and reports what is wrong)."""
    if not argv or argv[0] != "list":
        return None
    store, as_json = None, False
    rest = list(argv[1:])
    while rest:
        word = rest.pop(0)
        if word == "--json":
            as_json = True
        elif word == "--store" and rest and not rest[0].startswith("-"):
            store = rest.pop(0)
        elif word.startswith("--store="):
            store = word[len("--store="):]
        else:
            return None
    if store is not None and not store.strip():
        return None
    return store, as_json


def answer(argv: Sequence[str]) -> int | None:
    """Print the models listing kept on disk and return the exit status, or None when
    the full command must answer."""
    options = list_options(argv)
    if options is None:
        return None
    location, as_json = options
    try:
        root = local_root(location)
        if root is None or not os.path.isdir(root):
            return None
        marker = local_marker(root)
        index = os.path.join(root, SYSTEM_DIR, INDEX_FILE)
        rows = Snapshots(listings_dir(index)).rows(("models",), marker)
    except (OSError, ValueError):
        return None
    if rows is None:
        return None
    print_models(rows, as_json)
    return 0
