"""What a version folder holds, in the pins layout that pins-python and vetiver read.

``<name>/<version>/``:

- ``data.txt``: pins metadata (YAML, as pins-python writes it for a ``joblib`` pin),
  with ``user.vetiver_meta`` filled the way ``vetiver_pin_write`` does, so
  ``VetiverModel.from_pin`` works, and ``user.fixative`` pointing at fixative.json.
- ``<name>.joblib``: the model (always joblib, so pins can read it).
- ``fixative.json``: ``BundleMeta.to_dict()`` plus a ``fixative`` block with the
  version, the write time and the sha256 and size of every file.
- ``sample.parquet``: the bundle's bounded reference sample, when it has one.
- ``data.txt.sha256``: the sha256 of data.txt in ``sha256sum`` form, so that an edit to
  data.txt (title, description, metrics, prototype) is found by ``verify``; fixative.json
  says it was written (``fixative.data_hash``), so a missing one is found too.

Folders pinned by pins or vetiver (no ``fixative.json``) are read from data.txt.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.model.bundle import BundleMeta
from core.model.bundle import bundle as make_bundle
from core.model.prototype import Prototype
from core.store.board import DATA_HASH_FILE, PINS_META
from core.store.files import FileStat
from core.store.versions import VERSION_TIME_FORMAT, pins_created, version_time
from core.times import iso, parse_iso

if TYPE_CHECKING:  # imported where used: reading metadata needs neither
    import pandas as pd

FORMAT = 1
# pins writes a few kilobytes; a bigger data.txt is not one (and is not parsed).
MAX_DATA_TXT = 4 << 20
MODEL_TYPES = ("joblib",)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# libyaml's loader is ~30x faster than the pure-Python one; both are safe loaders.
_TITLE = re.compile(r".*: a pinned (\S+) object")
_SHA256_LINE = re.compile(rf"([0-9a-f]{{64}})(?:\s+\*?{re.escape(PINS_META)})?")


def model_file(name: str) -> str:
    return f"{name}.joblib"


def clean_json(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN/inf as null, dates as ISO text."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    numpy = sys.modules.get("numpy")  # no numpy scalar exists before numpy is imported
    if numpy is not None and isinstance(value, numpy.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):  # pandas' Timestamp too
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def dumps(value: Any) -> bytes:
    return json.dumps(clean_json(value), ensure_ascii=False).encode("utf-8")


# -- writing --------------------------------------------------------------------------

def dump_model(model: Any, file: Any) -> None:
    """Pickle ``model`` into ``file`` so that ``joblib.load`` (what pins uses) reads it.

    The standard pickler with protocol 5 streams numpy arrays straight from their
    memory (joblib.dump copies each array chunk first) and is several times faster
    than joblib's pure-Python pickler on tree ensembles; joblib.load reads the
    result like any pickle.
    """
    pickle.dump(model, file, protocol=5)


def sample_bytes(sample: pd.DataFrame) -> bytes:
    frame = sample.copy()
    frame.columns = [str(c) for c in frame.columns]
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def fixative_json(meta: BundleMeta, version: str, at: datetime,
                  files: dict[str, FileStat]) -> bytes:
    doc = meta.to_dict()
    doc["fixative"] = {
        "format": FORMAT,
        "version": version,
        "written": iso(at),
        "files": {f: {"sha256": s.sha256, "size": s.size} for f, s in sorted(files.items())},
        "data_hash": DATA_HASH_FILE,
    }
    return dumps(doc)


def data_hash_line(data_txt: bytes) -> bytes:
    """The content of data.txt.sha256 (``sha256sum -c data.txt.sha256`` checks it)."""
    return f"{hashlib.sha256(data_txt).hexdigest()}  {PINS_META}\n".encode("ascii")


def parse_data_hash(raw: bytes) -> str:
    """The sha256 in a data.txt.sha256; ValueError when it holds none."""
    m = _SHA256_LINE.fullmatch(raw.decode("ascii", "replace").strip())
    if not m:
        raise ValueError(f"{DATA_HASH_FILE} does not hold a sha256 line")
    return m.group(1)


def vetiver_prototype(prototype: Prototype) -> str | None:
    """The prototype as vetiver stores it: a JSON object of column -> example value."""
    if not prototype.columns or any(c.example is None for c in prototype.columns):
        return None
    if prototype.named:
        row = {c.name: c.example for c in prototype.columns}
    else:  # vetiver names the columns of an unnamed array "0", "1", ...
        row = {str(i): c.example for i, c in enumerate(prototype.columns)}
    return json.dumps(clean_json(row))


def data_txt(name: str, meta: BundleMeta, at: datetime, model: FileStat,
             meta_stat: FileStat, version: str) -> bytes:
    """pins metadata for a joblib pin, with vetiver's and Fixative's user fields."""
    env = meta.environment or {}
    packages = sorted((env.get("packages") or {}).keys())
    library = {"sklearn": "scikit-learn", "": "scikit-learn"}.get(meta.library, meta.library)
    doc: dict[str, Any] = {
        "api_version": 1,
        "created": at.astimezone(UTC).strftime(VERSION_TIME_FORMAT),
        "description": meta.description or f"A {library} {meta.model_class} model",
        "file": model_file(name),
        "file_size": model.size,
        "pin_hash": model.xxh64,
        "title": f"{name}: a pinned {meta.model_class or 'model'} object",
        "type": "joblib",
        "user": {
            "user": clean_json({"author": meta.user, "metrics": meta.metrics,
                                "tags": meta.tags}),
            "vetiver_meta": {
                "prototype": vetiver_prototype(meta.prototype),
                "python_version": list(env.get("python_version") or []) or None,
                "required_pkgs": packages,
            },
            "fixative": {"format": FORMAT, "version": version,
                         "meta_sha256": meta_stat.sha256, "meta_size": meta_stat.size},
        },
    }
    # Parameters and lineage also go where pins and vetiver readers look (user.fixative).
    for key in ("lineage", "metrics_data"):
        if getattr(meta, key) is not None:
            doc["user"]["fixative"][key] = clean_json(getattr(meta, key))
    if meta.tags:
        doc["tags"] = list(meta.tags)
    import yaml  # imported where used: listing from the index never reads YAML

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(doc, Dumper=dumper, sort_keys=True).encode("utf-8")


# -- reading --------------------------------------------------------------------------

def parse_data_txt(raw: bytes) -> dict[str, Any]:
    """The pins metadata as a dict; ValueError when it is not a pins data.txt."""
    import yaml

    if len(raw) > MAX_DATA_TXT:
        raise ValueError(f"{PINS_META} is over {MAX_DATA_TXT >> 20} MiB, far more than pins "
                         "metadata holds")
    try:
        doc = yaml.load(raw.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{PINS_META} is not valid YAML ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{PINS_META} does not hold a mapping")
    return doc


def fixative_block(doc: dict[str, Any]) -> dict[str, Any] | None:
    user = doc.get("user")
    block = user.get("fixative") if isinstance(user, dict) else None
    return block if isinstance(block, dict) else None


def is_model_pin(doc: dict[str, Any]) -> bool:
    return doc.get("type") in MODEL_TYPES and isinstance(doc.get("file"), str)


def _dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a dict, else an empty one (data.txt is written by many tools)."""
    return value if isinstance(value, dict) else {}


