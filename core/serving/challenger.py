"""Champion and challenger on one endpoint: shadow and canary.

:func:`pair_app` builds one app per version (each a full server from
:func:`core.serving.app.create_app`, with its own batcher and prediction log) and a
front that decides who answers:

- **shadow**: the champion answers every request. Once its response has been sent,
  a successful prediction request is queued for the challenger, which scores it in
  background workers; what the challenger answers, how long it takes and whether it
  fails never reach the caller. The queue is bounded in requests (``queue_size``) and in
  the bytes of the bodies it holds (``queue_bytes``): when the challenger falls behind,
  new work is dropped and counted (``dropped`` in ``/metadata``), never waited for.
- **canary**: a share of the prediction requests is answered by the challenger. With a
  ``X-Fixative-Key`` header the choice is a hash of the key, so one key always goes
  the same way; without one it is random. Canary responses carry
  ``X-Fixative-Role`` (champion or challenger).

Both versions log their predictions under their own name and version with the same
request id, and a ``role`` column (champion / challenger), so actuals uploaded later
score both (see :mod:`core.monitoring.compare`). ``GET /metadata`` gains a
``challenger`` section saying what runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
import uuid
from collections.abc import MutableMapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware

from core import settings
from core.errors import InvalidArgument
from core.model.bundle import ModelBundle

MODES = ("shadow", "canary")
KEY_HEADER = "x-fixative-key"
ROLE_HEADER = "X-Fixative-Role"
PREDICT_PATHS = frozenset({"/predict", "/predict_proba", "/invocations"})
# Requests waiting for the challenger in shadow mode, and the bytes of their bodies held
# meanwhile; past either, new ones are dropped (1,000 bodies of the 20 MiB a request may
# carry would otherwise hold 20 GiB).
QUEUE_SIZE = 1000
QUEUE_BYTES = 64 * 2**20
SHADOW_WORKERS = 1
# Requests one shadow worker replays at once (one model call of the challenger's batcher).
MAX_SHADOW_BATCH = 4
# The share of wall time the shadow workers may spend on the challenger.
SHADOW_BUDGET = 0.1
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@\-]{1,128}$")
_log = logging.getLogger("fixative.server")


@dataclass(frozen=True)
class Challenger:
    """A challenger: the version, and how it runs (``share`` is the canary's fraction of
    requests, in (0, 1); None in shadow mode)."""

    name: str
    version: str
    mode: str
    share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "mode": self.mode,
                "share": self.share}


def parse_share(text: Any) -> float:
    """A canary share: ``10%``, ``10`` (percent) or ``0.1``; strictly between 0 and 100%.
    Written in plain ASCII decimal (no other scripts' digits, underscores, hex or nan)."""
    raw = str(text).strip()
    percent = raw.endswith("%")
    value = settings.decimal(raw[:-1].strip() if percent else raw)
    if value is None or isinstance(text, bool):
        raise InvalidArgument(f"The canary share {raw[:40]!r} is not a number; give a percent "
                              "such as 10%.")
    if percent or value >= 1:
        value /= 100
    if not (0 < value < 1):
        raise InvalidArgument(f"The canary share {raw[:40]!r} is outside 0%-100%; give a share "
                              "above 0% and below 100% (100% means: promote the challenger).")
    return value


def parse_canary(text: str) -> tuple[str, float]:
    """``REF:SHARE`` (``churn@v2:10%``) as (ref, share)."""
    ref, sep, share = str(text).rpartition(":")
    if not sep or not ref.strip() or not share.strip():
        raise InvalidArgument(f"--canary {str(text)[:80]!r} needs the challenger and its share "
                              "of requests as REF:SHARE, e.g. churn@v2:10%.")
    return ref.strip(), parse_share(share)


def check_pair(champion: ModelBundle, challenger: ModelBundle, mode: str) -> None:
    """Refuse a challenger that cannot stand in for the champion: another task (when both
    are known), another prototype (columns and kinds), or no predict_proba where the
    champion has one."""
    if mode not in MODES:
        raise InvalidArgument(f"mode must be one of {', '.join(MODES)}, got {str(mode)[:40]!r}.")
    a, b = champion.meta, challenger.meta
    who = f"'{b.name}@{challenger.version}'"
    if a.name == b.name and champion.version == challenger.version:
        raise InvalidArgument(f"The challenger {who} is the champion itself; choose another "
                              "version.")
    if a.task != b.task and "unknown" not in (a.task, b.task):
        raise InvalidArgument(f"The challenger {who} is a {b.task} model and the champion a "
                              f"{a.task} model; a challenger must do the same task.")
    cols_a = [(c.name, c.kind) for c in a.prototype.columns]
    cols_b = [(c.name, c.kind) for c in b.prototype.columns]
    if cols_a != cols_b or a.prototype.named != b.prototype.named:
        names_a = {n for n, _ in cols_a}
        names_b = {n for n, _ in cols_b}
        diff = sorted(names_a ^ names_b)[:5]
        detail = (f" (columns only in one: {', '.join(diff)})" if diff
                  else " (same columns, other kinds or order)")
        raise InvalidArgument(f"The challenger {who} does not take the champion's inputs"
                              f"{detail}; a challenger needs the same prototype.")
    if a.has_proba and not b.has_proba:
        raise InvalidArgument(f"The champion has predict_proba and the challenger {who} does "
                              "not; callers of /predict_proba would fail.")


def canary_pick(key: str | None, share: float) -> bool:
    """Whether a request goes to the challenger: by a hash of ``key`` (the same key always
    the same way), or at random without one."""
    if key is None:
        return random.random() < share
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


class _Shadow:
    """The challenger's work queue and its workers."""

    def __init__(self, app: Any, queue_size: int, workers: int, budget: float = 1.0,
                 queue_bytes: int = QUEUE_BYTES) -> None:
        self.app = app
        self.budget = budget
        self.queue: asyncio.Queue[tuple[dict[str, Any], bytes]] | None = None
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.held = 0  # bytes of the bodies waiting in the queue
        self.workers = workers
        self.tasks: list[asyncio.Task[None]] = []
        self.scored = 0
        self.failed = 0
        self.dropped = 0

    def start(self) -> None:
        self.queue = asyncio.Queue(self.queue_size)
        self.tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self, grace: float = 5.0) -> None:
        """Let the workers finish what is queued (at most ``grace`` seconds), then stop."""
        if self.queue is not None and any(not t.done() for t in self.tasks):
            try:
                async with asyncio.timeout(grace):
                    await self.queue.join()
            except TimeoutError:
                _log.warning("the challenger had %d requests left at shutdown; not scored",
                             self.queue.qsize())
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    def offer(self, scope: dict[str, Any], body: bytes) -> None:
        if self.queue is None:
            return
        if self.held + len(body) > self.queue_bytes:
            self.dropped += 1
            return
        try:
            self.queue.put_nowait((scope, body))
        except asyncio.QueueFull:
            self.dropped += 1
            return
        self.held += len(body)

    async def _work(self) -> None:
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            while len(batch) < MAX_SHADOW_BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            self.held -= sum(len(body) for _, body in batch)
            t0 = loop.time()
            # replayed together, so that the challenger's batcher makes one model call
            results = await asyncio.gather(*(_replay(self.app, scope, body)
                                             for scope, body in batch), return_exceptions=True)
            for (scope, _), result in zip(batch, results):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                if isinstance(result, BaseException):
                    self.failed += 1
                    _log.warning("the challenger failed on request %s",
                                 _header(scope, b"x-request-id"), exc_info=result)
                elif result < 400:
                    self.scored += 1
                else:
                    self.failed += 1
                self.queue.task_done()
            # at most `budget` of the time goes to the challenger; what piles up meanwhile
            # waits in the queue, and past its size is dropped
            busy = loop.time() - t0
            if self.budget < 1 and busy > 0:
                await asyncio.sleep(busy * (1 - self.budget) / self.budget)

    def counts(self) -> dict[str, int]:
        return {"scored": self.scored, "failed": self.failed, "dropped": self.dropped,
                "queued": self.queue.qsize() if self.queue is not None else 0}


