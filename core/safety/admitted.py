"""The names a model file may use without trust, and how it may use them: default-deny.

The list is not written by hand. ``scripts/derive_admitted.py`` fits every estimator scikit-learn
can list, plus pipelines, column transformers, HistGradientBoosting with categorical features,
calibrated classifiers, pandas-fitted models and pandas frames; writes each with pickle and
joblib (compressed too); and records in ``records/admitted_names.json`` every global the
streams name and how they use it: ``call`` (REDUCE), ``new`` (NEWOBJ,
``copyreg._reconstructor``), ``build`` (BUILD on the result), ``skops`` (named in a skops
file) or only ``ref`` (named as a value). Nothing is admitted for the package it lives in: a
name is on the record or it is not.

Classes are admitted for the uses the record shows. A function is admitted only after review,
below: a reconstructor that builds plain values gets a guard that checks its arguments on every
call (the guard wraps the function, so a later call made by model code is checked too); a
function that models keep only as a value (``SimpleImputer`` keeps ``numpy.mean``) may be named
but never called by the stream. Review rule: a function that returns an attribute of its
argument, calls its argument, takes a path, or reaches memory by address is a gadget and is not
admitted, whatever the record says (see ``EXCLUDED``).

Review of the functions real models pickle (scikit-learn 1.5-1.9, NumPy 1.26-2.5, pandas
2.2-3.1; names older versions write under another module are read under their canonical name,
see ``canonical``):

- ``_codecs.encode``: how protocol 2 writes bytes; only with the ``latin1`` codec.
- ``copyreg._reconstructor(cls, base, state)``: ``object.__new__(cls)`` or ``base(state)``;
  ``cls`` and ``base`` must be admitted classes.
- ``numpy._core.multiarray._reconstruct(subtype, shape, dtype)``: an empty array; ``subtype``
  must be an admitted ndarray class. ``scalar(dtype, data)``: a scalar from bytes; ``dtype`` must
  be a dtype. ``numeric._frombuffer(buf, dtype, shape, order)``: an array copied from bytes
  (numpy checks the size). ``numpy.ma.core._mareconstruct``: like ``_reconstruct``.
- ``numpy.random._pickle.__bit_generator_ctor`` takes a class or a name and instantiates it;
  ``__generator_ctor`` and ``__randomstate_ctor`` call their second argument: each is checked
  to be a bit generator name or class, and the second argument the (guarded) bit generator
  constructor itself.
- Cython ``__pyx_unpickle_*(type, checksum, state)`` and scikit-learn's ``newObj(cls)`` do
  ``cls.__new__(cls)``: the class must be admitted.
- ``pandas._libs.internals._unpickle_block(values, placement, ndim)``: a block from an array;
  ``_new_Index(cls, d)`` and ``_new_DatetimeIndex(cls, d)`` do ``cls.__new__(cls, **d)``: the
  class must be an admitted Index class and ``d`` a dict.
- ``pyarrow.lib.py_buffer(bytes)``, ``type_for_alias(str)``: plain values.
  ``_restore_array(data)`` builds an Arrow array from buffers and lengths of the file's choosing,
  so the guard validates the result fully (Arrow checks buffer sizes against lengths) before it
  is used.
- Values only (never called by the stream): ``numpy.mean``, ``numpy.log1p`` (also as
  ``numpy._core._multiarray_umath.log1p``, how NumPy 1.x pickles the ufunc), the univariate
  scores (``f_classif``) and metrics (``balanced_accuracy_score``) compute on arrays;
  ``check_array`` and array-api ``asarray`` convert input to an array.
- Constants under ``other`` (``pandas.NA``) are values, admitted as such.
- ``functools.partial`` (a class): HistGradientBoosting with categorical features keeps
  ``partial(check_array, ...)``. It may bind only a name the file imported as admitted or
  trusted (checked when it is called and when BUILD sets its state), so it adds no reach.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import UnsafeModel

# A folder of package data, so that the Docker bundle copies it with the modules.
RECORD = Path(__file__).with_name("records") / "admitted_names.json"

# Functions the record may list that stay out: each is a gadget by the review rule.
EXCLUDED: dict[str, str] = {
    "sklearn.cluster._kmeans._kmeans_single_lloyd":
        "a compiled k-means kernel without bounds checks: with arrays of the wrong shape it "
        "writes outside them. BisectingKMeans keeps it, so Fixative does not load BisectingKMeans "
        "models; use KMeans, or an exported format such as ONNX",
}


@lru_cache(maxsize=1)
def record() -> dict[str, Any]:
    """The derived record (``admitted_names.json``), read once."""
    with RECORD.open(encoding="utf-8") as fh:
        return json.load(fh)


# Older library builds name some modules by another path; each maps to one canonical name,
# which is the only one the record holds. numpy 1.x pickles ``numpy.core.*`` (2.x moved it to
# ``numpy._core.*``); scikit-learn before 1.7 names its compiled loss module ``_loss``, which
# must resolve to scikit-learn's module, never to a file of that name on sys.path.
_RENAMED = (("numpy.core.", "numpy._core."), ("_loss.", "sklearn._loss._loss."))


def canonical(full: str) -> str:
    """The record's name for ``full`` (see ``_RENAMED``)."""
    for old, new in _RENAMED:
        if full.startswith(old):
            return new + full[len(old):]
    return full


