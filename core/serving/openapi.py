"""OpenAPI 3.1 description of a prediction server, generated from the model's prototype.

The spec says what the server accepts and what it rejects, so that a client generated
from it, or schemathesis, finds no difference: a CSV body is a header naming the
model's columns and at least one row (a pattern per column kind), ``columns`` and
``params`` may be null, an MLflow envelope has exactly one of its four keys, and the
server's limits (rows, 413; large bodies at once, 429) are listed with the errors.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from core.model.bundle import ModelBundle

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string", "example": "invalid_input"},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object"}},
        },
    }},
}
_ERRORS = {
    "400": "Malformed body (not JSON/CSV, wrong shape)",
    "401": "Missing or wrong bearer token",
    "408": "The body stopped arriving before it was complete",
    "413": "Body, rows, columns or JSON nesting past the server's limits",
    "429": "Too many large bodies are being read or parsed at once; retry after Retry-After",
    "415": "Unsupported Content-Type or Content-Encoding (send uncompressed JSON or CSV)",
    "422": "Input does not match the model's prototype (every problem listed)",
}
OPEN_PATHS = ("/ping", "/healthz")
INT64 = {"minimum": -(2**63), "maximum": 2**63 - 1}
# the integers JSON parsing keeps as integers (orjson: int64 and uint64); others are floats
JSON_INT = {"type": "integer", "minimum": -(2**63), "maximum": 2**64 - 1}
# scikit-learn's trees compute in float32: a number that rounds to float32 infinity (the
# largest float32 plus half a step, 2**128 - 2**103) fails in the model (422)
_FLOAT32_INF = float(2**128 - 2**103)
FLOAT32 = {"exclusiveMinimum": -_FLOAT32_INF, "exclusiveMaximum": _FLOAT32_INF}


def _err(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _errors(*codes: str, auth: bool) -> dict[str, Any]:
    out = {c: _err(_ERRORS[c]) for c in codes}
    if auth:
        out["401"] = _err(_ERRORS["401"])
    return out


def build_openapi(bundle: ModelBundle, *, auth: bool = False) -> dict[str, Any]:
    meta = bundle.meta
    record = copy.deepcopy(meta.prototype.json_schema())
    # extra fields are dropped (and warned about), but must be single values like the rest
    record["additionalProperties"] = {"type": ["string", "number", "boolean", "null"]}
    for prop in record.get("properties", {}).values():
        types = [prop["type"]] if isinstance(prop.get("type"), str) else prop.get("type") or []
        if "integer" in types:
            prop.update(INT64)  # a larger integer cannot reach the model without loss
        elif "number" in types:
            prop.update(FLOAT32)
        elif "string" in types:  # 98115 is read as "98115", losslessly
            rest = {k: v for k, v in prop.items() if k != "type"}
            prop.clear()
            prop.update(rest, anyOf=[{"type": types}, JSON_INT])
    example = meta.prototype.example_record()
    names = meta.prototype.names
    row = [example.get(n) for n in names]
    classifier = meta.classes is not None
    label = ({"type": ["string", "integer", "number", "boolean"]} if classifier
             else {"type": ["number", "null"]})
    records = {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Record"}}
    row_schema = {"type": "array", "prefixItems": [_cell(c) for c in meta.prototype.columns],
                  "minItems": len(names), "maxItems": len(names)}
    rows = {"type": "array", "minItems": 1, "items": row_schema}
    data = {"type": "array", "minItems": 1, "items": row_schema, "example": [row]}
    split = {"anyOf": [
        # named columns in the model's order; null: the rows are in the model's order
        {"type": "object", "required": ["columns", "data"], "properties": {
            "columns": {"oneOf": [{"const": list(names)}, {"type": "null"}],
                        "example": names},
            "data": data, "index": {"description": "ignored"}}},
        {"type": "object", "required": ["data"], "additionalProperties": False,
         "properties": {"data": data, "index": {"description": "ignored"}}},
    ]}
    csv = {"type": "string", "pattern": _csv_pattern(meta.prototype.columns),
           "description": "A header naming the model's columns, then one or more rows"}
    predict_body: dict[str, Any] = {
        "required": True,
        "description": "Rows to predict: an array of records (vetiver's format), an array of "
                       "rows in column order, columnar JSON {columns, data}, or CSV.",
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"$ref": "#/components/schemas/Records"},
                                     {"$ref": "#/components/schemas/Split"}]},
                "examples": {
                    "records": {"summary": "array of records (vetiver)", "value": [example]},
                    "columnar": {"summary": "columnar", "value": {"columns": names,
                                                                  "data": [row]}},
                },
            },
            "text/csv": {"schema": csv,
                         "example": ",".join(names) + "\n" + ",".join(
                             "" if v is None else str(v) for v in row) + "\n"},
        },
    }
    methods = ["predict", "predict_proba"] if meta.has_proba else ["predict"]
    rows_or_records = {"anyOf": [{"$ref": "#/components/schemas/Records"}, rows]}
    envelope = {"anyOf": [
        _envelope("dataframe_split", {"$ref": "#/components/schemas/Split"}, methods),
        _envelope("dataframe_records", {"$ref": "#/components/schemas/Records"}, methods),
        _envelope("instances", rows_or_records, methods),
        _envelope("inputs", rows_or_records, methods),
        # pandas' split orient without an envelope
        {"allOf": [{"$ref": "#/components/schemas/Split"}, _none_of(MLFLOW_KEYS)]},
    ]}
    invocations_body = {
        "required": True,
        "description": "MLflow scoring-server formats. params.predict_method may be "
                       "'predict' or 'predict_proba' (classifiers).",
        "content": {
            "application/json": {
                "schema": envelope,
                "examples": {
                    "dataframe_split": {"value": {"dataframe_split": {"columns": names,
                                                                      "data": [row]}}},
                    "dataframe_records": {"value": {"dataframe_records": [example]}},
                    "instances": {"value": {"instances": [example]}},
                    "inputs": {"value": {"inputs": [row]}},
                },
            },
            "text/csv": predict_body["content"]["text/csv"],
        },
    }
    headers = {
        "X-Request-ID": {"description": "Request id (the client's, if sane), also in the "
                                        "prediction log", "schema": {"type": "string"}},
        "X-Fixative-Warnings": {"description": "JSON array of validation warnings (dropped "
                                               "columns, unseen categories, out-of-range "
                                               "values); absent when there are none",
                                "schema": {"type": "string"}},
    }

    def ok(schema: dict[str, Any], example: Any) -> dict[str, Any]:
        return {"200": {"description": "Predictions, one per input row, in input order",
                        "headers": headers,
                        "content": {"application/json": {"schema": schema,
                                                          "example": example}}}}

    pred_example = [meta.classes[0]] if classifier and meta.classes else [0.0]
    paths: dict[str, Any] = {
        "/predict": {"post": {
            "summary": "Predict (vetiver format)", "operationId": "predict",
            "requestBody": predict_body,
            "responses": {**ok({"type": "object", "required": ["predict"], "properties": {
                "predict": {"type": "array", "items": label}}}, {"predict": pred_example}),
                **_errors("400", "408", "413", "415", "422", "429", auth=auth)},
        }},
        "/invocations": {"post": {
            "summary": "Predict (MLflow scoring-server format)", "operationId": "invocations",
            "requestBody": invocations_body,
            "responses": {**ok({"type": "object", "required": ["predictions"], "properties": {
                "predictions": {"type": "array"}}}, {"predictions": pred_example}),
                **_errors("400", "408", "413", "415", "422", "429", auth=auth)},
        }},
        "/ping": _get("ping", "Liveness",
                      {"type": "object", "properties": {"ping": {"type": "string"}}},
                      {"ping": "pong"}, auth=False),
        "/healthz": _get("healthz",
                         "Readiness: 200 once the model is loaded and serving, 503 otherwise",
                         {"type": "object"}, {"status": "ready"}, auth=False, extra=["503"]),
        "/metadata": _get("metadata", "Model metadata (vetiver's shape)", {"type": "object"}, None,
                          auth=auth),
        "/prototype": _get("prototype", "JSON schema of one input record (vetiver's shape)",
                           {"type": "object"}, None, auth=auth),
        "/pin-url": _get("pin_url", "Where the model version is stored (404 when not from a store)",
                         {"type": "string"}, None, auth=auth, extra=["404"]),
        "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics",
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {
                                                       "schema": {"type": "string"}}}},
                                           **_errors(auth=auth)}}},
        "/": {"get": {"summary": "This API's documentation page", "operationId": "docs",
                      "responses": {"200": {"description": "HTML page", "content": {
                          "text/html": {"schema": {"type": "string"}}}},
                          **_errors(auth=auth)}}},
    }
    if meta.has_proba:
        paths["/predict_proba"] = {"post": {
            "summary": "Class probabilities", "operationId": "predict_proba",
            "requestBody": predict_body,
            "responses": {**ok({"type": "object", "required": ["predict_proba", "classes"],
                                "properties": {
                                    "predict_proba": {"type": "array", "items": {
                                        "type": "array", "items": {"type": "number"}}},
                                    "classes": {"type": "array"}}},
                               {"predict_proba": [[1.0 / max(len(meta.classes or [1]), 1)]
                                                  * len(meta.classes or [1])],
                                "classes": meta.classes}),
                          **_errors("400", "408", "413", "415", "422", "429", auth=auth)},
        }}
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": f"{meta.name} model API",
            "version": bundle.version or "unversioned",
            "description": (meta.description or f"{meta.model_class} ({meta.task})")
            + "\n\nServed by Fixative.",
        },
        "paths": paths,
        "components": {"schemas": {
            "Record": record, "Records": records, "Split": split, "Error": ERROR_SCHEMA,
        }},
    }
    if auth:
        spec["components"]["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "One of the tokens in FIXATIVE_API_TOKENS"}}
        spec["security"] = [{"bearerAuth": []}]
        for path in OPEN_PATHS:
            spec["paths"][path]["get"]["security"] = []
    return spec


MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def _none_of(keys: tuple[str, ...]) -> dict[str, Any]:
    return {"not": {"anyOf": [{"required": [k]} for k in keys]}}


def _envelope(key: str, schema: dict[str, Any], methods: list[str]) -> dict[str, Any]:
    """Exactly one MLflow key; ``params`` may be absent or null; other keys are ignored."""
    return {"type": "object", "required": [key], "properties": {
        key: schema, "params": {"type": ["object", "null"], "properties": {
            "predict_method": {"type": "string", "enum": methods}}}},
        **_none_of(tuple(k for k in MLFLOW_KEYS if k != key))}


_CELL_PATTERNS = {  # one CSV field per column kind, as validation reads it back
    "int": "-?[0-9]{1,9}",
    "float": "-?[0-9]{1,9}(\\.[0-9]{1,6})?",
    "bool": "(true|false)",
    # any field: no comma, quote or line break, not empty (empty is null)
    "text": '[^,"\\r\\n ][^,"\\r\\n]*',
    "datetime": "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])",
}


def _csv_pattern(columns: list[Any]) -> str:
    """A regular expression for the CSV bodies the server predicts on: the header, then
    rows of fields that convert without loss (categories unseen in training are only
    warned about, so any word will do for them)."""
    header = ",".join(re.escape(c.name) for c in columns)
    row = ",".join(_CELL_PATTERNS.get(c.kind, _CELL_PATTERNS["text"]) for c in columns)
    return f"^{header}\\n({row}\\n)*{row}\\n?$"


def _cell(column: Any) -> dict[str, Any]:
    """One JSON value of a column in a row array, as the Record schema has it."""
    cells: dict[str, dict[str, Any]] = {
        "integer": {"type": "integer", **INT64}, "number": {"type": "number", **FLOAT32},
        "boolean": {"type": "boolean"}}
    return cells.get(_json_type(column), {"anyOf": [{"type": "string"}, JSON_INT]})


def _json_type(column: Any) -> str:
    return {"int": "integer", "float": "number", "bool": "boolean"}.get(column.kind, "string")


def _get(op: str, summary: str, schema: dict[str, Any], example: Any, *, auth: bool,
         extra: list[str] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    responses: dict[str, Any] = {"200": {"description": summary,
                                         "content": {"application/json": content}}}
    for code in extra or []:
        responses[code] = _err({"404": "Not available for this server",
                                "503": "Not ready (starting or shutting down)"}[code])
    if auth:
        responses["401"] = _err(_ERRORS["401"])
    return {"get": {"summary": summary, "operationId": op, "responses": responses}}
