"""Every environment variable Fixative reads, with its default, in one place.

Values are read when asked for (never cached at import), so a test or a parent process
can set them at any time before use.

==============================  =====================================================
``FIXATIVE_STORE``              the board: a folder or fsspec URL (``./fixative-store``);
                                for a Docker bundle, the board of the prediction log
``FIXATIVE_S3_ENDPOINT_URL``    endpoint of an S3-compatible object store (unset: AWS)
``FIXATIVE_INDEX_DIR``          where the index of a remote board is cached
                                (``~/.cache/fixative``)
``FIXATIVE_RUN_DIR``            where local endpoints of a remote board keep their
                                registry and logs (``~/.cache/fixative``)
``FIXATIVE_USER``               who writes versions and moves aliases (the login name)
``FIXATIVE_PASSWORD``           the workbench's password (unset: open); required when
                                it listens on every interface (``workbench --public``)
``FIXATIVE_SHARE_SECRET``       the key that signs share links and sign-in cookies
                                (unset: a random key kept on the board, made on first use)
``FIXATIVE_API_TOKENS``         the server's bearer tokens, comma-separated (unset: open)
``FIXATIVE_SERVE_SETTINGS``     JSON settings handed to each server worker process
``FIXATIVE_HOST``, ``PORT``,    a Docker bundle's address, port and worker count
``FIXATIVE_WORKERS``
``PROMETHEUS_MULTIPROC_DIR``    prometheus-client's directory shared by server workers
``FIXATIVE_MAX_ROWS`` ...       the prediction server's limits (``FIXATIVE_MAX_COLUMNS``,
                                ``_MAX_JSON_DEPTH``, ``_MAX_CONCURRENT_BODIES``,
                                ``_BODY_TIMEOUT``, ``_HEADER_TIMEOUT``,
                                ``_KEEP_ALIVE_TIMEOUT``, ``_MAX_CONNECTIONS``), its
                                ``FIXATIVE_PUBLIC_URL`` and ``FIXATIVE_ALLOW_SHORT_TOKENS``;
                                defaults and checks in :mod:`core.serving.limits`
``FIXATIVE_MAX_MODEL_BYTES``    most bytes a model file may unpack to (2 GiB), and
``FIXATIVE_MAX_UNPACK_RATIO``   how much it may grow when unpacked (100x); checks in
                                :mod:`core.safety.scan`
``FIXATIVE_COMPILE``            ``1``: every write compiles the version to ONNX; ``0``: none
                                does (``python -m core compile`` still does); unset: uploads
                                by the CLI and the workbench do, ``store.write`` does not
``FIXATIVE_ONNX_TOLERANCE``     the largest relative difference from scikit-learn, on the
                                stored sample, at which the compiled engine serves (1e-5)
``FIXATIVE_MONITOR_QUERY_``     a monitoring query's time limit (30 s) and DuckDB
``SECONDS``, ``..._MEMORY_LIMIT`` memory limit (2GB); checks in :mod:`core.monitoring.limits`
``FIXATIVE_HEARTBEAT_SECONDS``  how often a serving process writes its heartbeat on the
                                board (15 s; 0 turns heartbeats off), and after how long
``FIXATIVE_HEARTBEAT_STALE_``   without one a replica counts as stale (60 s); checks in
``SECONDS``                     :mod:`core.serving.heartbeat`
``FIXATIVE_NODE_NAME``          the machine (Kubernetes node) a replica runs on, shown in
                                the fleet view (unset: not shown)
``FIXATIVE_WATCH``              ``1``: the Docker image starts ``python -m core watch``
                                beside the workbench
``FIXATIVE_WORKBENCH_URL``      the workbench's address in notification links
                                (``http://localhost:8501``)
any name a watch channel gives  the channel's webhook or apprise URL (a secret: the
                                board stores only the variable's name); :func:`secret`
==============================  =====================================================
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from typing import Literal, overload

from core.errors import InvalidArgument

STORE_ENV = "FIXATIVE_STORE"
DEFAULT_STORE = "./fixative-store"
S3_ENDPOINT_ENV = "FIXATIVE_S3_ENDPOINT_URL"
INDEX_DIR_ENV = "FIXATIVE_INDEX_DIR"
RUN_DIR_ENV = "FIXATIVE_RUN_DIR"
USER_ENV = "FIXATIVE_USER"
PASSWORD_ENV = "FIXATIVE_PASSWORD"
SHARE_SECRET_ENV = "FIXATIVE_SHARE_SECRET"
TOKENS_ENV = "FIXATIVE_API_TOKENS"
SERVE_SETTINGS_ENV = "FIXATIVE_SERVE_SETTINGS"
HOST_ENV = "FIXATIVE_HOST"
PORT_ENV = "PORT"
WORKERS_ENV = "FIXATIVE_WORKERS"
# prometheus-client's own switch: read when it is first imported in a process.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The prediction server's limits (flags override them; see core.serving.limits).
MAX_ROWS_ENV = "FIXATIVE_MAX_ROWS"
MAX_COLUMNS_ENV = "FIXATIVE_MAX_COLUMNS"
MAX_JSON_DEPTH_ENV = "FIXATIVE_MAX_JSON_DEPTH"
MAX_PARSING_ENV = "FIXATIVE_MAX_CONCURRENT_BODIES"
BODY_TIMEOUT_ENV = "FIXATIVE_BODY_TIMEOUT"
HEADER_TIMEOUT_ENV = "FIXATIVE_HEADER_TIMEOUT"
KEEP_ALIVE_ENV = "FIXATIVE_KEEP_ALIVE_TIMEOUT"
MAX_CONNECTIONS_ENV = "FIXATIVE_MAX_CONNECTIONS"
PUBLIC_URL_ENV = "FIXATIVE_PUBLIC_URL"
ALLOW_SHORT_TOKENS_ENV = "FIXATIVE_ALLOW_SHORT_TOKENS"
# Model files (see core.safety.scan).
MAX_MODEL_BYTES_ENV = "FIXATIVE_MAX_MODEL_BYTES"
MAX_UNPACK_RATIO_ENV = "FIXATIVE_MAX_UNPACK_RATIO"
# Compiled serving (see core.store.compile).
COMPILE_ENV = "FIXATIVE_COMPILE"
ONNX_TOLERANCE_ENV = "FIXATIVE_ONNX_TOLERANCE"
DEFAULT_ONNX_TOLERANCE = 1e-5
# Monitoring queries (see core.monitoring.limits).
MONITOR_SECONDS_ENV = "FIXATIVE_MONITOR_QUERY_SECONDS"
MONITOR_MEMORY_ENV = "FIXATIVE_MONITOR_MEMORY_LIMIT"
# Replica heartbeats on the board (see core.serving.heartbeat).
HEARTBEAT_SECONDS_ENV = "FIXATIVE_HEARTBEAT_SECONDS"
HEARTBEAT_STALE_ENV = "FIXATIVE_HEARTBEAT_STALE_SECONDS"
NODE_NAME_ENV = "FIXATIVE_NODE_NAME"
# Scheduled checks and notifications (see core.watch).
WATCH_ENV = "FIXATIVE_WATCH"
WORKBENCH_URL_ENV = "FIXATIVE_WORKBENCH_URL"
DEFAULT_WORKBENCH_URL = "http://localhost:8501"


def raw(name: str) -> str:
    """The variable's text, stripped ('' when unset); its module checks what it means."""
    return os.environ.get(name, "").strip()


