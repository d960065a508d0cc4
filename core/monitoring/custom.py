"""Custom metrics: one SQL aggregate expression over the ``monitoring`` view, per window.

A custom metric is what a business asks for and no library ships, e.g.
``avg(prediction) / avg(sqft_living)`` or
``count(*) FILTER (WHERE status >= 400) / count(*)``. It sees every logged row of the
window (failed requests too; filter on ``status`` when that matters) and the columns
of ``monitoring``: the log's, the features, ``prediction``, ``proba`` and ``actual``.

Only a single read-only aggregate expression is accepted. It is tokenized and parsed
by DuckDB itself (``duckdb.tokenize``, ``json_serialize_sql``) and checked on those, never
on its raw text (so ``';'`` or ``'a--b'`` in a string literal are fine): no comments,
no statement separators, no FROM/WHERE/subqueries (so no other table, file or function-table such
as ``read_parquet``, ``glob`` or ``query``), no window functions, no functions that
read settings or the environment, only known columns, and every column inside an
aggregate. It is then bound against the view in the monitoring connection, which
cannot read files outside the model's monitoring folders and whose configuration is
locked; a type error or a non-numeric result is reported before it is saved.

Cost. Functions that build a list or string whose size is a number in the expression
(``generate_series``, ``range``; ``repeat``, ``lpad``, ``rpad``, ``list_resize`` beyond
``MAX_SIZE``) are refused: DuckDB's memory limit does not cover them, and
``generate_series(1, 2e9)`` per row exhausts the machine's memory. Everything else runs
under the time limit and memory limit of :mod:`core.monitoring.limits`; a metric that
hits one is reported as failed with the reason and the other metrics keep their values.
Names that are also columns of the report (``note``, ``window_end``, ``n``, the built-in
metrics...) are refused.

Metrics are saved per model as records of kind ``custom_metric`` (the latest record
of a name wins; ``{"deleted": true}`` removes it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd

from core.errors import InvalidArgument
from core.monitoring import limits
from core.monitoring.performance import CLASSIFICATION_METRICS, REGRESSION_METRICS
from core.monitoring.windows import parse_window
from core.store.protocols import StoreLike

if TYPE_CHECKING:
    from core.monitoring.monitor import Monitor

RECORD_KIND = "custom_metric"
MAX_LENGTH = 2000
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
# Nodes an aggregate expression may be built from.
ALLOWED_CLASSES = {"FUNCTION", "COLUMN_REF", "CONSTANT", "OPERATOR", "COMPARISON",
                   "CONJUNCTION", "CASE", "CAST", "BETWEEN"}
# Functions that read settings, the environment, files or the catalog, or change state.
DENIED = re.compile(
    r"^(read_|glob|query|sql_|getenv|current_setting|current_schema|current_database|"
    r"current_catalog|current_user|session_user|user$|version$|pragma|checkpoint|export|"
    r"import|copy|attach|detach|install|load|setseed|nextval|currval|txid|has_.*privilege|"
    r"pg_|duckdb_|which_secret|parquet_|iceberg|delta|json_execute|to_json_serial|"
    r"json_serialize|json_deserialize|enum_|error$|system|sniff_csv|stats$|"
    r"alias$|typeof$|can_cast|current_|in_search_path|get_current)", re.IGNORECASE)
# Functions that allocate a list or string sized by an argument: refused outright, or
# allowed with a constant size up to MAX_SIZE.
UNBOUNDED = {"generate_series", "range", "unnest", "list_resize", "array_resize"}
SIZED = {"repeat": 1, "lpad": 1, "rpad": 1}
MAX_SIZE = 100_000
# Columns of the report tables a custom metric sits beside (metrics table, CSV, JSON).
REPORT_COLUMNS = frozenset({"k", "window_start", "window_end", "version", "n", "n_actual",
                            "n_proba", "note", "rmse", "mae", "mape", "r2", "accuracy",
                            "precision", "recall", "f1", "roc_auc", "log_loss"})
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "BOOLEAN")


@dataclass(frozen=True)
class CustomMetric:
    name: str
    sql: str
    description: str = ""
    # "above": higher is worse (alert when above the threshold); "below": lower is worse.
    direction: str = "above"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sql": self.sql, "description": self.description,
                "direction": self.direction}


@lru_cache(maxsize=1)
def _functions() -> tuple[frozenset[str], frozenset[str]]:
    """(all scalar+aggregate function names, aggregate names) known to DuckDB."""
    con = duckdb.connect()
    try:
        rows = con.execute("SELECT DISTINCT lower(function_name), function_type "
                           "FROM duckdb_functions() "
                           "WHERE function_type IN ('scalar', 'aggregate')").fetchall()
    finally:
        con.close()
    names = frozenset(r[0] for r in rows)
    aggregates = frozenset(r[0] for r in rows if r[1] == "aggregate") | {"count_star"}
    return names | {"count_star"}, aggregates


def check_name(name: str) -> str:
    text = str(name or "").strip()
    if not NAME.match(text):
        raise InvalidArgument(
            f"Custom metric name {name!r} is not allowed: start with a letter, then "
                         "letters, digits or _ (at most 48), e.g. price_per_sqft.")
    if text.lower() in REPORT_COLUMNS:
        kind = "a built-in metric" if text.lower() in (
            "rmse", "mae", "mape", "r2", "accuracy", "precision", "recall", "f1", "roc_auc",
            "log_loss") else "a column of the monitoring report"
        raise InvalidArgument(f"{text!r} is {kind}; give the custom metric another name, e.g. "
                         f"my_{text.lower()}.")
    return text


def parse(sql: str, columns: Sequence[str]) -> dict[str, Any]:
    """Check ``sql`` is one read-only aggregate expression over ``columns``; returns its
    syntax tree. Raises InvalidArgument saying what is wrong."""
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidArgument("The custom metric is empty; write one aggregate expression such as "
                              "avg(prediction) / avg(sqft_living).")
    text = sql.strip()
    if len(text) > MAX_LENGTH:
        raise InvalidArgument(f"The custom metric is {len(text):,} characters; at most "
                              f"{MAX_LENGTH:,}.")
    if "\x00" in text:
        raise InvalidArgument("The custom metric contains a NUL character.")
    _check_tokens(text)
    con = duckdb.connect()
    try:
        raw = con.execute("SELECT json_serialize_sql($q)",
                          {"q": f"SELECT ({text}) AS value"}).fetchall()[0][0]
    finally:
        con.close()
    tree = json.loads(raw)
    if tree.get("error"):
        message = str(tree.get("error_message") or "syntax error").splitlines()[0]
        raise InvalidArgument(f"The custom metric is not a valid SQL expression: {message}. Write "
                              "one aggregate expression such as avg(prediction) / "
                              "avg(sqft_living).")
    statements = tree.get("statements") or []
    node = statements[0].get("node", {}) if len(statements) == 1 else {}
    if (len(statements) != 1 or node.get("type") != "SELECT_NODE"
            or (node.get("from_table") or {}).get("type") != "EMPTY"
            or node.get("where_clause") or node.get("group_expressions")
            or node.get("having") or node.get("qualify") or node.get("sample")
            or node.get("modifiers") or (node.get("cte_map") or {}).get("map")
            or len(node.get("select_list") or []) != 1):
        raise InvalidArgument("A custom metric is a single expression, without FROM, WHERE, GROUP "
                              "BY or a second statement; it is computed per window over the "
                              "monitoring view.")
    known = {c.lower(): c for c in columns}
    found = {"aggregate": False}
    _walk(node["select_list"][0], known, inside=False, found=found)
    if not found["aggregate"]:
        raise InvalidArgument("A custom metric must aggregate the window's rows, e.g. avg(...), "
                              "sum(...), count(*) or quantile_cont(..., 0.9).")
    return node["select_list"][0]


def _check_tokens(text: str) -> None:
    """Refuse comments and statement separators, found by DuckDB's tokenizer (so a ';'
    or '--' inside a string literal is just text)."""
    try:
        tokens = duckdb.tokenize(text)
    except duckdb.Error as exc:
        raise InvalidArgument(f"The custom metric is not a valid SQL expression: "
                         f"{str(exc).splitlines()[0]}") from None
    for pos, kind in tokens:
        if kind == duckdb.token_type.comment:
            raise InvalidArgument(
                "Comments are not allowed in a custom metric; put the explanation "
                             "in its description.")
        if kind == duckdb.token_type.operator and text[pos] == ";":
            raise InvalidArgument("A custom metric is one expression: remove the ';' (statements "
                             "such as COPY, ATTACH or PRAGMA are not allowed).")


def _check_size(fname: str, node: dict[str, Any]) -> None:
    if fname in UNBOUNDED:
        raise InvalidArgument(
            f"{fname}() is not allowed in a custom metric: it builds a list whose "
                         "size only the data bounds; aggregate the columns instead.")
    if fname in SIZED:
        args = node.get("arguments") or []
        index = SIZED[fname]
        arg = args[index] if len(args) > index else None
        expr = (arg or {}).get("expression", arg) if isinstance(arg, dict) else None
        literal = (expr or {}).get("literal") or {}
        try:
            text = literal.get("text") if (expr or {}).get("class") == "CONSTANT" else None
            size = float(text) if text is not None else None
        except (TypeError, ValueError):
            size = None
        if size is None or size > MAX_SIZE:
            raise InvalidArgument(f"{fname}() in a custom metric needs a constant size of at most "
                             f"{MAX_SIZE:,}.")


def _walk(node: Any, known: dict[str, str], inside: bool, found: dict[str, bool]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, known, inside, found)
        return
    if not isinstance(node, dict):
        return
    cls = node.get("class")
    if cls is not None:
        if cls not in ALLOWED_CLASSES:
            what = {"SUBQUERY": "a subquery (SELECT ...)", "WINDOW": "a window function (OVER)",
                    "STAR": "*", "PARAMETER": "a parameter", "LAMBDA": "a lambda",
                    "COLUMN_REF": "a column"}.get(cls, f"this kind of SQL ({cls.lower()})")
            raise InvalidArgument(f"A custom metric cannot contain {what}; use aggregates of the "
                                  "monitoring view's columns only.")
        if cls == "COLUMN_REF":
            names = node.get("column_names") or []
            if len(names) != 1 or names[0].lower() not in known:
                shown = ".".join(names)
                raise InvalidArgument(f"Unknown column {shown!r}; the monitoring view has "
                                      f"{', '.join(sorted(known.values()))}.")
            if not inside:
                raise InvalidArgument(f"Column {names[0]!r} is used outside an aggregate; wrap it, "
                                      f"e.g. avg({names[0]}).")
        if cls == "FUNCTION":
            fname = str(node.get("function_name") or "").lower()
            if node.get("schema") or node.get("catalog"):
                raise InvalidArgument(f"Qualified function names ({node.get('schema')}.{fname}) "
                                      "are not allowed in a custom metric.")
            all_functions, aggregates = _functions()
            operator = bool(node.get("is_operator"))
            if not operator and (DENIED.match(fname) or fname not in all_functions):
                raise InvalidArgument(
                    f"The function {fname}() is not allowed in a custom metric; use "
                                 "aggregates (avg, sum, count, quantile_cont, ...) and arithmetic.")
            _check_size(fname, node)
            if fname in aggregates and not operator:
                if inside:
                    raise InvalidArgument(f"Aggregates cannot be nested ({fname} inside another).")
                found["aggregate"] = True
                for key in ("arguments", "filter", "order_bys"):
                    _walk(node.get(key), known, True, found)
                return
    for key, value in node.items():
        if key in ("query_location", "query_location_length", "alias", "class", "type",
                   "cast_type"):
            continue
        if isinstance(value, (dict, list)):
            _walk(value, known, inside, found)


def validate(mon: Monitor, sql: str) -> str:
    """Parse, check and bind ``sql`` against ``mon``'s view; returns the cleaned text."""
    text = str(sql or "").strip()
    parse(text, mon.columns)
    try:
        with limits.deadline(mon.con):
            described = mon.con.execute(f"DESCRIBE SELECT ({text}) AS value FROM monitoring"
                                        ).fetchall()
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0]
        raise InvalidArgument(f"The custom metric does not fit the monitoring view: "
                              f"{message}") from None
    dtype = str(described[0][1]).upper()
    if not dtype.startswith(NUMERIC_TYPES):
        raise InvalidArgument(f"The custom metric returns {dtype}; it must return a number.")
    return text


