"""Listings kept on disk next to the index, so a new process can answer without DuckDB.

A command such as ``python -m core versions NAME`` runs in a fresh process: opening the
index means importing DuckDB (~0.1 s on a quiet machine, ~0.4 s on a busy one) and
connecting to the file, which costs more than the rest of the command. So the answers
to the two listings a fresh process asks for most, the models and one model's
versions, are also written as small JSON files keyed by the board's change marker, the
same key under which the index itself counts as up to date (:meth:`Index._sync`). A
file whose marker differs from the board's is ignored; a missing, damaged or
unreadable one only means asking the index. Nothing here is a source of truth:
``reindex`` drops the files along with the index.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime
from typing import Any

from core.store.versions import ModelInfo, VersionInfo

FORMAT = 1
# The fields holding times, per listing kind (written as ISO text with offset, exact).
_KINDS: dict[str, tuple[type, tuple[str, ...]]] = {
    "models": (ModelInfo, ("updated",)),
    "versions": (VersionInfo, ("created",)),
}


class Snapshots:
    """Listings of one index, each in its own file under ``folder``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    @staticmethod
    def kept(key: Any) -> bool:
        """Whether answers under this query key are kept on disk."""
        return key[0] in _KINDS and len(key) <= 2

    def _path(self, key: Any) -> str:
        if key[0] == "models":
            return os.path.join(self.folder, "models.json")
        # model names are safe file names, but may differ only in case on a board whose
        # file system does not; a digest keeps every name its own file
        digest = hashlib.blake2b(key[1].encode(), digest_size=8).hexdigest()
        return os.path.join(self.folder, f"versions-{digest}.json")

    def read(self, key: Any, marker: str) -> list[Any] | None:
        """The listing kept for ``key`` at ``marker``; None if there is none."""
        try:
            with open(self._path(key), "rb") as f:
                doc = json.loads(f.read())
            if doc.get("format") != FORMAT or doc.get("marker") != marker or \
                    doc.get("key") != list(key):
                return None
            cls, times = _KINDS[key[0]]
            return [cls(**{**item, **{t: datetime.fromisoformat(item[t]) for t in times}})
                    for item in doc["items"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def write(self, key: Any, marker: str, items: list[Any]) -> None:
        """Keep ``items`` as the listing for ``key`` at ``marker`` (best effort)."""
        _cls, times = _KINDS[key[0]]
        rows = []
        for item in items:
            row = {name: getattr(item, name) for name in item.__dataclass_fields__}
            rows.append(row | {t: row[t].isoformat() for t in times})
        try:
            body = json.dumps({"format": FORMAT, "marker": marker, "key": list(key),
                               "items": rows}, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):  # not plain JSON: this listing is not kept
            return
        tmp = None
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(body.encode("utf-8"))
            os.replace(tmp, self._path(key))
        except OSError:  # a read-only store still answers, from the index
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
