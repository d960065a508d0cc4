"""ModelBundle: a fitted model plus what was known at training time."""

from __future__ import annotations

import functools
import math
import os
import site
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core import settings
from core.errors import FixativeError, InvalidArgument
from core.model.prototype import Prototype

if TYPE_CHECKING:  # imported where used: reading stored metadata needs none of them
    import importlib.metadata

    import numpy as np
    import pandas as pd

TASKS = ("regression", "binary", "multiclass", "unknown")
# Always recorded: what any served scikit-learn-style model needs.
BASE_PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "joblib")
# Limits on what people type: listings and cards stay readable.
MAX_DESCRIPTION = 10_000
MAX_TAGS = 50
MAX_LABEL = 100


@dataclass
class BundleMeta:
    """Everything about a model except the model object itself. JSON-able via to_dict."""

    name: str
    model_class: str
    library: str
    task: str
    prototype: Prototype
    classes: list[Any] | None = None
    has_proba: bool = False
    profile: dict[str, Any] | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    user: str = ""
    created: str = ""
    notes: list[str] = field(default_factory=list)
    # Parameters, nested estimators and training data/code (core.model.params); None for
    # versions written before they were recorded.
    lineage: dict[str, Any] | None = None
    # The data set the metrics were computed on: {"name": ..., "rows": ...}.
    metrics_data: dict[str, Any] | None = None

    @property
    def model_summary(self) -> str:
        """The class with its parts, e.g. ``Pipeline(StandardScaler → Ridge)``."""
        return str((self.lineage or {}).get("structure") or self.model_class)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_class": self.model_class,
            "library": self.library,
            "task": self.task,
            "classes": self.classes,
            "has_proba": self.has_proba,
            "prototype": self.prototype.to_dict(),
            "profile": self.profile,
            "environment": self.environment,
            "description": self.description,
            "metrics": self.metrics,
            "tags": self.tags,
            "user": self.user,
            "created": self.created,
            "notes": self.notes,
            "lineage": self.lineage,
            "metrics_data": self.metrics_data,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BundleMeta:
        return cls(
            name=data["name"],
            model_class=data.get("model_class", ""),
            library=data.get("library", ""),
            task=data.get("task", "unknown"),
            prototype=Prototype.from_dict(data.get("prototype") or {}),
            classes=data.get("classes"),
            has_proba=bool(data.get("has_proba", False)),
            profile=data.get("profile"),
            environment=dict(data.get("environment") or {}),
            description=data.get("description") or "",
            metrics={k: float(v) for k, v in (data.get("metrics") or {}).items()},
            tags=list(data.get("tags") or []),
            user=data.get("user") or "",
            created=data.get("created") or "",
            notes=list(data.get("notes") or []),
            lineage=data.get("lineage") if isinstance(data.get("lineage"), dict) else None,
            metrics_data=data.get("metrics_data")
            if isinstance(data.get("metrics_data"), dict) else None,
        )


@dataclass
class ModelBundle:
    """The deployable unit: a fitted model, its metadata and a bounded training sample."""

    model: Any
    meta: BundleMeta
    sample: pd.DataFrame | None = None
    # Set by the store once the bundle has been written or read.
    version: str | None = None

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def prototype(self) -> Prototype:
        return self.meta.prototype

    def model_input(self, frame: pd.DataFrame) -> Any:
        """What to hand to ``predict``: the frame, or its array for unnamed-array models."""
        return frame if self.prototype.named else frame.to_numpy()

    def predict(self, data: Any) -> np.ndarray:
        """Validate ``data`` against the prototype, then predict."""
        import numpy as np

        frame, _ = self.prototype.validate(data)
        return np.asarray(self.model.predict(self.model_input(frame)))

    def predict_proba(self, data: Any) -> np.ndarray:
        import numpy as np

        if not self.meta.has_proba:
            raise InvalidArgument(f"Model '{self.name}' ({self.meta.model_class}) has no "
                                  "predict_proba; it is not a probabilistic classifier.")
        frame, _ = self.prototype.validate(data)
        return np.asarray(self.model.predict_proba(self.model_input(frame)))


