"""The prediction server: ``create_app(bundle) -> Starlette``, run by uvicorn.

Routes: ``GET /`` (docs page), ``/openapi.json``, ``/ping``, ``/healthz``, ``/metadata``,
``/prototype``, ``/pin-url``, ``/metrics``; ``POST /predict`` (vetiver's format),
``/predict_proba`` (classifiers) and ``/invocations`` (MLflow's formats). Body shapes
are described in :mod:`core.serving.wire`.

Every failure answers ``{"error": {"code", "message", "details"}}`` with its HTTP
status; bad input never gets a 500 and no response carries a traceback or a server
path. Every response carries ``X-Request-ID`` (the client's own, if it sent a sane
one). Validation warnings (dropped extra columns, unseen categories, values outside
the training range) travel in the ``X-Fixative-Warnings`` header as a JSON array, so
response bodies keep exactly the shapes vetiver's and MLflow's clients expect.

Bearer tokens: ``tokens=...`` or ``FIXATIVE_API_TOKENS`` (comma-separated); when set,
every route except ``/ping`` and ``/healthz`` needs ``Authorization: Bearer <token>``.
A token list that is set but names no token (blank, spaces, commas) refuses to start,
as does a token shorter than 16 characters unless short tokens are allowed: a server
that meant to be protected never comes up open.

What one request may cost is bounded (see :mod:`core.serving.limits`): its body size
(413), rows, columns and JSON nesting (413, counted before the body is parsed), the
time its whole body may take to arrive (408, counted from the start of the request, not
per chunk), and how many large bodies are read and parsed at once (429 with
``Retry-After``). Bodies of up to 64 KiB never wait for a slot. Parsing holds the GIL
wherever it runs, so a body that parses in a few milliseconds is parsed on the event loop
(any body up to 256 KiB, typed records up to 1 MiB), a larger one in a worker thread so
the loop keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from core import settings
from core.cards.card import card_route
from core.errors import (
    BadRequest,
    FixativeError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
)
from core.model.bundle import ModelBundle
from core.serving import limits as limits_mod
from core.serving import wire
from core.serving.batching import Batcher
from core.serving.body import (
    LOOP_DECODE_BYTES,
    LOOP_PARSE_BYTES,
    RETRY_AFTER,
    Slots,
    check_encoding,
    read_body,
)
from core.serving.convert import Converter
from core.serving.docs_page import check_public_url, render_docs
from core.serving.engine import SklearnEngine
from core.serving.engine import text as engine_text
from core.serving.gate import Gate
from core.serving.limits import MIN_TOKEN_LENGTH, Limits
from core.serving.metrics import CONTENT_TYPE, ServerMetrics
from core.serving.openapi import build_openapi
from core.serving.responses import JSONResponse, error_response
from core.serving.warnpolicy import settle_process
from core.store.protocols import StoreLike

DEFAULT_MAX_BODY = 20 * 2**20
# Seconds /healthz trusts its last look at whether the version still exists.
VERSION_CHECK_INTERVAL = 5.0
MAX_WARNINGS = 20
_log = logging.getLogger("fixative.server")


@dataclass
class _Service:
    """Everything one app needs, built once in create_app."""

    bundle: ModelBundle
    engine: Any
    converter: Converter
    batcher: Batcher
    metrics: ServerMetrics
    tokens: tuple[bytes, ...]
    max_body_bytes: int
    limits: Limits = field(default_factory=Limits)
    writer: Any = None
    store: Any = None
    pin_url: str | None = None
    ready: bool = False
    slots: Slots = None  # type: ignore[assignment]
    version_checked: float = -float("inf")
    version_gone: bool = False
    # the version was in the store at start (not so for a Docker bundle's log board)
    watch_version: bool = False
    docs: str = ""
    openapi: bytes = b""
    route_labels: frozenset[str] = field(default_factory=frozenset)
    classes: np.ndarray | None = None


def create_app(bundle: ModelBundle, *, store: StoreLike | None = None, log: bool = True,
               tokens: Sequence[str] | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
               batching: bool = True, max_batch_rows: int = 10_000,
               flush_interval: float = 1.0, metrics_dir: str | None = None,
               body_timeout: float | None = None, limits: Limits | None = None,
               public_url: str | None = None, allow_short_tokens: bool = False,
               engine: Any = None) -> Starlette:
    """A Starlette app serving ``bundle``.

    ``store``: the VersionStore the bundle came from; needed for the prediction log
    (``log=True``) and ``/pin-url``. ``tokens``: bearer tokens (None reads
    ``FIXATIVE_API_TOKENS``; empty means open). ``batching``: adaptive micro-batching
    (see :mod:`core.serving.batching`), at most ``max_batch_rows`` rows per model call.
    ``metrics_dir``: the directory the worker processes of one server share, so that
    ``/metrics`` counts for all of them (see :mod:`core.serving.metrics`); None for a
    server of one process. ``limits``: see :mod:`core.serving.limits`; ``body_timeout``,
    if given, replaces its whole-body deadline (seconds from the start of the request).
    ``public_url``: the URL clients reach the server at, for the docs page's examples
    (without it they use the address the browser shows). ``allow_short_tokens``: accept
    tokens shorter than 16 characters. ``engine``: what computes predictions (see
    :mod:`core.serving.engine`); None runs ``bundle.model`` itself.
    """
    if max_body_bytes < 1:
        raise BadRequest("max_body_bytes must be a positive number of bytes.")
    limits = limits or Limits()
    if body_timeout is not None:
        limits = replace(limits, body_timeout=limits_mod.check("body_timeout", body_timeout))
    token_bytes = server_tokens(tokens, allow_short=allow_short_tokens)
    public_url = check_public_url(public_url) if public_url else None
    meta = bundle.meta
    version = bundle.version or "unversioned"
    metrics = ServerMetrics(meta.name, version, metrics_dir)
    if engine is None:
        engine = SklearnEngine(bundle.model, meta.prototype.named)
    svc = _Service(
        bundle=bundle,
        converter=Converter(meta.prototype, columns=getattr(engine, "takes_columns", False)),
        engine=engine,
        batcher=Batcher(engine, enabled=batching, max_rows=max_batch_rows,
                        on_batch=metrics.observe_batch),
        metrics=metrics,
        tokens=token_bytes,
        max_body_bytes=int(max_body_bytes),
        limits=limits,
        store=store,
        slots=Slots(limits.max_parsing),
        classes=np.asarray(meta.classes, dtype=object) if meta.classes is not None else None,
    )
    if store is not None:
        svc.pin_url = f"{str(store.url).rstrip('/')}/{meta.name}/{version}/"
        if log:
            from core.store.predlog import LogWriter

            kinds = {c.name: c.kind for c in meta.prototype.columns}
            svc.writer = LogWriter(store, meta.name, version, flush_interval,
                                   feature_kinds=kinds, classes=meta.classes)
    svc.docs = render_docs(bundle, auth=bool(token_bytes), public_url=public_url,
                           engine=engine_text(engine.describe()))
    svc.openapi = wire.dumps(build_openapi(bundle, auth=bool(token_bytes)))

    routes = [
        Route("/", _docs, methods=["GET"]),
        Route("/openapi.json", _openapi, methods=["GET"]),
        Route("/ping", _ping, methods=["GET"]),
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/metadata", _metadata, methods=["GET"]),
        Route("/prototype", _prototype, methods=["GET"]),
        Route("/pin-url", _pin_url, methods=["GET"]),
        Route("/metrics", _metrics, methods=["GET"]),
        Route("/predict", _predict, methods=["POST"]),
        Route("/predict_proba", _predict_proba, methods=["POST"]),
        Route("/invocations", _invocations, methods=["POST"]),
        Route("/card", card_route(bundle, store), methods=["GET"]),  # model card
    ]
    svc.route_labels = frozenset(r.path for r in routes)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        # The model and everything imported so far live as long as the process: keep
        # them out of the cyclic collector's full passes (shorter GC pauses under load).
        gc.freeze()
        # imports while starting add warning filters; a serving process keeps one
        settle_process()
        if svc.writer is not None:
            svc.writer.start()
        if svc.store is not None and svc.bundle.version:
            try:
                svc.watch_version = await asyncio.to_thread(_version_exists, svc)
            except Exception:  # an unreachable store: readiness does not hang on it
                _log.warning("could not look up %s@%s in the store; /healthz will not watch "
                             "for its deletion", svc.bundle.meta.name, svc.bundle.version,
                             exc_info=True)
        svc.ready = True
        try:
            yield
        finally:
            svc.ready = False
            gc.unfreeze()
            await svc.batcher.close()
            if svc.writer is not None:
                await asyncio.to_thread(svc.writer.close)
            svc.metrics.close()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error,
                                        FixativeError: _fixative_error})
    # /predict/ is a 404 like any unknown path, not a redirect built from the Host header
    app.router.redirect_slashes = False
    app.state.svc = svc
    app.add_middleware(Gate, svc=svc)
    return app


def server_tokens(tokens: Sequence[str] | None, *, allow_short: bool = False
                  ) -> tuple[bytes, ...]:
    """The bearer tokens a server accepts (empty: open). ``None`` reads
    ``FIXATIVE_API_TOKENS``; unset or an empty list means open.

    Refused with one line each, so a server meant to be protected never starts open: a
    list that is given but names no token (blank, spaces, only commas), and a token
    shorter than 16 characters unless ``allow_short``.
    """
    where = "the token list"
    if tokens is None:
        raw = settings.tokens_env()
        if raw is None:
            return ()
        tokens, where = raw.split(","), settings.TOKENS_ENV
    elif not tokens:
        return ()
    kept = [t.strip() for t in tokens if t and t.strip()]
    if not kept:
        raise BadRequest(
            f"{where} is set but names no token (it is blank, spaces or commas); give one "
            f"or more comma-separated tokens, or unset {settings.TOKENS_ENV} to serve without "
            "authentication.")
    short = [t for t in kept if len(t) < MIN_TOKEN_LENGTH]
    if short and not allow_short:
        raise BadRequest(
            f"{where} has a token of {len(short[0])} characters; tokens need at least "
            f"{MIN_TOKEN_LENGTH} (make one with: python -c \"import secrets; "
            "print(secrets.token_urlsafe(32))\"), or start with --allow-short-tokens "
            f"({limits_mod.ALLOW_SHORT_TOKENS_ENV}=1).")
    return tuple(t.encode() for t in kept)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: FixativeError = NotFound(
            f"There is no route {request.url.path[:200]}; see GET / or GET /openapi.json "
            "for the routes this server has.")
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        err = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}; "
                               f"use {allowed or 'another method'}.",
                               [{"allowed": [m.strip() for m in allowed.split(",") if m]}])
    else:
        err = FixativeError(str(exc.detail)[:200])
        err.status = exc.status_code
        err.code = "http_error"
    return error_response(err, dict(exc.headers or {}))


async def _fixative_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FixativeError)
    return error_response(exc)


def _svc(request: Request) -> _Service:
    return request.app.state.svc


# -- GET routes -------------------------------------------------------------------------------


async def _docs(request: Request) -> Response:
    # built once, from the configured public URL: never from the request's Host header
    return HTMLResponse(_svc(request).docs)


async def _openapi(request: Request) -> Response:
    return Response(_svc(request).openapi, media_type="application/json")


async def _ping(request: Request) -> Response:
    return JSONResponse({"ping": "pong"})


async def _healthz(request: Request) -> Response:
    svc = _svc(request)
    meta = svc.bundle.meta
    version = svc.bundle.version or "unversioned"
    if not svc.ready:
        raise ServiceUnavailable("The server is starting or shutting down; retry shortly.",
                                 [{"reason": "not_ready"}])
    if await _version_gone(svc):
        raise ServiceUnavailable(
            f"Version {version} of '{meta.name}' was deleted from the store; this server "
            "still answers with the copy it loaded, but should be replaced by one serving "
            "a current version.",
            [{"reason": "version_deleted", "model": meta.name, "version": version}])
    return JSONResponse({"status": "ready", "model": meta.name, "version": version})


def _version_exists(svc: _Service) -> bool:
    from core.store.board import PINS_META

    try:
        path = svc.store.path(svc.bundle.meta.name, svc.bundle.version, PINS_META)
        return bool(svc.store.fs.exists(path))
    except AttributeError:  # a store-like object without fs/path: nothing to watch
        return False


async def _version_gone(svc: _Service) -> bool:
    """Whether the served version has left the store (looked up at most every few s)."""
    if not svc.watch_version:
        return False
    now = time.monotonic()
    if now - svc.version_checked < VERSION_CHECK_INTERVAL:
        return svc.version_gone
    svc.version_checked = now
    try:
        gone = not await asyncio.to_thread(_version_exists, svc)
    except Exception:  # a store we cannot reach says nothing about the version
        _log.warning("could not check that %s@%s is still in the store", svc.bundle.meta.name,
                     svc.bundle.version, exc_info=True)
        return svc.version_gone
    if gone and not svc.version_gone:
        _log.warning("model %s version %s was deleted from the store; /healthz now answers 503 "
                     "(predictions go on, logged under version %s)", svc.bundle.meta.name,
                     svc.bundle.version, svc.bundle.version)
    svc.version_gone = gone
    return gone


async def _metadata(request: Request) -> Response:
    """vetiver's shape: user, version, url, required_pkgs, python_version; ``user.engine``
    says what computes the predictions and how the compiled graph was judged."""
    svc = _svc(request)
    meta = svc.bundle.meta
    env = meta.environment or {}
    user = {k: v for k, v in meta.to_dict().items() if k not in ("prototype", "profile")}
    # vetiver's top-level keys stay exactly vetiver's: the engine is part of user metadata
    user["engine"] = svc.engine.describe()
    return JSONResponse({
        "user": user,
        "version": svc.bundle.version,
        "url": svc.pin_url,
        "required_pkgs": [f"{k}=={v}" for k, v in sorted((env.get("packages") or {}).items())],
        "python_version": env.get("python_version"),
    })


async def _prototype(request: Request) -> Response:
    """vetiver's shape: a JSON schema titled 'prototype' with an example per column."""
    schema = _svc(request).bundle.meta.prototype.json_schema()
    return JSONResponse({"properties": schema["properties"], "required": schema["required"],
                         "title": "prototype", "type": "object"})