def _import(full: str) -> Any:
    module, _, name = canonical(full).rpartition(".")
    if module.startswith("numpy._core"):
        try:
            importlib.import_module("numpy._core")
        except ImportError:  # numpy 1.x has only numpy.core
            module = "numpy.core" + module[len("numpy._core"):]
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


# --- guards ------------------------------------------------------------------------------------
class Refused(Exception):
    """A use of an admitted name that the record or its review does not allow."""


def _is_class(obj: Any, *, base: Any = None) -> bool:
    return isinstance(obj, type) and (base is None or issubclass(obj, base))


def _admitted_class(obj: Any, use: str | None = None, base: Any = None) -> None:
    if not _is_class(obj, base=base) or not admits_class(obj, use):
        what = getattr(obj, "__qualname__", type(obj).__name__)
        raise Refused(f"it hands {what!r} to a reconstructor, which accepts only admitted "
                      "classes" + (f" of kind {base.__name__}" if base is not None else ""))


def _reconstructor(cls: Any, base: Any, state: Any = None) -> None:
    _admitted_class(cls, "new")
    _admitted_class(base)


def _codecs_encode(obj: Any, encoding: Any = "utf-8", errors: Any = "strict") -> None:
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise Refused("_codecs.encode is admitted only to turn text into latin-1 bytes")


def _ndarray_class() -> type:
    import numpy as np

    return np.ndarray


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> None:
    _admitted_class(subtype, base=_ndarray_class())


def _np_scalar(dtype: Any, obj: Any = None) -> None:
    import numpy as np

    if not isinstance(dtype, np.dtype):
        raise Refused("numpy's scalar reconstructor needs a dtype")


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> None:
    import numpy as np

    if not isinstance(buf, (bytes, bytearray, memoryview)) or not isinstance(dtype, np.dtype):
        raise Refused("numpy's _frombuffer needs bytes and a dtype")


def _ma_reconstruct(subtype: Any, baseclass: Any, baseshape: Any, basetype: Any) -> None:
    _admitted_class(subtype, base=_ndarray_class())
    _admitted_class(baseclass, base=_ndarray_class())


def _bit_generator(name: Any = "MT19937") -> None:
    from numpy.random import BitGenerator
    from numpy.random._pickle import BitGenerators

    if isinstance(name, str) and name in BitGenerators:
        return
    _admitted_class(name, base=BitGenerator)


def _random_ctor(name: Any = "MT19937", ctor: Any = None) -> None:
    from numpy.random import BitGenerator

    if ctor is not None and not (isinstance(ctor, Guarded) and ctor.checks is _bit_generator):
        raise Refused("numpy's generator reconstructors accept only numpy's own bit generator "
                      "constructor as their second argument")
    if not isinstance(name, BitGenerator):
        _bit_generator(name)


def _new_object(cls: Any, *rest: Any) -> None:
    _admitted_class(cls)


