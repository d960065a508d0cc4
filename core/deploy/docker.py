"""Docker bundle: a folder (or zip) that serves one model version anywhere containers run.

Layout of a bundle::

    Dockerfile        slim Python image of the model's major.minor, non-root, HEALTHCHECK
    .dockerignore
    requirements.txt  the model's packages pinned as recorded in the bundle, plus the
                      server's, pinned as installed here
    requirements.lock every package of the image, transitive ones too, with hashes
                      (unless written with ``lock=False``; see :mod:`core.deploy.lock`)
    k8s/              Kubernetes manifests, with ``k8s=True`` (see :mod:`core.deploy.k8s`)
    serve.json        what to serve and how (version, trusted names, workers, port)
    model/            a standalone copy of the version folder (fixative.json, the model
                      file, sample.parquet, data.txt)
    challenger/       the challenger's version folder, with ``shadow``/``canary``
                      (see :mod:`core.deploy.pair`)
    core/             the Fixative modules the server imports, nothing else
    README.md

The bundle runs from its own folder with no Fixative checkout on the path:
``python -m core.serving.process serve.json``, which is also the image's command.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import io
import json
import os
import shutil
import sys
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.errors import Conflict, InvalidArgument
from core.model.bundle import BundleMeta
from core.serving.engine import check_engine, wants_graph
from core.serving.netcheck import check_port, check_workers
from core.store.board import META_FILE
from core.store.layout import model_file
from core.store.paths import ONNX_FILE
from core.store.protocols import StoreLike

ENTRY_MODULE = "core.serving.process"
SETTINGS_FILE = "serve.json"
MODEL_DIR = "model"
DEFAULT_PORT = 8080
# What the server needs at run time whether or not its modules name it in an import
# (pandas reads Parquet through pyarrow; uvicorn is started by the entry module).
SERVER_PACKAGES = ("starlette", "uvicorn", "prometheus-client", "pandas", "numpy", "pyarrow",
                   "fsspec", "pyyaml")
# uvicorn's fast event loop and HTTP parser: used when installed (uvicorn picks them up by
# itself), so a bundle pins them when this installation has them. Marker: (pin suffix).
SPEEDUPS = {"uvloop": '; sys_platform != "win32"', "httptools": ""}
# Needed only for the prediction log on an S3 board (``--with-s3``).
S3_PACKAGES = ("s3fs",)
# A bundle served from the compiled graph runs it with onnxruntime (onnx checks it first)
# and never loads the model file, so the packages only the model file needs are left out.
ONNX_PACKAGES = ("onnxruntime", "onnx", "protobuf")
MODEL_ONLY = ("scikit-learn", "scipy", "joblib", "skops", "skl2onnx", "threadpoolctl")


def _core_dir() -> Path:
    import core

    return Path(core.__file__).resolve().parent


# -- which core modules the server needs ---------------------------------------------------

def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(core module names, top-level third-party names) imported anywhere in ``path``."""
    own, other = _imports_cached(path, path.stat().st_mtime_ns)
    return set(own), set(other)


