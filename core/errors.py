"""One small exception hierarchy. Every error knows its HTTP status and wire code."""

from __future__ import annotations

from typing import Any


class FixativeError(Exception):
    """Base class: a message a user can act on, an HTTP status and a stable code."""

    status: int = 400
    code: str = "error"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details or [])

    def to_dict(self) -> dict[str, Any]:
        """The wire shape: ``{"error": {"code", "message", "details"}}``."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(FixativeError):
    """Data does not fit the model's input prototype (lists every problem at once)."""

    status = 422
    code = "invalid_input"


class InvalidArgument(FixativeError):
    """A value a caller passed that cannot be used (an unknown option, a bad window, a
    malformed date); the message says which and what would do."""

    status = 400
    code = "bad_request"


class BadRequest(InvalidArgument):
    """An HTTP request the server cannot read at all (malformed JSON, bad CSV)."""


class InvalidName(FixativeError):
    """A model, alias or version name that is not allowed."""

    status = 400
    code = "invalid_name"


class NotFound(FixativeError):
    status = 404
    code = "not_found"


class Conflict(FixativeError):
    """The operation clashes with the store's state (e.g. deleting an aliased version)."""

    status = 409
    code = "conflict"


class UnsafeModel(FixativeError):
    """A model file would import names that are not on the allowlist."""

    status = 400
    code = "unsafe_model"

    def __init__(self, message: str, untrusted: list[str] | None = None) -> None:
        super().__init__(message, [{"untrusted": name} for name in (untrusted or [])])
        self.untrusted = list(untrusted or [])


class InvalidModelFile(FixativeError):
    """A file that is not a readable model (empty, truncated, not a pickle, wrong format)."""

    status = 400
    code = "invalid_model_file"


class CorruptData(FixativeError):
    """Stored bytes do not match the hash recorded when they were written."""

    status = 500
    code = "corrupt_data"


class Unauthorized(FixativeError):
    status = 401
    code = "unauthorized"


class PayloadTooLarge(FixativeError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(FixativeError):
    status = 415
    code = "unsupported_media_type"


class RequestTimeout(FixativeError):
    status = 408
    code = "request_timeout"


class MethodNotAllowed(FixativeError):
    status = 405
    code = "method_not_allowed"


class PredictionFailed(InvalidInput):
    """Input passed validation but the model raised on it (e.g. a value its library rejects)."""

    code = "prediction_failed"


class InternalError(FixativeError):
    """A fault on the server's side; the response says so without internals."""

    status = 500
    code = "internal_error"


class ServiceUnavailable(FixativeError):
    status = 503
    code = "unavailable"


class TooManyRequests(FixativeError):
    """The server is at a limit of concurrent work; the client should retry shortly."""

    status = 429
    code = "too_many_requests"
