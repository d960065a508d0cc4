"""Walking pickle and joblib streams without running them.

:class:`Scanner` is the pure-Python pickle machine with every import and call replaced by a
record, so it reads a stream exactly as the real unpickler would (memo, frames, STACK_GLOBAL,
EXT codes, Python 2 names) while nothing from the file runs. It also follows joblib's container
format: raw array bytes and, for object arrays, nested pickles written inline after each
``NumpyArrayWrapper``. :class:`Stream` keeps reads bounded by the data that is really there.
Policy (which names are allowed) lives in :mod:`core.safety.loader`.
"""

from __future__ import annotations

import _compat_pickle
import bz2
import copyreg
import gzip
import lzma
import os
import pickle
import re
import struct
from collections.abc import Callable
from typing import IO, Any, ClassVar, Protocol

from core import settings
from core.errors import InvalidModelFile

_CHUNK = 1 << 20
_SMALL = 1 << 16  # longer strings, bytes and ints are skipped by the scan: no name is that long
_MAX_FRAME = 1 << 30
_MAX_UNPACKED = 1 << 62  # only a sentinel for "read to the end"; the real limits are below

# Decompression bombs. Both limits are settings (the lead may move them to core/settings.py):
# FIXATIVE_MAX_MODEL_BYTES caps what any model file may unpack to (default 2 GiB: a model
# larger than that does not belong in a workbench upload, and loading takes about twice that
# in memory). FIXATIVE_MAX_UNPACK_RATIO caps unpacked size over size on disk for compressed
# files (default 100: fitted models compress 2-20x, a file of zeros 1000x and more); files
# that unpack to less than RATIO_FLOOR are never refused for their ratio, because small
# models with constant arrays compress far better than big ones and harm nobody.
MAX_BYTES_ENV, RATIO_ENV = settings.MAX_MODEL_BYTES_ENV, settings.MAX_UNPACK_RATIO_ENV
DEFAULT_MAX_BYTES, DEFAULT_RATIO, RATIO_FLOOR = 2 << 30, 100, 64 << 20


def _setting(env: str, default: int, unit: str) -> int:
    return settings.number(env, default, integer=True, minimum=1, unit=unit,
                           error=InvalidModelFile, hint=f"or unset it for the default, {default}")


def unpack_limit(packed: int | None) -> tuple[int, str]:
    """Most bytes a file of ``packed`` compressed bytes may unpack to, and why (for messages).
    ``packed`` is None for a file that is not compressed."""
    cap = _setting(MAX_BYTES_ENV, DEFAULT_MAX_BYTES, "bytes")
    why = f"the limit of {_size(cap)} ({MAX_BYTES_ENV})"
    if packed is not None:
        ratio = _setting(RATIO_ENV, DEFAULT_RATIO, "times")
        by_ratio = max(RATIO_FLOOR, ratio * packed)
        if by_ratio < cap:
            far = "far more than " if by_ratio == RATIO_FLOOR else ""
            return by_ratio, (f"{_size(by_ratio)}, {far}{ratio} times its {_size(packed)} on "
                              f"disk ({RATIO_ENV})")
    return cap, why


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"
_MAGIC = {b"\x1f\x8b": "gzip", b"BZ": "bz2", b"\xfd7zXZ": "xz", b"]\x00": "lzma",
          b'\x04"M\x18': "lz4", b"x": "zlib", b"ZF": "old"}


class Readable(Protocol):
    """What :class:`Stream` reads from: a plain or a decompressing binary file."""

    def read(self, size: int, /) -> bytes: ...

    def readline(self, size: int, /) -> bytes: ...