def _unpickle_block(values: Any, placement: Any, ndim: Any = 2) -> None:
    import numpy as np
    from pandas.api.extensions import ExtensionArray

    if not isinstance(values, (np.ndarray, ExtensionArray)) or type(ndim) is not int \
            or not isinstance(placement, (slice, np.ndarray)) and "BlockPlacement" not in \
            type(placement).__name__:
        raise Refused("pandas' _unpickle_block needs an array, a placement and a dimension")


def _new_index(cls: Any, d: Any) -> None:
    import pandas as pd

    _admitted_class(cls, base=pd.Index)
    if not isinstance(d, dict):
        raise Refused("pandas' index reconstructor needs a dict of keyword arguments")


def _plain_buffer(obj: Any) -> None:
    if not isinstance(obj, (bytes, bytearray, memoryview)):
        raise Refused("pyarrow's py_buffer is admitted only for bytes")


def _text(name: Any) -> None:
    if not isinstance(name, str):
        raise Refused("pyarrow's type_for_alias needs a type name")


def _validate_arrow(result: Any) -> Any:
    result.validate(full=True)  # raises on buffers that do not match the declared lengths
    return result


# name -> (argument check, optional check of the result)
GUARDS: dict[str, tuple[Callable[..., None], Callable[[Any], Any] | None]] = {
    "_codecs.encode": (_codecs_encode, None),
    "copyreg._reconstructor": (_reconstructor, None),
    "numpy._core.multiarray._reconstruct": (_np_reconstruct, None),
    "numpy._core.multiarray.scalar": (_np_scalar, None),
    "numpy._core.numeric._frombuffer": (_np_frombuffer, None),
    "numpy.ma.core._mareconstruct": (_ma_reconstruct, None),
    "numpy.random._pickle.__bit_generator_ctor": (_bit_generator, None),
    "numpy.random._pickle.__generator_ctor": (_random_ctor, None),
    "numpy.random._pickle.__randomstate_ctor": (_random_ctor, None),
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence": (_new_object, None),
    "pandas._libs.arrays.__pyx_unpickle_NDArrayBacked": (_new_object, None),
    **{f"sklearn._loss._loss.__pyx_unpickle_CyHalf{loss}": (_new_object, None)
       for loss in ("BinomialLoss", "GammaLoss", "MultinomialLoss", "PoissonLoss",
                    "SquaredError", "TweedieLossIdentity")},
    "sklearn.metrics._dist_metrics.newObj": (_new_object, None),
    "sklearn.neighbors._kd_tree.newObj": (_new_object, None),
    "sklearn.neighbors._ball_tree.newObj": (_new_object, None),
    "pandas._libs.internals._unpickle_block": (_unpickle_block, None),
    "pandas.core.indexes.base._new_Index": (_new_index, None),
    "pandas.core.indexes.datetimes._new_DatetimeIndex": (_new_index, None),
    "pyarrow.lib.py_buffer": (_plain_buffer, None),
    "pyarrow.lib.type_for_alias": (_text, None),
    "pyarrow.lib._restore_array": (lambda data: None, _validate_arrow),
}

# Functions models keep as values; the stream may name them but never call them.
VALUES = frozenset({
    "numpy.mean", "numpy.log1p", "numpy._core._multiarray_umath.log1p",
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.utils.validation.check_array",
    "sklearn.metrics._classification.balanced_accuracy_score",
    "scipy._lib.array_api_compat.numpy._aliases.asarray",
})


class Guarded:
    """A reviewed reconstructor that checks its arguments (and result) on every call."""

    __slots__ = ("name", "func", "checks", "after")

    def __init__(self, name: str, func: Callable[..., Any], checks: Callable[..., None],
                 after: Callable[[Any], Any] | None) -> None:
        self.name, self.func, self.checks, self.after = name, func, checks, after

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            self.checks(*args, **kwargs)
        except TypeError:
            raise UnsafeModel(f"the model file calls {self.name} with arguments it never takes "
                              "in a real model; the file was crafted, do not load it.",
                              [self.name]) from None
        except Refused as exc:
            raise UnsafeModel(f"the model file calls {self.name} in a way no real model does: "
                              f"{exc}. The file was crafted; do not load it.",
                              [self.name]) from None
        result = self.func(*args, **kwargs)
        return self.after(result) if self.after is not None else result

    def __reduce__(self) -> str | tuple[Any, ...]:
        return _import, (self.name,)  # re-pickling a model pickles the real function


