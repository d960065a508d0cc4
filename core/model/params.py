"""Parameters and lineage of a model, recorded when it is bundled.

What a person comparing two versions asks first ("what changed: 100 or 300 trees?")
must be answerable from the metadata alone, without unpickling the model file. So
:func:`lineage` records, at bundle time:

- ``params``: ``get_params(deep=True)`` flattened (scikit-learn's ``step__param`` keys)
  and made JSON-safe: numbers, booleans, None and short text stay as they are; an
  estimator becomes its class path, a function its qualified name, anything else its
  ``repr``; a value whose JSON text is longer than :data:`MAX_VALUE_CHARS` is cut and
  ends with :data:`TRUNCATED`.
- ``steps``: every estimator nested in the model (pipeline steps, ColumnTransformer
  branches) with its path and class, and ``structure``, the same in one line, e.g.
  ``Pipeline(ColumnTransformer(OneHotEncoder, passthrough) → RandomForestRegressor)``.
- ``training_data``: where given, a fingerprint of the training data (sha256 of the
  frame's content with its row and column counts, or a fingerprint the caller supplies).
- ``training_code``: where given, a reference to the code that trained the model
  (a git commit, a URL, a path).

A version written before parameters were recorded has no ``lineage``: it shows
"not recorded", never a guess.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Mapping
from typing import Any

from core.errors import InvalidArgument

MAX_VALUE_CHARS = 200
MAX_PARAMS = 500
MAX_REFERENCE = 500
MAX_DEPTH = 6
TRUNCATED = "…[truncated]"
NOT_RECORDED = "not recorded"
ARROW = " → "


def class_path(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else \
        text[:MAX_VALUE_CHARS - len(TRUNCATED)] + TRUNCATED


def _is_estimator(value: Any) -> bool:
    return not isinstance(value, type) and hasattr(value, "get_params") and (
        hasattr(value, "fit") or hasattr(value, "transform"))


def safe_value(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON: scalars kept, estimators and callables named, the rest as text."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        value = value.item()
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else _cut(str(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _cut(value)
    if isinstance(value, type) or _is_estimator(value):
        return class_path(value)
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', None) or '?'}.{value.__qualname__}"
    if depth < MAX_DEPTH and isinstance(value, (list, tuple)):
        items = [safe_value(v, depth + 1) for v in value[:50]]
        return _fit([*items, TRUNCATED] if len(value) > 50 else items)
    if depth < MAX_DEPTH and isinstance(value, Mapping):
        return _fit({str(k): safe_value(v, depth + 1) for k, v in list(value.items())[:50]})
    if numpy is not None and isinstance(value, numpy.ndarray):
        if value.size <= 50:
            return _fit(safe_value(value.tolist(), depth))
        return f"array of shape {tuple(value.shape)} ({value.dtype})"
    return _cut(repr(value))


def _fit(value: Any) -> Any:
    """A list or dict as it is when its JSON is short, else its JSON cut short."""
    text = json.dumps(value, ensure_ascii=False)
    return value if len(text) <= MAX_VALUE_CHARS else _cut(text)


def flat_params(model: Any) -> dict[str, Any]:
    """``get_params(deep=True)`` as JSON-safe values, keys sorted; {} without get_params."""
    try:
        raw = model.get_params(deep=True)
    except Exception:
        return {}
    if not isinstance(raw, Mapping):
        return {}
    out = {str(k)[:MAX_VALUE_CHARS]: safe_value(v) for k, v in sorted(raw.items(),
                                                                        key=lambda kv: str(kv[0]))}
    if len(out) > MAX_PARAMS:
        kept = dict(list(out.items())[:MAX_PARAMS])
        kept[TRUNCATED] = f"{len(out) - MAX_PARAMS} more parameters not recorded"
        return kept
    return out


def _children(model: Any) -> list[tuple[str, Any]]:
    """The named estimators directly inside ``model`` (steps, transformers, estimators)."""
    for attr in ("steps", "transformers", "transformer_list", "estimators"):
        items = getattr(model, attr, None)
        if isinstance(items, list) and all(isinstance(i, tuple) and len(i) >= 2 for i in items):
            return [(str(i[0]), i[1]) for i in items]
    out: list[tuple[str, Any]] = []
    try:  # a parameter, not a template the estimator copies (a forest's trees)
        own = model.get_params(deep=False)
    except Exception:
        return out
    for attr in ("estimator", "base_estimator", "regressor", "classifier"):
        inner = own.get(attr)
        if inner is not None and _is_estimator(inner):
            out.append((attr, inner))
    return out


def _label(value: Any) -> str:
    if isinstance(value, str):  # 'passthrough' / 'drop' in a ColumnTransformer
        return value
    return type(value).__name__


def steps(model: Any, prefix: str = "", depth: int = 0) -> list[dict[str, str]]:
    """Every nested estimator: ``{"path": "prep/num", "class": "sklearn....StandardScaler"}``."""
    out: list[dict[str, str]] = []
    if depth > MAX_DEPTH:
        return out
    for name, child in _children(model):
        path = f"{prefix}/{name}" if prefix else name
        out.append({"path": path, "class": child if isinstance(child, str)
                    else class_path(child)})
        if not isinstance(child, str):
            out.extend(steps(child, path, depth + 1))
    return out


def structure(model: Any, depth: int = 0) -> str:
    """The model's class with what it is made of, e.g. ``Pipeline(StandardScaler → Ridge)``."""
    children = _children(model) if depth <= MAX_DEPTH else []
    if not children:
        return _label(model)
    sep = ARROW if hasattr(model, "steps") else ", "
    inner = sep.join(structure(c, depth + 1) if not isinstance(c, str) else c
                     for _, c in children)
    return f"{type(model).__name__}({inner})"


