"""A local board's change marker, from two system calls and no third-party module.

The marker changes whenever the board's versions, aliases or records change:
Fixative's own writes rewrite ``.fixative/generation`` (after the change is complete),
and the modification time of every model folder catches the versions that pins or
vetiver add or delete there. It is the key under which the index counts as up to date
(:mod:`core.store.index`) and under which listings are kept on disk
(:mod:`core.store.snapshot`).

It lives apart from :mod:`core.store.board` so that a fresh process answering a
listing from the listings kept on disk (:mod:`core.cli.quick`) needs no more than this.
"""

from __future__ import annotations

import hashlib
import os

from core.store.paths import GENERATION_FILE, SYSTEM_DIR


def generation(root: str) -> str:
    """The token Fixative rewrote at its last change of the board ('' before any)."""
    try:
        with open(os.path.join(root, SYSTEM_DIR, GENERATION_FILE), "rb") as f:
            return f.read().decode("ascii", "replace").strip()
    except (FileNotFoundError, NotADirectoryError):
        return ""


def local_marker(root: str) -> str:
    """The change marker of the local board in folder ``root``."""
    h = hashlib.blake2b(generation(root).encode(), digest_size=12)
    try:
        with os.scandir(root) as it:
            for e in it:
                if e.name.startswith(".") or not e.is_dir():
                    continue
                h.update(f"|{e.name}:{e.stat().st_mtime_ns}".encode())
    except FileNotFoundError:
        h.update(b"|missing")
    return h.hexdigest()