@functools.lru_cache(maxsize=256)
def _imports_cached(path: Path, mtime_ns: int) -> tuple[frozenset[str], frozenset[str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = "core"
    own: set[str] = set()
    other: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (own if alias.name.split(".")[0] == package else other).add(
                    alias.name if alias.name.split(".")[0] == package
                    else alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside core
                base = package + (f".{node.module}" if node.module else "")
            else:
                base = node.module or ""
            if base.split(".")[0] == package:
                own.add(base)
                # ``from core import x``: x may be a module
                own.update(f"{base}.{alias.name}" for alias in node.names)
            elif base:
                other.add(base.split(".")[0])
    return frozenset(own), frozenset(other)


def core_modules(entry: str = ENTRY_MODULE) -> tuple[list[Path], set[str]]:
    """The ``core`` source files ``entry`` imports, transitively, and their third-party
    import roots. ``core/__init__.py`` is always included (importing any module runs it).
    """
    root = _core_dir()
    todo = ["core", entry]
    seen: set[str] = set()
    files: list[Path] = []
    third: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")[1:]
        candidates = [root.joinpath(*parts, "__init__.py"), root.joinpath(*parts).with_suffix(".py")
                      if parts else root / "__init__.py"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:  # a name imported from a module, not a module itself
            continue
        files.append(path)
        # Importing a.b.c runs the __init__ of every package above it.
        todo.extend(".".join(module.split(".")[:i]) for i in range(2, len(module.split("."))))
        own, other = _imports(path)
        third |= other
        todo.extend(sorted(own - seen))
    return sorted(set(files)), third


def _data_dirs() -> list[Path]:
    """Package data folders of ``core`` (templates, static files) read via importlib."""
    # every folder below core/ that is not a package holds data (templates, records)
    return sorted(p for p in _core_dir().rglob("*") if p.is_dir() and p.name != "__pycache__"
                  and not (p / "__init__.py").exists())


# -- requirements ------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _installed_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _distributions(import_roots: Iterable[str]) -> set[str]:
    mapping = _installed_distributions()
    stdlib = set(sys.stdlib_module_names)
    found: set[str] = set()
    for root in import_roots:
        if root in stdlib or root == "core":
            continue
        for dist in mapping.get(root, []):
            found.add(dist)
    return found


def _canonical(dist: str) -> str:
    return dist.lower().replace("_", "-").replace(".", "-")


def requirements(meta: BundleMeta, extra: Sequence[str] = (), graph: bool = False) -> list[str]:
    """Pinned requirement lines: the model's packages at the versions recorded in its
    bundle, then what the server needs at the versions installed here. ``graph``: the
    bundle serves the compiled graph, so the model's own libraries (scikit-learn, SciPy,
    joblib, the estimator's package) are left out and onnxruntime is in."""
    pins: dict[str, str] = {}
    shown: dict[str, str] = {}
    model_lib = _canonical(meta.library or "")
    for dist, version in (meta.environment.get("packages") or {}).items():
        if graph and (_canonical(dist) in MODEL_ONLY or _canonical(dist) == model_lib):
            continue
        pins[_canonical(dist)] = str(version)
        shown[_canonical(dist)] = dist
    _, third = core_modules()
    needed = _distributions(third) | set(SERVER_PACKAGES) | set(extra)
    if graph:
        needed = {d for d in needed if _canonical(d) not in MODEL_ONLY} | set(ONNX_PACKAGES)
    else:  # compiling happens in the store, never in a served image
        needed = {d for d in needed if _canonical(d) not in (*ONNX_PACKAGES, "skl2onnx")}
    missing: list[str] = []
    for dist in sorted(needed):
        key = _canonical(dist)
        if key in pins:
            continue
        try:
            pins[key] = importlib.metadata.version(dist)
            shown[key] = dist
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist)
    if missing:
        raise InvalidArgument(f"Cannot pin {', '.join(missing)}: not installed here. Install "
                              "them (pip install ...) and write the bundle again.")
    markers: dict[str, str] = {}
    for dist, marker in SPEEDUPS.items():
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        pins.setdefault(dist, version)
        shown.setdefault(dist, dist)
        markers[dist] = marker
    return [f"{shown[key]}=={pins[key]}{markers.get(key, '')}" for key in sorted(pins)]


# -- the files -------------------------------------------------------------------------------

def python_tag(meta: BundleMeta) -> str:
    """``major.minor`` of the Python the model was saved with (this one's if unknown)."""
    version = meta.environment.get("python_version") or []
    if len(version) >= 2 and all(isinstance(v, int) for v in version[:2]):
        return f"{version[0]}.{version[1]}"
    text = str(meta.environment.get("python") or "")
    parts = text.split(".")
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
        return f"{parts[0]}.{parts[1]}"
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


# The newest patch release of each Python, for a model whose record names only
# major.minor and that this interpreter cannot stand in for.
LATEST_PATCH = {"3.9": "3.9.23", "3.10": "3.10.18", "3.11": "3.11.13", "3.12": "3.12.11",
                "3.13": "3.13.5"}


def python_patch(meta: BundleMeta) -> str:
    """``major.minor.patch`` of the base image: the Python the model was saved with,
    else this one when its major.minor matches, else the newest known patch release."""
    tag = python_tag(meta)
    version = meta.environment.get("python_version") or []
    if (len(version) >= 3 and all(isinstance(v, int) for v in version[:3])
            and f"{version[0]}.{version[1]}" == tag):
        return f"{version[0]}.{version[1]}.{version[2]}"
    parts = str(meta.environment.get("python") or "").split(".")
    if len(parts) >= 3 and all(p.isdigit() for p in parts[:3]) and ".".join(parts[:2]) == tag:
        return ".".join(parts[:3])
    here = sys.version_info
    if f"{here[0]}.{here[1]}" == tag:
        return f"{here[0]}.{here[1]}.{here[2]}"
    return LATEST_PATCH.get(tag, f"{tag}.0")


def dockerfile(meta: BundleMeta, *, port: int = DEFAULT_PORT, workers: int = 1,
               locked: bool = False, challenger: str | None = None) -> str:
    health = ("import os, urllib.request; urllib.request.urlopen("
              "'http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/healthz', timeout=4)")
    if locked:
        install = ("# Every package pinned with its hashes: nothing else can be installed.\n"
                   "COPY requirements.lock .\n"
                   "RUN pip install --no-cache-dir --require-hashes --no-deps "
                   "-r requirements.lock")
    else:
        install = "COPY requirements.txt .\nRUN pip install --no-cache-dir -r requirements.txt"
    pair = (f"\n# With the challenger {challenger}: serve.json names both version folders."
            if challenger else "")
    return f"""\
# Serves {meta.name} ({meta.model_class}) with Fixative's prediction server.{pair}
FROM python:{python_patch(meta)}-slim

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    PORT={port} \\
    FIXATIVE_HOST=0.0.0.0 \\
    FIXATIVE_WORKERS={workers}

WORKDIR /app
{install}

# The app files stay owned by root: the server only reads them.
COPY . .
RUN groupadd --gid 10001 fixative \\
    && useradd --no-log-init --create-home --uid 10001 --gid 10001 fixative
# Numeric, so that runtimes which check for a non-root user can tell without /etc/passwd.
USER 10001:10001

EXPOSE {port}
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \\
    CMD ["python", "-c", "{health}"]

CMD ["python", "-m", "{ENTRY_MODULE}", "{SETTINGS_FILE}"]
"""


DOCKERIGNORE = """\
.venv/
**/__pycache__/
*.pyc
"""


def readme(meta: BundleMeta, version: str, *, port: int, workers: int,
           requirement_lines: Sequence[str], graph: bool = False, pair: str = "") -> str:
    tag = meta.name.lower().replace("_", "-")
    packages = "\n".join(f"    {line}" for line in requirement_lines)
    inside = ("- `challenger/`: the challenger's version folder, read the same way.\n"
              if pair else "")
    return f"""\
# {meta.name} {version}: prediction server bundle

{meta.description or f'A {meta.task} model ({meta.model_class}, {meta.library}).'}

This folder serves one model version as a REST API with Fixative's server: the
vetiver routes (`POST /predict`), the MLflow scoring routes (`POST /invocations`),
a docs page at `/` with copy-paste examples, `/openapi.json`, `/healthz` and
Prometheus metrics at `/metrics`.

{pair}## Run with Docker

    docker build -t {tag}:{version.lower()} .
    docker run --rm -p {port}:{port} {tag}:{version.lower()}

Then open http://127.0.0.1:{port}/ for the docs page, or:

    curl -X POST http://127.0.0.1:{port}/predict \\
         -H 'Content-Type: application/json' \\
         -d '{json.dumps([meta.prototype.example_record()], default=str)}'

## Run without Docker

From this folder, with Python {python_tag(meta)}:

    python -m venv .venv
    .venv/bin/pip install -r requirements.txt
    PORT={port} FIXATIVE_HOST=127.0.0.1 .venv/bin/python -m {ENTRY_MODULE} {SETTINGS_FILE}

## Settings (environment variables)

- `PORT` (default {port}): port to listen on.
- `FIXATIVE_HOST` (default 0.0.0.0): address to listen on.
- `FIXATIVE_WORKERS` (default {workers}): server processes; one per CPU core is a good start.
- `FIXATIVE_API_TOKENS` (unset): comma-separated bearer tokens; when set, every route
  but `/ping` and `/healthz` needs one (`Authorization: Bearer TOKEN`).
- `FIXATIVE_STORE` (unset): a Fixative board (a mounted folder or `s3://bucket/prefix`)
  to write the prediction log to, for monitoring; unset means no prediction log.

Each worker writes its own prediction log files, so replicas need no coordination.
`/metrics` counts for all workers of a container together, whichever one answers.
On SIGTERM (`docker stop`) every answered request is on disk before the server exits;
after SIGKILL at most the last second of log is lost.

## What is inside

{_model_text(graph)}
{inside}- `core/`: the Fixative modules the server needs.
- `serve.json`: which model and version to serve (and the challenger, with its mode and
  share), names trusted when it was bundled.
- `requirements.lock` (when written): every package of the image, transitive ones too,
  with hashes; the Dockerfile installs from it with `--require-hashes --no-deps`.
- `k8s/` (when written): Kubernetes manifests for `kubectl apply -k k8s`; read
  `k8s/kustomization.yaml` first (image name, board, the Secrets to create).
- `requirements.txt`, pinned (the model's packages as recorded when it was saved):

{packages}
"""


def _model_text(graph: bool) -> str:
    if graph:
        return ("- `model/`: the stored version as written by Fixative, without its model file:\n"
                "  the compiled graph `model.onnx` (checked before onnxruntime loads it), the\n"
                "  compile report `compiled.json`, `fixative.json` metadata with the input\n"
                "  schema and `sample.parquet`. Nothing is unpickled.")
    return ("- `model/`: the stored version as written by Fixative (model file, `fixative.json`\n"
            "  metadata with the input schema, `sample.parquet`); the model file is checked for\n"
            "  unsafe contents before it is loaded, as in the store.")


def preflight(store: StoreLike, ref: str, *, with_s3: bool = False, trusted: Sequence[str] = (),
              engine: str = "auto") -> tuple[str, str, BundleMeta, list[str], bool]:
    """Check that ``ref`` can be bundled: (name, version, metadata, requirement lines,
    whether it serves the compiled graph).

    Served by scikit-learn, the model file is scanned (never loaded): a container cannot
    ask anyone to trust an import outside the allowlist, so each one must be in
    ``trusted`` now. Served from the graph (``engine`` auto with a verified graph, or
    onnx), the model file is not in the bundle at all.
    """
    name, version = store.resolve(ref)
    if not store.fs.exists(store.path(name, version, META_FILE)):
        raise InvalidArgument(f"{name}@{version} was pinned by pins or vetiver, so it lacks the "
                              "metadata a bundle serves from; read it and write it again with "
                              "Fixative (store.write(store.read(...))), then bundle the new "
                              "version.")
    meta = store.meta(name, version)
    engine = check_engine(engine)
    if wants_graph(engine, store.compiled(name, version) if engine != "sklearn" else None):
        return name, version, meta, requirements(meta, S3_PACKAGES if with_s3 else (),
                                                 graph=True), True
    from core.safety.loader import refuse_untrusted

    refuse_untrusted(store.safety_report(name, version), trusted, f"{name}@{version}",
                     advice=" A container would refuse to load it, so no bundle is written "
                            "until each name is trusted (add the package that provides them "
                            "to the bundle's requirements.txt too).")
    return name, version, meta, requirements(meta, S3_PACKAGES if with_s3 else ()), False


def _copy_version(store: StoreLike, name: str, version: str, target: Path,
                  skip: frozenset[str] = frozenset()) -> None:
    source = store.path(name, version)
    fs = store.fs
    target.mkdir(parents=True)
    entries = fs.find(source, detail=False)
    if not entries:
        raise InvalidArgument(f"Version folder of {name}@{version} is empty on the board; run "
                              "`python -m core verify` to check the store.")
    prefix = source.rstrip("/") + "/"
    for entry in entries:
        rel = str(entry)[len(prefix):] if str(entry).startswith(prefix) else Path(entry).name
        if rel in skip:
            continue
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with fs.open(entry, "rb") as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)


def _copy_core(target: Path) -> None:
    root = _core_dir()
    files, _ = core_modules()
    for path in files:
        dest = target / path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    for folder in _data_dirs():
        shutil.copytree(folder, target / folder.relative_to(root),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _prepare_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise Conflict(f"{out_dir} exists and is not a folder; choose another output folder.")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise Conflict(f"{out_dir} already exists and is not empty; choose a new folder, "
                           "or pass --force to replace its contents.")
        if not (out_dir / "Dockerfile").exists() or not (out_dir / SETTINGS_FILE).exists():
            # --force replaces a bundle, never an unrelated folder full of someone's files.
            raise Conflict(f"{out_dir} is not empty and does not hold a Docker bundle "
                           "(no Dockerfile and serve.json); refusing to replace it even with "
                           "--force. Choose a new folder.")


def _board_for(store: StoreLike) -> str | None:
    url = str(getattr(store, "url", "") or "")
    return url if url.startswith("s3://") else None


def write_bundle(store: StoreLike, ref: str, out_dir: str | Path, *, workers: int = 1,
                 port: int = DEFAULT_PORT, trusted: Sequence[str] = (), force: bool = False,
                 with_s3: bool = False, k8s: bool = False, lock: bool = False,
                 engine: str = "auto", shadow: str | None = None,
                 canary: str | None = None) -> Path:
    """Write a Docker bundle of ``ref`` (``NAME``, ``NAME@VERSION``, ``NAME:ALIAS``).

    ``shadow`` (a REF) or ``canary`` (``REF:SHARE``, e.g. ``house@v2:10%``): serve a
    challenger next to it (see :mod:`core.deploy.pair`), checked against ``ref`` first;
    ``trusted`` and ``engine`` apply to both versions.

    ``k8s``: add Kubernetes manifests under ``k8s/`` (implies ``with_s3``: pods log to an
    ``s3://`` board). ``lock``: pin every package of the image with hashes
    (``requirements.lock``; needs the package index, see :mod:`core.deploy.lock`).
    ``engine``: see :mod:`core.serving.engine`. A bundle served from the compiled graph
    holds neither the model file nor scikit-learn.

    Refuses a non-empty ``out_dir`` unless ``force`` and it holds a previous bundle.
    The bundle is assembled next to ``out_dir`` and moved into place at the end, so a
    failure leaves no half-written bundle.
    """
    from core.store.names import parse_ref

    workers = check_workers(workers)
    port = check_port(port)
    out = Path(out_dir).expanduser()
    if str(out_dir).strip() == "":
        raise InvalidArgument("No output folder given; name a new folder for the bundle.")
    from core.deploy import pair as pairing

    request = pairing.parse_request(shadow, canary)
    name, version, meta, lines, graph = preflight(store, ref, with_s3=with_s3 or k8s,
                                                  trusted=trusted, engine=engine)
    challenger = None
    if request is not None:
        challenger = pairing.plan(store, (name, version, meta), request, trusted=trusted,
                                  engine=engine, with_s3=with_s3 or k8s)
        lines = pairing.merge_requirements(
            lines, challenger.lines, who=f"{challenger.name}@{challenger.version}")
    _prepare_out_dir(out, force)
    locked = None
    if lock:
        from core.deploy.lock import lock as lock_requirements

        locked = lock_requirements(lines, python_tag(meta))

    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as exc:
        raise InvalidArgument(f"Cannot write to {out.parent}: {exc.strerror or exc}. Choose a "
                              "folder you can write to.") from None
    try:
        # each image holds what its engine reads: the graph or the model file
        skip = frozenset({model_file(name)} if graph else {ONNX_FILE})
        _copy_version(store, name, version, staging / MODEL_DIR, skip)
        if challenger is not None:
            _copy_version(store, challenger.name, challenger.version,
                          staging / pairing.CHALLENGER_DIR,
                          frozenset({model_file(challenger.name)} if challenger.graph
                                    else {ONNX_FILE}))
        _copy_core(staging / "core")
        settings = {"name": name, "version": version, "model_dir": MODEL_DIR,
                    "trusted": list(trusted), "port": port, "workers": workers,
                    "host": "0.0.0.0", "log": True, "batching": True,
                    "alias": parse_ref(ref)[2], "engine": "onnx" if graph else "sklearn",
                    "challenger": challenger.settings() if challenger else None}
        (staging / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        (staging / "requirements.txt").write_text("\n".join(lines) + "\n")
        if locked is not None:
            from core.deploy.lock import LOCK_FILE

            (staging / LOCK_FILE).write_text(locked)
        label = challenger.label() if challenger else None
        (staging / "Dockerfile").write_text(dockerfile(meta, port=port, workers=workers,
                                                       locked=locked is not None,
                                                       challenger=label))
        if k8s:
            from core.deploy import k8s as kube
            from core.settings import s3_endpoint_url

            folder = staging / kube.K8S_DIR
            folder.mkdir()
            for file, text in kube.manifests(name, version, port=port, workers=workers,
                                             board=_board_for(store),
                                             s3_endpoint=s3_endpoint_url(),
                                             challenger=label).items():
                (folder / file).write_text(text)
        (staging / ".dockerignore").write_text(DOCKERIGNORE)
        (staging / "README.md").write_text(
            readme(meta, version, port=port, workers=workers, requirement_lines=lines,
                   graph=graph,
                   pair=(pairing.readme_section(challenger, f"{name}@{version}") + "\n"
                         if challenger else "")))
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def bundle_zip(store: StoreLike, ref: str, *, workers: int = 1, port: int = DEFAULT_PORT,
               trusted: Sequence[str] = (), with_s3: bool = False, k8s: bool = False,
               lock: bool = False, engine: str = "auto", shadow: str | None = None,
               canary: str | None = None) -> tuple[str, bytes]:
    """The bundle of ``ref`` as ``(file name, zip bytes)``, for a download button
    (``shadow``/``canary``: see :func:`write_bundle`)."""
    import tempfile

    name, version = store.resolve(ref)
    folder_name = f"{name}-{version}-docker"
    with tempfile.TemporaryDirectory() as tmp:
        out = write_bundle(store, f"{name}@{version}", Path(tmp) / folder_name,
                           workers=workers, port=port, trusted=trusted, with_s3=with_s3,
                           k8s=k8s, lock=lock, engine=engine, shadow=shadow,
                           canary=canary)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    archive.write(path, str(Path(folder_name) / path.relative_to(out)))
    return f"{folder_name}.zip", buffer.getvalue()