def bundle(model: Any, sample: pd.DataFrame | None = None, *, name: str,
           description: str = "", metrics: Mapping[str, float | str] | None = None,
           tags: Iterable[str] | None = None, user: str | None = None,
           training_data: Any = None, training_code: str | None = None,
           metrics_data: str | None = None, metrics_rows: int | None = None) -> ModelBundle:
    """Capture a fitted model and, optionally, a sample of its training features.

    Columns of ``sample`` that the model was not fitted on (a target column, an id)
    are dropped when the model knows its feature names. The model's parameters are
    recorded (:mod:`core.model.params`), with ``training_data`` (a DataFrame to
    fingerprint, or a fingerprint string) and ``training_code`` (a git commit, URL or
    path) where given; ``metrics_data`` names the data set the metrics were computed on
    and ``metrics_rows`` its number of rows.
    """
    import numpy as np

    from core.model.params import lineage
    from core.model.profile import build_profile, row_sample

    if not hasattr(model, "predict"):
        raise InvalidArgument(f"{type(model).__name__} has no predict method; a model needs one "
                              "(any scikit-learn-style estimator works).")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise InvalidArgument(f"The description must be text of at most {MAX_DESCRIPTION:,} "
                              f"characters; put longer documentation in the model card.")
    _check_fitted(model)
    recorded = lineage(model, training_data, training_code)
    evaluated_on = _metrics_data(metrics_data, metrics_rows)
    notes: list[str] = []
    sample_rows: pd.DataFrame | None = None
    names_in = getattr(model, "feature_names_in_", None)
    if sample is not None:
        sample = _align_sample(model, sample, names_in)
        prototype = Prototype.from_frame(sample, named=names_in is not None)
    elif names_in is not None:
        prototype = Prototype.from_names(names_in)
    elif hasattr(model, "n_features_in_"):
        prototype = Prototype.from_n_features(model.n_features_in_)
    else:
        raise InvalidArgument(f"{type(model).__name__} records neither feature_names_in_ nor "
                              "n_features_in_; pass a sample of the training features.")
    prototype.accepts_nulls = _allows_nan(model)
    if prototype.missing_information:
        notes.append(prototype.missing_information)

    task, classes = _task(model)
    has_proba = _has_method(model, "predict_proba")
    profile = None
    if sample is not None:
        sample_rows = row_sample(sample)
        frame, _ = prototype.validate(sample_rows)
        model_in = frame if prototype.named else frame.to_numpy()
        try:
            preds = np.asarray(model.predict(model_in))
        except Exception as exc:
            raise InvalidArgument(
                f"The model could not predict on the sample ({type(exc).__name__}: "
                f"{_one_line(exc)}). "
                "Check that the sample holds the training features with the names and types "
                "the model was fitted on.") from None
        profile = build_profile(sample, prototype, preds)
    else:
        notes.append("No reference profile: drift cannot be measured without a training sample.")

    return ModelBundle(
        model=model,
        meta=BundleMeta(
            name=name,
            model_class=type(model).__name__,
            library=_library(model),
            task=task,
            prototype=prototype,
            classes=classes,
            has_proba=has_proba,
            profile=profile,
            environment=environment(model),
            description=description,
            metrics=_metrics(metrics),
            tags=_tags(tags),
            user=user or current_user(),
            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            notes=notes,
            lineage=recorded,
            metrics_data=evaluated_on,
        ),
        sample=sample_rows,
    )


def current_user() -> str:
    env = settings.user()
    if env:
        return env
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return "unknown"


def _metric(key: Any, value: Any) -> float:
    return finite_number(value, f"Metric '{key}'")


def _metrics(metrics: Mapping[str, float | str] | None) -> dict[str, float]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise InvalidArgument(f"metrics must map names to numbers, e.g. {{'rmse': 41000}}; got a "
                              f"{type(metrics).__name__}.")
    for key in metrics:
        _check_label(str(key), "A metric name")
    return {str(k): _metric(k, v) for k, v in metrics.items()}


