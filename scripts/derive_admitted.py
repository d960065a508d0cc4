"""Derive the admitted-names record (core/safety/records/admitted_names.json) from real models.

Fits every estimator ``sklearn.utils.all_estimators()`` can fit on a small table (required-
argument meta-estimators get a simple base estimator; those that need text, dicts, labels or
multi-output targets are tried with such input; the rest are skipped and listed), plus the
pipelines, column transformers, HistGradientBoosting with categorical features, calibrated
classifiers, pandas-fitted models and pandas frames a model may keep. Each is written with
pickle (protocols 0, 2 and 5) and joblib (plain, zlib and lzma), and every stream is walked with
:class:`core.safety.scan.Scanner` (nothing from it runs) to record each global it names and how
the stream uses it:

- ``call``: called by REDUCE (a class instantiated with arguments, or a function called),
- ``new``: instantiated without ``__init__`` (NEWOBJ, NEWOBJ_EX, ``copyreg._reconstructor``),
- ``build``: the type of an object that BUILD gives state to,
- ``ref``: only named (e.g. the class handed to a reconstructor),
- ``skops``: named in a skops file written with ``skops.io.dump`` (skops rebuilds it).

Usage: ``python scripts/derive_admitted.py [--check | --fresh]``. By default the names this
environment pickles are added to the stored record (run it under each supported set of library
versions); ``--fresh`` starts the record over; ``--check`` only says whether the stored record
covers this environment. Functions in the result are admitted only if
:mod:`core.safety.admitted` has a reviewed guard for them; the script lists any that lack one and
exits non-zero, so a new library version cannot slip a function in unreviewed.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import pickle
import platform
import sys
import time
import warnings
from collections import Counter, OrderedDict, defaultdict
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy  # noqa: E402
import sklearn  # noqa: E402

from core.model import examples  # noqa: E402
from core.safety.admitted import _import, canonical  # noqa: E402
from core.safety.scan import Scanner, Stream, _callee, _Global, _Obj, unpack  # noqa: E402

RECORD = ROOT / "core" / "safety" / "records" / "admitted_names.json"
_FACTORIES = ("copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__")


class _Recorder(Scanner):
    """The scanner, also noting how each global is used."""

    dispatch = dict(Scanner.dispatch)

    def __init__(self, stream: Stream, uses: dict[str, set[str]]) -> None:
        self.uses = uses
        super().__init__(stream, set(), joblib=True)

    def _note(self, name: str | None, use: str) -> None:
        if name:
            self.uses.setdefault(canonical(name), set()).add(use)

    def find_class(self, module: str, name: str) -> _Global:
        found = super().find_class(module, name)
        self._note(found.full, "ref")
        return found

    def _call(self, func: Any, args: Any, use: str) -> None:
        name = _callee(func)
        self._note(name, use)
        first = args[0] if isinstance(args, tuple) and args else None
        if name in _FACTORIES and isinstance(first, _Global):
            self._note(first.full, "new")

    def _instantiate(self, klass: Any, args: list[Any]) -> None:
        self._call(klass, tuple(args), "call" if args else "new")
        super()._instantiate(klass, args)

    def load_reduce(self) -> None:
        self._call(self.stack[-2], self.stack[-1], "call")
        super().load_reduce()

    def load_newobj(self) -> None:
        self._call(self.stack[-2], (), "new")
        super().load_newobj()

    def load_newobj_ex(self) -> None:
        self._call(self.stack[-3], (), "new")
        super().load_newobj_ex()

    def load_build(self) -> None:
        inst = self.stack[-2]
        if isinstance(inst, _Obj):
            self._note(inst.kind, "build")
        super().load_build()

    for _code, _meth in ((pickle.REDUCE, load_reduce), (pickle.NEWOBJ, load_newobj),
                         (pickle.NEWOBJ_EX, load_newobj_ex), (pickle.BUILD, load_build)):
        dispatch[_code[0]] = _meth


def _record(data: bytes, uses: dict[str, set[str]]) -> None:
    stream, _kind = unpack(io.BytesIO(data), "corpus")
    _Recorder(stream, uses).load()


def _record_skops(obj: Any, uses: dict[str, set[str]]) -> None:
    """The types a skops file of ``obj`` names (use ``skops``: rebuilt by skops' own nodes)."""
    import zipfile

    import skops.io as sio

    try:
        data = sio.dumps(obj)
    except Exception:  # noqa: BLE001 - skops does not write every estimator (Birch)
        return
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        todo = [json.loads(archive.read("schema.json"))]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
                name = f"{node['__module__']}.{node['__class__']}"
                if not name.startswith("builtins."):
                    uses.setdefault(canonical(name), set()).add("skops")
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)