# --- the record as a lookup -------------------------------------------------------------------
@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, frozenset[str]], frozenset[str]]:
    rec = record()
    classes = {name: frozenset(uses) for name, uses in rec["classes"].items()}
    functions = frozenset([*(n for n in rec["functions"] if n not in EXCLUDED
                             and (n in GUARDS or n in VALUES)), *rec["other"]])
    return classes, functions


def class_uses(full: str) -> frozenset[str] | None:
    """The uses the record shows for a class name, or None when it is not admitted."""
    return _tables()[0].get(canonical(full))


def is_admitted(full: str) -> bool:
    """Whether a global name is on the admitted list (exactly, without importing anything)."""
    full = canonical(full)
    classes, functions = _tables()
    return full in classes or full in functions


@lru_cache(maxsize=4096)
def _class_by_identity(cls: type) -> frozenset[str] | None:
    """Uses of an admitted class given as an object (found under any of its names)."""
    where = f"{getattr(cls, '__module__', '')}.{getattr(cls, '__qualname__', '')}"
    uses = class_uses(where)
    if uses is not None:
        return uses
    for name, uses in _tables()[0].items():
        if name.rpartition(".")[2] == cls.__name__:
            try:
                if _import(name) is cls:
                    return uses
            except (ImportError, AttributeError):
                continue
    return None


def admits_class(cls: type, use: str | None = None) -> bool:
    """Whether ``cls`` is an admitted class (for ``use``, when given)."""
    uses = _class_by_identity(cls)
    return uses is not None and (use is None or use in uses)


_LIBRARIES = ("sklearn.", "numpy.", "scipy.", "pandas.", "joblib.", "pyarrow.")
_PLAIN_NAME = re.compile(r"^[A-Za-z_][\w.]*$")


@lru_cache(maxsize=4096)
def alias_of(full: str) -> str | None:
    """The admitted name under which ``full`` is listed, if it is another path to an admitted
    class (a model saved by a scikit-learn that kept the class in another private module, or
    under its public path). Only library names are imported to find out."""
    full = canonical(full)
    if is_admitted(full):
        return full
    if not full.startswith(_LIBRARIES) or not _PLAIN_NAME.match(full) or "__" in full:
        return None
    try:
        obj = _import(full)
    except Exception:  # noqa: BLE001 - what cannot be imported is not admitted
        return None
    if isinstance(obj, type) and _class_by_identity(obj) is not None:
        return f"{obj.__module__}.{obj.__qualname__}" if class_uses(
            f"{obj.__module__}.{obj.__qualname__}") is not None else _find_name(obj)
    return None


def _find_name(cls: type) -> str | None:
    for name in _tables()[0]:
        if name.rpartition(".")[2] == cls.__name__:
            try:
                if _import(name) is cls:
                    return name
            except (ImportError, AttributeError):
                continue
    return None


def resolve_admitted(full: str) -> tuple[str, Any, str]:
    """``(kind, object, admitted name)`` for an admitted name: kind is ``class``,
    ``reconstructor`` (the object is its :class:`Guarded` wrapper) or ``value``.
    KeyError when the name is not admitted."""
    name = alias_of(full)
    if name is None:
        raise KeyError(full)
    obj = _import(name)
    if name in _tables()[0]:
        return "class", obj, name
    if name in GUARDS:
        checks, after = GUARDS[name]
        return "reconstructor", _guarded(name, checks, after), name
    return "value", obj, name


@lru_cache(maxsize=256)
def _guarded(name: str, checks: Callable[..., None], after: Callable[[Any], Any] | None) -> Guarded:
    return Guarded(name, _import(name), checks, after)


def counts() -> dict[str, int]:
    """How many names are admitted, by kind (for the README and the report)."""
    classes, functions = _tables()
    return {"classes": len(classes),
            "reconstructors": sum(1 for f in functions if f in GUARDS),
            "values": sum(1 for f in functions if f in VALUES)}
