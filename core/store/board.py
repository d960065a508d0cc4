"""Board I/O through fsspec: paths, listings, change markers, atomic staging, events.

A board is a local folder or any fsspec URL (``s3://bucket/prefix``). This module
knows where things live and how to write them so that no reader ever sees half of
them; what the files contain is :mod:`core.store.layout`'s business.

Atomicity. Local boards stage a version in ``.fixative/tmp/<pid>-<host>-<uuid>``
and ``os.rename`` the folder into place, which is atomic on POSIX. Object stores
have no rename: a version is staged the same way, then copied into its folder with
``data.txt`` last, and a version folder without ``data.txt`` is invisible.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from core import settings
from core.errors import FixativeError, NotFound
from core.store.files import FileStat, hash_stream
from core.store.marker import local_marker
from core.store.names import MAX_NAME_LENGTH
from core.store.paths import (
    GENERATION_FILE,
    PINS_META,
    SYSTEM_DIR,
    is_url,
    store_location,
)
from core.store.staging import HOST, LocalStage, ObjectStoreStage, Stage

if TYPE_CHECKING:  # fsspec is imported where a file system is made
    from fsspec import AbstractFileSystem

# The sha256 of data.txt, as `sha256sum` writes it: data.txt cannot hold its own hash,
# and pins and vetiver read data.txt, so its hash lives beside it.
DATA_HASH_FILE = "data.txt.sha256"
META_FILE = "fixative.json"
SAMPLE_FILE = "sample.parquet"
# Staging folders of writers on other hosts (whose liveness cannot be checked) are
# removed once they are this old.
STALE_SECONDS = 24 * 3600
# Object stores carry no cheap folder timestamps: their change marker also changes
# every MARKER_PERIOD seconds, so versions pinned by other tools show up within it.
MARKER_PERIOD = 60
_STAGE = re.compile(r"(\d+)-([A-Za-z0-9_]+)-[0-9a-f]{32}")
_ENTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")



class Board(abc.ABC):
    """Where the store's files live, and the primitive operations on them.

    ``Board(location, storage_options)`` (or :func:`open_board`, its typed spelling) is
    the factory: it returns a :class:`LocalBoard` for a folder and an
    :class:`ObjectStoreBoard` for a URL (``s3://bucket/prefix``).
    ``is_local`` says which, and is the one answer to "are these files on this machine".
    """

    is_local: ClassVar[bool]
    _fs: AbstractFileSystem | None = None

    @property
    def fs(self) -> AbstractFileSystem:
        """The board's fsspec file system (local boards make it on first use: their own
        reads and writes go through os, and listing needs no fsspec)."""
        if self._fs is None:
            import fsspec

            self._fs = fsspec.filesystem("file")
        return self._fs
    root: str
    url: str
    endpoint: str

    def __new__(cls, location: str | os.PathLike[str] | None = None,
                storage_options: dict[str, Any] | None = None) -> Board:
        if cls is Board:
            cls = board_class(location)
        return super().__new__(cls)

    def __init__(self, location: str | os.PathLike[str] | None = None,
                 storage_options: dict[str, Any] | None = None) -> None:
        self.storage_options = dict(storage_options or {})

    # -- paths --------------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        """Absolute path of ``parts`` inside the board, as ``self.fs`` expects it."""
        clean = [p.strip("/") for p in parts if p]
        if any(p in (".", "..") for c in clean for p in c.split("/")):
            raise FixativeError(f"Refusing a path that leaves the board: {'/'.join(clean)}")
        return "/".join([self.root, *clean]) if clean else self.root

    @abc.abstractmethod
    def entry_names(self, *parts: str) -> frozenset[str] | None:
        """Names in a local board folder (empty when it is missing); None on remote
        boards, where listing a folder is a request, not a system call."""

    @abc.abstractmethod
    def listdir(self, *parts: str) -> list[tuple[str, bool]]:
        """(name, is_folder) of the entries of a board folder; empty when it is missing."""

    @abc.abstractmethod
    def find(self, *parts: str) -> list[str]:
        """Paths (relative to ``parts``) of every file below a board folder."""

    @abc.abstractmethod
    def exists(self, *parts: str) -> bool: ...

    @abc.abstractmethod
    def read_bytes(self, *parts: str, limit: int | None = None) -> bytes:
        """The file's bytes (at most ``limit + 1`` of them when given); FileNotFoundError
        when it is missing, IsADirectoryError when it is a folder."""

    @abc.abstractmethod
    def write_bytes(self, parts: tuple[str, ...], data: bytes) -> None:
        """Write a small file so that readers see the old bytes or the new, never half."""

    @abc.abstractmethod
    def local_copy(self, *parts: str) -> contextlib.AbstractContextManager[tuple[str, FileStat]]:
        """A local path to the file and its hashes (remote files are downloaded once)."""

    # -- models and versions ------------------------------------------------------------

    def model_names(self) -> list[str]:
        """Folders at the top of the board that can be model names."""
        return sorted(name for name, is_dir in self.listdir()
                      if is_dir and valid_entry(name))

    @abc.abstractmethod
    def complete_versions(self, name: str, known: set[str] | frozenset[str] = frozenset()
                          ) -> set[str]:
        """Version folders of ``name`` that hold a ``data.txt``.

        Folders in ``known`` are taken as complete without looking inside: versions
        are immutable, so one seen complete stays complete until it is deleted.
        """

    def incomplete_versions(self) -> list[str]:
        """``name/version`` folders without ``data.txt`` (interrupted or foreign writes)."""
        out = []
        for name in self.model_names():
            complete = self.complete_versions(name)
            for version, is_dir in self.listdir(name):
                if is_dir and version not in complete:
                    out.append(f"{name}/{version}")
        return out

    @abc.abstractmethod
    def stage(self) -> Stage: ...

    @abc.abstractmethod
    def remove_version(self, name: str, version: str) -> None:
        """Delete a version folder: it disappears at once, then its files go."""

    # -- change marker ------------------------------------------------------------------

    def generation(self) -> str:
        try:
            return self.read_bytes(SYSTEM_DIR, GENERATION_FILE).decode("ascii", "replace").strip()
        except (FileNotFoundError, NotADirectoryError):
            return ""

    def bump(self) -> None:
        """Tell every process that the board changed (after the change is complete)."""
        self.write_bytes((SYSTEM_DIR, GENERATION_FILE), uuid.uuid4().hex.encode("ascii"))

    @abc.abstractmethod
    def marker(self) -> str:
        """Changes whenever the board's versions, aliases or records change.

        Fixative's own writes rewrite ``.fixative/generation``. Locally, folder
        modification times also catch versions that pins or vetiver add or delete.
        """

    # -- events -------------------------------------------------------------------------

    def write_event(self, folder: tuple[str, ...], event: str, data: dict[str, Any]) -> None:
        body = json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")
        self.write_bytes((SYSTEM_DIR, *folder, f"{event}.json"), body)

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.read_bytes(*parts))

    # -- housekeeping -------------------------------------------------------------------

    def clean_staging(self) -> int:
        """Remove staging and trash folders left by writers that died; returns how many."""
        removed = 0
        for folder in ("tmp", "trash"):
            for entry, _is_dir in self.listdir(SYSTEM_DIR, folder):
                if self._abandoned(folder, entry):
                    self._remove_tree(self.path(SYSTEM_DIR, folder, entry))
                    removed += 1
        return removed

    @abc.abstractmethod
    def _remove_tree(self, path: str) -> None:
        """Remove a file or folder below the board, quietly when it is gone."""

    def _abandoned(self, folder: str, entry: str) -> bool:
        m = _STAGE.fullmatch(entry)
        if m and m.group(2) == HOST:
            from core.processes import pid_alive  # psutil: only when cleaning up

            return not pid_alive(int(m.group(1)))
        return self._age(folder, entry) > STALE_SECONDS

    def _age(self, folder: str, entry: str) -> float:
        try:
            return self._seconds_since_change(self.path(SYSTEM_DIR, folder, entry))
        except (FileNotFoundError, OSError):
            return 0.0

    @abc.abstractmethod
    def _seconds_since_change(self, path: str) -> float: ...


class LocalBoard(Board):
    """A board in a folder of this machine: plain os calls, atomic renames, fsync."""

    is_local = True

    def __init__(self, location: str | os.PathLike[str] | None = None,
                 storage_options: dict[str, Any] | None = None) -> None:
        super().__init__(location, storage_options)
        text = store_location(location)
        self.endpoint = ""
        self.root = os.path.abspath(os.path.expanduser(text))
        self.url = self.root
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise FixativeError(f"The store location {self.root} is a file, not a folder; "
                                "point FIXATIVE_STORE at a folder (it is created if missing).")
        os.makedirs(self.root, exist_ok=True)

    def entry_names(self, *parts: str) -> frozenset[str] | None:
        try:
            return frozenset(os.listdir(self.path(*parts)))
        except (FileNotFoundError, NotADirectoryError):
            return frozenset()

    def listdir(self, *parts: str) -> list[tuple[str, bool]]:
        try:
            with os.scandir(self.path(*parts)) as it:
                return [(e.name, e.is_dir()) for e in it]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def find(self, *parts: str) -> list[str]:
        base = self.path(*parts)
        out = []
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, base)
            for f in files:
                out.append(f if rel == "." else f"{rel}/{f}".replace(os.sep, "/"))
        return out

    def exists(self, *parts: str) -> bool:
        return os.path.exists(self.path(*parts))

    def read_bytes(self, *parts: str, limit: int | None = None) -> bytes:
        with open(self.path(*parts), "rb") as f:
            return f.read() if limit is None else f.read(limit + 1)

    def write_bytes(self, parts: tuple[str, ...], data: bytes) -> None:
        path = self.path(*parts)
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def local_copy(self, *parts: str) -> Iterator[tuple[str, FileStat]]:
        path = self.path(*parts)
        with open(path, "rb") as f:
            stat = hash_stream(f)
        yield path, stat

    def complete_versions(self, name: str, known: set[str] | frozenset[str] = frozenset()
                          ) -> set[str]:
        out = set()
        for version, is_dir in self.listdir(name):
            if not is_dir or not valid_entry(version):
                continue
            if version in known or os.path.exists(self.path(name, version, PINS_META)):
                out.add(version)
        return out

    def stage(self) -> LocalStage:
        return LocalStage(self)

    def remove_version(self, name: str, version: str) -> None:
        target = self.path(name, version)
        trash = self.path(SYSTEM_DIR, "trash", f"{os.getpid()}-{HOST}-{uuid.uuid4().hex}")
        os.makedirs(os.path.dirname(trash), exist_ok=True)
        try:
            os.rename(target, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(self.path(name))  # only succeeds when no version is left

    def marker(self) -> str:
        return local_marker(self.root)

    def _remove_tree(self, path: str) -> None:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _seconds_since_change(self, path: str) -> float:
        return time.time() - os.stat(path).st_mtime


class ObjectStoreBoard(Board):
    """A board behind an fsspec URL (``s3://bucket/prefix``): no rename, no fsync."""

    is_local = False

    def __init__(self, location: str | os.PathLike[str] | None = None,
                 storage_options: dict[str, Any] | None = None) -> None:
        super().__init__(location, storage_options)
        text = store_location(location)
        protocol = text.split("://", 1)[0]
        options = dict(self.storage_options)
        if protocol in ("s3", "s3a"):
            endpoint = settings.s3_endpoint_url()
            client = options.get("client_kwargs") or {}
            if endpoint and "endpoint_url" not in options and "endpoint_url" not in client:
                options["endpoint_url"] = endpoint
            # Listings must be live: other processes add versions all the time.
            options.setdefault("use_listings_cache", False)
        self.endpoint = str(options.get("endpoint_url") or
                            (options.get("client_kwargs") or {}).get("endpoint_url") or "")
        try:
            import fsspec

            fs, root = fsspec.core.url_to_fs(text, **options)
        except (ImportError, ValueError) as exc:
            raise FixativeError(f"Cannot open the store at {text}: {exc}") from None
        self._fs = fs
        self.root = root.rstrip("/")
        self.url = text.rstrip("/")
        self._check_bucket()

    def _check_bucket(self) -> None:
        bucket = self.root.split("/", 1)[0]
        try:
            found = self.fs.exists(bucket)
        except PermissionError as exc:
            raise FixativeError(f"Access to {self.url} was refused ({exc}); check the "
                                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY settings.") from None
        if not found:
            where = f" at {self.endpoint}" if self.endpoint else ""
            raise NotFound(f"The bucket '{bucket}'{where} does not exist. Create it first, or "
                           f"check the store URL and {settings.S3_ENDPOINT_ENV}.")

    def entry_names(self, *parts: str) -> frozenset[str] | None:
        return None

    def listdir(self, *parts: str) -> list[tuple[str, bool]]:
        path = self.path(*parts)
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        out = []
        for e in entries:
            name = posixpath.basename(e["name"].rstrip("/"))
            if name and e["name"].rstrip("/") != path:
                out.append((name, e["type"] == "directory"))
        return out

    def find(self, *parts: str) -> list[str]:
        base = self.path(*parts)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        return [p[len(base) + 1:] for p in found if p.startswith(base + "/")]

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def read_bytes(self, *parts: str, limit: int | None = None) -> bytes:
        path = self.path(*parts)
        if limit is None:
            return self.fs.cat_file(path)
        with self.fs.open(path, "rb") as f:
            return f.read(limit + 1)

    def write_bytes(self, parts: tuple[str, ...], data: bytes) -> None:
        self.fs.pipe_file(self.path(*parts), data)

    @contextlib.contextmanager
    def local_copy(self, *parts: str) -> Iterator[tuple[str, FileStat]]:
        path = self.path(*parts)
        suffix = os.path.splitext(path)[1]
        fd, tmp = tempfile.mkstemp(prefix="fixative-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as sink, self.fs.open(path, "rb") as src:
                stat = hash_stream(src, sink)
            yield tmp, stat
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def complete_versions(self, name: str, known: set[str] | frozenset[str] = frozenset()
                          ) -> set[str]:
        out = set()
        for rel in self.find(name):
            parts = rel.split("/")
            if len(parts) == 2 and parts[1] == PINS_META and valid_entry(parts[0]):
                out.add(parts[0])
        return out

    def stage(self) -> ObjectStoreStage:
        return ObjectStoreStage(self)

    def remove_version(self, name: str, version: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path(name, version, PINS_META))
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path(name, version), recursive=True)

    def marker(self) -> str:
        # Object stores carry no cheap folder timestamps (see MARKER_PERIOD).
        return f"{self.generation()}|{int(time.time() // MARKER_PERIOD)}"

    def _remove_tree(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(path, recursive=True)

    def _seconds_since_change(self, path: str) -> float:
        times = [info.get("LastModified") for info in self.fs.find(path, detail=True).values()]
        stamps = [t.timestamp() for t in times if t is not None]
        return time.time() - max(stamps) if stamps else 0.0


def board_class(location: str | os.PathLike[str] | None = None) -> type[Board]:
    """The kind of board ``location`` names: :class:`ObjectStoreBoard` for a URL,
    :class:`LocalBoard` for a folder."""
    return ObjectStoreBoard if is_url(store_location(location)) else LocalBoard


def open_board(location: str | os.PathLike[str] | None = None,
               storage_options: dict[str, Any] | None = None) -> Board:
    """The board at ``location`` (see :func:`store_location`), local or object store."""
    return board_class(location)(location, storage_options)


def valid_entry(name: str) -> bool:
    """Whether a folder name can be a model or version on the board."""
    return len(name) <= MAX_NAME_LENGTH and bool(_ENTRY_NAME.fullmatch(name))