def _dumps(obj: Any) -> list[bytes]:
    out = [pickle.dumps(obj, protocol=p) for p in (0, 2, 5)]
    for compress in (0, ("zlib", 3), ("lzma", 1)):
        buf = io.BytesIO()
        joblib.dump(obj, buf, compress=compress)
        out.append(buf.getvalue())
    return out


# --- the corpus -----------------------------------------------------------------------------------
def _data() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(60, 4))) + 0.1  # positive, for chi2 and the naive Bayes family
    yc = np.array([0, 1, 2] * 20)
    X[:, 0] += yc  # some signal, so that iterative fits converge quickly
    return {
        "X": X, "yc": yc, "yr": X @ [1.0, 2.0, 0.5, 1.0] + rng.normal(size=60) * 0.1,  # > 0: Gamma
        "yb": yc % 2, "x1": X[:, 0],
        "Y2": np.c_[yc % 2, (yc + 1) % 2], "Yr2": np.c_[X[:, 0], X[:, 1]],
        "text": ["red apple", "green pear", "blue sky", "red sky"] * 15,
        "dicts": [{"a": float(i), "b": "x" if i % 2 else "y"} for i in range(60)],
        "labels": np.array(["a", "b", "c"] * 20),
        "multilabel": [("a",), ("b", "c"), ("a", "c")] * 20,
    }


def _required(cls: type) -> list[str]:
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.default is inspect.Parameter.empty
            and p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _construct(cls: type) -> Any:
    from sklearn.base import ClassifierMixin, RegressorMixin
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.preprocessing import StandardScaler

    kind = "classifier" if issubclass(cls, ClassifierMixin) else \
        "regressor" if issubclass(cls, RegressorMixin) else "other"
    base = {"classifier": LogisticRegression, "regressor": LinearRegression}.get(
        kind, StandardScaler)
    kwargs: dict[str, Any] = {}
    for name in _required(cls):
        if name == "estimator" and cls.__name__ == "FrozenEstimator":
            kwargs[name] = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
        elif name in ("estimator", "base_estimator", "final_estimator"):
            kwargs[name] = base() if kind != "other" else LinearRegression()
        elif name == "estimators":
            kwargs[name] = [("a", base()), ("b", base())]
        elif name == "steps":
            kwargs[name] = [("scale", StandardScaler()), ("model", LinearRegression())]
        elif name == "transformer_list":
            kwargs[name] = [("a", StandardScaler()), ("b", StandardScaler())]
        elif name == "transformers":
            kwargs[name] = [("scale", StandardScaler(), [0, 1]), ("keep", "passthrough", [2])]
        elif name == "param_grid" or name == "param_distributions":
            kwargs[name] = {"fit_intercept": [True, False]} if kind != "classifier" else \
                {"C": [0.5, 1.0]}
        elif name == "scoring":
            kwargs[name] = None
        else:
            raise TypeError(f"required argument {name}")
    model = cls(**kwargs)
    params = model.get_params(deep=False)
    if params.get("estimator", "") is None:  # SelfTrainingClassifier has no default
        model.set_params(estimator=base())
    if params.get("n_components") == "auto":  # random projections: the table is tiny
        model.set_params(n_components=2)
    # keep fits fast and deterministic
    small = {"max_iter": 300 if cls.__name__ == "TSNE" else 50, "n_estimators": 5,
             "random_state": 0, "n_init": 1, "cv": 2}
    model.set_params(**{k: v for k, v in small.items() if k in params
                        and not (k == "max_iter" and params[k] is None)})
    return model


