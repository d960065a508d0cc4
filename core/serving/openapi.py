"""OpenAPI 3.1 description of a prediction server, generated from the model's prototype."""

from __future__ import annotations

import copy
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
    "413": "Body larger than the server's limit",
    "415": "Unsupported Content-Type or Content-Encoding (send uncompressed JSON or CSV)",
    "422": "Input does not match the model's prototype (every problem listed)",
}
OPEN_PATHS = ("/ping", "/healthz")


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
    example = meta.prototype.example_record()
    names = meta.prototype.names
    row = [example.get(n) for n in names]
    classifier = meta.classes is not None
    label = ({"type": ["string", "integer", "number", "boolean"]} if classifier
             else {"type": ["number", "null"]})
    records = {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Record"}}
    rows = {"type": "array", "minItems": 1,
            "items": {"type": "array", "minItems": len(names), "maxItems": len(names)}}
    split = {"type": "object", "required": ["columns", "data"], "properties": {
        "columns": {"type": "array", "items": {"type": "string"}, "example": names},
        "data": {"type": "array", "minItems": 1, "items": {"type": "array"}, "example": [row]},
    }}
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
            "text/csv": {"schema": {"type": "string"},
                         "example": ",".join(names) + "\n" + ",".join(
                             "" if v is None else str(v) for v in row) + "\n"},
        },
    }
    envelope = {"oneOf": [
        _envelope("dataframe_split", {"$ref": "#/components/schemas/Split"}),
        _envelope("dataframe_records", {"$ref": "#/components/schemas/Records"}),
        _envelope("instances", {"oneOf": [{"$ref": "#/components/schemas/Records"}, rows]}),
        _envelope("inputs", {"oneOf": [{"$ref": "#/components/schemas/Records"}, rows]}),
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
                **_errors("400", "408", "413", "415", "422", auth=auth)},
        }},
        "/invocations": {"post": {
            "summary": "Predict (MLflow scoring-server format)", "operationId": "invocations",
            "requestBody": invocations_body,
            "responses": {**ok({"type": "object", "required": ["predictions"], "properties": {
                "predictions": {"type": "array"}}}, {"predictions": pred_example}),
                **_errors("400", "408", "413", "415", "422", auth=auth)},
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
                          **_errors("400", "408", "413", "415", "422", auth=auth)},
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


def _envelope(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {
        key: schema, "params": {"type": "object", "properties": {
            "predict_method": {"type": "string", "enum": ["predict", "predict_proba"]}}}},
        "additionalProperties": False}


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
