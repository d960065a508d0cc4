"""Checking a board: every file of every version re-hashed against what was recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.errors import CorruptData
from core.store.board import META_FILE, PINS_META, Board
from core.store.index import read_entry


def store_problems(board: Board, documents: Callable[[str, str], Any],
                   indexed: Callable[[], set[tuple[str, str]]]) -> list[str]:
    """Re-hash every file of every version; returns the problems found (empty if none).

    ``documents(name, version)`` reads a version's data.txt and fixative.json (checked);
    ``indexed()`` lists the (name, version) pairs the index holds.
    """
    problems: list[str] = []
    board_versions: set[tuple[str, str]] = set()
    for name in board.model_names():
        for version in sorted(board.complete_versions(name)):
            row, reason = read_entry(board, name, version)
            if row is None:
                continue
            board_versions.add((name, version))
            problems.extend(version_problems(board, documents, name, version))
    for folder in board.incomplete_versions():
        problems.append(f"{folder}: no {PINS_META}, so the folder is not a version (an "
                        "interrupted write, or a pin being written right now). Delete the "
                        "folder if no writer is running.")
    in_index = indexed()
    for name, version in sorted(board_versions - in_index):
        problems.append(f"{name}/{version}: on the board but not in the index; run "
                        "store.reindex().")
    for name, version in sorted(in_index - board_versions):
        problems.append(f"{name}/{version}: in the index but not on the board; run "
                        "store.reindex().")
    return problems


def version_problems(board: Board, documents: Callable[[str, str], Any], name: str,
                     version: str) -> list[str]:
    """The problems of one version's files (empty if none)."""
    try:
        doc, meta_doc = documents(name, version)
    except CorruptData as exc:
        return [exc.message]
    if meta_doc is None:
        file, want = str(doc.get("file") or ""), str(doc.get("pin_hash") or "")
        if not plain_file_name(file):
            return [f"{name}/{version}/{PINS_META} names an unsafe file {file!r}."]
        try:
            with board.local_copy(name, version, file) as (_path, stat):
                if want and stat.xxh64 != want:
                    return [mismatch(name, version, file, want, stat.xxh64, "xxh64")]
        except FileNotFoundError:
            return [f"{name}/{version}/{file} is missing. {recovery(name, version)}"]
        return []
    out = []
    files = ((meta_doc.get("fixative") or {}).get("files") or {})
    for file, expected in sorted(files.items()):
        if not plain_file_name(file):
            out.append(f"{name}/{version}/{META_FILE} names an unsafe file {file!r}.")
            continue
        try:
            with board.local_copy(name, version, file) as (_path, stat):
                if stat.sha256 != expected.get("sha256"):
                    out.append(mismatch(name, version, file, expected.get("sha256"),
                                        stat.sha256))
        except FileNotFoundError:
            out.append(f"{name}/{version}/{file} is missing. {recovery(name, version)}")
    return out


def plain_file_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


def recovery(name: str, version: str) -> str:
    return (f"Restore the file from a backup, or delete the version with "
            f"'python -m core delete {name}@{version} --force'.")


def mismatch(name: str, version: str, file: str, expected: Any, actual: str,
             algo: str = "sha256") -> str:
    return (f"{name}/{version}/{file} is corrupt: its {algo} is {actual}, but {expected} was "
            f"recorded when it was written. {recovery(name, version)}")
