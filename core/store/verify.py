"""Checking a board: every file of every version re-hashed against what was recorded.

The board audit behind ``VersionStore.verify_report`` and ``reindex_report`` walks every
model folder, version and event file; a damaged entry is one problem line and the walk
goes on. Reading a version goes through the same checks: :func:`read_documents`,
:func:`checked_bytes` and :func:`with_model_file` refuse files whose hash changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from core.errors import CorruptData, NotFound
from core.store import layout
from core.store.board import DATA_HASH_FILE, META_FILE, PINS_META
from core.store.files import hash_bytes
from core.store.index import read_entry, read_event
from core.store.paths import SYSTEM_DIR
from core.store.versions import BoardReport, is_event_id

if TYPE_CHECKING:
    from core.store.board import Board

# (name, version) -> (data.txt, fixative.json checked against its hash, or None)
Documents = Callable[[str, str], tuple[dict[str, Any], dict[str, Any] | None]]

_SHOWN = 20
T = TypeVar("T")


def plain_file_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


def recovery(name: str, version: str) -> str:
    return (f"Restore the file from a backup, or delete the version with "
            f"'python -m core delete {name}@{version} --force'.")


def mismatch(name: str, version: str, file: str, expected: Any, actual: str,
             algo: str = "sha256") -> str:
    return (f"{name}/{version}/{file} is corrupt: its {algo} is {actual}, but {expected} was "
            f"recorded when it was written. {recovery(name, version)}")


def listing(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" … ({len(items)} in all)" if len(items) > _SHOWN else "")


def repair(name: str, version: str) -> str:
    """How to fix a version whose data.txt cannot be read (so it is not listed, and
    'delete' cannot name it)."""
    return (f"Restore it from a backup, or delete the folder {name}/{version} on the board; "
            "then run 'python -m core reindex'.")


def folder_problem(name: str, version: str, file: str) -> str:
    return (f"{name}/{version}/{file} is a folder where a file should be. Delete that folder "
            f"and restore the file from a backup, or delete the version folder "
            f"{name}/{version}; then run 'python -m core reindex'.")


def model_file_of(name: str, version: str, doc: dict[str, Any]) -> str:
    model_file = str(doc.get("file") or "")
    if not layout.is_model_pin(doc) or not plain_file_name(model_file):
        raise CorruptData(f"{name}/{version}/{PINS_META} names no model file it can read "
                          f"(type {doc.get('type')!r}, file {model_file!r}). "
                          f"{recovery(name, version)}")
    return model_file


def with_model_file(board: Board, name: str, version: str, doc: dict[str, Any],
                    meta_doc: dict[str, Any] | None, use: Callable[[str, str], T],
                    check: bool = True) -> T:
    """``use(local path, file name)`` of a version's model file; with ``check``, only
    once the file matches the hash recorded when it was written."""
    model_file = model_file_of(name, version, doc)
    if meta_doc is not None:
        expected = ((meta_doc.get("fixative") or {}).get("files") or {}).get(model_file) or {}
        want, algo = expected.get("sha256"), "sha256"
    else:
        want, algo = str(doc.get("pin_hash") or ""), "xxh64"
    try:
        with board.local_copy(name, version, model_file) as (path, stat):
            if check:
                actual = stat.sha256 if algo == "sha256" else stat.xxh64
                if want and actual != want:
                    raise CorruptData(mismatch(name, version, model_file, want, actual, algo))
                if not want:
                    raise CorruptData(f"{name}/{version}: no hash was recorded for {model_file}, "
                                      "so it cannot be checked. "
                                      f"{recovery(name, version)}")
            return use(path, model_file)
    except FileNotFoundError:
        raise CorruptData(f"{name}/{version}/{model_file} is missing. "
                          f"{recovery(name, version)}") from None
    except IsADirectoryError:
        raise CorruptData(folder_problem(name, version, model_file)) from None


def _unopenable(name: str, version: str, file: str) -> str:
    return (f"{name}/{version}/{file} cannot be opened (permission denied). Let the user "
            "running Fixative read it, e.g. with chmod.")


def _presence(name: str, version: str, file: str, present: dict[str, bool]) -> str:
    """Whether a file a version names is there, as a file (without reading it)."""
    if file not in present:
        return f"{name}/{version}/{file} is missing. {recovery(name, version)}"
    return folder_problem(name, version, file) if present[file] else ""


@dataclass
class Audit:
    problems: list[str] = field(default_factory=list)
    versions: set[tuple[str, str]] = field(default_factory=set)  # those the index lists
    unhashed: list[str] = field(default_factory=list)  # name/version: data.txt unhashed


def read_documents(board: Board, name: str, version: str
                   ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """data.txt and fixative.json of a version, the latter checked against its hash."""
    where = f"{name}/{version}"
    try:
        doc = layout.parse_data_txt(board.read_bytes(
            name, version, PINS_META, limit=layout.MAX_DATA_TXT))
    except FileNotFoundError:
        raise NotFound(f"Version {where} is not in the store (its {PINS_META} is "
                       "missing).") from None
    except IsADirectoryError:
        raise CorruptData(folder_problem(name, version, PINS_META)) from None
    except ValueError as exc:
        raise CorruptData(f"{where}/{PINS_META} is unreadable: {exc}. "
                          f"{repair(name, version)}") from None
    block = layout.fixative_block(doc)
    if block is None:
        return doc, None
    raw = checked_bytes(board, name, version, META_FILE, block.get("meta_sha256"))
    return doc, json.loads(raw)  # the bytes written, so valid JSON


def checked_bytes(board: Board, name: str, version: str, file: str, sha256: Any) -> bytes:
    """A file of a version, refused unless it matches the sha256 recorded at write."""
    try:
        raw = board.read_bytes(name, version, file)
    except FileNotFoundError:
        raise CorruptData(f"{name}/{version}/{file} is missing. "
                          f"{recovery(name, version)}") from None
    except IsADirectoryError:
        raise CorruptData(folder_problem(name, version, file)) from None
    actual = hash_bytes(raw).sha256
    if actual != sha256:
        raise CorruptData(mismatch(name, version, file, sha256, actual))
    return raw


def board_report(found: Audit, indexed: set[tuple[str, str]]) -> BoardReport:
    """The verify report of an audit with rehashing: its problems, the versions the
    board and the index disagree on, and notes on what could not be checked."""
    problems = list(found.problems)
    for name, version in sorted(found.versions - indexed):
        problems.append(f"{name}/{version}: on the board but not in the index; run "
                        "store.reindex().")
    for name, version in sorted(indexed - found.versions):
        problems.append(f"{name}/{version}: in the index but not on the board; run "
                        "store.reindex().")
    notes = []
    if found.unhashed:
        notes.append(f"{len(found.unhashed)} version(s) have no recorded {PINS_META} hash "
                     "(pinned with pins or vetiver, or written by an older Fixative), so "
                     f"their {PINS_META} was not checked: {listing(found.unhashed)}.")
    return BoardReport(problems=problems, notes=notes,
                       counts={"versions": len(found.versions)})


def audit_board(board: Board, documents: Documents, rehash: bool) -> Audit:
    """Walk the whole board: every model folder, version and event file. A damaged
    entry is one problem line and the walk goes on.

    ``documents`` reads a version's data.txt and checked fixative.json
    (``VersionStore._documents``); ``rehash`` re-hashes every file, else only checks
    that each is there.
    """
    found = Audit()
    for name in board.model_names():
        complete = board.complete_versions(name)
        for entry, is_dir in sorted(board.listdir(name)):
            if entry.startswith("."):
                continue
            if not is_dir:
                found.problems.append(
                    f"{name}/{entry} is a file where a version folder should be (a version "
                    f"is a folder holding {PINS_META} and the model file). Move it out of "
                    "the board; then run 'python -m core reindex'.")
            elif entry not in complete:
                found.problems.append(
                    f"{name}/{entry}: no {PINS_META}, so the folder is not a version (an "
                    "interrupted write, or a pin being written right now). Delete the "
                    "folder if no writer is running.")
            else:
                if read_entry(board, name, entry)[0] is not None:
                    found.versions.add((name, entry))
                found.problems.extend(
                    _audit_version(board, documents, name, entry, rehash, found))
    found.problems.extend(_audit_events(board, found.versions))
    return found


def _audit_version(board: Board, documents: Documents, name: str, version: str,
                   rehash: bool, found: Audit) -> list[str]:
    where = f"{name}/{version}"
    try:
        raw = board.read_bytes(name, version, PINS_META, limit=layout.MAX_DATA_TXT)
        doc = layout.parse_data_txt(raw)
    except FileNotFoundError:  # deleted while we looked
        return []
    except IsADirectoryError:
        return [folder_problem(name, version, PINS_META)]
    except PermissionError:
        return [_unopenable(name, version, PINS_META)]
    except ValueError as exc:
        return [f"{where}/{PINS_META} is unreadable: {exc}. {repair(name, version)}"]
    if not layout.is_model_pin(doc):
        return []  # a pin of another kind (a data frame pinned with pins)
    out = []
    meta_doc = None
    if layout.fixative_block(doc) is not None:
        try:
            meta_doc = documents(name, version)[1]
        except CorruptData as exc:
            out.append(exc.message)
    if rehash:
        out.extend(_audit_data_hash(board, name, version, raw, meta_doc, found))
    if meta_doc is None and layout.fixative_block(doc) is not None:
        return out  # its files are named in the fixative.json just reported
    expected: dict[str, tuple[str, Any]]  # file -> (hash algorithm, recorded hash)
    if meta_doc is None:
        expected = {str(doc.get("file") or ""): ("xxh64", str(doc.get("pin_hash") or ""))}
        named_in = PINS_META
    else:
        files = (meta_doc.get("fixative") or {}).get("files") or {}
        expected = {f: ("sha256", (e or {}).get("sha256")) for f, e in files.items()}
        named_in = META_FILE
    present = None if rehash else dict(board.listdir(name, version))
    for file, (algo, want) in sorted(expected.items()):
        if not plain_file_name(file):
            out.append(f"{where}/{named_in} names an unsafe file {file!r}.")
            continue
        problem = (_rehash(board, name, version, file, algo, want) if present is None
                   else _presence(name, version, file, present))
        if problem:
            out.append(problem)
    return out


def _rehash(board: Board, name: str, version: str, file: str, algo: str, want: Any) -> str:
    try:
        with board.local_copy(name, version, file) as (_path, stat):
            actual = stat.sha256 if algo == "sha256" else stat.xxh64
            if want and actual != want:
                return mismatch(name, version, file, want, actual, algo)
    except FileNotFoundError:
        return f"{name}/{version}/{file} is missing. {recovery(name, version)}"
    except IsADirectoryError:
        return folder_problem(name, version, file)
    except PermissionError:
        return _unopenable(name, version, file)
    return ""


def _audit_data_hash(board: Board, name: str, version: str, raw: bytes,
                     meta_doc: dict[str, Any] | None, found: Audit) -> list[str]:
    """data.txt against the sha256 recorded beside it when it was written."""
    where = f"{name}/{version}"
    try:
        want = layout.parse_data_hash(
            board.read_bytes(name, version, DATA_HASH_FILE, limit=1024))
    except FileNotFoundError:
        if ((meta_doc or {}).get("fixative") or {}).get("data_hash"):
            return [f"{where}/{DATA_HASH_FILE} is missing, so {PINS_META} cannot be "
                    f"checked. {recovery(name, version)}"]
        found.unhashed.append(where)
        return []
    except IsADirectoryError:
        return [folder_problem(name, version, DATA_HASH_FILE)]
    except PermissionError:
        return [_unopenable(name, version, DATA_HASH_FILE)]
    except ValueError as exc:
        return [f"{where}/{DATA_HASH_FILE} is unreadable: {exc}. "
                f"{recovery(name, version)}"]
    actual = hashlib.sha256(raw).hexdigest()
    if actual == want:
        return []
    return [f"{where}/{PINS_META} was changed after it was written: its sha256 is "
            f"{actual}, but {want} was recorded in {DATA_HASH_FILE}. Its title, "
            "description, metrics or prototype may no longer be what was stored (pins "
            f"and vetiver read them from there). {recovery(name, version)}"]


def _audit_events(board: Board, versions: set[tuple[str, str]]) -> list[str]:
    """Alias events and records that cannot be read, and aliases that point at no
    readable version."""
    out: list[str] = []
    current: dict[tuple[str, str], tuple[str, str | None]] = {}
    for kind, what, depth in (("aliases", "alias event", 2), ("records", "record", 3)):
        for rel, is_dir in _event_files(board, kind, depth):
            path = f"{SYSTEM_DIR}/{kind}/{rel}"
            stem = rel.rsplit("/", 1)[-1].removesuffix(".json")
            if not rel.endswith(".json") or not is_event_id(stem):
                continue  # not an event file: the index ignores it as well
            if is_dir:
                out.append(f"{path} is a folder where an {what} file should be. Delete it; "
                           "then run 'python -m core reindex'.")
                continue
            row, problem = read_event(board, kind, rel)
            if row is None:
                out.append(f"{path} is not a valid {what}: {problem}. Delete it (the "
                           f"history loses that entry) or restore it from a backup; then "
                           "run 'python -m core reindex'.")
            elif kind == "aliases":
                key = (row[1], row[2])
                if key not in current or current[key][0] < row[0]:
                    current[key] = (row[0], row[4])
    for (name, alias), (_event, version) in sorted(current.items()):
        if version is not None and (name, version) not in versions:
            out.append(f"{name}: alias '{alias}' points at version '{version}', which is "
                       "not a readable version on the board. Move it with 'python -m core "
                       f"alias {name} VERSION {alias}'.")
    return out


def _event_files(board: Board, kind: str, depth: int) -> list[tuple[str, bool]]:
    """(path below .fixative/<kind>/, is_folder) of the entries ``depth`` levels down."""
    level = [("", True)]
    for _ in range(depth):
        deeper = []
        for rel, is_dir in level:
            if not is_dir:
                continue
            parts = rel.split("/") if rel else []
            for entry, entry_is_dir in sorted(board.listdir(SYSTEM_DIR, kind, *parts)):
                if not entry.startswith("."):
                    deeper.append((f"{rel}/{entry}" if rel else entry, entry_is_dir))
        level = deeper
    return level
