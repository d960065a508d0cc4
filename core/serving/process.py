"""Build and run the prediction server for one model version, in one or many processes.

uvicorn runs several workers only from an import string, so the settings travel in
one environment variable (``FIXATIVE_SERVE_SETTINGS``, JSON) and every worker calls
:func:`app` (``core.serving.process:app``, a factory) to load the same, already
resolved version. Each worker writes its own prediction log segments; the workers'
Prometheus metrics go to a private directory they share, created for the run and
removed after it, so ``/metrics`` counts for the whole server (see
:mod:`core.serving.metrics`).

The same module is the entry point of a Docker bundle:
``python -m core.serving.process serve.json`` serves the model folder next to the
settings file, with ``PORT``, ``FIXATIVE_HOST`` and ``FIXATIVE_WORKERS`` overriding
the file and ``FIXATIVE_STORE`` naming a board for the prediction log.

Connections are bounded before a request reaches the app: uvicorn closes idle
keep-alive connections (``timeout_keep_alive``) and answers 503 past
``limit_concurrency`` open connections, and :class:`GuardedHttpTools` closes a
connection whose request head (request line and headers) has not arrived whole within
the header timeout, or answers 431 when it grows past 64 KiB: uvicorn itself waits for
a slow head forever.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core import settings as env
from core.errors import CorruptData, FixativeError, InvalidArgument, NotFound
from core.model.bundle import BundleMeta, ModelBundle
from core.serving import limits as limits_mod
from core.serving.warnpolicy import prepare_process
from core.store.protocols import StoreLike

DEFAULT_MAX_BODY = 20 * 2**20
# Seconds uvicorn gives open requests (and the log flush) after SIGTERM.
GRACEFUL_SHUTDOWN = 8


@dataclass
class ServeSettings:
    """What to serve and how; JSON-able so that every worker process gets the same."""

    name: str
    version: str
    store: str | None = None  # board to load from (unless model_dir) and to log to
    model_dir: str | None = None  # a standalone version folder (Docker bundle)
    trusted: list[str] = field(default_factory=list)
    log: bool = True
    batching: bool = True
    max_body_bytes: int | None = None
    # None: the environment variable or the default (see core.serving.limits)
    max_rows: int | None = None
    max_columns: int | None = None
    max_json_depth: int | None = None
    max_parsing: int | None = None
    body_timeout: float | None = None
    header_timeout: float | None = None
    keep_alive_timeout: float | None = None
    max_connections: int | None = None
    public_url: str | None = None
    allow_short_tokens: bool | None = None
    # shown in the replica's heartbeat (see core.serving.heartbeat)
    alias: str | None = None
    port: int | None = None
    engine: str = "auto"  # auto | sklearn | onnx (see core.serving.engine)
    # a challenger: {"name", "version", "mode", "share"[, "model_dir"]}
    # (see core.serving.challenger)
    challenger: dict[str, Any] | None = None

    def limits(self) -> limits_mod.Limits:
        """The limits in force: these settings, then the environment, then defaults."""
        return limits_mod.resolve({k: getattr(self, k) for k in (
            "max_rows", "max_columns", "max_json_depth", "max_parsing", "body_timeout",
            "header_timeout", "keep_alive_timeout", "max_connections")})

    def resolved_public_url(self) -> str | None:
        return self.public_url or env.raw(limits_mod.PUBLIC_URL_ENV) or None

    def short_tokens_allowed(self) -> bool:
        if self.allow_short_tokens is not None:
            return bool(self.allow_short_tokens)
        return limits_mod.env_flag(limits_mod.ALLOW_SHORT_TOKENS_ENV)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidArgument(f"Serve settings are not valid JSON ({exc}).") from None
        if not isinstance(data, dict) or "name" not in data or "version" not in data:
            raise InvalidArgument("Serve settings must be a JSON object with at least 'name' and "
                                  "'version'.")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def open_store(location: str | None) -> Any:
    from core.store.versionstore import VersionStore

    return VersionStore(location)


def _checked_bytes(folder: Path, file: str, expected: dict[str, Any] | None) -> bytes:
    from core.store.files import hash_bytes

    path = folder / file
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorruptData(f"{path} is missing; write the bundle again.") from None
    want = (expected or {}).get("sha256")
    if not want:
        raise CorruptData(f"No hash is recorded for {file}, so it cannot be checked; write "
                          "the bundle again.")
    if hash_bytes(raw).sha256 != want:
        raise CorruptData(f"{path} does not match the sha256 recorded when the version was "
                          "written; write the bundle again.")
    return raw


def read_version_dir(folder: str | os.PathLike[str], *, trusted: Sequence[str] = (),
                     version: str | None = None) -> ModelBundle:
    """Load a standalone copy of a version folder (as a Docker bundle holds one).

    The same checks as reading from the store: every file against the sha256 recorded
    when the version was written, and the model file through :mod:`core.safety.loader`.
    """
    import io

    import pandas as pd

    from core.safety.loader import load_model
    from core.store import layout
    from core.store.board import META_FILE, PINS_META, SAMPLE_FILE

    folder = Path(folder)
    doc = _pins_meta(folder)
    block = layout.fixative_block(doc)
    if block is None or not layout.is_model_pin(doc):
        raise InvalidArgument(f"{folder} was pinned by pins or vetiver, not written by Fixative; "
                              "read it from the store and write it again to serve it from here.")
    meta_doc = json.loads(_checked_bytes(folder, META_FILE, {"sha256": block.get("meta_sha256")}))
    files = (meta_doc.get("fixative") or {}).get("files") or {}
    model_file = str(doc["file"])
    if Path(model_file).name != model_file or model_file.startswith("."):
        raise CorruptData(f"{folder / PINS_META} names an odd model file {model_file!r}.")
    _checked_bytes(folder, model_file, files.get(model_file))
    model = load_model(folder / model_file, trusted=tuple(trusted))
    sample = None
    if files.get(SAMPLE_FILE):
        sample = pd.read_parquet(io.BytesIO(_checked_bytes(folder, SAMPLE_FILE,
                                                           files[SAMPLE_FILE])))
    return ModelBundle(model=model, meta=BundleMeta.from_dict(meta_doc), sample=sample,
                       version=version or (meta_doc.get("fixative") or {}).get("version"))


def _pins_meta(folder: Path) -> dict[str, Any]:
    """A version folder's ``data.txt``, parsed (NotFound or CorruptData when it cannot be)."""
    from core.store import layout
    from core.store.board import PINS_META

    try:
        return layout.parse_data_txt((folder / PINS_META).read_bytes())
    except FileNotFoundError:
        raise NotFound(f"{folder} holds no model version ({PINS_META} is missing).") from None
    except ValueError as exc:
        raise CorruptData(f"{folder / PINS_META} is unreadable: {exc}.") from None


