"""Files of a version: hashed while written, synced to disk, hashed when read."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import xxhash

if TYPE_CHECKING:  # threads start where a write needs them: listing needs none
    from concurrent.futures import Future, ThreadPoolExecutor

CHUNK = 1 << 20


@dataclass(frozen=True)
class FileStat:
    """Hashes and size of a stored file: sha256 for Fixative, xxh64 for pins' pin_hash."""

    sha256: str
    xxh64: str
    size: int


class HashingWriter:
    """A write-only file wrapper that hashes the bytes on their way to disk.

    Large buffers (pickled arrays) are hashed in helper threads, sha256 and xxh64 each
    in its own, while the same buffer is written: hashlib and xxhash release the GIL,
    so on a multi-core machine hashing costs little extra time. Buffers are never
    copied or kept.
    """

    _PARALLEL = 1 << 20

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._sha = hashlib.sha256()
        self._xx = xxhash.xxh64()
        self.size = 0

    def write(self, data: Any) -> int:
        view = data if isinstance(data, bytes) else memoryview(data).cast("B")
        n = len(view)
        if n >= self._PARALLEL:
            pool = _helpers()
            hashed = (pool.submit(self._sha.update, view), pool.submit(self._xx.update, view))
            try:
                self._raw.write(view)
            finally:
                for h in hashed:
                    h.result()
        else:
            self._sha.update(view)
            self._xx.update(view)
            self._raw.write(view)
        self.size += n
        return n

    def tell(self) -> int:
        # joblib asks for the position to align arrays; the file starts empty.
        return self.size

    def flush(self) -> None:
        self._raw.flush()

    def stat(self) -> FileStat:
        return FileStat(self._sha.hexdigest(), self._xx.hexdigest(), self.size)


class DurableFile:
    """A local file being written that starts reaching the disk while it is written.

    Every ``SYNC_EVERY`` bytes, a helper thread asks the kernel to write out what it
    holds so far (``fdatasync``), while the writer goes on; :meth:`sync` then only
    waits for the tail. A 50 MB model reaches the disk in about the time it takes to
    write it, instead of write time plus a whole-file ``fsync`` after it.
    """

    SYNC_EVERY = 8 << 20

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._fd = raw.fileno()
        self._since = 0
        self._pending: Any = None

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        step = self.SYNC_EVERY
        for start in range(0, len(view), step):  # slices of one big array: no copies
            self._since += self._raw.write(view[start:start + step])
            if self._since >= step and (self._pending is None or self._pending.done()):
                self._start_sync()
        if len(view) >= step and self._since:
            # The end of a big buffer: the writer may now wait (for the hashes of this
            # buffer), so the rest starts reaching the disk meanwhile, after any sync
            # already running (the sync pool has one thread, so they run in order).
            self._raw.flush()
            self._start_sync()
        return len(view)

    def _start_sync(self) -> None:
        self._since = 0
        self._pending = _syncer().submit(_datasync, self._fd)

    def flush(self) -> None:
        self._raw.flush()

    def sync(self) -> None:
        """Everything written is on disk when this returns."""
        self._raw.flush()
        if self._pending is not None:
            self._pending.result()
        os.fsync(self._fd)

    def __enter__(self) -> DurableFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        # never let the file close under a sync still running on its descriptor
        if self._pending is not None:
            with contextlib.suppress(OSError):
                self._pending.result()


# fdatasync skips metadata the data does not need; macOS has only fsync.
_datasync = getattr(os, "fdatasync", os.fsync)
_POOLS: dict[str, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(name: str, workers: int) -> ThreadPoolExecutor:
    from concurrent.futures import ThreadPoolExecutor

    with _POOLS_LOCK:
        if name not in _POOLS:
            _POOLS[name] = ThreadPoolExecutor(max_workers=workers,
                                              thread_name_prefix=f"fixative-{name}")
        return _POOLS[name]


def _helpers() -> ThreadPoolExecutor:
    return _pool("hash", 2)


def _syncer() -> ThreadPoolExecutor:
    return _pool("sync", 1)


def hash_stream(f: BinaryIO, sink: BinaryIO | None = None) -> FileStat:
    """Hash a readable stream, copying it into ``sink`` on the way when given."""
    sha, xx, size = hashlib.sha256(), xxhash.xxh64(), 0
    while True:
        buf = f.read(CHUNK)
        if not buf:
            break
        sha.update(buf)
        xx.update(buf)
        size += len(buf)
        if sink is not None:
            sink.write(buf)
    return FileStat(sha.hexdigest(), xx.hexdigest(), size)


def hash_bytes(data: bytes) -> FileStat:
    return FileStat(hashlib.sha256(data).hexdigest(), xxhash.xxh64(data).hexdigest(), len(data))


def fsync_path(path: str) -> None:
    """fsync a file or folder by its path (a file's pages reach the disk whichever
    descriptor asks)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_soon(path: str) -> Future[None]:
    """Start fsyncing ``path`` in a helper thread; wait on the returned future.

    Syncs issued together share the file system's journal commits: a version's small
    files and its folder synced at once cost about one sync, where one after another
    each waited for its own."""
    return _pool("fsync", 4).submit(fsync_path, path)