def _metrics_data(name: str | None, rows: int | None) -> dict[str, Any] | None:
    if name is None and rows is None:
        return None
    if name is not None:
        if not isinstance(name, str):
            raise InvalidArgument(f"metrics_data must name the data set the metrics were "
                                  f"computed on, e.g. 'holdout 2026-Q1'; got a "
                                  f"{type(name).__name__}.")
        _check_label(name.strip(), "The name of the metrics' data set")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
        raise InvalidArgument(f"metrics_rows must be a whole number of rows, at least 1; got "
                              f"{rows!r}.")
    return {"name": (name or "").strip(), "rows": rows}


def _tags(tags: Iterable[str] | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):  # one tag, not one per character
        tags = [tags]
    try:
        found = sorted({str(t).strip() for t in tags} - {""})
    except TypeError:
        raise InvalidArgument(f"tags must be a list of words, e.g. ['houses', 'demo']; got a "
                              f"{type(tags).__name__}.") from None
    if len(found) > MAX_TAGS:
        raise InvalidArgument(f"A version can have at most {MAX_TAGS} tags, got {len(found)}.")
    for tag in found:
        _check_label(tag, "A tag")
        if "," in tag:
            raise InvalidArgument(f"A tag cannot contain a comma (listings separate tags with "
                                  f"commas), got {tag!r}; give several tags instead.")
    return found


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "…"


def _check_label(text: str, what: str) -> None:
    if len(text) > MAX_LABEL or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InvalidArgument(f"{what} must be at most {MAX_LABEL} characters without control "
                              f"characters, got {text[:40]!r}{'…' if len(text) > 40 else ''}.")


def finite_number(value: Any, what: str) -> float:
    """``value`` as a finite float, or InvalidArgument saying ``what`` must be one."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{what} must be a number, got {value!r}.") from None
    if not math.isfinite(f):
        raise InvalidArgument(f"{what} must be a finite number, got {value!r}.")
    return f


def _check_fitted(model: Any) -> None:
    try:
        from sklearn.base import BaseEstimator
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return
    if isinstance(model, BaseEstimator):
        try:
            check_is_fitted(model)
        except NotFittedError:
            raise InvalidArgument(f"{type(model).__name__} is not fitted; call fit(...) before "
                                  "storing it.") from None


def _align_sample(model: Any, sample: Any, names_in: Any) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    if isinstance(sample, np.ndarray):
        sample = pd.DataFrame(sample, columns=[f"x{i}" for i in range(sample.shape[1])]
                              if sample.ndim == 2 else None)
    if not isinstance(sample, pd.DataFrame):
        raise InvalidArgument("The sample must be a pandas DataFrame, got "
                              f"{type(sample).__name__}.")
    if len(sample) == 0 or sample.shape[1] == 0:
        raise InvalidArgument("The sample is empty; pass at least one row of the training "
                              "features.")
    if names_in is not None:
        names = [str(n) for n in names_in]
        missing = [n for n in names if n not in sample.columns]
        if missing:
            raise InvalidArgument(
                f"The sample lacks columns the model was fitted on: {', '.join(missing[:20])}"
                f"{' …' if len(missing) > 20 else ''}. Pass the training features.")
        return sample[names]
    n = getattr(model, "n_features_in_", None)
    if n is not None and sample.shape[1] != n:
        raise InvalidArgument(f"The sample has {sample.shape[1]} columns but the model was fitted "
                              f"on {n}; pass exactly the training features, in training order.")
    return sample


def _allows_nan(model: Any) -> bool:
    try:
        return bool(model.__sklearn_tags__().input_tags.allow_nan)
    except AttributeError:  # scikit-learn before 1.6 keeps its tags in a dict
        pass
    except Exception:
        return False
    try:
        return bool(model._get_tags().get("allow_nan", False))
    except Exception:
        return False


def _has_method(model: Any, method: str) -> bool:
    try:
        return callable(getattr(model, method))
    except AttributeError:  # sklearn's available_if raises for e.g. SVC(probability=False)
        return False


def _task(model: Any) -> tuple[str, list[Any] | None]:
    import numpy as np

    classes = getattr(model, "classes_", None)
    estimator_type = getattr(model, "_estimator_type", None)
    try:
        estimator_type = model.__sklearn_tags__().estimator_type
    except Exception:
        pass
    if classes is not None and estimator_type != "regressor":
        labels = np.asarray(classes).tolist()  # tolist() turns numpy scalars into Python ones
        return ("binary" if len(labels) == 2 else "multiclass"), labels
    if estimator_type == "regressor":
        return "regression", None
    return "unknown", None


def estimators(model: Any) -> list[Any]:
    """The model and every estimator nested in it (pipeline steps, transformers...)."""
    found: list[Any] = [model]
    try:
        params = model.get_params(deep=True)
    except Exception:
        return found
    for value in params.values():
        if hasattr(value, "fit") and not isinstance(value, type):
            found.append(value)
    return found


def _final_estimator(model: Any) -> Any:
    while hasattr(model, "steps"):
        model = model.steps[-1][1]
    return model


def _library(model: Any) -> str:
    return type(_final_estimator(model)).__module__.split(".")[0]


def environment(model: Any) -> dict[str, Any]:
    """Python version and the versions of the packages the model's classes come from."""
    import platform

    roots = frozenset(type(e).__module__.split(".")[0] for e in estimators(model))
    return {
        "python": platform.python_version(),
        "python_version": list(sys.version_info[:3]),
        "platform": _platform(),
        "packages": dict(_packages(roots)),
    }