@dataclass
class Served:
    """A version ready to serve: its bundle (``model`` is None on the onnx engine, which
    never unpickles it) and the engine that computes its predictions."""

    bundle: ModelBundle
    engine: Any


def read_version_graph(folder: str | os.PathLike[str], version: str | None = None
                       ) -> tuple[ModelBundle, dict[str, Any], bytes] | None:
    """A version folder's metadata, sample, compile report and checked graph, without
    its model file (None when the folder holds no compile report)."""
    import io

    import pandas as pd

    from core.store import layout
    from core.store.board import META_FILE, SAMPLE_FILE
    from core.store.paths import COMPILED_FILE, COMPILED_HASH_FILE, ONNX_FILE

    folder = Path(folder)
    doc = _pins_meta(folder)
    block = layout.fixative_block(doc) or {}
    meta_doc = json.loads(_checked_bytes(folder, META_FILE, {"sha256": block.get("meta_sha256")}))
    files = (meta_doc.get("fixative") or {}).get("files") or {}
    expected = files.get(COMPILED_FILE)
    if expected is None:
        hash_file = folder / COMPILED_HASH_FILE
        if not hash_file.is_file():
            return None
        words = hash_file.read_text("ascii", "replace").split()
        expected = {"sha256": words[0] if words else None}
    report = json.loads(_checked_bytes(folder, COMPILED_FILE, expected))
    if not isinstance(report, dict) or not report.get("available"):
        return None
    graph = _checked_bytes(folder, ONNX_FILE, report.get("graph"))
    sample = None
    if files.get(SAMPLE_FILE):
        sample = pd.read_parquet(io.BytesIO(_checked_bytes(folder, SAMPLE_FILE,
                                                           files[SAMPLE_FILE])))
    bundle = ModelBundle(model=None, meta=BundleMeta.from_dict(meta_doc), sample=sample,
                         version=version or (meta_doc.get("fixative") or {}).get("version"))
    return bundle, report, graph


