"""Loading model files without running untrusted code.

A pickle is a program: each global it names is imported and may be called with arguments of
the file's choosing. So before anything is unpickled, every global a file would import is
listed by running the pickle machine with inert stand-ins (no import, no call), following
joblib's container format (raw array bytes and nested pickles inline in the stream) and its
compressions. Loading then uses an unpickler whose ``find_class`` resolves only allowed or
explicitly trusted names, so even a scan that was skipped or fooled cannot let code through.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import os
import pickle
import re
import types
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, ClassVar

from core.errors import InvalidModelFile, UnsafeModel
from core.safety.scan import WRAPPER, Scanner, Stream, fix_name, fresh_extension, sniff, unpack

EXTENSIONS = (".skops", ".joblib", ".pkl", ".pickle")
_COMPRESSED = (".z", ".gz", ".bz2", ".xz", ".lzma", ".lz4")  # joblib's suffixes, e.g. m.joblib.gz
_MAX_SCHEMA = 256 << 20

# --- policy ----------------------------------------------------------------------------------
# Allowed: (1) the exact names below, and (2) plain names (no dotted attribute path, no dunder)
# in the model libraries, unless a denial below matches the name where the file asks for it or
# where the object is really defined (a re-export of joblib.load or os.system stays denied), or
# it resolves to a module or a bound method. Everything else needs the user's explicit trust.
_PACKAGES = frozenset({"sklearn", "numpy", "scipy", "pandas", "xgboost", "lightgbm", "catboost"})

_EXACT = frozenset({
    # Builtins that only build plain values. Not type (it makes classes), not getattr, eval,
    # exec, compile, open, __import__, setattr, globals, input, breakpoint: those reach code.
    *(f"builtins.{n}" for n in (
        "bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int", "list",
        "object", "range", "set", "slice", "str", "tuple", "Ellipsis", "NotImplemented")),
    "collections.OrderedDict", "collections.defaultdict", "collections.deque",
    "collections.Counter",
    # How pickle itself rebuilds objects and bytes: they call only classes already on the stack.
    "copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__", "_codecs.encode",
    "datetime.date", "datetime.datetime", "datetime.time", "datetime.timedelta",
    "datetime.timezone", "decimal.Decimal", "fractions.Fraction",
    # partial only binds arguments to a callable that must itself be an allowed global, so it
    # adds no reach; HistGradientBoosting's categorical preprocessing pickles one.
    "functools.partial",
    # joblib's array placeholder; the rest of joblib (load, Memory, Parallel) stays out.
    "joblib.numpy_pickle.NumpyArrayWrapper",
    # numpy 1.x and 2.x array reconstructors, listed exactly because numpy.core is a shim that
    # warns when its attributes are looked up.
    *(f"numpy.{core}.{name}" for core in ("core", "_core")
      for name in ("multiarray._reconstruct", "multiarray.scalar", "numeric._frombuffer")),
})

# Module path components that read or write files, reach the network, evaluate strings,
# change process-wide configuration, or exist only for tests, examples, benchmarks and builds
# (numpy.testing's runstring exec's code, pandas.io and scipy.io read and write files,
# numpy.f2py compiles, numpy.random._examples JIT-compiles on import).
_DENY_PARTS = frozenset({
    "_pytesttester", "conftest", "distutils", "f2py", "_build_utils", "__check_build",
    "_pyinstaller", "io", "_io", "datasets", "_datasource", "npyio", "_npyio_impl", "format",
    "ctypeslib", "_ccallback", "memmap", "computation", "_config", "_show_versions",
    "_print_versions", "externals", "_joblib", "dask", "spark", "collective", "tracker",
    "plotting", "widget", "weave", "misc", "estimator_checks",
})
_DENY_PART_PREFIXES = ("test", "bench", "example")  # after leading underscores: _testutils
# Names (and prefixes, leading underscores ignored) that are dangerous wherever they live: file
# I/O (numpy.load runs pickles; memmap, tofile and save* write files; fetch_* downloads),
# string evaluation (pandas.eval, query), process-wide state (seed, set_*, seterr, register_*),
# and test runners or introspection helpers that no fitted model refers to.
_DENY_NAMES = frozenset({
    "eval", "exec", "compile", "system", "popen", "open", "load", "loads", "dump", "dumps",
    "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt", "fromfile",
    "tofile", "fromregex", "open_memmap", "memmap", "DataSource", "NpzFile", "lookfor", "info",
    "source", "show_config", "show_runtime", "test", "seed", "query", "HDFStore",
    "ExcelWriter", "ExcelFile", "LowLevelCallable", "get_include", "printoptions",
})
_DENY_PREFIXES = ("read_", "to_pickle", "fetch_", "load_", "dump_", "save_", "download",
                  "set_", "seterr", "setbufsize", "register_", "add_newdoc", "add_docstring")
_DUNDER = re.compile(r"^__\w+__$")

# Names that no model needs and whose only use in a pickle is to run a program, evaluate
# code, or load another pickle unchecked: refused even when named as trusted, so that a
# tick in a checkbox or a --trust flag can never run them.
_NEVER_MODULES = frozenset({"subprocess", "pty", "runpy", "code", "codeop", "ctypes",
                            "webbrowser", "pickle", "_pickle", "cPickle", "marshal", "dill",
                            "cloudpickle", "shelve"})
_NEVER_OS = ("system", "popen", "exec", "spawn", "posix_spawn", "fork", "kill", "startfile")
_NEVER_BUILTINS = frozenset({"eval", "exec", "compile", "__import__", "breakpoint", "input"})


def never_trusted(global_name: str) -> bool:
    """Whether a global runs programs or code and so may not be trusted at all."""
    module, _, name = global_name.rpartition(".")
    root = module.split(".")[0]
    if root in _NEVER_MODULES:
        return True
    if root in ("os", "posix", "nt") and name.startswith(_NEVER_OS):
        return True
    if root in ("builtins", "__builtin__") and name in _NEVER_BUILTINS:
        return True
    return module in ("importlib", "importlib._bootstrap") and name == "import_module"


def _name_ok(module: str, name: str, *, dotted: bool = False) -> bool:
    parts = module.split(".") + name.split(".")
    if parts[0] not in _PACKAGES or (not dotted and "." in name):
        return False
    if any(p in _DENY_PARTS or p.lstrip("_").startswith(_DENY_PART_PREFIXES) or _DUNDER.match(p)
           for p in parts):
        return False
    last = parts[-1].lstrip("_")  # _set_promotion_state is as global as set_printoptions
    return last not in _DENY_NAMES and not last.startswith(_DENY_PREFIXES)


@lru_cache(maxsize=4096)
def _check(module: str, name: str) -> bool:
    """Is ``module``/``name`` (as a pickle asks for it) on the allowlist?"""
    if f"{module}.{name}" in _EXACT:
        return True
    if not _name_ok(module, name):
        return False
    try:
        obj = getattr(importlib.import_module(module), name)
    except Exception:  # what cannot be resolved cannot run; loading says what is missing
        return True
    if isinstance(obj, types.ModuleType):
        return False
    owner = getattr(obj, "__self__", None)
    if owner is not None and not isinstance(owner, (types.ModuleType, type)):
        return False  # a bound method acts on hidden shared state (np.random.seed)
    if isinstance(owner, type) and not isinstance(obj, type):
        return False
    where, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(where, str) and isinstance(qual, str) and (where, qual) != (module, name):
        return f"{where}.{qual}" in _EXACT or _name_ok(where, qual, dotted=True)
    return True


def is_allowed(global_name: str) -> bool:
    """Whether a global ``module.qualname`` may be imported without the user's trust."""
    if global_name in _EXACT:
        return True
    parts = global_name.split(".")
    if len(parts) < 2 or not _name_ok(".".join(parts[:-1]), parts[-1]):
        return False  # decided before anything is imported
    for i in range(len(parts) - 1, 0, -1):  # the longest importable prefix is the module
        try:
            found = importlib.util.find_spec(".".join(parts[:i])) is not None
        except (ImportError, ValueError):
            continue
        if found:
            return _check(".".join(parts[:i]), ".".join(parts[i:]))
    return True  # not installed: judged by its name alone, and loading says what is missing