# Installed packages do not change under a running process (an upgrade needs a restart to
# take effect anyway), so each lookup below is done once per process. Looking a name up in
# the installed distributions' metadata costs ~1-3 ms; mapping every module to its
# distribution (importlib.metadata.packages_distributions) costs ~0.5 s in a venv of 240
# packages, so it is only the last resort, for a module whose distribution has another name.

@functools.lru_cache(maxsize=1)
def _platform() -> str:
    import platform

    return platform.platform(terse=True)


@functools.cache
def _packages(roots: frozenset[str]) -> dict[str, str]:
    """distribution -> version: the base packages, then those providing ``roots``."""
    packages: dict[str, str] = {}
    for dist in BASE_PACKAGES:
        version = _version(dist)
        if version is not None:
            packages[dist] = version
    for root in sorted(roots):
        found = _distribution(root)
        if found and found not in packages:
            version = _version(found)
            if version is not None:
                packages[found] = version
    return packages


@functools.cache
def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


# Distributions whose import name differs from their own name, among the libraries
# models usually come from (anything else is found by the full mapping).
_KNOWN_DISTRIBUTIONS = {"sklearn": "scikit-learn", "imblearn": "imbalanced-learn"}


@functools.cache
def _distribution(module_root: str) -> str | None:
    """The installed distribution that provides the top-level module ``module_root``."""
    import importlib.metadata

    candidates = [_KNOWN_DISTRIBUTIONS.get(module_root), module_root,
                  module_root.replace("_", "-")]
    for candidate in dict.fromkeys(c for c in candidates if c):
        try:
            dist = importlib.metadata.distribution(candidate)
        except importlib.metadata.PackageNotFoundError:
            continue
        if _provides(dist, module_root):
            return dist.metadata["Name"]
    if not _installed(module_root):  # the model's own code: no distribution to look for
        return None
    dists = _module_distributions().get(module_root)
    return dists[0] if dists else None


def _installed(module_root: str) -> bool:
    """Whether the imported module ``module_root`` lives in a site-packages folder."""
    import sysconfig

    origin = getattr(sys.modules.get(module_root), "__file__", None)
    if not origin:
        return False
    folders = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"),
               *(getattr(site, "getsitepackages", list)()), site.getusersitepackages()}
    path = os.path.realpath(origin)
    return any(path.startswith(os.path.realpath(f) + os.sep) for f in folders if f)


def _provides(dist: importlib.metadata.Distribution, module_root: str) -> bool:
    """Whether ``dist`` installs the top-level module ``module_root`` (a distribution can
    share a module's name without providing it, as the ``sklearn`` placeholder does)."""
    top_level = dist.read_text("top_level.txt")
    if top_level is not None:
        return module_root in top_level.split()
    record = dist.read_text("RECORD") or ""
    return any(line.startswith((module_root + "/", module_root + ".py,"))
               for line in record.splitlines())


@functools.lru_cache(maxsize=1)
def _module_distributions() -> Mapping[str, list[str]]:
    import importlib.metadata

    return importlib.metadata.packages_distributions()


__all__ = ["BundleMeta", "ModelBundle", "bundle", "environment", "FixativeError"]