def load_bundle(settings: ServeSettings, store: StoreLike | None = None) -> Served:
    """The version to serve and its engine, loaded safely: on the onnx engine only the
    checked graph is read; on sklearn, unsafe model files are refused."""
    from core.serving.engine import OnnxEngine, SklearnEngine, check_engine, wants_graph

    requested = check_engine(settings.engine)
    found = None
    if requested != "sklearn":
        if settings.model_dir:
            found = read_version_graph(settings.model_dir, settings.version)
        else:
            store = store if store is not None else open_store(settings.store)
            if store.compiled(settings.name, settings.version) is not None:
                found = store.read_graph(settings.name, settings.version)
    report = found[1] if found else None
    if found is not None and wants_graph(requested, report):
        bundle, report, graph = found
        return Served(bundle, OnnxEngine(graph, report, bundle.meta.classes))
    wants_graph(requested, report)  # --engine onnx without a graph: refused, with why
    if settings.model_dir:
        bundle = read_version_dir(settings.model_dir, trusted=settings.trusted,
                                  version=settings.version)
    else:
        store = store if store is not None else open_store(settings.store)
        bundle = store.read(settings.name, settings.version, trusted=tuple(settings.trusted))
    return Served(bundle, SklearnEngine(bundle.model, bundle.meta.prototype.named, report))


def build_app(settings: ServeSettings, served: Served | None = None,
              store: StoreLike | None = None, metrics_dir: str | None = None) -> Any:
    """A Starlette app for ``settings`` (loads the bundle unless given).

    Served from the store, the prediction log goes to that store; served from a
    version folder, to the board named by ``$FIXATIVE_STORE`` (no log when unset).
    ``metrics_dir``: the metrics directory shared by the server's workers, if several.
    """
    from core.serving.app import create_app

    if settings.model_dir:
        location = env.store_env()
        store = open_store(location) if location else None
    elif store is None:
        store = open_store(settings.store)
    served = served if served is not None else load_bundle(settings, store)
    limits = settings.limits()
    # each worker builds its app before it takes connections: the guard's timeout is set
    GuardedHttpTools.header_timeout = limits.header_timeout
    # tokens=None: create_app reads FIXATIVE_API_TOKENS itself.
    app = create_app(served.bundle, engine=served.engine, store=store,
                     log=settings.log and store is not None,
                     max_body_bytes=settings.max_body_bytes or DEFAULT_MAX_BODY,
                     batching=settings.batching, metrics_dir=metrics_dir, limits=limits,
                     public_url=settings.resolved_public_url(),
                     allow_short_tokens=settings.short_tokens_allowed())
    if settings.challenger:  # champion and challenger: see core.serving.challenger
        from core.serving.challenger import with_challenger

        app = with_challenger(app, served.bundle, settings, store)
    _attach_heartbeat(app, settings, served, store)
    return app