@dataclass
class SafetyReport:
    """What a model file would import, and which of those names are not allowed."""

    format: str
    globals: list[str]
    untrusted: list[str]
    size: int

    @property
    def ok(self) -> bool:
        return not self.untrusted

    @property
    def forbidden(self) -> list[str]:
        """The untrusted names that run programs or code: no trust can allow these."""
        return [n for n in self.untrusted if never_trusted(n)]

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "globals": list(self.globals),
                "untrusted": list(self.untrusted), "forbidden": self.forbidden,
                "size": self.size, "ok": self.ok}


def forbidden_message(forbidden: Iterable[str], filename: str = "the model file") -> str:
    names = ", ".join(sorted(set(forbidden)))
    return (f"{filename} would run {names} when it is loaded: that runs programs or code, "
            f"which no model needs. It cannot be trusted or loaded; do not use this file, and "
            f"save the model again from its training code.")


def unsafe_message(untrusted: Iterable[str], filename: str = "the model file") -> str:
    names = sorted(set(untrusted))
    forbidden = [n for n in names if never_trusted(n)]
    if forbidden:
        return forbidden_message(forbidden, filename)
    listed = ", ".join(names)
    as_list = "[" + ", ".join(repr(n) for n in names) + "]"
    flags = " ".join(f"--trust {n}" for n in names)
    return (f"{filename} would import {len(names)} name(s) outside the safety allowlist: "
            f"{listed}. A model file is code, and these could run anything when it is loaded. "
            f"Only if you trust where the file comes from, allow exactly these names: "
            f"trusted={as_list} in Python, {flags} on the command line, or tick the trust "
            f"checkbox in the workbench.")