def _get(name: str) -> str | None:
    """The variable's value; None when unset or empty."""
    return os.environ.get(name) or None


def store_env() -> str | None:
    """``$FIXATIVE_STORE`` if set (a served model folder logs nowhere without it)."""
    return _get(STORE_ENV)


def store_location() -> str:
    """The board to open when none is named: ``$FIXATIVE_STORE`` or ``./fixative-store``."""
    return _get(STORE_ENV) or DEFAULT_STORE


def s3_endpoint_url() -> str | None:
    return _get(S3_ENDPOINT_ENV)


def cache_dir() -> str:
    """Fixative's folder of per-user caches: ``~/.cache/fixative``."""
    return os.path.join(os.path.expanduser("~"), ".cache", "fixative")


def index_dir() -> str:
    """Where the DuckDB index of a board that is not a local folder is kept."""
    return _get(INDEX_DIR_ENV) or cache_dir()


def run_dir() -> str:
    """Where local endpoints of a board that is not a local folder keep their files."""
    return _get(RUN_DIR_ENV) or cache_dir()


def user() -> str | None:
    return _get(USER_ENV)


def password() -> str | None:
    """``$FIXATIVE_PASSWORD`` as set; None when unset, empty or only spaces."""
    value = _get(PASSWORD_ENV)
    return value if value and value.strip() else None


def share_secret() -> str | None:
    """``$FIXATIVE_SHARE_SECRET`` stripped (None when unset); core.cards.share checks it."""
    return raw(SHARE_SECRET_ENV) or None


def tokens_env() -> str | None:
    """``FIXATIVE_API_TOKENS`` as set (None when unset); the server judges what it names."""
    return os.environ.get(TOKENS_ENV)


def api_tokens() -> list[str]:
    """The bearer tokens the server accepts (stripped, empty ones dropped)."""
    return [t.strip() for t in os.environ.get(TOKENS_ENV, "").split(",") if t.strip()]


def serve_settings() -> str | None:
    return _get(SERVE_SETTINGS_ENV)