def fingerprint(data: Any) -> dict[str, Any]:
    """The training data's fingerprint: ``sha256`` of its content, ``rows``, ``columns``.

    A pandas DataFrame is hashed on its column names, dtypes and values (the same
    frame always gives the same hash, whatever its memory layout); a string is taken
    as a fingerprint the caller computed.
    """
    if isinstance(data, str):
        text = data.strip()
        if not text or len(text) > MAX_REFERENCE or any(ord(c) < 32 for c in text):
            raise InvalidArgument(f"A training data fingerprint must be one line of at most "
                                  f"{MAX_REFERENCE} characters, e.g. a sha256 or a dataset URL "
                                  f"with its version; got {text[:40]!r}.")
        return {"fingerprint": text}
    import numpy as np
    import pandas as pd

    if isinstance(data, np.ndarray):
        data = pd.DataFrame(data)
    if not isinstance(data, pd.DataFrame):
        raise InvalidArgument(f"training_data must be a pandas DataFrame or a fingerprint "
                              f"string, got {type(data).__name__}.")
    digest = hashlib.sha256()
    header = [[str(c), str(t)] for c, t in zip(data.columns, data.dtypes, strict=True)]
    digest.update(json.dumps(header).encode("utf-8"))
    hashed = pd.util.hash_pandas_object(data, index=False) if len(data) else pd.Series([])
    digest.update(np.ascontiguousarray(hashed.to_numpy(dtype="uint64")).tobytes())
    return {"sha256": digest.hexdigest(), "rows": int(len(data)),
            "columns": int(data.shape[1])}


def code_reference(text: Any) -> str:
    """A training code reference (git commit, URL, path), checked to be one short line."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_REFERENCE \
            or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidArgument(f"training_code must be one line of at most {MAX_REFERENCE} "
                              "characters, e.g. 'git:3f2c1ab' or a URL to the training script; "
                              f"got {str(text)[:40]!r}.")
    return text.strip()


def lineage(model: Any, training_data: Any = None, training_code: str | None = None
            ) -> dict[str, Any]:
    """What :mod:`core.model.params` records about ``model`` (see the module docstring)."""
    out: dict[str, Any] = {
        "params": flat_params(model),
        "steps": steps(model),
        "structure": _cut(structure(model)),
    }
    if training_data is not None:
        out["training_data"] = fingerprint(training_data)
    if training_code is not None:
        out["training_code"] = code_reference(training_code)
    return out


def leaf(key: str) -> str:
    """The last segment of a flattened key: ``forest__n_estimators`` → ``n_estimators``."""
    return key.rsplit("__", 1)[-1]


def value_text(value: Any) -> str:
    """A recorded value as one line of text, the way tables and search show it."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def params_of(meta_lineage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The recorded parameters, or None when the version has none recorded."""
    if not isinstance(meta_lineage, Mapping):
        return None
    params = meta_lineage.get("params")
    return dict(params) if isinstance(params, Mapping) else None


def params_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None,
                only_changed: bool = True) -> list[tuple[str, str, str]]:
    """(key, old text, new text) per parameter; NOT_RECORDED for a side without any."""
    keys = list(old or {}) + [k for k in (new or {}) if k not in (old or {})]
    out = []
    for key in keys:
        a = value_text(old[key]) if old is not None and key in old else (
            NOT_RECORDED if old is None else "—")
        b = value_text(new[key]) if new is not None and key in new else (
            NOT_RECORDED if new is None else "—")
        if not only_changed or a != b:
            out.append((key, a, b))
    return out


def lineage_summary(recorded: Mapping[str, Any] | None, metrics_data: Mapping[str, Any] | None
                    ) -> list[tuple[str, str]]:
    """(what, text) for training data, training code and the metrics' data set, each
    as recorded or :data:`NOT_RECORDED`."""
    recorded = recorded if isinstance(recorded, Mapping) else {}
    data = recorded.get("training_data")
    if isinstance(data, Mapping) and data.get("sha256"):
        data_text = (f"sha256 {data['sha256']} ({_count(data.get('rows')):,} rows, "
                     f"{_count(data.get('columns')):,} columns)")
    elif isinstance(data, Mapping) and data.get("fingerprint"):
        data_text = str(data["fingerprint"])
    else:
        data_text = NOT_RECORDED
    evaluated = metrics_data if isinstance(metrics_data, Mapping) else {}
    on = str(evaluated.get("name") or "")
    if _count(evaluated.get("rows")):
        on = f"{on} ({_count(evaluated.get('rows')):,} rows)".strip()
    return [("training data", data_text),
            ("training code", str(recorded.get("training_code") or NOT_RECORDED)),
            ("metrics computed on", on or NOT_RECORDED)]


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