async def _pin_url(request: Request) -> Response:
    svc = _svc(request)
    if svc.pin_url is None:
        raise NotFound("This server was started from a bundle that is not in a store, so it "
                       "has no pin URL.")
    return JSONResponse(repr(svc.pin_url))


async def _metrics(request: Request) -> Response:
    return Response(_svc(request).metrics.render(), media_type=CONTENT_TYPE)


# -- prediction routes -------------------------------------------------------------------------


async def _predict(request: Request) -> Response:
    return await _serve(request, "predict", "predict")


async def _predict_proba(request: Request) -> Response:
    return await _serve(request, "predict_proba", "predict_proba")


async def _invocations(request: Request) -> Response:
    return await _serve(request, "invocations", None)


async def _serve(request: Request, route: str, method: str | None) -> Response:
    svc = _svc(request)
    info = request.scope["fixative"]
    frame = out = proba = None
    headers: dict[str, str] = {}
    try:
        if method == "predict_proba":
            _require_proba(svc)
        check_encoding(request.headers.get("content-encoding"))
        body, held = await read_body(request, svc.max_body_bytes, svc.limits.body_timeout,
                                     svc.slots)
        ctype = request.headers.get("content-type")
        try:
            size = len(body)
            # typed records on the loop up to LOOP_DECODE_BYTES; the general parser on the
            # loop up to LOOP_PARSE_BYTES, else in a thread (see core.serving.body)
            parsed: Parsed | None = (_typed(svc, route, body, ctype)
                                     if size <= LOOP_DECODE_BYTES else None)
            if parsed is None and size <= LOOP_PARSE_BYTES:
                parsed = _parse(svc, route, body, ctype, typed=False)
            elif parsed is None:
                parsed = await asyncio.to_thread(_parse, svc, route, body, ctype,
                                                 typed=size > LOOP_DECODE_BYTES)
            frame, warnings, params = parsed
        finally:
            if held:
                svc.slots.give()
        del body
        if method is None:
            method = _invocations_method(svc, params)
        outcome = await svc.batcher.submit_traced(method, frame)
        result = outcome.values
        if method == "predict_proba":
            proba = result
            labels = svc.classes[np.argmax(result, axis=1)] if svc.classes is not None else None
            out = labels
            payload: dict[str, Any] = (
                {"predictions": _jsonable(result)} if route == "invocations"
                else {"predict_proba": _jsonable(result), "classes": svc.bundle.meta.classes})
        else:
            out = result
            key = "predictions" if route == "invocations" else "predict"
            payload = {key: _jsonable(result)}
        if warnings:
            headers["X-Fixative-Warnings"] = _warnings_header(warnings)
        svc.metrics.rows.labels(route).inc(len(frame))
        response = JSONResponse(payload, headers=headers)
        # log the batch frame the model saw: one frame per batch, not per request
        rows = (outcome.start, outcome.start + len(frame))
        frame = outcome.frame
    except FixativeError as exc:
        svc.metrics.errors.labels(route, exc.code).inc()
        response = error_response(exc, {"Retry-After": str(RETRY_AFTER)}
                                  if isinstance(exc, TooManyRequests) else None)
        _log_request(svc, info, route, response.status_code, exc.code)
        return response
    except ClientDisconnect:
        # The client went away mid-upload: nobody is there to answer, and it is not a
        # server error (nginx's 499, "client closed request").
        svc.metrics.errors.labels(route, CLIENT_CLOSED).inc()
        _log_request(svc, info, route, 499, CLIENT_CLOSED)
        return Response(status_code=499)
    except Exception:
        # A bug, not bad input: the middleware answers 500 and logs the traceback; the
        # prediction log still gets the request, so "every request is logged" holds.
        _log_request(svc, info, route, InternalError.status, InternalError.code)
        raise
    _log_request(svc, info, route, response.status_code, None, frame=frame, rows=rows,
                 prediction=out, proba=proba)
    return response


