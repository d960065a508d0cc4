"""What a running endpoint says about itself: its log's last lines, ``/healthz``,
``/metrics`` and ``/metadata``, each read with a short timeout and never raising.

Every function takes anything with a ``url`` (an :class:`core.deploy.endpoints.Endpoint`),
so this module sits below the endpoint registry.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

HEALTH_TIMEOUT = 1.0
LOG_TAIL_LINES = 15
PREDICTION_ROUTES = ("predict", "predict_proba", "invocations")
# /metadata is small; more than this is not a Fixative server's answer.
MAX_METADATA_BYTES = 2_000_000


class Reachable(Protocol):
    @property
    def url(self) -> str: ...


def log_tail(path: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64_000))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def last_error(tail: str) -> str:
    """The CLI's one-line ``error: ...`` from a log tail, if the server printed one."""
    for line in reversed(tail.splitlines()):
        if line.startswith("error: "):
            return line[len("error: "):]
    return ""


def _get(url: str, timeout: float) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read(2_000_000).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError, ValueError):
        return None


def health(endpoint: Reachable, timeout: float = HEALTH_TIMEOUT) -> bool:
    answer = _get(endpoint.url + "/healthz", timeout)
    return answer is not None and answer[0] == 200


def parse_metrics(text: str) -> tuple[int, int, int]:
    """(prediction requests, failed ones, rows predicted) from the server's Prometheus text.

    Only the prediction routes count: health checks and metric scrapes (this module's
    own among them) are not requests anybody made of the model.
    """
    from prometheus_client.parser import text_string_to_metric_families

    requests = errors = rows = 0.0
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError:
        return 0, 0, 0
    for family in families:
        for sample in family.samples:
            if str(sample.labels.get("route", "")).lstrip("/") not in PREDICTION_ROUTES:
                continue
            if sample.name == "fixative_requests_total":
                requests += sample.value
                if str(sample.labels.get("status", ""))[:1] in ("4", "5"):
                    errors += sample.value
            elif sample.name == "fixative_rows_predicted_total":
                rows += sample.value
    return int(requests), int(errors), int(rows)


def request_counts(endpoint: Reachable, timeout: float = HEALTH_TIMEOUT
                   ) -> tuple[int, int, int] | None:
    """(requests, failed requests, rows) served so far, from ``/metrics``; None if the
    server does not answer. With several workers, the counts of all of them together."""
    answer = _get(endpoint.url + "/metrics", timeout)
    if answer is None or answer[0] != 200:
        return None
    return parse_metrics(answer[1])




def metadata(endpoint: Reachable, timeout: float = 2.0) -> tuple[dict[str, Any] | None, str]:
    """The endpoint's ``/metadata`` document, or None and why it is not shown (a server
    that asks for a token does not say)."""
    try:
        with urllib.request.urlopen(endpoint.url + "/metadata", timeout=timeout) as answer:  # noqa: S310
            doc = json.loads(answer.read(MAX_METADATA_BYTES))
    except urllib.error.HTTPError as exc:
        return None, ("the server asks for a token" if exc.code == 401
                      else f"the server answered HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError):
        return None, "the server did not answer"
    if not isinstance(doc, dict):
        return None, "the server's answer is not a metadata document"
    return doc, ""