# --- entry points ------------------------------------------------------------------------------
def _extension(filename: str) -> str:
    lower = filename.lower()
    for suffix in ("",) + _COMPRESSED:
        stem = lower[: len(lower) - len(suffix)] if suffix else lower
        if lower.endswith(suffix) and stem.endswith(EXTENSIONS):
            return next(e for e in EXTENSIONS if stem.endswith(e))
    raise InvalidModelFile(
        f"{filename}: unsupported file type '{Path(filename).suffix or filename}'. Fixative "
        f"reads model files ending in {', '.join(EXTENSIONS)} (also joblib's compressed "
        f"{', '.join('.joblib' + s for s in _COMPRESSED)}).")


def _failed(name: str, exc: BaseException, stream: Stream | None) -> InvalidModelFile:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or (stream is not None and stream.short) \
            or "truncated" in text or "end-of-stream" in text:
        return InvalidModelFile(f"{name} ends early; the file may be truncated, upload it again.")
    return InvalidModelFile(f"{name} is damaged or not a model file ({text}); save the model "
                            "again and upload that file.")


def _open(src: Path | bytes, name: str) -> IO[bytes]:
    if isinstance(src, bytes):
        return io.BytesIO(src)
    try:
        return open(src, "rb")
    except FileNotFoundError:
        raise InvalidModelFile(f"{name} does not exist; check the path.") from None
    except IsADirectoryError:
        raise InvalidModelFile(f"{name} is a folder, not a model file.") from None