def _fit(model: Any, data: dict[str, Any]) -> Any:
    attempts = [("X", "yc"), ("X", "yr"), ("X", "yb"), ("x1", "yr"), ("X",), ("X", "Y2"),
                ("X", "Yr2"), ("text",),
                ("dicts",), ("labels",), ("multilabel",)]
    last: Exception | None = None
    for names in attempts:
        try:
            return model.fit(*(data[n] for n in names))
        except Exception as exc:  # noqa: BLE001 - the next input shape may suit it
            last = exc
    raise last or RuntimeError("no input fits")


def _frames() -> dict[str, Any]:
    """Pandas-fitted models and the frames a model may keep, with the dtypes users have."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    houses = examples.house_prices(200, seed=0)
    churn = examples.churn(200, seed=1)
    x = houses.drop(columns=["price"])
    frame = x.assign(
        zip_cat=x["zipcode"].astype("category"), zip_str=x["zipcode"].astype("string"),
        when=pd.Timestamp("2024-01-01") + pd.to_timedelta(x["yr_built"] - 1900, unit="D"),
        flag=x["grade"] > 8, ratio=x["bathrooms"].astype("float32"),
        nullable=x["bedrooms"].astype("Int64"))
    cats = x.astype({"zipcode": "category"})
    out: dict[str, Any] = {
        "example_house_model": examples.house_model(houses, n_estimators=3),
        "example_churn_model": examples.churn_model(churn),
        "hgb_regressor_categorical": HistGradientBoostingRegressor(
            max_iter=5, categorical_features="from_dtype").fit(cats, houses["price"]),
        "hgb_classifier_categorical": HistGradientBoostingClassifier(
            max_iter=5, categorical_features=[5]).fit(
                x.assign(zipcode=x["zipcode"].astype(int) % 8), churn["churned"]),
        "calibrated": CalibratedClassifierCV(LogisticRegression(), cv=2).fit(
            churn[["tenure_months", "monthly_charges"]], churn["churned"]),
        "column_transformer_str_and_category": make_pipeline(
            ColumnTransformer([
                ("onehot", OneHotEncoder(handle_unknown="ignore"),
                 ["zipcode", "zip_cat", "zip_str"]),
                ("scale", StandardScaler(), ["sqft_living", "ratio", "grade"])]),
            LinearRegression()).fit(frame, houses["price"]),
        "pandas_output": Pipeline([("scale", StandardScaler().set_output(transform="pandas")),
                                   ("model", LinearRegression())]).fit(
            x.drop(columns=["zipcode"]), houses["price"]),
        "function_transformer_ufunc": make_pipeline(
            FunctionTransformer(np.log1p), LinearRegression()).fit(
            x.drop(columns=["zipcode"]), houses["price"]),
        "frame": frame, "series": frame["zip_cat"], "index": frame.set_index("when").index,
        "random_state": np.random.RandomState(0), "generator": np.random.default_rng(0),
        # plain values people keep on a model (notes, dates, settings)
        "plain_values": {
            "complex": 1 + 2j, "set": {1, 2}, "frozenset": frozenset({"a"}),
            "bytearray": bytearray(b"x"), "range": range(3), "slice": slice(1, 5, 2),
            "ordered": OrderedDict(a=1), "counter": Counter("abca"),
            "defaultdict": defaultdict(list, a=[1]),
            "date": date(2024, 5, 3), "datetime": datetime(2024, 5, 3, 12, tzinfo=UTC),
            "time": dtime(12, 30), "timedelta": timedelta(days=2), "decimal": Decimal("1.25"),
            "fraction": Fraction(1, 3), "np_scalars": [np.float32(1), np.int32(2), np.bool_(1)],
        },
    }
    return out


def derive() -> dict[str, Any]:
    from sklearn.utils import all_estimators

    warnings.simplefilter("ignore")
    data = _data()
    uses: dict[str, set[str]] = {}
    fitted, skipped = [], {}
    for name, cls in all_estimators():
        try:
            model = _fit(_construct(cls), data)
        except Exception as exc:  # noqa: BLE001 - listed in the record as skipped
            skipped[name] = f"{type(exc).__name__}: {str(exc)[:120]}"
            continue
        fitted.append(name)
        for blob in _dumps(model):
            _record(blob, uses)
        _record_skops(model, uses)
    extra = _frames()
    for blob_name, obj in extra.items():
        for blob in _dumps(obj):
            _record(blob, uses)
        if blob_name.startswith(("example", "hgb", "calibrated", "column", "pandas", "func")):
            _record_skops(obj, uses)  # skops writes models, not bare frames
    classes, functions, values = {}, {}, {}
    for full in sorted(uses):
        kind = _kind(full)
        target = classes if kind == "class" else functions if kind == "function" else values
        target[full] = sorted(uses[full])
    return {
        "about": "Globals that real fitted models pickle, and how the streams use them. "
                 "Written by scripts/derive_admitted.py; core/safety/admitted.py reads it. Do not "
                 "edit by hand: regenerate, then review every entry under 'functions'.",
        "generated_with": [{"python": platform.python_version(), "sklearn": sklearn.__version__,
                            "numpy": np.__version__, "scipy": scipy.__version__,
                            "pandas": pd.__version__, "joblib": joblib.__version__}],
        "classes": classes,
        "functions": functions,
        "other": values,
        "fitted": fitted,
        "corpus_extras": sorted(extra),
        "skipped": skipped,
    }


def _kind(full: str) -> str:
    try:
        obj = _import(full)
    except (ImportError, AttributeError):
        return "unresolved"
    return "class" if isinstance(obj, type) else "function" if callable(obj) else "value"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="check that the stored record covers this environment, without "
                             "writing it")
    parser.add_argument("--fresh", action="store_true",
                        help="replace the stored record instead of adding this environment's "
                             "names to it")
    args = parser.parse_args()
    start = time.perf_counter()
    record = derive()
    took = time.perf_counter() - start
    from core.safety.admitted import EXCLUDED, GUARDS, VALUES

    unreviewed = sorted(set(record["functions"]) - set(GUARDS) - VALUES - set(EXCLUDED))
    unreviewed += sorted(f"{n} (called, but reviewed as a value only)" for n in VALUES
                         if "call" in record["functions"].get(n, ()))
    print(f"{len(record['fitted'])} estimators fitted, {len(record['skipped'])} skipped, "
          f"{len(record['classes'])} classes, {len(record['functions'])} functions "
          f"in {took:.0f} s", file=sys.stderr)
    if unreviewed:
        print("functions without a reviewed guard in core/safety/admitted.py (not admitted until "
              "reviewed): " + ", ".join(unreviewed), file=sys.stderr)
    stored = json.loads(RECORD.read_text()) if RECORD.exists() and not args.fresh else None
    if args.check:
        missing = _missing(stored or {}, record)
        print("record covers this environment" if not missing else
              "record lacks what this environment pickles (run the script here, review, "
              "commit): " + ", ".join(missing), file=sys.stderr)
        return 0 if not missing and not unreviewed else 1
    if stored is not None:
        record = _merge(stored, record)
    RECORD.write_text(json.dumps(record, indent=1) + "\n")
    return 1 if unreviewed else 0


def _missing(stored: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """Names or uses this environment pickles that the stored record lacks."""
    out = []
    for key in ("classes", "functions", "other"):
        have = stored.get(key, {})
        for name, uses in record[key].items():
            lacking = set(uses) - set(have.get(name, ()))
            if lacking:
                out.append(f"{name} ({', '.join(sorted(lacking))})")
    return out


def _merge(stored: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The union of the stored record and this environment's: each supported set of library
    versions pickles some names of its own (scipy 1.18 renamed BSpline's class), and every
    name on the record was seen in a real model's file under one of them."""
    merged = dict(record)
    for key in ("classes", "functions", "other"):
        names = {**stored.get(key, {})}
        for name, uses in record[key].items():
            names[name] = sorted(set(names.get(name, ())) | set(uses))
        merged[key] = dict(sorted(names.items()))
    seen = stored.get("generated_with", [])
    seen = seen if isinstance(seen, list) else [seen]
    merged["generated_with"] = seen + [e for e in record["generated_with"] if e not in seen]
    return merged


if __name__ == "__main__":
    sys.exit(main())
