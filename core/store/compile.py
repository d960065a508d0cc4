"""Compiling a version: convert the model to an ONNX graph and measure it on the sample.

``compile_model(model, prototype, sample)`` converts with skl2onnx (one graph input per
prototype column, see :mod:`core.model.onnxfeeds`), runs the graph with onnxruntime and
the model with scikit-learn on the stored sample, and reports what it found: whether a
graph is available (and why not: the step skl2onnx cannot convert, named), the largest
absolute and relative differences of the predictions and of the probabilities, and
whether the labels are identical. Conversion failing is a finding, never an error.

Tree models are converted to compare in double precision: scikit-learn casts the input
to float32 and compares it with float64 thresholds, so the graph casts to float32 and
back before double-precision trees, which gives the same splits (the default float
trees round the thresholds and differ on a few rows by up to ~1 %).

:func:`verified` says whether a report allows serving the graph: labels identical and
every value within the relative tolerance (``FIXATIVE_ONNX_TOLERANCE``, 1e-5). A
prediction's difference is relative to its value (at least a millionth of the largest
prediction, so a value of 0 does not make any difference infinite); a probability's is
relative to 1, its scale (float32 sums of trees put ~1e-8 where scikit-learn has 0).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core import settings
from core.model import onnxfeeds
from core.model.prototype import Prototype
from core.store.files import hash_bytes

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

ENGINE = "onnx"
# Modules of estimators that cast their input to float32 before comparing with float64
# thresholds (see the module docstring).
_FLOAT32_TREES = ("sklearn.tree.", "sklearn.ensemble._forest", "sklearn.ensemble._gb",
                  "sklearn.ensemble._iforest")
_CLASS = re.compile(r"<class '([\w.]+)'>")
# The smallest denominator of a relative difference (see _difference).
_TINY = 1e-12


@dataclass
class Compiled:
    """A graph (None when none could be made) and the report recorded on the version."""

    graph: bytes | None
    report: dict[str, Any]


def verified(report: dict[str, Any] | None, tolerance: float | None = None) -> bool:
    """Whether ``report`` allows serving the graph: labels identical on the sample and
    every value within ``tolerance`` relative (default: the setting)."""
    if not report or not report.get("available"):
        return False
    tol = settings.onnx_tolerance() if tolerance is None else tolerance
    if report.get("labels_identical") is False:
        return False
    for key in ("predict", "proba"):
        diff = report.get(key)
        if diff is not None and not diff.get("max_rel", float("inf")) <= tol:
            return False
    return True


def summary(report: dict[str, Any] | None, tolerance: float | None = None) -> str:
    """One line for people: what the compiled engine is and how it was judged."""
    if not report:
        return "not compiled: run 'python -m core compile NAME@VERSION' to try"
    if not report.get("available"):
        return f"not available: {report.get('reason') or 'unknown reason'}"
    tol = settings.onnx_tolerance() if tolerance is None else tolerance
    parts = []
    for key, label in (("predict", "predictions"), ("proba", "probabilities")):
        diff = report.get(key)
        if diff is not None:
            parts.append(f"{label} differ by at most {diff['max_rel']:.2g} relative "
                         f"({diff['max_abs']:.2g} absolute)")
    if report.get("labels_identical") is not None:
        parts.append("labels identical" if report["labels_identical"] else "labels differ")
    verdict = "verified" if verified(report, tol) else "not verified"
    return (f"{verdict} on {report.get('rows', 0):,} sample rows (tolerance {tol:g} "
            f"relative): {'; '.join(parts)}")


def compile_model(model: Any, prototype: Prototype, sample: pd.DataFrame | None) -> Compiled:
    """Convert ``model`` and compare the graph with it on ``sample`` (never raises for a
    model that does not convert: the report says why)."""
    started = time.perf_counter()
    report: dict[str, Any] = {"engine": ENGINE, "available": False, "reason": None,
                              "step": None, "rows": 0, "predict": None, "proba": None,
                              "labels_identical": None, "versions": dict(_versions())}
    try:
        graph = _compile(model, prototype, sample, report)
    except _NotCompiled as exc:
        report["reason"] = str(exc)
        graph = None
    report["seconds"] = round(time.perf_counter() - started, 3)
    if graph is not None:
        stat = hash_bytes(graph)
        report["graph"] = {"sha256": stat.sha256, "size": stat.size}
    return Compiled(graph, report)


class _NotCompiled(Exception):
    pass


@functools.cache
def _versions() -> dict[str, str]:
    """The converter's and runtime's versions, read once per process (reading a
    distribution's metadata costs milliseconds)."""
    import importlib.metadata

    found = {}
    for dist in ("skl2onnx", "onnx", "onnxruntime"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def _compile(model: Any, prototype: Prototype, sample: pd.DataFrame | None,
             report: dict[str, Any]) -> bytes:
    import numpy as np

    if sample is None or not len(sample):
        raise _NotCompiled("the version has no stored sample to check the graph on")
    try:
        variants = [onnxfeeds.graph_inputs(prototype, ints, numbers) for ints, numbers in
                    (("double", "double"), ("int64", "double"), ("float", "float"))]
    except onnxfeeds.NotFeedable as exc:
        raise _NotCompiled(str(exc)) from None
    variants = [v for i, v in enumerate(variants) if v not in variants[:i]]
    frame, _ = prototype.validate(sample)
    model_in = frame if prototype.named else frame.to_numpy()
    expected = np.asarray(model.predict(model_in))
    classifier = hasattr(model, "classes_")
    from core.safety.onnxgraph import open_session

    failure: str | None = None
    double_out = expected.dtype.kind == "f" and not classifier
    for inputs, how, graph in _candidates(model, variants, classifier, double_out):
        try:
            session = open_session(graph)
            outputs = session.run(None, onnxfeeds.feeds(frame, inputs))
        except Exception as exc:
            failure = failure or (f"onnxruntime could not run the converted graph "
                                  f"({type(exc).__name__}: {_one_line(exc)})")
            continue
        report["precision"] = how
        report["inputs"] = onnxfeeds.inputs_to_dict(inputs)
        break
    else:
        raise _NotCompiled(failure or "no graph was made")
    names = [o.name for o in session.get_outputs()]
    report["rows"] = len(frame)
    report["outputs"] = {"predict": names[0], "proba": None}
    got = np.asarray(outputs[0])
    if expected.ndim == 1 and got.ndim == 2 and got.shape[1] == 1:
        got = got.ravel()
    report["shape"] = "vector" if expected.ndim == 1 else "matrix"
    if classifier:
        report["labels_identical"] = got.tolist() == expected.tolist()
        if _has_proba(model) and len(outputs) > 1:
            report["outputs"]["proba"] = names[1]
            report["proba"] = _difference(np.asarray(outputs[1]),
                                          np.asarray(model.predict_proba(model_in)), proba=True)
    else:
        if got.shape != expected.shape:
            raise _NotCompiled(f"the graph returns {got.shape} values where the model returns "
                               f"{expected.shape}")
        report["predict"] = _difference(got, expected)
    report["available"] = True
    return graph


def _has_proba(model: Any) -> bool:
    try:
        return callable(model.predict_proba)
    except AttributeError:
        return False


def _difference(got: np.ndarray, expected: np.ndarray, proba: bool = False) -> dict[str, float]:
    """Largest absolute and relative differences. A value near zero makes any relative
    difference huge, so each is relative to the larger of the value and a floor: 1 for
    probabilities (their scale), a millionth of the largest value for predictions."""
    import numpy as np

    a = got.astype(np.float64)
    b = expected.astype(np.float64)
    if a.shape != b.shape:
        raise _NotCompiled(f"the graph returns {a.shape} values where the model returns "
                           f"{b.shape}")
    diff = np.abs(a - b)
    both_nan = np.isnan(a) & np.isnan(b)
    diff[both_nan] = 0.0
    scale = np.abs(b[np.isfinite(b)])
    floor = 1.0 if proba else max(_TINY, 1e-6 * float(scale.max()) if scale.size else _TINY)
    rel = diff / np.maximum(np.abs(b), floor)
    rel[both_nan] = 0.0
    max_abs = float(np.max(diff)) if diff.size else 0.0
    max_rel = float(np.max(rel)) if rel.size else 0.0
    return {"max_abs": max_abs if np.isfinite(max_abs) else float("inf"),
            "max_rel": max_rel if np.isfinite(max_rel) else float("inf")}


def _candidates(model: Any, variants: list[list[onnxfeeds.Input]], classifier: bool,
                double_out: bool) -> Iterator[tuple[list[onnxfeeds.Input], str, bytes]]:
    """Graphs to try, best first, for each way of typing the inputs; _NotCompiled with the
    first conversion error when none converts."""
    first: _NotCompiled | None = None
    made = False
    for inputs in variants:
        try:
            for how, graph in _convert(model, inputs, classifier, double_out):
                made = True
                yield inputs, how, graph
        except _NotCompiled as exc:
            first = first or exc
    if not made and first is not None:
        raise first


def _convert(model: Any, inputs: list[onnxfeeds.Input], classifier: bool, double_out: bool
             ) -> Iterator[tuple[str, bytes]]:
    """The model as ONNX bytes, best first: with double-precision trees, then as skl2onnx
    converts it by default. _NotCompiled, naming the step, when neither converts."""
    import warnings

    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import (
            DoubleTensorType,
            FloatTensorType,
            Int64TensorType,
            StringTensorType,
        )
    except ImportError:
        raise _NotCompiled("skl2onnx is not installed (pip install skl2onnx onnxruntime)"
                           ) from None
    kinds = {"int64": Int64TensorType, "double": DoubleTensorType, "float": FloatTensorType,
             "string": StringTensorType}
    types = [(i.name, kinds[i.type]([None, len(i.columns)])) for i in inputs]
    final = _final(model)
    options = {id(final): {"zipmap": False}} if classifier else None
    opset = {"": 17, "ai.onnx.ml": 3}
    attempts = []
    precise = _with_double_trees(model, final)
    if precise is not None:
        final_types = [("variable", DoubleTensorType([None, 1]))] if double_out else None
        attempts.append((precise, final_types, "double"))
    attempts.append((model, None, "default"))
    error: Exception | None = None
    made = False
    for candidate, final_types, how in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                onx = convert_sklearn(candidate, initial_types=types, final_types=final_types,
                                      options=options, target_opset=opset)
        except Exception as exc:
            error = error or exc
            continue
        made = True
        yield how, onx.SerializeToString()
    if not made:
        assert error is not None
        raise _NotCompiled(_conversion_reason(model, error))


def _final(model: Any) -> Any:
    while hasattr(model, "steps"):
        model = model.steps[-1][1]
    return model


def _with_double_trees(model: Any, final: Any) -> Any:
    """A copy of the pipeline with float32-then-float64 casts before a tree model, or None
    when its final estimator is not such a tree model."""
    if not type(final).__module__.startswith(_FLOAT32_TREES):
        return None
    import numpy as np
    from skl2onnx.sklapi import CastTransformer
    from sklearn.pipeline import Pipeline

    casts = [("fixative_float32", CastTransformer(dtype=np.float32).fit(np.zeros((1, 1)))),
             ("fixative_float64", CastTransformer(dtype=np.float64).fit(np.zeros((1, 1))))]
    if hasattr(model, "steps") and model.steps[-1][1] is final:
        return Pipeline([*model.steps[:-1], *casts, model.steps[-1]])
    if model is final:
        return Pipeline([*casts, ("model", final)])
    return None


def _conversion_reason(model: Any, exc: Exception) -> str:
    text = _one_line(exc)
    found = _CLASS.search(str(exc))
    if found:
        cls = found.group(1)
        step = _step_of(model, cls.rsplit(".", 1)[-1])
        where = f" (step {step!r})" if step else ""
        return f"skl2onnx cannot convert {cls}{where}: it has no converter for it"
    return f"skl2onnx could not convert the model ({type(exc).__name__}: {text})"


def _step_of(model: Any, cls_name: str) -> str | None:
    if type(model).__name__ == cls_name:
        return type(model).__name__
    try:
        params = model.get_params(deep=True)
    except Exception:
        return None
    for key, value in params.items():
        if type(value).__name__ == cls_name:
            return key
    return None


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "…"