class Stream:
    """A bounded reader: reads never allocate more than the data really holds."""

    def __init__(self, raw: Readable, head: bytes = b"", name: str = "the file",
                 packed: int | None = None) -> None:
        self.raw, self.head, self.name, self.pos, self.short = raw, head, name, 0, False
        self.limit, self.why = unpack_limit(packed)

    def read(self, n: int = -1) -> bytes:
        n = _MAX_UNPACKED if n is None or n < 0 else n
        out, left = [], n
        if self.head:
            out.append(self.head[:left])
            self.head = self.head[left:]
            left -= len(out[0])
        start = self.pos
        while left > 0:
            data = self.raw.read(min(left, _CHUNK))
            if not data:
                self.short = True
                break
            out.append(data)
            left -= len(data)
            self.pos = start + n - left
            self._check()  # per chunk: a bomb is stopped after the limit, not after n bytes
        self.pos = start + n - left
        self._check()
        return b"".join(out)

    def _check(self) -> None:
        if self.pos > self.limit:
            raise InvalidModelFile(
                f"{self.name} unpacks to more than {self.why}: it looks like a decompression "
                f"bomb, so it was not read further. If it really is a model that large, raise "
                f"the limit by setting {MAX_BYTES_ENV} (bytes) or {RATIO_ENV} and try again.")

    def readline(self) -> bytes:
        out: list[bytes] = []
        while not out or not out[-1].endswith(b"\n"):
            if self.head:
                cut = self.head.find(b"\n") + 1 or len(self.head)
                piece, self.head = self.head[:cut], self.head[cut:]
            else:
                piece = self.raw.readline(_CHUNK)
            if not piece:
                self.short = True
                break
            out.append(piece)
            self.pos += len(piece)
            self._check()
        return b"".join(out)

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


def unpack(fh: IO[bytes], name: str) -> tuple[Stream, str | None]:
    """Undo joblib's compression (found from the magic bytes, as joblib does)."""
    head = fh.read(6)
    if not head:
        raise InvalidModelFile(f"{name} is empty (0 bytes); save the model again and upload "
                               "that file.")
    kind = next((k for m, k in _MAGIC.items() if head.startswith(m)), None)
    if kind is None:
        return Stream(fh, head, name), None
    if kind == "old":
        raise InvalidModelFile(f"{name} uses the format of joblib before 0.10, which Fixative "
                               "does not read; load it with that joblib and save it again.")
    packed = fh.seek(0, os.SEEK_END)
    fh.seek(0)
    if kind == "lz4":
        try:
            from lz4.frame import LZ4FrameFile
        except ImportError:
            raise InvalidModelFile(f"{name} is lz4-compressed; install the lz4 package or "
                                   "save the model with another compression.") from None
        raw: Readable = LZ4FrameFile(fh, "rb")
    elif kind == "zlib":
        from joblib.compressor import BinaryZlibFile
        # joblib-stubs: the constructor takes any binary file; read() returns bytes
        raw = BinaryZlibFile(fh, "rb")  # type: ignore[arg-type, assignment]
    elif kind == "gzip":
        raw = gzip.GzipFile(fileobj=fh, mode="rb")
    else:
        raw = bz2.BZ2File(fh) if kind == "bz2" else lzma.LZMAFile(fh)
    return Stream(raw, raw.read(2), name, packed), kind


