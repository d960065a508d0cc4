"""Every path Fixative keeps on a board besides the pins versions, one function each.

``store`` is anything with ``path(*parts) -> str`` (a :class:`core.store.board.Board` or a
:class:`core.store.versionstore.VersionStore`)::

    <board>/.fixative/index.duckdb                              the index (derived data)
    <board>/.fixative/aliases/<model>/<event>.json              alias moves
    <board>/.fixative/records/<kind>/<model>/<event>.json       card texts, custom metrics...
    <board>/.fixative/logs/<model>/<version>/<day>/<seg>.parquet     prediction log
    <board>/.fixative/scored/<model>/<version>/<day>/<seg>.parquet   data scored in the workbench
    <board>/.fixative/actuals/<model>/by-<on>/<stamp>-<id>.parquet   uploaded actuals
    <board>/.fixative/actuals/<model>/labelled/...                   the materialised join
    <board>/.fixative/endpoints/                                     local endpoints' registry
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

SYSTEM_DIR = ".fixative"
# A version folder's pins metadata: pins and vetiver read it, and it is written last.
PINS_META = "data.txt"
# A version's compiled graph and what compiling it found (see core.store.compile); a
# version compiled after it was written has the report's sha256 beside it.
ONNX_FILE = "model.onnx"
COMPILED_FILE = "compiled.json"
COMPILED_HASH_FILE = "compiled.json.sha256"
INDEX_FILE = "index.duckdb"
ALIAS_EVENTS = "aliases"
RECORD_EVENTS = "records"
LABELS_FOLDER = "labelled"


def index_file(store: Any) -> str:
    return store.path(SYSTEM_DIR, INDEX_FILE)


def alias_events(name: str) -> tuple[str, str]:
    """The event folder of model ``name``'s alias moves, relative to the system folder."""
    return (ALIAS_EVENTS, name)


def record_events(kind: str, name: str) -> tuple[str, str, str]:
    """The event folder of model ``name``'s records of ``kind``, relative to the system folder."""
    return (RECORD_EVENTS, kind, name)


def log_dir(store: Any, name: str, version: str | None = None, day: str | None = None) -> str:
    """The prediction log of model ``name`` (of one version, of one UTC day)."""
    return store.path(SYSTEM_DIR, "logs", name, *([version] if version else []),
                      *([day] if version and day else []))


def scored_dir(store: Any, name: str, version: str | None = None) -> str:
    """Data uploaded in the workbench and scored there, in the log's format."""
    return store.path(SYSTEM_DIR, "scored", name, *([version] if version else []))


def actuals_dir(store: Any, name: str, on: str | None = None) -> str:
    """Actuals of model ``name`` (those matched on column ``on``)."""
    return store.path(SYSTEM_DIR, "actuals", name, *([on_dir(on)] if on else []))


def labels_dir(store: Any, name: str) -> str:
    # Not named "by-...", so an actuals folder listing never takes it for a folder of actuals.
    return f"{actuals_dir(store, name)}/{LABELS_FOLDER}"


def endpoints_dir(store: Any) -> str:
    return store.path(SYSTEM_DIR, "endpoints")


def on_dir(on: str) -> str:
    """The folder name of actuals matched on column ``on`` (any text, escaped)."""
    return "by-" + re.sub(r"[^A-Za-z0-9_.-]", lambda m: f"%{ord(m.group()):02X}", on)


def on_from_dir(folder: str) -> str:
    """The column of an actuals folder named by :func:`on_dir`."""
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), folder[3:])


def relative_to_system(store: Any, path: str) -> str:
    """``path`` relative to the board's system folder (unchanged if outside it)."""
    base = store.path(SYSTEM_DIR).rstrip("/") + "/"
    return path[len(base):] if path.startswith(base) else path


def segment_files(store: Any, folder: str, versions: Sequence[str] | None = None) -> list[str]:
    """The Parquet segments in ``folder/<version>/<day>/`` (of ``versions``, or all), sorted;
    hidden files (a writer's temporary names) are not segments."""
    patterns = ([f"{folder}/{v}/*/*.parquet" for v in versions] if versions
                else [f"{folder}/*/*/*.parquet"])
    found: set[str] = set()
    for pattern in patterns:
        found.update(store.fs.glob(pattern))
    return sorted(f for f in found if not f.rsplit("/", 1)[-1].startswith("."))