def _log_request(svc: _Service, info: dict[str, Any], route: str, status: int,
                 error_code: str | None, *, frame: Any = None, rows: Any = None,
                 prediction: Any = None, proba: Any = None) -> None:
    if svc.writer is not None:
        svc.writer.append(ts=info["ts"], request_id=info["id"], route=route, status=status,
                          latency_ms=(time.perf_counter() - info["t0"]) * 1e3,
                          frame=frame, rows=rows, prediction=prediction, proba=proba,
                          error_code=error_code)


# a parsed body: (frame or Columns, warnings, MLflow params)
Parsed = tuple[Any, list[str], dict[str, Any]]


def _typed(svc: _Service, route: str, body: bytes, ctype: str | None) -> Parsed | None:
    """The parse of a body of typed records (nothing to warn about), or None."""
    if route != "invocations" and wire.check_media_type(ctype) == "json":
        frame = svc.converter.records(body, svc.limits.max_rows)
        if frame is not None:
            return frame, [], {}
    return None


def _parse(svc: _Service, route: str, body: bytes, ctype: str | None, *, typed: bool
           ) -> Parsed:
    """(frame, warnings, params) of a request body; ``typed``: try typed records first
    (False when they were tried already)."""
    if typed:
        found = _typed(svc, route, body, ctype)
        if found is not None:
            return found
    names = svc.converter.names
    keep = svc.converter.keep
    if route == "invocations":
        payload = wire.parse_invocations(body, ctype, names, svc.limits, keep)
    else:
        payload = wire.parse_predict(body, ctype, names, svc.limits, keep)
    frame, warnings = svc.converter.convert(payload)
    return frame, warnings, payload.params


