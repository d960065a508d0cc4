"""The server's JSON responses and its one error shape."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from core.errors import FixativeError
from core.serving import wire


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return wire.dumps(content)


def error_response(exc: FixativeError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)
