"""A version's compiled graph on the board: written, found and read back checked.

``<name>/<version>/model.onnx`` is the graph and ``compiled.json`` what compiling found
(:mod:`core.store.compile`), including the graph's sha256. Compiled when the version is
written, both are among the files fixative.json hashes. Compiled later (``python -m core
compile``, the Models page), they are added beside the version's files, which never
change: ``compiled.json.sha256`` then holds the report's hash, as data.txt.sha256 does
for data.txt. Either way, a file whose hash changed is refused, never served.

pins and vetiver read the version as before: they look at data.txt and the joblib file
only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from core import settings
from core.errors import CorruptData, InvalidArgument, NotFound
from core.store import layout
from core.store import verify as checks
from core.store.compile import Compiled, compile_model
from core.store.files import hash_bytes
from core.store.paths import COMPILED_FILE, COMPILED_HASH_FILE, ONNX_FILE

if TYPE_CHECKING:
    from core.model.bundle import ModelBundle
    from core.store.board import Board
    from core.store.staging import Stage

_SHA256 = re.compile(r"[0-9a-f]{64}")


def files_of(meta_doc: dict[str, Any] | None) -> dict[str, Any]:
    return ((meta_doc or {}).get("fixative") or {}).get("files") or {}


def compile_bundle(bundle: ModelBundle) -> Compiled:
    """Compile ``bundle``'s model against its sample; any failure is a report, never an
    error (writing a version never fails because it does not compile)."""
    try:
        return compile_model(bundle.model, bundle.meta.prototype, bundle.sample)
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        return Compiled(None, {"engine": "onnx", "available": False,
                               "reason": f"compiling failed ({type(exc).__name__}: {text})"})


def report_bytes(report: dict[str, Any]) -> bytes:
    return layout.dumps(report)


def stage_compiled(stage: Stage, bundle: ModelBundle, wanted: bool | None = None) -> None:
    """Compile ``bundle`` into a version being written (hashed with its other files) when
    ``wanted`` says so (None: as ``FIXATIVE_COMPILE`` says, off when it is unset)."""
    if wanted is None:
        wanted = settings.compile_on_write(False)
    if not wanted:
        return
    compiled = compile_bundle(bundle)
    if compiled.graph is not None:
        stage.write_bytes(ONNX_FILE, compiled.graph)
    stage.write_bytes(COMPILED_FILE, report_bytes(compiled.report))


def write_later(board: Board, name: str, version: str, compiled: Compiled) -> None:
    """Add a compile result to a stored version: the graph first, then the report, then
    the report's hash, so a reader never finds a report naming a graph not yet there."""
    if compiled.graph is not None:
        board.write_bytes((name, version, ONNX_FILE), compiled.graph)
    raw = report_bytes(compiled.report)
    board.write_bytes((name, version, COMPILED_FILE), raw)
    board.write_bytes((name, version, COMPILED_HASH_FILE),
                      f"{hash_bytes(raw).sha256}  {COMPILED_FILE}\n".encode("ascii"))


def compiled_when_written(meta_doc: dict[str, Any] | None) -> bool:
    return COMPILED_FILE in files_of(meta_doc)


def read_report(board: Board, name: str, version: str, meta_doc: dict[str, Any] | None
                ) -> dict[str, Any] | None:
    """The compile report of a version, checked against its recorded hash; None when the
    version was never compiled."""
    files = files_of(meta_doc)
    if COMPILED_FILE in files:
        raw = checks.checked_bytes(board, name, version, COMPILED_FILE,
                                   files[COMPILED_FILE].get("sha256"))
    else:
        try:
            line = board.read_bytes(name, version, COMPILED_HASH_FILE, limit=1024)
        except (FileNotFoundError, IsADirectoryError):
            return None
        token = line.decode("ascii", "replace").split()[:1]
        want = token[0] if token and _SHA256.fullmatch(token[0]) else None
        if want is None:
            raise CorruptData(f"{name}/{version}/{COMPILED_HASH_FILE} is unreadable. Compile "
                              f"again with 'python -m core compile {name}@{version}'.") from None
        raw = checks.checked_bytes(board, name, version, COMPILED_FILE, want)
    try:
        report = json.loads(raw)
    except ValueError:
        raise CorruptData(f"{name}/{version}/{COMPILED_FILE} is not JSON.") from None
    return report if isinstance(report, dict) else None