def compute(mon: Monitor, window: Any, metrics: Iterable[CustomMetric], *,
            seconds: float | None = None) -> pd.DataFrame:
    """One row per window, one column per custom metric (null where it failed, the
    reason in ``frame.attrs['errors']``). Each query stops after ``seconds`` (default:
    :func:`core.monitoring.limits.query_seconds`)."""

    w = parse_window(window)
    metrics = list(metrics)
    errors: dict[str, str] = {}
    data = None
    if mon.has_rows and metrics:
        exprs = []
        for m in metrics:
            try:
                check_name(m.name)
                text = validate(mon, m.sql)
                exprs.append((m.name, text))
            except InvalidArgument as exc:
                errors[m.name] = exc.message
        parts = [f"CAST(({text}) AS DOUBLE) AS \"{name}\"" for name, text in exprs]
        if parts:
            data = _run(mon, w, parts, exprs, errors, seconds)
    keys = mon.windows(w, data["k"] if data is not None else ())
    out = mon.frame_for(w, keys, data)
    for m in metrics:
        if m.name in REPORT_COLUMNS or m.name.lower() in REPORT_COLUMNS:
            continue
        if m.name not in out:
            out[m.name] = np.nan
        out[m.name] = out[m.name].astype("float64")
    out = out.drop(columns=["k"])
    out.attrs["errors"] = errors
    return out