CLIENT_CLOSED = "client_closed"


def _require_proba(svc: _Service) -> None:
    meta = svc.bundle.meta
    if not meta.has_proba:
        raise NotFound(f"Model '{meta.name}' ({meta.model_class}, {meta.task}) has no "
                       "predict_proba: only probabilistic classifiers do. Use POST /predict.")


def _invocations_method(svc: _Service, params: dict[str, Any]) -> str:
    method = params.get("predict_method", "predict")
    if method not in ("predict", "predict_proba"):
        raise BadRequest(f"params.predict_method must be 'predict' or 'predict_proba', "
                         f"got {str(method)[:50]!r}.")
    if method == "predict_proba" and not svc.bundle.meta.has_proba:
        meta = svc.bundle.meta
        raise BadRequest(f"params.predict_method is 'predict_proba', but model '{meta.name}' "
                         f"({meta.model_class}, {meta.task}) has no predict_proba: only "
                         "probabilistic classifiers do. Use 'predict'.")
    return method


def _jsonable(values: np.ndarray) -> Any:
    if values.dtype.kind in "fiub" and values.flags.c_contiguous:
        return values
    return values.tolist()


def _warnings_header(warnings: list[str]) -> str:
    shown = warnings[:MAX_WARNINGS]
    if len(warnings) > MAX_WARNINGS:
        shown.append(f"and {len(warnings) - MAX_WARNINGS} more warnings")
    # header values must be latin-1: ensure_ascii \\u-escapes everything else
    return json.dumps([w[:500] for w in shown], ensure_ascii=True)