def read_graph(board: Board, name: str, version: str, report: dict[str, Any]) -> bytes:
    """The graph of a compiled version, refused unless it matches its recorded sha256."""
    want = (report.get("graph") or {}).get("sha256")
    if not want:
        raise CorruptData(f"{name}/{version} has no compiled graph: "
                          f"{report.get('reason') or 'no hash was recorded for it'}.")
    return checks.checked_bytes(board, name, version, ONNX_FILE, want)


def audit(board: Board, name: str, version: str, meta_doc: dict[str, Any] | None) -> list[str]:
    """Problems of a graph compiled after the version was written (one compiled with it is
    among the files fixative.json hashes)."""
    if compiled_when_written(meta_doc):
        return []
    try:
        report = read_report(board, name, version, meta_doc)
        if report is not None and (report.get("graph") or {}).get("sha256"):
            read_graph(board, name, version, report)
    except CorruptData as exc:
        return [exc.message]
    return []


class CompiledVersions:
    """VersionStore's compile methods (a mixin: VersionStore provides the board, the
    documents of a version, and reading one)."""

    _board: Board
    _documents: Callable[[str, str], tuple[dict[str, Any], dict[str, Any] | None]]
    _resolve: Callable[..., str]
    _sample: Callable[..., Any]
    resolve: Callable[[str], tuple[str, str]]
    read: Callable[..., ModelBundle]

    def compiled(self, name: str, version: str | None = None) -> dict[str, Any] | None:
        """What compiling the version to ONNX found (None: never compiled)."""
        version = self._resolve(name, version, None)
        return read_report(self._board, name, version, self._documents(name, version)[1])

    def compile(self, ref: str, trusted: Iterable[str] = ()) -> dict[str, Any]:
        """Compile a stored version to ONNX; returns the report. A version compiled when
        it was written keeps that result (its files never change)."""
        name, version = self.resolve(ref)
        meta_doc = self._documents(name, version)[1]
        if meta_doc is None:
            raise InvalidArgument(f"{name}@{version} was pinned by pins or vetiver; it has no "
                                  "sample to check a compiled graph on. Write it again with "
                                  "Fixative to compile it.")
        if compiled_when_written(meta_doc):
            return read_report(self._board, name, version, meta_doc) or {}
        result = compile_bundle(self.read(name, version, trusted=trusted))
        write_later(self._board, name, version, result)
        return result.report

    def read_graph(self, name: str, version: str) -> tuple[ModelBundle, dict[str, Any], bytes]:
        """A version's metadata, sample, compile report and checked graph, without ever
        loading (unpickling) its model file: the bundle's ``model`` is None."""
        from core.model.bundle import BundleMeta, ModelBundle

        _doc, meta_doc = self._documents(name, version)
        report = read_report(self._board, name, version, meta_doc)
        if meta_doc is None or report is None:
            raise NotFound(f"{name}@{version} was never compiled; run 'python -m core "
                           f"compile {name}@{version}', or serve it with --engine sklearn.")
        graph = read_graph(self._board, name, version, report)
        bundle = ModelBundle(model=None, meta=BundleMeta.from_dict(meta_doc),
                             sample=self._sample(name, version, meta_doc), version=version)
        return bundle, report, graph

    def compiled_problems(self, versions: Iterable[tuple[str, str]]) -> list[str]:
        """verify's problems with graphs compiled after their version was written."""
        out: list[str] = []
        for name, version in sorted(versions):
            try:
                if not self._board.exists(name, version, COMPILED_HASH_FILE):
                    continue  # never compiled later: the audit checked every file
                meta_doc = self._documents(name, version)[1]
            except (CorruptData, NotFound, OSError):
                continue  # reported by the audit already
            out.extend(audit(self._board, name, version, meta_doc))
        return out