def _describe(head: bytes) -> str:
    for magic, what in ((b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"),
                        (b"\xff\xd8\xff", "a JPEG image"), (b"PK\x03\x04", "a zip archive"),
                        (b"PAR1", "a Parquet file"), (b"\x89HDF", "an HDF5 file")):
        if head.startswith(magic):
            return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "unrecognised binary data"
    return "text (CSV, JSON or similar)" if text.isprintable() or "\n" in text else \
        "unrecognised data"


_PROTO0 = re.compile(rb"^(c[A-Za-z_][\w.]*\n|[(}\])])")  # how a protocol 0/1 object pickle opens


def sniff(stream: Stream, name: str) -> None:
    head = stream.head
    if head[:1] == b"\x80" and len(head) >= 2 and head[1] <= pickle.HIGHEST_PROTOCOL:
        return
    more = stream.read(256)
    stream.head = more
    if _PROTO0.match(more) and not more.startswith(b"PK"):
        return
    if more[:1] == b"\x80" and len(more) < 2:
        raise InvalidModelFile(f"{name} ends early; the file may be truncated, upload it again.")
    hint = " If it is a skops file, name it .skops." if more.startswith(b"PK\x03\x04") else ""
    raise InvalidModelFile(f"{name} is not a pickle, joblib or skops model file: it looks like "
                           f"{_describe(more)}.{hint} Save the fitted model with joblib.dump, "
                           "pickle.dump or skops.io.dump and upload that file.")


class _Global:
    __slots__ = ("full",)

    def __init__(self, full: str) -> None:
        self.full = full


class _Obj:
    """What a call or instantiation would have produced: its kind, arguments and state."""

    def __init__(self, kind: str | None, args: Any = (), init: bool = False) -> None:
        self.kind, self.args, self.init, self.state = kind, args, init, None
        self.attrs: dict[Any, Any] = {}

    def append(self, item: Any) -> None: ...
    def extend(self, items: Any) -> None: ...
    def add(self, item: Any) -> None: ...
    def __setitem__(self, key: Any, value: Any) -> None: ...

    def build(self, state: Any) -> None:
        self.state = state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            self.attrs.update(state[1])
            state = state[0]
        if isinstance(state, dict):
            self.attrs.update(state)


WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_FACTORIES = ("copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__")


def _callee(func: Any, depth: int = 0) -> str | None:
    """The global a call reaches, looking through functools.partial as calling it would."""
    if isinstance(func, _Global):
        return func.full
    if isinstance(func, _Obj) and func.kind == "functools.partial" and depth < 32:
        state = func.state if isinstance(func.state, tuple) and func.state else func.args
        return _callee(state[0], depth + 1) if isinstance(state, tuple) and state else None
    return None


def _made(func: Any, args: Any, init: bool) -> _Obj:
    kind = _callee(func)
    first = args[0] if isinstance(args, tuple) and args else None
    if isinstance(first, _Global) and kind != "functools.partial" \
            and (kind in _FACTORIES or first.full == WRAPPER):
        # A factory handed a class returns an instance of it (pandas' _new_Index does
        # cls.__new__(cls) too): for joblib's wrapper that decides where the array bytes are.
        return _Obj(first.full, args[1:])
    return _Obj(kind, args, init)


def fresh_extension(self: Any, code: int) -> None:
    """EXT opcodes without copyreg's process-wide cache, so every one goes via find_class."""
    key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
    if not key:
        raise pickle.UnpicklingError(f"unregistered extension code {code}")
    self.append(self.find_class(*key))


def fix_name(module: str, name: str, proto: int) -> tuple[str, str]:
    """Python 2 names mapped to Python 3 ones, exactly as ``pickle.Unpickler`` does."""
    if proto < 3:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            return _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return module, name


_WRAPPER_ARGS = ("subclass", "shape", "order", "dtype", "allow_mmap",
                 "numpy_array_alignment_bytes")


class Scanner(pickle._Unpickler):
    """The pure-Python pickle machine with every import and call replaced by a record."""

    # The machine's own state, which typeshed leaves out of pickle._Unpickler.
    proto: int
    stack: list[Any]
    append: Callable[[Any], None]
    read: Callable[[int], bytes]
    readline: Callable[[], bytes]
    _unframer: Any
    _decode_string: Callable[[bytes], Any]

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)

    def __init__(self, stream: Stream, found: set[tuple[str, str]], joblib: bool) -> None:
        super().__init__(stream)
        self.stream, self.found, self.joblib = stream, found, joblib

    def find_class(self, module: str, name: str) -> _Global:
        module, name = fix_name(module, name, self.proto)
        self.found.add((module, name))
        return _Global(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("it uses persistent ids, which only custom loaders read")

    get_extension = fresh_extension

    def _instantiate(self, klass: Any, args: list[Any]) -> None:
        self.append(_made(klass, tuple(args), True))

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = _made(self.stack[-1], args, True)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = _made(self.stack[-1], args, False)

    def load_newobj_ex(self) -> None:
        self.stack.pop()
        self.load_newobj()

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, _Obj):
            inst.build(state)
            if self.joblib and inst.kind == WRAPPER:
                self.stack[-1] = _Obj("numpy.ndarray")
                self._skip_array(inst)

    def load_frame(self) -> None:
        (size,) = struct.unpack("<Q", self.read(8))
        if size > _MAX_FRAME:
            raise pickle.UnpicklingError(f"a frame of {size} bytes")
        self._unframer.load_frame(size)

    def _sized(self, fmt: str, kind: str) -> None:
        (n,) = struct.unpack(fmt, self.read(struct.calcsize(fmt)))
        if n < 0:
            raise pickle.UnpicklingError("negative byte count")
        if n > _SMALL:
            self._skip(n)
            self.append(_Obj(None))
            return
        data = self.read(n)
        if kind == "str":
            self.append(str(data, "utf-8", "surrogatepass"))
        elif kind == "long":
            self.append(pickle.decode_long(data))
        else:
            self.append(self._decode_string(data) if kind == "binstring" else
                        bytearray(data) if kind == "bytearray" else data)

    def _skip(self, n: int, raw: bool = False) -> None:
        read = self.stream.read if raw else self.read  # joblib reads arrays past the framing
        while n > 0:
            got = len(read(min(n, _CHUNK)))
            if not got:
                raise EOFError
            n -= got

    def _skip_array(self, wrapper: _Obj) -> None:
        """Step over the array joblib wrote right after the wrapper, as its read_array does."""
        attrs = dict(zip(_WRAPPER_ARGS, wrapper.args)) if wrapper.init else {}
        if wrapper.init:
            attrs.setdefault("numpy_array_alignment_bytes", 16)
        attrs.update(wrapper.attrs)
        shape = attrs.get("shape")
        if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
            raise pickle.UnpicklingError("a joblib array with a damaged shape")
        itemsize, hasobject = dtype_info(attrs.get("dtype"))
        if hasobject:  # joblib reads these with a nested, plain unpickler
            Scanner(self.stream, self.found, joblib=False).load()
            return
        if attrs.get("numpy_array_alignment_bytes") is not None:
            pad = self.stream.read(1)
            self._skip(pad[0] if pad else 1, raw=True)
        count = 1
        for d in shape:
            count *= d
        self._skip(count * itemsize, raw=True)

    for _code, _fmt, _kind in ((pickle.BINBYTES, "<I", "bytes"), (pickle.BINBYTES8, "<Q", "bytes"),
                               (pickle.BYTEARRAY8, "<Q", "bytearray"),
                               (pickle.BINUNICODE, "<I", "str"), (pickle.BINUNICODE8, "<Q", "str"),
                               (pickle.BINSTRING, "<i", "binstring"), (pickle.LONG4, "<i", "long")):
        dispatch[_code[0]] = (lambda f, k: lambda self: self._sized(f, k))(_fmt, _kind)

    def _text(self, original: Any) -> None:
        # protocol 0 writes whole arrays as one text line; keep only short ones
        line = self.readline()
        if len(line) > _SMALL:
            self.append(_Obj(None))
            return
        saved, self.readline = self.readline, lambda: line
        try:
            original(self)
        finally:
            self.readline = saved

    for _code in (pickle.UNICODE, pickle.STRING):
        dispatch[_code[0]] = (lambda o: lambda self: self._text(o))(dispatch[_code[0]])
    for _code, _meth in ((pickle.REDUCE, load_reduce), (pickle.NEWOBJ, load_newobj),
                         (pickle.NEWOBJ_EX, load_newobj_ex), (pickle.BUILD, load_build),
                         (pickle.FRAME, load_frame)):
        dispatch[_code[0]] = _meth


def dtype_info(dtype: Any) -> tuple[int, bool]:
    """Item size and whether it holds objects, from a pickled ``numpy.dtype`` call."""
    import numpy as np

    if not (isinstance(dtype, _Obj) and dtype.kind == "numpy.dtype" and dtype.args
            and isinstance(dtype.args[0], str)
            and re.fullmatch(r"[<>|=]?[A-Za-z]\d{0,9}", dtype.args[0])):
        raise pickle.UnpicklingError("a joblib array with a damaged dtype")
    try:
        base = np.dtype(dtype.args[0])
    except TypeError:
        raise pickle.UnpicklingError("a joblib array with an unknown dtype") from None
    itemsize, hasobject = base.itemsize, base.hasobject
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    if len(state) >= 6:
        sub, fields, elsize = state[2], state[4], state[5]
        if type(elsize) is int and elsize > 0:
            itemsize = elsize
        nested = [f[0] for f in fields.values() if isinstance(f, tuple) and f] \
            if isinstance(fields, dict) else []
        if isinstance(sub, tuple) and sub:
            nested.append(sub[0])
        hasobject = hasobject or any(dtype_info(d)[1] for d in nested)
    return itemsize, hasobject
