"""From uploaded bytes to a stored version: the logic behind the workbench's Upload page.

Nothing here touches Streamlit. The order matters and is the point of the module:
check the file, show the safety report, load only what the report cleared (or what
the person explicitly trusted), build the bundle with the optional training sample,
refuse a name that already holds a different kind of model, and only then write.
Any failure before the write leaves the store untouched.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd

from core import settings
from core.errors import Conflict, InvalidArgument, InvalidModelFile, InvalidName
from core.model.bundle import ModelBundle, bundle
from core.store.names import validate_name
from core.store.protocols import StoreLike
from core.store.tables import check_parquet

MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle", ".skops")
SAMPLE_SUFFIXES = (".csv", ".parquet", ".pq")
MAX_TAG_LENGTH = 50

Progress = Callable[[float, str], None]


def _suffix(filename: str) -> str:
    return PurePath(filename).suffix.lower()


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # pragma: no cover - the loop always returns


def check_model_file(data: bytes, filename: str) -> None:
    """Refuse what cannot be a model file before anything looks inside it."""
    if _suffix(filename) not in MODEL_SUFFIXES:
        raise InvalidModelFile(
            f"'{filename}' is not a model file Fixative reads; upload a .joblib, .pkl or "
            ".skops file (save the fitted model with joblib.dump or skops.io.dump).")
    if len(data) == 0:
        raise InvalidModelFile(
            f"'{filename}' is empty (0 bytes); the upload or the save went wrong. "
            "Save the fitted model again and upload that file.")


def scan_model(data: bytes, filename: str) -> Any:
    """The safety report of a model file, without loading (running) any of it."""
    from core.safety.loader import scan_bytes

    check_model_file(data, filename)
    return scan_bytes(data, filename)


def trust_label(untrusted: Sequence[str]) -> str:
    """The words of the checkbox that trusts exactly these imports, and nothing else."""
    from core.safety.untrustable import kind_of

    names = ", ".join(f"`{n}` ({kind_of(n)})" for n in untrusted)
    return (f"I trust this file to import and run {names}. Loading it runs that code on "
            "this server.")


def load_model(data: bytes, filename: str, trusted: Iterable[str] = ()) -> Any:
    """Load a model file, allowing only the safety allowlist plus ``trusted`` names."""
    from core.safety.loader import load_bytes

    check_model_file(data, filename)
    return load_bytes(data, filename, trusted=tuple(trusted))


def text_columns(model: Any) -> set[str]:
    """Input columns a fitted scikit-learn model encodes as strings (one-hot, ordinal...).

    CSV carries no types: a zipcode column reads as integers and would then fail in
    an encoder fitted on strings, or lose leading zeros. These columns are read as text.
    """
    from core.model.bundle import estimators

    found: set[str] = set()
    for est in estimators(model):
        for _, trans, cols in getattr(est, "transformers_", None) or []:
            if _encodes_text(trans):
                found.update(_column_names(cols))
        names = getattr(est, "feature_names_in_", None)
        cats = getattr(est, "categories_", None)
        if names is not None and cats is not None and len(names) == len(cats):
            found.update(str(n) for n, c in zip(names, cats, strict=True)
                         if np.asarray(c).dtype.kind in "OUT")
    return found


def _encodes_text(trans: Any) -> bool:
    while hasattr(trans, "steps"):
        trans = trans.steps[0][1]
    cats = getattr(trans, "categories_", None)
    return cats is not None and any(np.asarray(c).dtype.kind in "OUT" for c in cats)


def _column_names(cols: Any) -> list[str]:
    if isinstance(cols, str):
        return [cols]
    try:
        return [c for c in cols if isinstance(c, str)]
    except TypeError:
        return []


def read_sample(data: bytes, filename: str, text: Iterable[str] = ()) -> pd.DataFrame:
    """A training sample from CSV or Parquet bytes, with errors that say what to fix.

    ``text`` names CSV columns to read as strings rather than infer (see
    :func:`text_columns`).
    """
    suffix = _suffix(filename)
    if suffix not in SAMPLE_SUFFIXES:
        raise InvalidArgument(f"The sample '{filename}' is neither CSV nor Parquet; upload a .csv "
                              "or .parquet file of training features.")
    if len(data) == 0:
        raise InvalidArgument(f"The sample '{filename}' is empty (0 bytes); upload a file with a "
                              "header row and at least one row of training features.")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(io.BytesIO(data), dtype={c: str for c in text} or None)
        else:
            check_parquet(data, f"The sample '{filename}'")  # sized up before it is read
            frame = pd.read_parquet(io.BytesIO(data))
    except pd.errors.EmptyDataError:
        raise InvalidArgument(f"The sample '{filename}' has no columns; it needs a header row "
                              "naming the training features and at least one row.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidArgument(f"The sample '{filename}' cannot be read as {kind} ({first}). "
                              f"Export it again as {kind}.") from None
    if frame.shape[1] == 0:
        raise InvalidArgument(f"The sample '{filename}' has no columns; it needs a header row "
                              "naming the training features.")
    if len(frame) == 0:
        raise InvalidArgument(f"The sample '{filename}' has a header but no rows; add at least one "
                              "row of training features.")
    return frame


def metrics_from_rows(rows: pd.DataFrame | Sequence[Mapping[str, Any]] | None) -> dict[str, float]:
    """Key/value rows (columns ``metric`` and ``value``) to a dict; blank rows are ignored."""
    if rows is None:
        return {}
    records: Sequence[Mapping[Any, Any]] = (
        rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows))
    out: dict[str, float] = {}
    for i, rec in enumerate(records, start=1):
        key = _blank_to_none(rec.get("metric"))
        value = _blank_to_none(rec.get("value"))
        if key is None and value is None:
            continue
        if key is None:
            raise InvalidArgument(f"Metric row {i} has a value ({value}) but no name; name it "
                                  "(e.g. rmse) or clear the row.")
        key = str(key).strip()
        if value is None:
            raise InvalidArgument(f"Metric '{key}' has no value; enter a number or clear the row.")
        try:
            number = float(str(value).strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise InvalidArgument(f"Metric '{key}' must be a number, got {value!r}.") from None
        if not np.isfinite(number):
            raise InvalidArgument(f"Metric '{key}' must be a finite number, got {value!r}.")
        if key in out:
            raise InvalidArgument(f"Metric '{key}' is listed twice; keep one row per metric.")
        out[key] = number
    return out


def _blank_to_none(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def parse_tags(text: str | None) -> list[str]:
    """Comma-separated tags, trimmed, de-duplicated and sorted."""
    tags = sorted({t.strip() for t in (text or "").split(",") if t.strip()})
    long = [t for t in tags if len(t) > MAX_TAG_LENGTH]
    if long:
        raise InvalidArgument(f"Tag '{long[0][:60]}…' is longer than {MAX_TAG_LENGTH} characters; "
                              "use short labels such as 'baseline' or 'q3-2024'.")
    return tags


def suggest_name(filename: str) -> str:
    """A valid model name derived from a file name (``House Model v2.pkl`` → ``house-model-v2``)."""
    ascii_stem = unicodedata.normalize("NFKD", PurePath(filename).stem).encode("ascii", "ignore")
    stem = ascii_stem.decode().lower()
    name = re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-._")
    return name or "model"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a model, or None when it can."""
    if not name.strip():
        return "Give the model a name, e.g. house-prices."
    try:
        validate_name(name)
    except InvalidName as exc:
        return exc.message
    return None