def _run(mon: Monitor, w: Any, parts: list[str], exprs: list[tuple[str, str]],
         errors: dict[str, str], seconds: float | None) -> pd.DataFrame | None:
    seconds = limits.query_seconds() if seconds is None else float(seconds)
    view = "monitoring" if any(re.search(r"\bactual\b", t, re.I) for _, t in exprs) \
        else "monitoring_log"
    try:
        with limits.deadline(mon.con, seconds):
            return mon.query(f"SELECT {w.key_sql()} AS k, {', '.join(parts)} FROM {view} "
                             "GROUP BY k")
    except duckdb.Error:
        pass
    # One failed or ran out of time: run them one by one to keep the others.
    data = None
    for (name, text), part in zip(exprs, parts):
        try:
            with limits.deadline(mon.con, seconds):
                one = mon.query(f"SELECT {w.key_sql()} AS k, {part} FROM monitoring GROUP BY k")
        except duckdb.InterruptException:
            errors[name] = (f"stopped after {seconds:g} s, the time limit for a query "
                            f"({limits.SECONDS_ENV}); simplify the expression")
            continue
        except duckdb.OutOfMemoryException:
            errors[name] = (f"stopped: it needs more than the memory limit "
                            f"({limits.memory_limit()}, {limits.MEMORY_ENV}); simplify the "
                            "expression")
            continue
        except duckdb.Error as exc:
            errors[name] = f"failed while computing: {str(exc).splitlines()[0]}"
            continue
        data = one if data is None else data.merge(one, on="k", how="outer")
    return data