def _vetiver_meta(doc: dict[str, Any]) -> dict[str, Any]:
    user = _dict(doc.get("user"))
    vm = user.get("vetiver_meta")
    if isinstance(vm, dict):
        return vm
    # pins written by vetiver before 0.2 kept these at the top of ``user``
    return {"prototype": user.get("ptype"), "required_pkgs": user.get("required_pkgs"),
            "python_version": user.get("python_version")}


def example_prototype(text: Any) -> Prototype | None:
    """A prototype from vetiver's one-row example; kinds are known, ranges and levels not."""
    import pandas as pd

    if not text:
        return None
    try:
        row = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError:
        return None
    if not isinstance(row, dict) or not row:
        return None
    frame = pd.DataFrame([row])
    proto = Prototype.from_frame(frame, named=not all(k.isdigit() for k in row))
    for col in proto.columns:
        col.min = col.max = None
        col.categories = None
        col.nullable = False
    proto.source = "example"
    return proto


def _list(value: Any) -> list[Any]:
    """A list field of data.txt, or [] when it holds something else (hand edits)."""
    return value if isinstance(value, list) else []


def pins_meta(name: str, doc: dict[str, Any]) -> BundleMeta:
    """Metadata of a version pinned by pins or vetiver, from its data.txt alone."""
    vm = _vetiver_meta(doc)
    prototype = example_prototype(vm.get("prototype")) or Prototype([], source="feature_names")
    m = _TITLE.fullmatch(str(doc.get("title") or ""))
    python = [x for x in _list(vm.get("python_version"))[:3] if isinstance(x, int)]
    created = pins_created(doc.get("created"))
    user = _dict(doc.get("user"))
    inner = _dict(user.get("user"))
    return BundleMeta(
        name=name,
        model_class=m.group(1) if m else "",
        library="",
        task="unknown",
        prototype=prototype,
        environment={
            "python": ".".join(map(str, python)) if python else "",
            "python_version": python,
            "packages": {str(p): "" for p in _list(vm.get("required_pkgs"))},
        },
        description=str(doc.get("description") or ""),
        metrics={str(k): float(v) for k, v in _dict(inner.get("metrics")).items()
                 if isinstance(v, (int, float))},
        tags=[str(t) for t in _list(doc.get("tags"))],
        user=str(inner.get("author") or ""),
        created=iso(created) or "",
        notes=["Pinned with pins/vetiver: no reference profile, so drift cannot be measured; "
               "write the model again through Fixative with a training sample to add one."],
    )