def _kind(task: str, model_class: str) -> str:
    return f"{model_class} ({task})"


def check_kind(store: StoreLike, name: str, task: str, model_class: str) -> None:
    """Refuse to add a different kind of model (task or class) under an existing name."""
    existing = {m.name: m for m in store.list_models()}
    current = existing.get(name)
    if current is None:
        return
    if current.task == task and current.model_class == model_class:
        return
    suggestion = _free_name(f"{name}-{task}", existing)
    raise Conflict(
        f"The name '{name}' already holds {_kind(current.task, current.model_class)} models, "
        f"but this file is {_kind(task, model_class)}. A name keeps one kind of model so its "
        f"versions can replace each other; store this one under another name, e.g. "
        f"'{suggestion}'.")


def _free_name(base: str, taken: Mapping[str, Any]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def upload(store: StoreLike, model_data: bytes, model_filename: str, *, name: str,
           sample_data: bytes | None = None, sample_filename: str | None = None,
           description: str = "", metrics: Mapping[str, float | str] | None = None,
           tags: Iterable[str] = (), trusted: Iterable[str] = (), user: str | None = None,
           progress: Progress | None = None, training_data: Any = None,
           training_code: str | None = None, metrics_data: str | None = None,
           metrics_rows: int | None = None) -> Any:
    """Check, load, bundle and store an uploaded model; returns the new ``VersionInfo``.

    ``trusted`` lists the imports outside the safety allowlist that the person
    explicitly accepted; anything else untrusted refuses the load. Nothing is
    written unless every step succeeds. ``training_data`` (a frame or a fingerprint),
    ``training_code``, ``metrics_data`` and ``metrics_rows`` are recorded as
    :func:`core.model.bundle.bundle` records them.
    """
    report = _progress_wrapper(progress)
    problem = name_problem(name)
    if problem:
        raise InvalidName(problem)
    report(0.05, f"Checking {model_filename} ({_size(len(model_data))})")
    check_model_file(model_data, model_filename)
    report(0.15, "Loading the model")
    model = load_model(model_data, model_filename, trusted)
    sample = None
    if sample_data is not None:
        report(0.35, f"Reading the sample {sample_filename}")
        sample = read_sample(sample_data, sample_filename or "sample.csv", text_columns(model))
    report(0.55, "Capturing metadata" + (", prototype and profile" if sample is not None else ""))
    built = bundle(model, sample, name=name, description=description, metrics=metrics,
                   tags=tags, user=user, training_data=training_data,
                   training_code=training_code, metrics_data=metrics_data,
                   metrics_rows=metrics_rows)
    check_kind(store, name, built.meta.task, built.meta.model_class)
    report(0.8, "Writing the version")
    # an upload compiles unless FIXATIVE_COMPILE=0: its serving engine is then known
    info = store.write(built, compile=settings.compile_on_write(True))
    report(1.0, f"Stored {info.name}@{info.version}")
    return info


def _progress_wrapper(progress: Progress | None) -> Progress:
    return progress if progress is not None else (lambda fraction, text: None)


# -- examples ------------------------------------------------------------------------

EXAMPLE_NAMES = ("house-prices", "customer-churn")


def example_bundles(n_rows: int = 1200) -> list[ModelBundle]:
    """The example models with samples and held-out metrics, in the order to store them.

    ``house-prices`` gets two versions (the second adds ``yr_built`` and more trees) so
    the timeline, compare and alias views have something to show.
    """
    from sklearn.metrics import (
        accuracy_score,
        mean_absolute_error,
        r2_score,
        roc_auc_score,
        root_mean_squared_error,
    )

    from core.model import examples

    out: list[ModelBundle] = []
    house = examples.house_prices(n_rows, seed=0)
    train, test = house.iloc[: n_rows * 3 // 4], house.iloc[n_rows * 3 // 4:]
    for drop, trees, text in (
        (["yr_built"], 10, "Baseline: random forest on size, rooms, grade and zipcode."),
        ([], 25, "Adds the year built and more trees."),
    ):
        model = examples.house_model(train.drop(columns=drop), n_estimators=trees)
        x_test = test.drop(columns=["price", *drop])
        pred = model.predict(x_test)
        out.append(bundle(
            model, train.drop(columns=["price", *drop]), name="house-prices", description=text,
            metrics={"rmse": root_mean_squared_error(test["price"], pred),
                     "mae": mean_absolute_error(test["price"], pred),
                     "r2": r2_score(test["price"], pred)},
            tags=["example", "regression"]))
    churn = examples.churn(n_rows, seed=1)
    train, test = churn.iloc[: n_rows * 3 // 4], churn.iloc[n_rows * 3 // 4:]
    model = examples.churn_model(train)
    x_test = test.drop(columns=["churned"])
    proba = model.predict_proba(x_test)[:, list(model.classes_).index("yes")]
    out.append(bundle(
        model, train.drop(columns=["churned"]), name="customer-churn",
        description="Logistic regression predicting whether a customer leaves.",
        metrics={"accuracy": accuracy_score(test["churned"], model.predict(x_test)),
                 "roc_auc": roc_auc_score(test["churned"] == "yes", proba)},
        tags=["example", "classification"]))
    return out


def store_examples(store: StoreLike, progress: Progress | None = None) -> list[Any]:
    """Train and store the example models; the newest of each gets alias ``production``."""
    report = _progress_wrapper(progress)
    report(0.05, "Training the example models")
    bundles = example_bundles()
    infos = []
    for i, b in enumerate(bundles, start=1):
        check_kind(store, b.name, b.meta.task, b.meta.model_class)
        infos.append(store.write(b, compile=settings.compile_on_write(True)))
        report(0.3 + 0.6 * i / len(bundles), f"Stored {b.name}@{b.version}")
    latest = {info.name: info.version for info in infos}
    for name, version in latest.items():
        store.set_alias(name, "production", version)
    report(1.0, "Example models stored")
    return infos
