"""Loading model files without running untrusted code.

A pickle is a program: each global it names is imported and may be called with arguments of
the file's choosing. So before anything is unpickled, every global a file would import is
listed by running the pickle machine with inert stand-ins (no import, no call), following
joblib's container format (raw array bytes and nested pickles inline in the stream) and its
compressions, and stopping a decompression bomb while it unpacks. Loading then uses an
unpickler that resolves only admitted or explicitly trusted names and checks every call,
instantiation and BUILD against the uses recorded for them (:mod:`core.safety.guarded`), so
even a scan that was skipped or fooled cannot let code through.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import os
import pickle
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

from core.errors import InvalidModelFile, UnsafeModel
from core.safety.admitted import alias_of, resolve_admitted
from core.safety.guarded import DISPATCH, GuardedMixin, Policy
from core.safety.scan import (
    MAX_BYTES_ENV,
    RATIO_ENV,
    WRAPPER,
    Scanner,
    Stream,
    fix_name,
    fresh_extension,
    sniff,
    unpack,
    unpack_limit,
)
from core.safety.untrustable import describe, never_trusted, why_never_trusted

EXTENSIONS = (".skops", ".joblib", ".pkl", ".pickle")
_COMPRESSED = (".z", ".gz", ".bz2", ".xz", ".lzma", ".lz4")  # joblib's suffixes, e.g. m.joblib.gz
_MAX_SCHEMA = 256 << 20

# --- policy ----------------------------------------------------------------------------------
# Default-deny: a name is admitted only if it is on the record derived from real models
# (core/safety/admitted.py, core/safety/records/admitted_names.json), and only for the uses
# recorded there
# (core/safety/guarded.py). Trust admits names the person typed, never one that runs code
# (core/safety/untrustable.py).


def is_allowed(global_name: str) -> bool:
    """Whether a global ``module.qualname`` is admitted without the user's trust."""
    return alias_of(global_name) is not None


# Plain values skops writes as its own nodes (it never calls anything to rebuild them).
_SKOPS_PLAIN = frozenset(f"builtins.{n}" for n in (
    "list", "dict", "tuple", "str", "int", "float", "bool", "bytes", "bytearray", "set",
    "frozenset", "complex", "slice", "NoneType"))


def _skops_admits(global_name: str) -> bool:
    """skops loads functions as values and calls nothing, so only admitted classes and the
    functions models keep as values pass; reconstructors stay out (unguarded there)."""
    try:
        kind = resolve_admitted(global_name)[0]
    except (KeyError, ImportError, AttributeError):
        return False
    return kind in ("class", "value")


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
    names = sorted(set(forbidden))
    reasons = "; ".join(f"{n}: {why_never_trusted(n)}" for n in names)
    return (f"{filename} would run {', '.join(names)} when it is loaded ({reasons}). Such a "
            "name runs programs or code, loads or writes files, or reaches memory or "
            "attributes, which no model needs. It cannot be trusted or loaded; do not use this "
            "file, and save the model again from its training code.")


def unsafe_message(untrusted: Iterable[str], filename: str = "the model file") -> str:
    names = sorted(set(untrusted))
    forbidden = [n for n in names if never_trusted(n)]
    if forbidden:
        return forbidden_message(forbidden, filename)
    listed = ", ".join(describe(n) for n in names)
    as_list = "[" + ", ".join(repr(n) for n in names) + "]"
    flags = " ".join(f"--trust {n}" for n in names)
    return (f"{filename} would import {len(names)} name(s) outside the safety allowlist: "
            f"{listed}. The allowlist holds only what real models need. A model file is code, "
            f"and these could run anything when it is loaded. Only if you trust where the file "
            f"comes from, allow exactly these names: trusted={as_list} in Python, {flags} on "
            f"the command line, or tick the trust checkbox in the workbench.")


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
            limit, why = unpack_limit(size)
            if sum(info.file_size for info in archive.infolist()) > limit:
                raise InvalidModelFile(
                    f"{name} unpacks to more than {why}: it looks like a decompression bomb, "
                    f"so it was not read. If it really is a model that large, raise the limit "
                    f"by setting {MAX_BYTES_ENV} (bytes) or {RATIO_ENV} and try again.")
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
    untrusted = sorted(g for g in found if g not in _SKOPS_PLAIN and not _skops_admits(g))
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
    untrusted = sorted({f"{m}.{n}" for m, n in found if not is_allowed(f"{m}.{n}")})
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


