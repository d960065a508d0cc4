"""Listings kept on disk next to the index, so a new process can answer without DuckDB.

A command such as ``python -m core versions NAME`` runs in a fresh process: opening the
index means importing DuckDB (~0.1 s on a quiet machine, ~0.4 s on a busy one) and
connecting to the file, which costs more than the rest of the command. So the answers
to the two listings a fresh process asks for most, the models and one model's
versions, are also written as small JSON files keyed by the board's change marker, the
same key under which the index itself counts as up to date (:meth:`Index._sync`). A
file whose marker differs from the board's is ignored; a missing, damaged or
unreadable one only means asking the index, and so does one that is not exactly a
listing (a field missing, added or of another type): the files are data, read as JSON
and checked field by field, never code. Nothing here is a source of truth: ``reindex``
drops the files along with the index.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the classes are made where a store asks (core.cli.quick needs rows)
    from core.store.versions import ModelInfo, VersionInfo

FORMAT = 2


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _text_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _numbers(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values())


# Each listing kind's fields and what each must hold; the times (ISO text with offset,
# exact) are read back as datetimes. A file is used only if every row has exactly these.
_FIELDS: dict[str, dict[str, Any]] = {
    "models": {"name": _text, "latest": _text, "n_versions": _count, "updated": datetime,
               "aliases": _text_map, "task": _text, "library": _text, "model_class": _text,
               "model_summary": _text},
    "versions": {"name": _text, "version": _text, "created": datetime, "hash": _text,
                 "size": _count, "user": _text, "description": _text, "task": _text,
                 "model_class": _text, "library": _text, "metrics": _numbers, "tags": _texts,
                 "aliases": _texts, "source": _text, "model_summary": _text},
}


def _row(fields: dict[str, Any], item: Any) -> dict[str, Any] | None:
    """One listed item with its times as datetimes; None unless it is well formed."""
    if not isinstance(item, dict) or item.keys() != fields.keys():
        return None
    row = {}
    for name, check in fields.items():
        value = item[name]
        if check is datetime:
            if not isinstance(value, str):
                return None
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                return None
            if value.tzinfo is None:
                return None
        elif not check(value):
            return None
        row[name] = value
    return row


class Snapshots:
    """Listings of one index, each in its own file under ``folder``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    @staticmethod
    def kept(key: Any) -> bool:
        """Whether answers under this query key are kept on disk."""
        return key[0] in _FIELDS and len(key) <= 2

    def _path(self, key: Any) -> str:
        if key[0] == "models":
            return os.path.join(self.folder, "models.json")
        import hashlib

        # model names are safe file names, but may differ only in case on a board whose
        # file system does not; a digest keeps every name its own file
        digest = hashlib.blake2b(key[1].encode(), digest_size=8).hexdigest()
        return os.path.join(self.folder, f"versions-{digest}.json")

    def rows(self, key: Any, marker: str) -> list[dict[str, Any]] | None:
        """The listing kept for ``key`` at ``marker``, one dict of fields per item (times
        as datetimes); None if there is none, or if it is not exactly such a listing."""
        try:
            with open(self._path(key), "rb") as f:
                doc = json.loads(f.read())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or \
                doc.get("marker") != marker or doc.get("key") != list(key) or \
                not isinstance(doc.get("items"), list):
            return None
        fields = _FIELDS[key[0]]
        rows = []
        for item in doc["items"]:
            row = _row(fields, item)
            if row is None:
                return None
            rows.append(row)
        return rows

    def read(self, key: Any, marker: str) -> list[ModelInfo] | list[VersionInfo] | None:
        """The listing kept for ``key`` at ``marker``; None if there is none."""
        from core.store.versions import ModelInfo, VersionInfo

        rows = self.rows(key, marker)
        if rows is None:
            return None
        if key[0] == "models":
            return [ModelInfo(**row) for row in rows]
        return [VersionInfo(**row) for row in rows]

    def write(self, key: Any, marker: str, items: list[Any]) -> None:
        """Keep ``items`` as the listing for ``key`` at ``marker`` (best effort)."""
        import tempfile

        fields = _FIELDS[key[0]]
        rows = []
        for item in items:
            row = {name: getattr(item, name) for name in fields}
            rows.append({k: v.isoformat() if fields[k] is datetime else v
                         for k, v in row.items()})
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
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)
