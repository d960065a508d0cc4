"""The prediction server's limits: what one request, and the server as a whole, may cost.

Each limit has a default, an environment variable and a ``python -m core serve`` flag
(the flag wins over the variable, the variable over the default):

============================  =========================  ===================  =======
limit                         flag                       env var              default
============================  =========================  ===================  =======
rows per request (413)        ``--max-rows``             FIXATIVE_MAX_ROWS    100000
columns per request (413)     ``--max-columns``          FIXATIVE_MAX_COLUMNS 1000
JSON nesting depth (413)      ``--max-json-depth``       FIXATIVE_MAX_JSON_DEPTH 32
bodies parsed at once (429)   ``--max-concurrent-bodies`` FIXATIVE_MAX_CONCURRENT_BODIES 4
whole body deadline, s (408)  ``--body-timeout``         FIXATIVE_BODY_TIMEOUT 60
request head deadline, s      ``--header-timeout``       FIXATIVE_HEADER_TIMEOUT 10
idle keep-alive, s            ``--keep-alive-timeout``   FIXATIVE_KEEP_ALIVE_TIMEOUT 5
open connections (503)        ``--max-connections``      FIXATIVE_MAX_CONNECTIONS 256
============================  =========================  ===================  =======

The column limit never goes below the model's own column count. Rows, columns and
nesting are checked before a body becomes Python objects, so an oversized body costs
about its own size in memory, not the ~25 bytes of Python object per byte of JSON that
``[{},{},...]`` would otherwise become.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from core import settings
from core.errors import BadRequest

MAX_ROWS_ENV = settings.MAX_ROWS_ENV
MAX_COLUMNS_ENV = settings.MAX_COLUMNS_ENV
MAX_JSON_DEPTH_ENV = settings.MAX_JSON_DEPTH_ENV
MAX_PARSING_ENV = settings.MAX_PARSING_ENV
BODY_TIMEOUT_ENV = settings.BODY_TIMEOUT_ENV
HEADER_TIMEOUT_ENV = settings.HEADER_TIMEOUT_ENV
KEEP_ALIVE_ENV = settings.KEEP_ALIVE_ENV
MAX_CONNECTIONS_ENV = settings.MAX_CONNECTIONS_ENV
PUBLIC_URL_ENV = settings.PUBLIC_URL_ENV
ALLOW_SHORT_TOKENS_ENV = settings.ALLOW_SHORT_TOKENS_ENV

MAX_ROWS = 100_000
MAX_COLUMNS = 1_000
MAX_JSON_DEPTH = 32
MAX_PARSING = 4
BODY_TIMEOUT = 60.0
HEADER_TIMEOUT = 10.0
KEEP_ALIVE_TIMEOUT = 5.0
MAX_CONNECTIONS = 256
# Bytes of request head (request line and headers) a client may send (431 beyond).
MAX_HEAD_BYTES = 64 * 1024
# Tokens shorter than this are refused unless allowed explicitly (guessable).
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Limits:
    max_rows: int = MAX_ROWS
    max_columns: int = MAX_COLUMNS
    max_json_depth: int = MAX_JSON_DEPTH
    max_parsing: int = MAX_PARSING
    body_timeout: float = BODY_TIMEOUT
    header_timeout: float = HEADER_TIMEOUT
    keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT
    max_connections: int = MAX_CONNECTIONS

    def __post_init__(self) -> None:
        for f in fields(self):
            check(f.name, getattr(self, f.name))


_ENV = {
    "max_rows": MAX_ROWS_ENV, "max_columns": MAX_COLUMNS_ENV,
    "max_json_depth": MAX_JSON_DEPTH_ENV, "max_parsing": MAX_PARSING_ENV,
    "body_timeout": BODY_TIMEOUT_ENV, "header_timeout": HEADER_TIMEOUT_ENV,
    "keep_alive_timeout": KEEP_ALIVE_ENV, "max_connections": MAX_CONNECTIONS_ENV,
}
_SECONDS = ("body_timeout", "header_timeout", "keep_alive_timeout")


def check(name: str, value: Any) -> int | float:
    """``value`` as the number ``name`` takes; a BadRequest naming the setting otherwise."""
    seconds = name in _SECONDS
    try:
        number = float(str(value)) if seconds else int(str(value))
    except ValueError:
        number = None
    if number is None or isinstance(value, bool) or not 0 < number < math.inf:
        what = "a positive number of seconds" if seconds else "a whole number of at least 1"
        raise BadRequest(f"{name} must be {what}, got {str(value)[:40]!r} (set it with "
                         f"{_flag(name)} or {_ENV.get(name, 'the argument')}).")
    return number


def _flag(name: str) -> str:
    return "--max-concurrent-bodies" if name == "max_parsing" else "--" + name.replace("_", "-")


def resolve(overrides: Mapping[str, Any] | None = None,
            environ: Mapping[str, str] | None = None) -> Limits:
    """The limits in force: ``overrides`` (flags; None means unset), then the environment,
    then the defaults."""
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for name, env in _ENV.items():
        value = overrides.get(name)
        if value is None:
            value = _read(env, environ) or None
        if value is not None:
            values[name] = check(name, value)
    return Limits(**values)


def _read(name: str, environ: Mapping[str, str] | None) -> str:
    """The variable's text, stripped: from the process's environment (through
    :func:`core.settings.raw`) unless a mapping is given."""
    return settings.raw(name) if environ is None else environ.get(name, "").strip()


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    value = _read(name, environ).lower()
    return value in ("1", "true", "yes", "on")