def _attach_heartbeat(app: Any, settings: ServeSettings, served: Served,
                      store: StoreLike | None) -> None:
    """The replica reports to the board while it serves (see core.serving.heartbeat)."""
    from core.serving import heartbeat

    bundle = served.bundle
    metrics = getattr(getattr(app.state, "svc", None), "metrics", None)
    pair = settings.challenger or {}
    heartbeat.attach(app, store, {
        "model": bundle.meta.name, "version": bundle.version or settings.version,
        "alias": settings.alias, "engine": served.engine.name,
        "library": bundle.meta.library, "port": settings.port,
        "url": settings.resolved_public_url(),
        "challenger": heartbeat.challenger_text(pair) if pair else None},
        heartbeat.metrics_counts(metrics) if metrics is not None else None)


def app() -> Any:
    """uvicorn factory (``core.serving.process:app``): settings from the environment, and
    the metrics directory shared with the other workers from ``PROMETHEUS_MULTIPROC_DIR``
    when it is set."""
    prepare_process()
    text = env.serve_settings()
    if not text:
        raise InvalidArgument(f"{env.SERVE_SETTINGS_ENV} is not set; start the server with "
                              "`python -m core serve NAME --port P`.")
    return build_app(ServeSettings.from_json(text),
                     metrics_dir=env.metrics_dir())


def run(settings: ServeSettings, *, host: str, port: int, workers: int = 1,
        served: Served | None = None, store: StoreLike | None = None,
        access_log: bool = False) -> None:
    """Serve until SIGINT/SIGTERM. One worker serves ``served`` (loaded once); more
    workers each load the same version through :func:`app` and share a metrics
    directory that lives as long as this call."""
    import uvicorn

    from core.serving.metrics import shared_metrics_dir

    common: dict[str, Any] = {"host": host, "port": port, "access_log": access_log,
                              "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN,
                              "log_level": "info", "server_header": False,
                              **uvicorn_limits(settings.limits())}
    from core.serving.heartbeat import interval

    interval()  # a bad heartbeat setting is refused here, not in each worker
    prepare_process()
    settings.port = port  # the port it really listens on, for the heartbeat
    if workers == 1:
        uvicorn.run(build_app(settings, served, store), **common)
        return
    os.environ[env.SERVE_SETTINGS_ENV] = settings.to_json()
    # Set before uvicorn spawns the workers, which inherit it (and keep it for the ones
    # it starts in place of a dead worker).
    with shared_metrics_dir():
        uvicorn.run(f"{__name__}:app", factory=True, workers=workers, **common)


# -- connection limits ---------------------------------------------------------------------

def uvicorn_limits(limits: limits_mod.Limits) -> dict[str, Any]:
    """uvicorn's settings for ``limits``: keep-alive, open connections, the guarded
    protocol (header timeout and size) when httptools is there (it is a requirement)."""
    out: dict[str, Any] = {"timeout_keep_alive": limits.keep_alive_timeout,
                           "limit_concurrency": limits.max_connections,
                           "h11_max_incomplete_event_size": limits_mod.MAX_HEAD_BYTES}
    if _HttpTools is not object:
        out["http"] = GuardedHttpTools
    return out


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpTools
except ImportError:  # pragma: no cover - httptools is in requirements.txt
    _HttpTools = object  # type: ignore[assignment,misc]

_HEAD_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: "
                   b"application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s")


class GuardedHttpTools(_HttpTools):
    """uvicorn's httptools protocol with a deadline and a size limit on each request head.

    The clock starts when the connection opens and again at the first byte of each later
    request on it; it stops when the head is complete (the body has its own deadline in
    the app). A connection past either limit is closed, so a client that sends a header
    byte now and then cannot hold a connection, or the server's connection limit, for
    ever.
    """

    header_timeout: float = limits_mod.HEADER_TIMEOUT
    max_head_bytes: int = limits_mod.MAX_HEAD_BYTES

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._head_bytes = 0
        self._head_timer: Any = None
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        waiting = self._head_timer is not None
        super().data_received(data)
        if waiting and self._head_timer is not None:  # the head is still incomplete
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
                self._stop_head_clock()
                body = (b'{"error":{"code":"headers_too_large","message":"The request line '
                        b'and headers are larger than this server accepts (64 KiB).",'
                        b'"details":[]}}')
                self.transport.write(_HEAD_TOO_LARGE % (len(body), body))
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:
            self._await_head()

    def on_headers_complete(self) -> None:
        self._stop_head_clock()
        super().on_headers_complete()

    def _await_head(self) -> None:
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_late)

    def _stop_head_clock(self) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