def fixative_entry(name: str, version: str, meta_doc: dict[str, Any]) -> dict[str, Any]:
    """One row of the index's ``versions`` table for a version written by Fixative.

    Built from fixative.json alone (no YAML), which keeps syncing thousands of new
    versions fast; its hash is checked against data.txt whenever the version is read.
    """
    info = meta_doc.get("fixative") or {}
    model = (info.get("files") or {}).get(model_file(name)) or {}
    summary = {k: v for k, v in meta_doc.items() if k not in ("profile", "fixative")}
    metrics = meta_doc.get("metrics") or {}
    return {
        "name": name,
        "version": version,
        "created": parse_iso(info.get("written")) or version_time(version) or _EPOCH,
        "hash": str(model.get("sha256") or ""),
        "size": int(model.get("size") or 0),
        "user": str(meta_doc.get("user") or ""),
        "description": str(meta_doc.get("description") or ""),
        "task": str(meta_doc.get("task") or "unknown"),
        "model_class": str(meta_doc.get("model_class") or ""),
        "model_summary": summary_of(meta_doc),
        "library": str(meta_doc.get("library") or ""),
        "tags": [str(t) for t in meta_doc.get("tags") or []],
        "metrics": {str(k): float(v) for k, v in metrics.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)},
        "metadata": dumps(summary).decode("utf-8"),
        "source": "fixative",
        "problem": "",
        "params": recorded_params(meta_doc.get("lineage")),
    }


def summary_of(meta_doc: dict[str, Any]) -> str:
    """The class with its parts as recorded (BundleMeta.model_summary), from metadata."""
    lineage = meta_doc.get("lineage")
    structure = lineage.get("structure") if isinstance(lineage, dict) else None
    return str(structure if isinstance(structure, str) and structure
               else meta_doc.get("model_class") or "")


def recorded_params(lineage: Any) -> dict[str, Any]:
    """The parameters in a version's recorded lineage ({} when none were recorded)."""
    params = lineage.get("params") if isinstance(lineage, dict) else None
    return params if isinstance(params, dict) else {}


def pins_entry(name: str, version: str, doc: dict[str, Any], problem: str = ""
               ) -> dict[str, Any]:
    """One row of the index's ``versions`` table from a data.txt alone.

    ``problem`` says why a Fixative version cannot be read (its fixative.json is
    missing or unreadable); the version is still listed so the user can see it and
    repair or delete it.
    """
    meta = pins_meta(name, doc)
    size = doc.get("file_size")
    summary = {k: v for k, v in meta.to_dict().items() if k != "profile"}
    return {
        "name": name,
        "version": version,
        "created": pins_created(doc.get("created")) or version_time(version) or _EPOCH,
        "hash": str(doc.get("pin_hash") or ""),
        "size": size if isinstance(size, int) else 0,
        "user": meta.user,
        "description": meta.description,
        "task": meta.task,
        "model_class": meta.model_class,
        "model_summary": meta.model_summary,
        "library": meta.library,
        "tags": list(meta.tags),
        "metrics": dict(meta.metrics),
        "metadata": dumps(summary).decode("utf-8"),
        "source": "fixative" if fixative_block(doc) is not None else "pins",
        "problem": problem,
        "params": recorded_params((fixative_block(doc) or {}).get("lineage")),
    }


def complete_pins_meta(meta: BundleMeta, model: Any) -> BundleMeta:
    """Fill in what only the loaded model knows for a version pinned by pins or vetiver."""
    fresh = make_bundle(model, name=meta.name, description=meta.description,
                        user=meta.user or None).meta
    meta.model_class = fresh.model_class
    meta.library = fresh.library
    meta.task = fresh.task
    meta.classes = fresh.classes
    meta.has_proba = fresh.has_proba
    if not meta.prototype.columns:
        meta.prototype = fresh.prototype
    meta.prototype.accepts_nulls = fresh.prototype.accepts_nulls
    if not meta.environment.get("python"):
        meta.environment = fresh.environment
    return meta
