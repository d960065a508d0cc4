"""Where a board is, and every path Fixative keeps on it besides the pins versions, one
function each.

``store`` is anything with ``path(*parts) -> str`` (a :class:`core.store.board.Board` or a
:class:`core.store.versionstore.VersionStore`)::

    <board>/.fixative/index.duckdb                              the index (derived data)
    <board>/.fixative/index.duckdb.listings/                    listings kept on disk (same)
    <board>/.fixative/generation                                the change marker's token
    <board>/.fixative/aliases/<model>/<event>.json              alias moves
    <board>/.fixative/records/<kind>/<model>/<event>.json       card texts, custom metrics...
    <board>/.fixative/logs/<model>/<version>/<day>/<seg>.parquet     prediction log
    <board>/.fixative/scored/<model>/<version>/<day>/<seg>.parquet   data scored in the workbench
    <board>/.fixative/actuals/<model>/by-<on>/<stamp>-<id>.parquet   uploaded actuals
    <board>/.fixative/actuals/<model>/labelled/...                   the materialised join
    <board>/.fixative/endpoints/                                     local endpoints' registry
    <board>/.fixative/secrets/share.key                  the key signing share links
    <board>/.fixative/replicas/<replica>.json                        serving processes' heartbeats
    <board>/.fixative/watch/<model>/<version>/<tick>.claim|.json     scheduled evaluations
    <board>/.fixative/watch/<model>/<version>/latest.json            the last one, for a restart
    <board>/.fixative/watch-dead/<model>/<stamp>-<id>.json           undelivered notifications
    <board>/.fixative/watcher.json                                   a watcher started here
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from core import settings

SYSTEM_DIR = ".fixative"
# A version folder's pins metadata: pins and vetiver read it, and it is written last.
PINS_META = "data.txt"
# A version's compiled graph and what compiling it found (see core.store.compile); a
# version compiled after it was written has the report's sha256 beside it.
ONNX_FILE = "model.onnx"
COMPILED_FILE = "compiled.json"
COMPILED_HASH_FILE = "compiled.json.sha256"
INDEX_FILE = "index.duckdb"
# Rewritten by every Fixative change to versions, aliases or records (see core.store.marker).
GENERATION_FILE = "generation"
ALIAS_EVENTS = "aliases"
RECORD_EVENTS = "records"
LABELS_FOLDER = "labelled"
# Suffix of an actuals folder whose keys include the row within a request.
ROW_SUFFIX = "+row"


def store_location(location: str | os.PathLike[str] | None = None) -> str:
    """The board a store opens: ``location``, else $FIXATIVE_STORE, else ./fixative-store
    (a ``file://`` URL as its plain path)."""
    text = os.fspath(location) if location is not None else ""
    text = text or settings.store_location()
    return text[len("file://"):] if text.startswith("file://") else text


def local_root(location: str | os.PathLike[str] | None = None) -> str | None:
    """The absolute folder of a local board; None for a URL."""
    text = store_location(location)
    return None if is_url(text) else os.path.abspath(os.path.expanduser(text))


def is_url(location: str) -> bool:
    """Whether a store location (as :func:`store_location` returns it) names an fsspec URL
    rather than a local folder."""
    return "://" in location


def index_file(store: Any) -> str:
    return store.path(SYSTEM_DIR, INDEX_FILE)


def listings_dir(index_path: str) -> str:
    """The folder of listings kept on disk beside an index (see core.store.snapshot)."""
    return index_path + ".listings"


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


def actuals_dir(store: Any, name: str, on: str | None = None, by_row: bool = False) -> str:
    """Actuals of model ``name`` (those matched on column ``on``, and on the row within
    a request when ``by_row``)."""
    return store.path(SYSTEM_DIR, "actuals", name, *([on_dir(on, by_row)] if on else []))


def labels_dir(store: Any, name: str) -> str:
    # Not named "by-...", so an actuals folder listing never takes it for a folder of actuals.
    return f"{actuals_dir(store, name)}/{LABELS_FOLDER}"


def share_secret_file(store: Any) -> str:
    """The random key that signs share links and sign-in cookies (never shown)."""
    return store.path(SYSTEM_DIR, "secrets", "share.key")


def endpoints_dir(store: Any) -> str:
    return store.path(SYSTEM_DIR, "endpoints")


def on_dir(on: str, by_row: bool = False) -> str:
    """The folder name of actuals matched on column ``on`` (any text, its UTF-8 bytes
    outside ``A-Za-z0-9_.-`` percent-escaped), with
    ``+row`` when they also match the row (never for request_id, always matched with
    its row). The escaping never yields ``+``, so the suffix cannot clash with a name."""
    escaped = re.sub(r"[^A-Za-z0-9_.-]",
                     lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8")), on)
    return f"by-{escaped}{ROW_SUFFIX if by_row and on != 'request_id' else ''}"


def replicas_dir(store: Any) -> str:
    """Where every serving process keeps its heartbeat record (one small file each)."""
    return store.path(SYSTEM_DIR, "replicas")


def replica_file(store: Any, replica_id: str) -> str:
    return f"{replicas_dir(store)}/{replica_id}.json"


def watch_dir(store: Any, name: str, version: str | None = None) -> str:
    """The scheduled evaluations of model ``name`` (of one version)."""
    return store.path(SYSTEM_DIR, "watch", name, *([version] if version else []))


def dead_letter_dir(store: Any, name: str) -> str:
    """Notifications about model ``name`` that could not be delivered."""
    return store.path(SYSTEM_DIR, "watch-dead", name)


def watcher_file(store: Any) -> str:
    """The record (pid, start) of a watcher process the workbench started for this board."""
    return store.path(SYSTEM_DIR, "watcher.json")


def on_from_dir(folder: str) -> str:
    """The column of an actuals folder named by :func:`on_dir`."""
    base = folder.removesuffix(ROW_SUFFIX)
    return unquote(base[3:], errors="replace")


def row_keyed_dir(folder: str) -> bool:
    """Whether the actuals of a folder named by :func:`on_dir` match the row too."""
    return folder.endswith(ROW_SUFFIX) or on_from_dir(folder) == "request_id"


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