def _scan_skops(src: Path | bytes, name: str, size: int) -> tuple[SafetyReport, list[str]]:
    import skops.io as sio

    try:
        with _open(src, name) as fh, zipfile.ZipFile(fh) as archive:
            if archive.getinfo("schema.json").file_size > _MAX_SCHEMA:
                raise InvalidModelFile(f"{name} has a skops schema of more than 256 MiB; "
                                       "that is not a model file Fixative will read.")
            schema = json.loads(archive.read("schema.json"))
        if isinstance(src, bytes):
            flagged = sio.get_untrusted_types(data=src)
        else:
            flagged = sio.get_untrusted_types(file=src)
    except InvalidModelFile:
        raise
    except (zipfile.BadZipFile, EOFError):
        raise InvalidModelFile(f"{name} is not a skops file (not a complete zip archive; it may "
                               "be truncated). Save it again with skops.io.dump and upload "
                               "it again.") from None
    except KeyError:
        raise InvalidModelFile(f"{name} is a zip archive but not a skops file (it has no "
                               "schema.json); save the model with skops.io.dump.") from None
    except (ValueError, TypeError, OSError) as exc:
        raise _failed(name, exc, None) from exc
    found: set[str] = set(flagged)
    todo = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
                found.add(f"{node['__module__']}.{node['__class__']}")
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    untrusted = sorted(g for g in found if not is_allowed(g))
    return SafetyReport("skops", sorted(found), untrusted, size), sorted(flagged)


def _scan(src: Path | bytes, name: str) -> SafetyReport:
    ext = _extension(name)
    size = len(src) if isinstance(src, bytes) else _size(src, name)
    if size == 0:
        raise InvalidModelFile(f"{name} is empty (0 bytes); save the model again and upload "
                               "that file.")
    if ext == ".skops":
        return _scan_skops(src, name, size)[0]
    found: set[tuple[str, str]] = set()
    stream = None
    with _open(src, name) as fh:
        try:
            stream, kind = unpack(fh, name)
            sniff(stream, name)
            Scanner(stream, found, joblib=True).load()
        except InvalidModelFile:
            raise
        except Exception as exc:  # only our stand-ins ran: any error is the file's shape
            raise _failed(name, exc, stream) from exc
    names = sorted({f"{m}.{n}" for m, n in found})
    untrusted = sorted({f"{m}.{n}" for m, n in found if not _check(m, n)})
    fmt = "joblib" if kind or ext == ".joblib" or WRAPPER in names else "pickle"
    return SafetyReport(fmt, names, untrusted, size)


def _size(path: Path, name: str) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        raise InvalidModelFile(f"{name} does not exist; check the path.") from None


def scan_file(path: str | os.PathLike[str], *, filename: str | None = None) -> SafetyReport:
    """List every global the file would import; never imports or runs anything from it.

    ``filename`` (e.g. the name of an upload saved under a temporary path) gives the
    extension and the name used in messages.
    """
    return _scan(Path(path), filename or Path(path).name)


def scan_bytes(data: bytes, filename: str) -> SafetyReport:
    """:func:`scan_file` for bytes in memory, such as an upload; ``filename`` gives the type."""
    return _scan(bytes(data), filename)


def _resolve(module: str, name: str, trusted: frozenset[str], filename: str) -> Any:
    full = f"{module}.{name}"
    if never_trusted(full) or (full not in trusted and not _check(module, name)):
        raise UnsafeModel(unsafe_message([full], filename), [full])
    root = module.split(".")[0]
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except ImportError as exc:
        raise InvalidModelFile(f"{filename} needs {full}, which cannot be imported here "
                               f"({exc}); install the package '{root}' in the version the "
                               "model was saved with.") from None
    except AttributeError:
        raise InvalidModelFile(f"{filename} needs {full}, which the installed '{root}' does not "
                               f"have; the model was saved with another version of '{root}'. "
                               "Install that version or save the model again.") from None
    return obj