# -- saved per model --------------------------------------------------------------------------

def _quoted(column: str) -> str:
    return column if re.fullmatch(r"[a-z_][a-z0-9_]*", column) else \
        '"' + column.replace('"', '""') + '"'


def example(meta: Any) -> tuple[str, str]:
    """``(name, sql)`` of an example custom metric written with the model's own columns:
    the prediction per unit of its first numeric input for a regression, the share of
    one class among the predictions for a classifier."""
    if meta.classes:
        label = str(meta.classes[-1])
        slug = re.sub(r"[^A-Za-z0-9_]", "_", label)[:30] or "class"
        literal = label.replace("'", "''")
        return (f"share_{slug}",
                f"avg(CASE WHEN prediction = '{literal}' THEN 1.0 ELSE 0.0 END)")
    numeric = [c.name for c in meta.prototype.columns if c.kind in ("int", "float")]
    if not numeric:
        return "mean_prediction", "avg(prediction)"
    column = numeric[0]
    slug = re.sub(r"[^A-Za-z0-9_]", "_", column)[:30] or "input"
    return f"prediction_per_{slug}", f"avg(prediction) / avg({_quoted(column)})"


def saved(store: StoreLike, name: str) -> list[CustomMetric]:
    """The model's custom metrics (latest record per metric name, deleted ones dropped)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in store.records(RECORD_KIND, name):
        payload = record.payload or {}
        if payload.get("name"):
            latest[str(payload["name"])] = payload
    return [CustomMetric(name=p["name"], sql=p.get("sql", ""),
                         description=p.get("description", ""),
                         direction=p.get("direction", "above"))
            for p in latest.values() if not p.get("deleted")]


def save(store: StoreLike, mon: Monitor, metric: CustomMetric, user: str | None = None
         ) -> CustomMetric:
    """Validate ``metric`` against the model's monitoring view, then record it."""
    name = check_name(metric.name)
    if metric.direction not in ("above", "below"):
        raise InvalidArgument("direction must be 'above' (higher is worse) or 'below' (lower is "
                              "worse).")
    if name in (*REGRESSION_METRICS, *CLASSIFICATION_METRICS, "n", "n_actual"):
        raise InvalidArgument(f"{name!r} is a built-in metric; give the custom metric another "
                              "name.")
    text = validate(mon, metric.sql)
    clean = CustomMetric(name=name, sql=text, description=str(metric.description or "")[:500],
                         direction=metric.direction)
    store.add_record(RECORD_KIND, mon.name, clean.to_dict(), user=user)
    return clean


def delete(store: StoreLike, model: str, metric_name: str, user: str | None = None) -> None:
    if metric_name not in {m.name for m in saved(store, model)}:
        raise InvalidArgument(f"No custom metric {metric_name!r} for {model}.")
    store.add_record(RECORD_KIND, model, {"name": metric_name, "deleted": True}, user=user)