def defined_in_script_message(names: Iterable[str], filename: str) -> str:
    """Why a file that needs ``__main__.<name>`` cannot be loaded, and what to do.

    pickle names a function or class by the module it was defined in; one defined in the
    training script is recorded under ``__main__`` and exists only while that script runs,
    so no trust and no installed package can provide it.
    """
    short = [n.removeprefix("__main__.") for n in names]
    listed = ", ".join(short)
    one = len(short) == 1
    return (f"{filename} needs {listed}, which {'was' if one else 'were'} defined in the "
            f"training script itself (pickle recorded {'it' if one else 'them'} under "
            f"__main__), so nothing else can import {'it' if one else 'them'}. Move {listed} "
            "into a module of its own (e.g. features.py), import it from there in the "
            "training script, train and save the model again, and install that module "
            "where the model is loaded.")


def _importer(filename: str) -> Any:
    def import_trusted(module: str, name: str) -> Any:
        full, root = f"{module}.{name}", module.split(".")[0]
        if root == "__main__":
            raise InvalidModelFile(defined_in_script_message([full], filename)) from None
        try:
            obj: Any = importlib.import_module(module)
            for part in name.split("."):
                obj = getattr(obj, part)
        except ImportError as exc:
            raise InvalidModelFile(f"{filename} needs {full}, which cannot be imported here "
                                   f"({exc}); install the package '{root}' in the version the "
                                   "model was saved with.") from None
        except AttributeError:
            raise InvalidModelFile(f"{filename} needs {full}, which the installed '{root}' "
                                   f"does not have; the model was saved with another version "
                                   f"of '{root}'. Install that version or save the model "
                                   "again.") from None
        return obj

    return import_trusted


def _policy(trusted: frozenset[str], filename: str) -> Policy:
    return Policy(trusted, filename, _importer(filename),
                  lambda full: UnsafeModel(unsafe_message([full], filename), [full]))


class _Plain(GuardedMixin, pickle._Unpickler):
    """Restricted reader for the nested pickles joblib writes for object arrays."""

    proto: int  # set by the machine, left out of typeshed
    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = {
        **pickle._Unpickler.dispatch, **DISPATCH}

    def __init__(self, fh: Any, policy: Policy) -> None:
        super().__init__(fh)
        self.policy = policy

    def find_class(self, module: str, name: str) -> Any:
        return self.policy.resolve(*fix_name(module, name, self.proto))

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("it uses persistent ids, which only custom loaders read")

    get_extension = fresh_extension


def _loader_class() -> type:
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class _Loader(GuardedMixin, NumpyUnpickler):
        """joblib's unpickler, restricted; object arrays never reach a plain pickle.load."""

        dispatch: ClassVar[dict[int, Callable[[Any], None]]] = {**NumpyUnpickler.dispatch,
                                                                **DISPATCH}
        find_class = _Plain.find_class
        persistent_load = _Plain.persistent_load
        get_extension = fresh_extension

        def __init__(self, stream: Stream, policy: Policy, filename: str) -> None:
            # joblib-stubs want a BinaryIO; joblib only reads from it
            super().__init__(filename, stream, True)  # type: ignore[arg-type]
            self.policy = policy

        def load_build(self) -> None:
            GuardedMixin.load_build(self)
            wrapper = self.stack[-1]
            if type(wrapper) is NumpyArrayWrapper:
                # joblib-stubs: dtype is any DTypeLike, but unpickled it is a numpy.dtype
                if wrapper.dtype.hasobject:  # type: ignore[union-attr]
                    array = _Plain(self.file_handle, self.policy).load()
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
        # very bytes about to be read: exactly the flagged types that are admitted (classes, and
        # functions models keep as values) or that the user trusted and trust may admit.
        report, flagged = _scan_skops(src, name, report.size)
        refuse_untrusted(report, trusted, name)
        allowed = [t for t in flagged if _skops_admits(t)
                   or (t in trusted and not never_trusted(t))]
        if len(allowed) != len(flagged):  # refuse_untrusted should have caught these
            left = sorted(set(flagged) - set(allowed))
            raise UnsafeModel(unsafe_message(left, name), left)
        try:
            if isinstance(src, bytes):
                return sio.loads(src, trusted=allowed)
            return sio.load(src, trusted=allowed)
        except Exception as exc:
            raise InvalidModelFile(f"{name} could not be loaded by skops ({exc}).") from exc
    stream = None
    with _open(src, name) as fh:
        try:
            stream = unpack(fh, name)[0]
            return _loader_class()(stream, _policy(trusted, name), name).load()
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