# -- Docker bundle entry -----------------------------------------------------------------

def _env_int(value: str | None, default: int, check: Any) -> int:
    return check(value) if value not in (None, "") else check(default)


def _bundle_folder(text: Any) -> str:
    """A version folder named in a bundle's settings: one plain folder name inside the
    bundle (never a path out of it)."""
    name = str(text)
    if (not isinstance(text, str) or not name or name in (".", "..") or "/" in name
            or "\\" in name or name.startswith(".") or len(name) > 100):
        raise InvalidArgument(f"The settings name the version folder {name[:60]!r}; it must "
                              "be a folder inside the bundle (e.g. model). Write the bundle "
                              "again.")
    return name


def _bundle_challenger(spec: Any, root: Path) -> dict[str, Any]:
    """The ``challenger`` entry of a bundle's settings, checked, with its folder made
    absolute."""
    from core.serving.challenger import MODES, parse_share

    if not isinstance(spec, dict) or not all(isinstance(spec.get(k), str) and spec.get(k)
                                             for k in ("name", "version", "mode")):
        raise InvalidArgument("The settings' challenger must be an object with name, version, "
                              "mode and model_dir; write the bundle again.")
    if spec["mode"] not in MODES:
        raise InvalidArgument(f"The challenger's mode {spec['mode'][:40]!r} is not one of "
                              f"{', '.join(MODES)}; write the bundle again.")
    share = parse_share(spec.get("share")) if spec["mode"] == "canary" else None
    folder = root / _bundle_folder(spec.get("model_dir") or "")
    return {**spec, "share": share, "model_dir": str(folder)}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m core.serving.process SETTINGS.json``: serve a bundled model folder
    (and its challenger's, when the settings name one)."""
    from core.serving.netcheck import check_host, check_port, check_workers

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m core.serving.process SETTINGS.json", file=sys.stderr)
        return 2
    try:
        path = Path(args[0]).resolve()
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"Cannot read settings file {args[0]}: {exc}.") from None
        settings = ServeSettings.from_json(json.dumps(data))
        settings.model_dir = str(path.parent / _bundle_folder(settings.model_dir or "model"))
        if settings.challenger is not None:
            settings.challenger = _bundle_challenger(settings.challenger, path.parent)
        host = check_host(env.host() or data.get("host") or "0.0.0.0")
        port = _env_int(env.port(), data.get("port", 8080), check_port)
        workers = _env_int(env.workers(), data.get("workers", 1), check_workers)
        served = load_bundle(settings) if workers == 1 else None
        if settings.log and not env.store_env():
            print(f"Prediction log off: set {env.STORE_ENV} to a board (a mounted folder or "
                  "s3://bucket/prefix) to log predictions for monitoring.", flush=True)
        print(f"Serving {settings.name}@{settings.version} on {host}:{port} with {workers} "
              f"worker{'s' if workers > 1 else ''}.", flush=True)
        if settings.challenger:
            spec = settings.challenger
            how = ("scores every request in the background" if spec["mode"] == "shadow"
                   else f"answers {spec['share'] * 100:.4g}% of requests")
            print(f"Challenger {spec['name']}@{spec['version']} ({spec['mode']}) {how}.",
                  flush=True)
        run(settings, host=host, port=port, workers=workers, served=served)
    except FixativeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
