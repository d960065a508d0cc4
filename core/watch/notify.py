"""Notifications: a JSON webhook or an apprise URL, with retries and a dead letter.

The payload (``payload``) says what changed and where to look::

    {"event": "status_changed", "model": "churn", "version": "2026...", "aliases": [...],
     "status": "alert", "previous": "ok", "window": "day",
     "window_start": "2026-03-02T00:00:00+00:00", "metric": "accuracy", "value": 0.71,
     "threshold": {"warning": 0.8, "alert": 0.75, "direction": "below"}, "n": 212,
     "message": "alert: accuracy = 0.71 in the window of ...", "checked_at": "...",
     "links": {"monitor": "http://.../monitor?model=churn&version=...", "card": "..."}}

Delivery. Each channel's URL is read from its environment variable when sending (see
:mod:`core.watch.config`); it is never written anywhere, and errors name the variable,
not the URL. A webhook must be ``http`` or ``https``: any other scheme (``file``,
``ftp``, ``gopher``...) is refused before anything is sent, and redirects are not
followed (a redirect could lead to another scheme or host). At most ``MAX_RESPONSE``
bytes of a response are read, and each attempt is bounded by ``TIMEOUT`` seconds in
all, however slowly the server answers. A failed attempt (no answer, or a status
outside 2xx) is retried ``retries`` times, waiting ``backoff * 2**i`` seconds; after
the last, the notification is written to the dead letters
(``<board>/.fixative/watch-dead/<model>/``) with the reason.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from core import settings
from core.errors import InvalidArgument
from core.store.paths import dead_letter_dir
from core.store.protocols import StoreLike
from core.watch.config import Channel

TIMEOUT = 10.0
MAX_RESPONSE = 64 * 1024
WEBHOOK_SCHEMES = ("http", "https")
REFUSED_APPRISE = ("file", "ftp", "gopher", "data", "javascript", "jar")


class DeliveryError(Exception):
    """One attempt failed; the message never holds the channel's URL."""


def links(name: str, version: str) -> dict[str, str]:
    query = urllib.parse.urlencode({"model": name, "version": version})
    base = settings.workbench_url()
    return {"monitor": f"{base}/monitor?{query}", "card": f"{base}/card?{query}"}


def payload(status: Mapping[str, Any], *, previous: str | None, window: str,
            direction: str = "", event: str = "status_changed") -> dict[str, Any]:
    """The JSON sent for one evaluation (``status``: an evaluation record's fields)."""
    return {
        "event": event, "model": status["model"], "version": status["version"],
        "aliases": list(status.get("aliases") or []), "status": status["status"],
        "previous": previous, "window": window, "window_start": status.get("window_start"),
        "metric": status.get("metric") or None, "value": status.get("value"),
        "threshold": {"warning": status.get("warning"), "alert": status.get("alert"),
                      "direction": direction or None},
        "n": status.get("n"), "message": status.get("message", ""),
        "checked_at": status.get("tick"),
        "links": links(str(status["model"]), str(status["version"])),
    }


def check_webhook_url(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in WEBHOOK_SCHEMES:
        raise InvalidArgument(f"A webhook must be an http or https URL, not "
                              f"{parts.scheme or 'a URL without a scheme'!r}.")
    if not parts.hostname:
        raise InvalidArgument("The webhook URL has no host.")
    return parts


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is then an HTTPError: a failed attempt


def _bounded(fn: Callable[[], None], label: str) -> None:
    """Run ``fn`` with an overall deadline of ``TIMEOUT`` seconds."""
    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True, name=f"notify-{label}")
    worker.start()
    worker.join(TIMEOUT)
    if worker.is_alive():
        raise DeliveryError(f"no answer within {TIMEOUT:g} s")
    if "error" in box:
        raise box["error"]


