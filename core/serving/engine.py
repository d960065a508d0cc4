"""Engines: what computes the predictions of a served version.

- ``sklearn``: the unpickled model's ``predict`` / ``predict_proba`` on the validated
  frame (its array, for a model fitted on an unnamed array).
- ``onnx``: the version's compiled graph (see :mod:`core.store.compile`) run by
  onnxruntime, fed straight from the validated columns. The model file is never
  unpickled: a server on this engine reads only the graph, the metadata and the sample.

``auto`` (the default) serves the graph when compiling it was verified: labels identical
on the stored sample and every value within ``FIXATIVE_ONNX_TOLERANCE`` (1e-5) relative;
otherwise scikit-learn. ``--engine sklearn|onnx`` overrides the choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import InvalidArgument
from core.model import onnxfeeds
from core.store.compile import summary, verified

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

ENGINES = ("auto", "sklearn", "onnx")


def check_engine(value: str | None) -> str:
    engine = (value or "auto").strip().lower()
    if engine not in ENGINES:
        raise InvalidArgument(f"--engine must be one of {', '.join(ENGINES)}, got "
                              f"{str(value)[:40]!r}.")
    return engine


def wants_graph(requested: str, report: dict[str, Any] | None) -> bool:
    """Whether ``requested`` (auto, sklearn or onnx) serves the graph of ``report``;
    InvalidArgument when onnx is asked for and there is no graph to serve."""
    if requested == "sklearn":
        return False
    if requested == "onnx":
        if not report or not report.get("available"):
            why = (report or {}).get("reason") or "the version was never compiled"
            raise InvalidArgument(f"--engine onnx: this version has no compiled graph ({why}). "
                                  "Run 'python -m core compile NAME@VERSION', or serve it with "
                                  "--engine sklearn or auto.")
        return True
    return verified(report)


@dataclass
class SklearnEngine:
    """The model object itself."""

    model: Any
    named: bool = True
    report: dict[str, Any] | None = None
    name: str = field(default="sklearn", init=False)

    def __call__(self, method: str, frame: pd.DataFrame) -> Any:
        data = frame if self.named else frame.to_numpy()
        return getattr(self.model, method)(data)

    def describe(self) -> dict[str, Any]:
        return describe(self.name, self.report)


class OnnxEngine:
    """A checked ONNX graph run by onnxruntime (one thread, one call at a time)."""

    name = "onnx"
    # fed straight from validated arrays (core.model.columns): no per-request DataFrame
    takes_columns = True

    def __init__(self, graph: bytes, report: dict[str, Any],
                 classes: list[Any] | None = None) -> None:
        import numpy as np

        from core.safety.onnxgraph import open_session

        self.report = report
        self.session = open_session(graph)
        self.inputs = onnxfeeds.inputs_from_dict(report.get("inputs") or [])
        declared = {i.name for i in self.session.get_inputs()}
        if declared != {i.name for i in self.inputs}:
            raise InvalidArgument("The compiled graph's inputs do not match its report; compile "
                                  "the version again.")
        outputs = report.get("outputs") or {}
        self._outputs = {"predict": outputs.get("predict"),
                         "predict_proba": outputs.get("proba")}
        self._vector = report.get("shape", "vector") == "vector"
        self._label_dtype = np.asarray(classes).dtype if classes is not None else None

    def __call__(self, method: str, frame: pd.DataFrame) -> np.ndarray:
        return self.run(method, onnxfeeds.feeds(frame, self.inputs))

    def call_many(self, method: str, frames: list[pd.DataFrame]) -> list[np.ndarray]:
        """One graph run for several requests' frames; each gets its own rows back."""
        import numpy as np

        parts = [onnxfeeds.feeds(f, self.inputs) for f in frames]
        merged = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        out = self.run(method, merged)
        return np.split(out, np.cumsum([len(f) for f in frames])[:-1])

    def run(self, method: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        output = self._outputs.get(method)
        if output is None:
            raise InvalidArgument(f"The compiled graph has no output for {method}.")
        out = np.asarray(self.session.run([output], feeds)[0])
        if out.dtype == np.float32:  # the same numbers scikit-learn's float64 would give
            out = out.astype(np.float64)
        if method == "predict":
            if self._vector and out.ndim == 2 and out.shape[1] == 1:
                out = out.ravel()
            if self._label_dtype is not None and self._label_dtype.kind != "O":
                out = out.astype(self._label_dtype, copy=False)
        return out

    def describe(self) -> dict[str, Any]:
        return describe(self.name, self.report)


def describe(name: str, report: dict[str, Any] | None) -> dict[str, Any]:
    """What /metadata, the docs page and the Deploy page say about the engine."""
    found: dict[str, Any] = {"name": name, "compiled": summary(report)}
    if report:
        for key in ("predict", "proba", "labels_identical", "rows"):
            found[key] = report.get(key)
        found["verified"] = verified(report)
    return found


def text(info: dict[str, Any]) -> str:
    """One line for people: ``onnx (verified on 2,000 sample rows ...)``."""
    return f"{info['name']} (compiled graph: {info['compiled']})"