async def _replay(app: Any, scope: dict[str, Any], body: bytes) -> int:
    sent = False
    state = {"status": 0}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # a client that stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            state["status"] = int(message["status"])

    await app(scope, receive, send)
    return state["status"]


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for k, v in scope.get("headers") or ():
        if k.lower() == name:
            return v.decode("latin-1")
    return None


def _with_request_id(scope: dict[str, Any]) -> dict[str, Any]:
    """``scope`` with a sane X-Request-ID (the client's, or a new one), so both versions
    log the request under one id."""
    rid = _header(scope, b"x-request-id")
    if rid is not None and _REQUEST_ID.match(rid.strip()):
        return scope
    headers = [(k, v) for k, v in scope.get("headers") or () if k.lower() != b"x-request-id"]
    headers.append((b"x-request-id", uuid.uuid4().hex.encode("ascii")))
    return {**scope, "headers": headers}


class _Front:
    """ASGI middleware in front of both apps; it answers every HTTP request itself."""

    def __init__(self, app: Any, pair: PairState) -> None:
        self.app = app
        self.pair = pair

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pair = self.pair
        path = scope.get("path", "")
        if path == "/metadata" and scope.get("method") == "GET":
            await self._metadata(scope, receive, send)
            return
        if path not in PREDICT_PATHS:
            await pair.champion(scope, receive, send)
            return
        scope = _with_request_id(scope)
        if pair.spec.mode == "canary":
            key = _header(scope, KEY_HEADER.encode())
            role = "challenger" if canary_pick(key, pair.spec.share or 0.0) else "champion"
            target = pair.challenger if role == "challenger" else pair.champion
            tag = (ROLE_HEADER.lower().encode(), role.encode())

            async def send_role(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), tag]
                await send(message)

            await target(scope, receive, send_role)
            return
        await self._shadow(scope, receive, send)

    async def _shadow(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        chunks: list[bytes] = []
        state = {"status": 0}

        async def tee() -> Any:
            message = await receive()
            if message.get("type") == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def watch(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = int(message["status"])
            await send(message)

        original = dict(scope)  # as it came, before the champion's app adds to it
        await self.pair.champion(scope, tee, watch)
        if 200 <= state["status"] < 300 and self.pair.shadow is not None:
            self.pair.shadow.offer(original, b"".join(chunks))

    async def _metadata(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        start: dict[str, Any] = {}
        parts: list[bytes] = []

        async def keep(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        await self.pair.champion(scope, receive, keep)
        body = b"".join(parts)
        if start.get("status") == 200:
            try:
                doc = json.loads(body)
                doc["challenger"] = self.pair.describe()
                body = json.dumps(doc).encode()
            except (ValueError, TypeError):
                pass
        headers = [(k, v) for k, v in start.get("headers", ()) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@dataclass
class PairState:
    spec: Challenger
    champion: Any
    challenger: Any
    champion_ref: str
    shadow: _Shadow | None = None

    def describe(self) -> dict[str, Any]:
        doc: dict[str, Any] = {**self.spec.to_dict(), "champion": self.champion_ref}
        engine = getattr(getattr(self.challenger.state, "svc", None), "engine", None)
        if engine is not None:
            doc["engine"] = engine.describe()
        if self.shadow is not None:
            doc.update(self.shadow.counts())
        return doc


def pair_app(champion: Any, challenger: Any, champion_bundle: ModelBundle,
             challenger_bundle: ModelBundle, *, mode: str, share: float | None = None,
             queue_size: int = QUEUE_SIZE, workers: int = SHADOW_WORKERS,
             budget: float = SHADOW_BUDGET, queue_bytes: int = QUEUE_BYTES) -> Starlette:
    """One app serving ``champion`` and ``challenger`` (apps from
    :func:`core.serving.app.create_app` for the two bundles) in ``mode``; ``share``: the
    canary's fraction of requests. The two apps' prediction logs are marked with their
    role. ``state.svc`` is the champion's, so what reads the server's state (metrics,
    heartbeat) sees the champion."""
    check_pair(champion_bundle, challenger_bundle, mode)
    if mode == "canary":
        if share is None:
            raise InvalidArgument("A canary needs its share of requests, e.g. 10%.")
        if isinstance(share, str):
            share = parse_share(share)
        elif not (isinstance(share, (int, float)) and 0 < share < 1):
            raise InvalidArgument(f"The canary share {share!r} is outside 0%-100%; give a "
                                  "fraction above 0 and below 1 (or a text percent, '10%').")
        share = float(share)
    else:
        share = None
    if queue_size < 1 or workers < 1 or queue_bytes < 1:
        raise InvalidArgument("queue_size, queue_bytes and workers must be at least 1.")
    if not (0 < budget <= 1):
        raise InvalidArgument("budget is the share of time the challenger may use: above 0, "
                              "at most 1.")
    spec = Challenger(challenger_bundle.meta.name, challenger_bundle.version or "unversioned",
                      mode, share)
    for app, role in ((champion, "champion"), (challenger, "challenger")):
        writer = getattr(getattr(app.state, "svc", None), "writer", None)
        if writer is not None:
            writer.role = role
    pair = PairState(spec, champion, challenger,
                     f"{champion_bundle.meta.name}@{champion_bundle.version or 'unversioned'}")
    if mode == "shadow":
        pair.shadow = _Shadow(challenger, queue_size, workers, budget, queue_bytes)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(champion.router.lifespan_context(champion))
            await stack.enter_async_context(challenger.router.lifespan_context(challenger))
            if pair.shadow is not None:
                pair.shadow.start()
                stack.push_async_callback(pair.shadow.stop)
            yield

    front = Starlette(lifespan=lifespan, middleware=[Middleware(_Front, pair=pair)])
    front.state.svc = champion.state.svc
    front.state.pair = pair
    return front


def with_challenger(champion: Any, champion_bundle: ModelBundle, settings: Any,
                    store: Any) -> Starlette:
    """The champion's app ``champion`` (built by :func:`core.serving.process.build_app`
    from ``settings``) with the challenger of ``settings.challenger``, loaded from
    ``store`` (or its own version folder) like the champion: from its verified graph when
    it has one, otherwise through the safety loader (trusting ``settings.trusted``). It is
    served with the same settings and keeps its own metrics, out of the workers' shared
    ``/metrics``."""
    import dataclasses

    from core.serving.app import create_app
    from core.serving.process import DEFAULT_MAX_BODY, load_bundle

    spec = dict(settings.challenger or {})
    name, version = spec.get("name"), spec.get("version")
    folder = spec.get("model_dir")
    if settings.model_dir and not folder:
        raise InvalidArgument("A champion served from a version folder needs its challenger "
                              "as a version folder too (a Docker bundle built with "
                              "--shadow/--canary holds both).")
    if not folder and (store is None or not name or not version):
        raise InvalidArgument("The challenger needs a model name and version on the board.")
    # the challenger is loaded like the champion: from its checked graph when verified
    # (never unpickled then), otherwise through the safety loader
    own = dataclasses.replace(settings, name=str(name or settings.name),
                              version=str(version or ""), model_dir=folder,
                              engine=str(spec.get("engine") or "auto"), challenger=None)
    served = load_bundle(own, store)
    bundle = served.bundle
    challenger = create_app(bundle, engine=served.engine, store=store,
                            log=settings.log and store is not None,
                            max_body_bytes=settings.max_body_bytes or DEFAULT_MAX_BODY,
                            batching=settings.batching, limits=settings.limits(),
                            public_url=settings.resolved_public_url(),
                            allow_short_tokens=settings.short_tokens_allowed())
    return pair_app(champion, challenger, champion_bundle, bundle,
                    mode=str(spec.get("mode") or ""), share=spec.get("share"))
