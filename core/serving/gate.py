"""The middleware in front of every route: request id, bearer tokens, metrics, and the
last-resort answer when a route fails with a bug (500, logged, no traceback sent)."""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

from core import settings
from core.errors import FixativeError, InternalError, Unauthorized
from core.serving.openapi import OPEN_PATHS
from core.serving.responses import error_response

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@\-]{1,128}$")
_log = logging.getLogger("fixative.server")


class Gate:
    """ASGI middleware: request id, bearer tokens, metrics and the last-resort 500."""

    def __init__(self, app: Any, svc: Any) -> None:
        self.app = app
        self.svc = svc

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        rid = _request_id(scope)
        scope["fixative"] = {"id": rid, "ts": datetime.now(UTC), "t0": t0}
        state = {"status": 500, "started": False}
        rid_header = (b"x-request-id", rid.encode("ascii"))

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        path = scope["path"]
        label = path if path in self.svc.route_labels else "other"
        in_progress = self.svc.metrics.in_progress.labels(label)
        in_progress.inc()
        try:
            if self.svc.tokens and path not in OPEN_PATHS and not self._authorized(scope):
                exc: FixativeError = Unauthorized(
                    "The bearer token was not accepted: it is none of the server's tokens "
                    f"({settings.TOKENS_ENV}); check it, or ask for a current one."
                    if _bearer(scope) else
                    "This endpoint needs a bearer token: send the header "
                    "'Authorization: Bearer <token>' with one of the server's tokens "
                    f"({settings.TOKENS_ENV}).")
                await error_response(exc, {"WWW-Authenticate": "Bearer"})(scope, receive,
                                                                           send_with_id)
            else:
                try:
                    await self.app(scope, receive, send_with_id)
                except Exception:
                    _log.exception("unhandled error in request %s %s", scope.get("method"), path)
                    if not state["started"]:
                        exc = InternalError(f"The server failed on this request (request id "
                                            f"{rid}); the server log has the details.")
                        await error_response(exc)(scope, receive, send_with_id)
        finally:
            in_progress.dec()
        self.svc.metrics.observe(label, state["status"], time.perf_counter() - t0)

    def _authorized(self, scope: dict[str, Any]) -> bool:
        token = _bearer(scope)
        if not token:
            return False
        ok = False
        for candidate in self.svc.tokens:  # compare with all: no early exit
            ok |= hmac.compare_digest(token, candidate)
        return ok


def _bearer(scope: dict[str, Any]) -> bytes:
    """The token of an ``Authorization: Bearer`` header (empty when there is none)."""
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else b""
    return b""


def _request_id(scope: dict[str, Any]) -> str:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            try:
                text = value.decode("ascii")
            except UnicodeDecodeError:
                break
            if _REQUEST_ID.match(text):
                return text
            break
    return uuid.uuid4().hex