def host() -> str | None:
    return _get(HOST_ENV)


def port() -> str | None:
    return _get(PORT_ENV)


def workers() -> str | None:
    return _get(WORKERS_ENV)


def metrics_dir() -> str | None:
    return _get(METRICS_DIR_ENV)


def node_name() -> str | None:
    return _get(NODE_NAME_ENV)


def watch_enabled() -> bool:
    return raw(WATCH_ENV).lower() in ("1", "true", "yes", "on")


def workbench_url() -> str:
    """The workbench's address, for links in notifications (no trailing slash)."""
    return (_get(WORKBENCH_URL_ENV) or DEFAULT_WORKBENCH_URL).rstrip("/")


def secret(name: str) -> str | None:
    """The value of the environment variable a watch channel names (None when unset);
    the name itself is checked by :mod:`core.watch.config`."""
    return _get(name)


def compile_on_write(default: bool) -> bool:
    """Whether writing a version also compiles it: ``FIXATIVE_COMPILE`` ``1`` (true, yes,
    on) compiles every write, ``0`` (false, no, off) none; unset, ``default`` decides (the
    CLI's and the workbench's uploads compile, Python's ``store.write`` does not)."""
    value = raw(COMPILE_ENV).lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return default


def onnx_tolerance() -> float:
    """``FIXATIVE_ONNX_TOLERANCE``: a finite number >= 0, else an error naming the variable."""
    return number(ONNX_TOLERANCE_ENV, DEFAULT_ONNX_TOLERANCE, minimum=0,
                  hint="a relative difference, e.g. 1e-5")


# -- numbers -------------------------------------------------------------------------------

# Plain decimal numbers in ASCII: no nan, inf, hex, underscores or other scripts' digits.
_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_LONGEST = 64


def decimal(text: str) -> float | None:
    """``text`` as a finite number when it is a plain ASCII decimal of at most 64
    characters (``12``, ``-0.5``, ``1e-5``); None otherwise."""
    if len(text) > _LONGEST or not _DECIMAL.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


@overload
def number(name: str, default: int, *, integer: Literal[True], minimum: float | None = ...,
           maximum: float | None = ..., above: float | None = ..., off: float | None = ...,
           off_means: str = ..., unit: str = ..., hint: str = ...,
           error: Callable[[str], Exception] = ...) -> int: ...


@overload
def number(name: str, default: float, *, integer: Literal[False] = ...,
           minimum: float | None = ..., maximum: float | None = ..., above: float | None = ...,
           off: float | None = ..., off_means: str = ..., unit: str = ..., hint: str = ...,
           error: Callable[[str], Exception] = ...) -> float: ...


def number(name: str, default: float, *, integer: bool = False, minimum: float | None = None,
           maximum: float | None = None, above: float | None = None, off: float | None = None,
           off_means: str = "", unit: str = "", hint: str = "",
           error: Callable[[str], Exception] = InvalidArgument) -> float:
    """The number in the environment variable ``name``; ``default`` when it is unset or
    blank. It must be written in plain ASCII decimal (``integer``: digits only), be finite
    and lie from ``minimum`` to ``maximum`` and above ``above`` (each bound when given);
    ``off`` is one more value taken as is (a switch such as 0, ``off_means`` "to turn it
    off"). Anything else raises ``error`` with a message naming the variable, what it must
    be (a number of ``unit``, ``hint``) and the value it got."""
    text = raw(name)
    if not text:
        return default
    value: float | None
    if integer:
        value = int(text) if len(text) <= _LONGEST and _WHOLE.fullmatch(text) else None
    else:
        value = decimal(text)
    if value is not None and off is not None and value == off:
        return value
    if (value is None or not math.isfinite(value)
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
            or (above is not None and value <= above)):
        wanted = _wanted(integer, minimum, maximum, above, off, unit)
        raise error(f"{name} must be {wanted}{' ' + off_means if off_means else ''}"
                    f"{f' ({hint})' if hint else ''}, got {text[:40]!r}.")
    return value


def _wanted(integer: bool, minimum: float | None, maximum: float | None, above: float | None,
            off: float | None, unit: str) -> str:
    """What :func:`number` asks for, in words: "a whole number of bytes of at least 1"."""
    words = ("a whole number" if integer else "a number") + (f" of {unit}" if unit else "")
    if minimum is not None and maximum is not None:
        words += f" from {minimum:g} to {maximum:g}"
    elif minimum is not None:
        words += f" of at least {minimum:g}"
    elif maximum is not None:
        words += f" of at most {maximum:g}"
    if above is not None:
        words += f"{' and' if minimum is not None or maximum is not None else ''} above {above:g}"
    if off is not None:
        words += f" or {off:g}"
    return words
