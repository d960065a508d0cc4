"""Staging: a private folder where one version is assembled before it becomes visible."""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.errors import FixativeError
from core.store.files import CHUNK, DurableFile, FileStat, HashingWriter, fsync_path, sync_soon
from core.store.paths import PINS_META, SYSTEM_DIR
from core.store.versions import clock, version_id

if TYPE_CHECKING:
    from concurrent.futures import Future

    from core.store.board import Board, LocalBoard

# Stage and trash folders carry the host, so a cleaner never takes another machine's.
HOST = re.sub(r"[^A-Za-z0-9]+", "_", socket.gethostname())[:40] or "host"
# Staged files up to this size are synced together at commit rather than as written.
SYNC_AT_COMMIT = 8 << 20


class Stage(abc.ABC):
    """A private folder where one version is assembled before it becomes visible.

    Made by :meth:`Board.stage`: a :class:`LocalStage` renames the folder into place,
    an :class:`ObjectStoreStage` copies it with ``data.txt`` last.
    """

    def __init__(self, board: Board) -> None:
        self.board = board
        self.id = f"{os.getpid()}-{HOST}-{uuid.uuid4().hex}"
        self.dir = board.path(SYSTEM_DIR, "tmp", self.id)
        self.files: dict[str, FileStat] = {}
        self._done = False

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def _file(self, fname: str) -> str:
        return f"{self.dir}/{fname}"

    def write_stream(self, fname: str, produce: Callable[[HashingWriter], Any]) -> FileStat:
        """Stream a file into the stage, hashing while writing (never held in memory)."""
        self.files[fname] = self._write(fname, produce)
        return self.files[fname]

    @abc.abstractmethod
    def _write(self, fname: str, produce: Callable[[HashingWriter], Any]) -> FileStat: ...

    def write_bytes(self, fname: str, data: bytes) -> FileStat:
        return self.write_stream(fname, lambda w: w.write(data))

    def commit(self, name: str, finish: Callable[[str, Any], dict[str, bytes]]) -> str:
        """Give the staged files a version id and make them visible at once.

        ``finish(version, at)`` returns the small files that name the version
        (``fixative.json``, ``data.txt``); it is called again if the id is taken.
        """
        for _ in range(1000):
            at = clock.now()
            version = version_id(at)
            small = finish(version, at)
            if self._commit(name, version, small):
                return version
        raise FixativeError(f"Could not find a free version id for '{name}'; "  # pragma: no cover
                            "is the system clock stuck?")

    @abc.abstractmethod
    def _commit(self, name: str, version: str, small: dict[str, bytes]) -> bool:
        """Make the stage version ``version`` of ``name``; False when the id is taken."""

    @abc.abstractmethod
    def discard(self) -> None: ...


class LocalStage(Stage):
    """A staging folder renamed into place (atomic on POSIX), its files fsynced first.

    A large file is synced while it is written (:class:`DurableFile`); a small one's
    sync starts as soon as it is written, and is waited for at commit together with
    the syncs of the version's last files and of the folder, all issued at once.
    """

    def __init__(self, board: LocalBoard) -> None:
        super().__init__(board)
        self._syncing: list[Future[None]] = []
        os.makedirs(self.dir)

    def _write(self, fname: str, produce: Callable[[HashingWriter], Any]) -> FileStat:
        with open(self._file(fname), "wb", buffering=CHUNK) as raw, \
                DurableFile(raw) as durable:
            writer = HashingWriter(durable)
            produce(writer)
            if writer.size > SYNC_AT_COMMIT:
                durable.sync()
            else:
                durable.flush()
                self._syncing.append(sync_soon(self._file(fname)))
        return writer.stat()

    def _commit(self, name: str, version: str, small: dict[str, bytes]) -> bool:
        for fname, data in small.items():
            with open(self._file(fname), "wb") as f:
                f.write(data)
        self._wait([*(sync_soon(self._file(fname)) for fname in small),
                    sync_soon(self.dir)])
        model_dir = self.board.path(name)
        target = self.board.path(name, version)
        for _ in range(10):
            os.makedirs(model_dir, exist_ok=True)
            if os.path.lexists(target):
                return False
            try:
                os.rename(self.dir, target)
            except FileNotFoundError:
                continue  # the model folder was removed by a delete in between
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    return False
                raise
            fsync_path(model_dir)
            self._done = True
            return True
        return False

    def _wait(self, started: list[Future[None]]) -> None:
        """Wait for ``started`` and for every sync a staged file started (an error of
        any of them is raised once all have finished)."""
        pending, self._syncing = [*self._syncing, *started], []
        for done in pending:
            done.exception()
        for done in pending:
            done.result()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._wait([])  # a failed write: no sync left running on its files
        if not self._done:
            shutil.rmtree(self.dir, ignore_errors=True)


class ObjectStoreStage(Stage):
    """A staging prefix copied into place, ``data.txt`` last (object stores have no
    rename)."""

    def _write(self, fname: str, produce: Callable[[HashingWriter], Any]) -> FileStat:
        with self.board.fs.open(self._file(fname), "wb") as raw:
            writer = HashingWriter(raw)
            produce(writer)
        return writer.stat()

    def _commit(self, name: str, version: str, small: dict[str, bytes]) -> bool:
        fs = self.board.fs
        target = self.board.path(name, version)
        if fs.exists(target):
            return False
        for fname in self.files:
            fs.copy(self._file(fname), f"{target}/{fname}")
        # data.txt is what makes a version visible, so it goes last.
        for fname, data in sorted(small.items(), key=lambda kv: kv[0] == PINS_META):
            fs.pipe_file(f"{target}/{fname}", data)
        return True

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.board.fs.rm(self.dir, recursive=True)