class _Plain(pickle._Unpickler):
    """Restricted reader for the nested pickles joblib writes for object arrays."""

    proto: int  # set by the machine, left out of typeshed

    def __init__(self, fh: Any, trusted: frozenset[str], filename: str) -> None:
        super().__init__(fh)
        self.trusted, self.filename = trusted, filename

    def find_class(self, module: str, name: str) -> Any:
        return _resolve(*fix_name(module, name, self.proto), self.trusted, self.filename)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("it uses persistent ids, which only custom loaders read")

    get_extension = fresh_extension


def _loader_class() -> type:
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class _Loader(NumpyUnpickler):
        """joblib's unpickler, restricted; object arrays never reach a plain pickle.load."""

        dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(NumpyUnpickler.dispatch)
        stack: list[Any]  # the machine's, left out of typeshed
        find_class = _Plain.find_class
        persistent_load = _Plain.persistent_load
        get_extension = fresh_extension

        def __init__(self, stream: Stream, trusted: frozenset[str], filename: str) -> None:
            # joblib-stubs want a BinaryIO; joblib only reads from it
            super().__init__(filename, stream, True)  # type: ignore[arg-type]
            self.trusted = trusted

        def load_build(self) -> None:
            pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
            wrapper = self.stack[-1]
            if type(wrapper) is NumpyArrayWrapper:
                # joblib-stubs: dtype is any DTypeLike, but unpickled it is a numpy.dtype
                if wrapper.dtype.hasobject:  # type: ignore[union-attr]
                    array = _Plain(self.file_handle, self.trusted, self.filename).load()
                else:
                    array = wrapper.read(self, self.ensure_native_byte_order)
                self.stack[-1] = array

        dispatch[pickle.BUILD[0]] = load_build

    return _Loader


def refuse_untrusted(report: SafetyReport, trusted: Iterable[str], name: str,
                     advice: str = "") -> None:
    """UnsafeModel unless every untrusted import of ``report`` is named in ``trusted``
    (names that run programs or code never are). ``advice`` follows the message when
    trust could help."""
    trusted = frozenset(trusted)
    refused = [n for n in report.untrusted if n not in trusted or never_trusted(n)]
    if refused:
        forbidden = any(never_trusted(n) for n in refused)
        raise UnsafeModel(unsafe_message(refused, name) + ("" if forbidden else advice),
                          refused)


def _load(src: Path | bytes, name: str, trusted: frozenset[str], report: SafetyReport) -> Any:
    refuse_untrusted(report, trusted, name)
    if report.format == "skops":
        import skops.io as sio

        # skops loads what its ``trusted`` names, so that list comes from a fresh audit of the
        # very bytes about to be read, every name on it allowed or trusted by the user.
        report, flagged = _scan_skops(src, name, report.size)
        refuse_untrusted(report, trusted, name)
        try:
            if isinstance(src, bytes):
                return sio.loads(src, trusted=flagged)
            return sio.load(src, trusted=flagged)
        except Exception as exc:
            raise InvalidModelFile(f"{name} could not be loaded by skops ({exc}).") from exc
    stream = None
    with _open(src, name) as fh:
        try:
            stream = unpack(fh, name)[0]
            return _loader_class()(stream, trusted, name).load()
        except (InvalidModelFile, UnsafeModel):
            raise
        except Exception as exc:
            raise _failed(name, exc, stream) from exc


def load_model(path: str | os.PathLike[str], *, trusted: Iterable[str] = (),
               report: SafetyReport | None = None) -> Any:
    """Load a model file whose imports are all allowed or named in ``trusted``.

    ``report`` (from :func:`scan_file`) saves a second scan; the restricted unpickler
    enforces the same rule either way.
    """
    path = Path(path)
    if report is None or report.size != _size(path, path.name):
        report = scan_file(path)
    return _load(path, path.name, frozenset(trusted), report)


def load_bytes(data: bytes, filename: str, *, trusted: Iterable[str] = ()) -> Any:
    """:func:`load_model` for bytes in memory; ``filename`` gives the type and the name."""
    data = bytes(data)
    return _load(data, filename, frozenset(trusted), scan_bytes(data, filename))