def post_webhook(url: str, body: bytes, env: str) -> None:
    check_webhook_url(url)
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "content-type": "application/json", "user-agent": "fixative-watch"})

    def send() -> None:
        try:
            with opener.open(request, timeout=TIMEOUT) as response:
                response.read(MAX_RESPONSE)  # never the whole of a huge answer
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DeliveryError(f"the webhook in ${env} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"the webhook in ${env} could not be reached: "
                                f"{str(reason).replace(url, '<url>')[:200]}") from None

    _bounded(send, env)


def send_apprise(url: str, title: str, body: str, env: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if not scheme or scheme in REFUSED_APPRISE:
        raise InvalidArgument(f"${env} does not hold an apprise URL a notification can go to "
                              f"(scheme {scheme or 'missing'!r}).")
    import apprise

    sender = apprise.Apprise()
    if not sender.add(url):
        raise InvalidArgument(f"${env} does not hold a URL apprise knows (see apprise's list "
                              "of services: mailtos://, slack://, msteams://, ...).")

    def send() -> None:
        if not sender.notify(title=title, body=body):
            raise DeliveryError(f"apprise could not deliver to the service in ${env}")

    _bounded(send, env)


def _title(data: Mapping[str, Any]) -> str:
    if data.get("event") == "test":
        return f"Fixative test notification for {data.get('model')}"
    return f"{data.get('model')}: {data.get('previous') or 'unknown'} -> {data.get('status')}"


def send_once(channel: Channel, data: Mapping[str, Any]) -> None:
    """One attempt on ``channel``; raises InvalidArgument (do not retry) or DeliveryError."""
    url = settings.secret(channel.env)
    if not url:
        raise DeliveryError(f"${channel.env} is not set: put the {channel.kind} URL of channel "
                            f"{channel.name} in it, in the watcher's environment")
    if channel.kind == "webhook":
        post_webhook(url, json.dumps(data, allow_nan=False, default=str).encode(), channel.env)
    else:
        text = f"{data.get('message', '')}\n\nMonitor: {data['links']['monitor']}\n" \
               f"Card: {data['links']['card']}"
        send_apprise(url, _title(data), text, channel.env)


def deliver(store: StoreLike, channel: Channel, data: Mapping[str, Any], *, retries: int,
            backoff: float, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Send with retries; returns what happened (and writes a dead letter on failure)."""
    attempts, error = 0, ""
    for i in range(retries + 1):
        attempts += 1
        try:
            send_once(channel, data)
            return {"channel": channel.name, "kind": channel.kind, "delivered": True,
                    "attempts": attempts, "error": ""}
        except InvalidArgument as exc:
            error = exc.message if hasattr(exc, "message") else str(exc)
            break  # a refused URL stays refused
        except DeliveryError as exc:
            error = str(exc)
        if i < retries:
            sleep(backoff * 2 ** i)
    dead_letter(store, str(data["model"]), channel, data, attempts, error)
    return {"channel": channel.name, "kind": channel.kind, "delivered": False,
            "attempts": attempts, "error": error}


def dead_letter(store: StoreLike, name: str, channel: Channel, data: Mapping[str, Any],
                attempts: int, error: str) -> str:
    now = datetime.now(UTC)
    folder = dead_letter_dir(store, name)
    store.fs.makedirs(folder, exist_ok=True)
    path = f"{folder}/{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.json"
    record = {"at": now.isoformat(), "channel": channel.name, "kind": channel.kind,
              "env": channel.env, "attempts": attempts, "error": error, "payload": dict(data)}
    with store.fs.open(path, "wb") as f:
        f.write(json.dumps(record, default=str).encode())
    return path


def dead_letters(store: StoreLike, name: str) -> list[dict[str, Any]]:
    """Undelivered notifications of model ``name``, oldest first."""
    try:
        files = sorted(store.fs.glob(f"{dead_letter_dir(store, name)}/*.json"))
    except FileNotFoundError:
        return []
    out = []
    for path in files:
        try:
            with store.fs.open(path, "rb") as f:
                out.append(json.loads(f.read()))
        except (OSError, ValueError):
            continue
    return out
