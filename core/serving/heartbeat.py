"""Replica heartbeats: every serving process says on the board that it is alive.

A serving process (``serve``, each of its workers, a container or a pod of a Docker
bundle) with a board writes one small JSON record, ``<board>/.fixative/replicas/<id>.json``
(see :mod:`core.store.paths`), when it starts and then every ``FIXATIVE_HEARTBEAT_SECONDS``
(15 s; 0 turns it off): the model, version and alias it serves (and its challenger,
with its mode and share, when it runs one), where it runs (host,
Kubernetes node, pid, port), when it started, the prediction requests and rows it has
answered, its failed requests, and when it was last seen. A graceful shutdown removes
the record; a process that dies without one (SIGKILL, a lost machine) leaves it behind,
and readers call it stale once it is older than ``FIXATIVE_HEARTBEAT_STALE_SECONDS``
(60 s, and never less than two of the writer's intervals).

A record is at most :data:`MAX_RECORD_BYTES`; readers skip (with a note) any file that is
larger, not JSON, or not shaped like a record, so a forged or broken file on the board
never breaks a listing. Freshness is judged by the time the board itself gives the file
(its modification time) when it is older than the record's own ``last_seen``, so a record
that claims to come from the future is not fresh for ever.

Writing the heartbeat never stops the server: a failed write is logged and retried at
the next beat.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core import settings
from core.store.paths import replica_file, replicas_dir
from core.times import iso, parse_iso

FORMAT = 1
KIND = "fixative-replica"
INTERVAL = 15.0
STALE_AFTER = 60.0
MIN_INTERVAL = 1.0
MAX_SECONDS = 7 * 86400.0
MAX_RECORD_BYTES = 4096
MAX_TEXT = 200
# Replica files a listing reads at most (the newest first).
MAX_REPLICAS = 500
# The routes that answer predictions (the prediction log's requests).
PREDICTION_ROUTES = ("/predict", "/predict_proba", "/invocations")
# Answers given before a request reaches the model's handler, so never in the prediction
# log: no valid token, a method the route does not take.
NOT_LOGGED = ("401", "405")
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")
_log = logging.getLogger("fixative.server")


# -- settings ------------------------------------------------------------------------------

def _seconds(name: str, default: float, *, allow_zero: bool, minimum: float) -> float:
    return settings.number(name, default, minimum=minimum, maximum=MAX_SECONDS,
                           off=0 if allow_zero else None, unit="seconds",
                           off_means="to turn heartbeats off" if allow_zero else "")


def interval() -> float:
    """Seconds between two heartbeats of one process (0: no heartbeats)."""
    return _seconds(settings.HEARTBEAT_SECONDS_ENV, INTERVAL, allow_zero=True,
                    minimum=MIN_INTERVAL)


def stale_after() -> float:
    """Seconds without a heartbeat after which a replica counts as stale."""
    return _seconds(settings.HEARTBEAT_STALE_ENV, STALE_AFTER, allow_zero=False,
                    minimum=MIN_INTERVAL)


# -- writing -------------------------------------------------------------------------------

def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:MAX_TEXT]


def _now() -> str:
    return iso(datetime.now(UTC)) or ""


def challenger_text(spec: dict[str, Any]) -> str:
    """What a replica says of its challenger: ``NAME@VERSION (shadow)`` or
    ``NAME@VERSION (canary 10%)``."""
    share = spec.get("share")
    how = (f"canary {float(share) * 100:.4g}%" if spec.get("mode") == "canary"
           and isinstance(share, int | float) else str(spec.get("mode") or "shadow"))
    return f"{spec.get('name')}@{spec.get('version')} ({how})"


def new_replica_id() -> str:
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:60]
    return f"{host or 'host'}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def metrics_counts(metrics: Any) -> Callable[[], dict[str, int]]:
    """Read this process's prediction requests, rows and errors off its
    :class:`core.serving.metrics.ServerMetrics` (its own share when several workers
    share the metrics files). Requests are those the prediction log records: refused
    tokens and wrong methods are not counted."""

    def total(counter: Any, suffix: str, routes: tuple[str, ...] | None = None) -> int:
        n = 0.0
        for family in counter.collect():
            for sample in family.samples:
                if sample.name.endswith(suffix) and (
                        routes is None or (sample.labels.get("route") in routes
                                           and sample.labels.get("status") not in NOT_LOGGED)):
                    n += sample.value
        return int(n)

    def counts() -> dict[str, int]:
        return {"requests": total(metrics.requests, "_total", PREDICTION_ROUTES),
                "rows": total(metrics.rows, "_total"),
                "errors": total(metrics.errors, "_total")}

    return counts


@dataclass
class Heartbeat:
    """One serving process's heartbeat: :meth:`start` writes the record and keeps it
    fresh from a thread, :meth:`stop` ends the thread and removes the record."""

    store: Any
    fields: dict[str, Any]
    counts: Callable[[], dict[str, int]] = field(default=lambda: {})
    every: float = INTERVAL
    replica_id: str = field(default_factory=new_replica_id)
    beats: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _failing: bool = False

    def __post_init__(self) -> None:
        self.started = _now()
        self.path = replica_file(self.store, self.replica_id)

    def record(self) -> dict[str, Any]:
        try:
            counts = self.counts()
        except Exception:  # counts are a nicety; the beat itself matters
            counts = {}
        doc: dict[str, Any] = {"kind": KIND, "format": FORMAT, "id": self.replica_id}
        for key, value in self.fields.items():
            doc[key] = value if isinstance(value, int | float | bool) else _text(value)
        doc.update({"host": _text(socket.gethostname()), "node": _text(settings.node_name()),
                    "pid": os.getpid(), "started": self.started, "last_seen": _now(),
                    "interval": self.every})
        doc.update({k: int(counts[k]) for k in ("requests", "rows", "errors") if k in counts})
        return doc

    def beat(self) -> None:
        data = json.dumps(self.record(), separators=(",", ":")).encode()[:MAX_RECORD_BYTES]
        fs = self.store.fs
        if getattr(self.store, "is_local", False):
            # a rename, so a reader never sees half a record
            fs.makedirs(replicas_dir(self.store), exist_ok=True)
            tmp = f"{replicas_dir(self.store)}/.{self.replica_id}.tmp"
            fs.pipe_file(tmp, data)
            fs.mv(tmp, self.path)
        else:  # an object store's put is atomic already
            fs.pipe_file(self.path, data)
        self.beats += 1

    def _loop(self) -> None:
        while True:
            try:
                self.beat()
                if self._failing:
                    _log.warning("heartbeat written again to %s", self.path)
                self._failing = False
            except Exception as exc:
                if not self._failing:
                    _log.warning("could not write the heartbeat to %s (%s); retrying every "
                                 "%g s", self.path, exc, self.every)
                self._failing = True
            if self._stop.wait(self.every):
                return

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="fixative-heartbeat",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        try:
            self.store.fs.rm_file(self.path)
        except FileNotFoundError:
            pass
        except Exception as exc:
            _log.warning("could not remove the heartbeat %s (%s); it will show as stale",
                         self.path, exc)


def attach(app: Any, store: Any, fields: dict[str, Any],
           counts: Callable[[], dict[str, int]] | None = None) -> Heartbeat | None:
    """Give ``app`` (Starlette) a heartbeat on ``store`` for as long as it serves: started
    once its own startup is done, stopped (record removed) when it shuts down. None when
    heartbeats are off (``FIXATIVE_HEARTBEAT_SECONDS=0``) or there is no board."""
    every = interval()
    if store is None or not every:
        return None
    beat = Heartbeat(store, dict(fields), counts or (lambda: {}), every)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> Any:
        async with inner(a) as state:
            beat.start()
            try:
                yield state
            finally:
                await asyncio.to_thread(beat.stop)

    app.router.lifespan_context = lifespan
    app.state.heartbeat = beat
    return beat


# -- reading -------------------------------------------------------------------------------

@dataclass
class Replica:
    """One heartbeat record as read back, with its health."""

    id: str
    model: str
    version: str
    alias: str | None
    engine: str | None
    host: str | None
    node: str | None
    pid: int | None
    port: int | None
    url: str | None
    started: str | None
    last_seen: str
    requests: int | None
    rows: int | None
    errors: int | None
    age_seconds: float
    health: str  # "fresh" or "stale"
    challenger: str | None = None  # served next to it (see challenger_text)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _parse_time(text: Any) -> datetime | None:
    return parse_iso(text) if isinstance(text, str) and len(text) <= 40 else None


def _mtime(info: dict[str, Any]) -> datetime | None:
    for key in ("LastModified", "mtime", "last_modified", "updated"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float) and math.isfinite(value):
            return datetime.fromtimestamp(value, UTC)
    return None


def _opt_int(doc: dict[str, Any], key: str) -> int | None:
    value = doc.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    return None


def _opt_text(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value[:MAX_TEXT] if isinstance(value, str) and value else None


def parse_record(raw: bytes, *, name: str, mtime: datetime | None, now: datetime,
                 stale: float) -> Replica:
    """The replica a heartbeat file describes; ValueError (what is wrong) otherwise."""
    if len(raw) > MAX_RECORD_BYTES:
        raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise ValueError("not a replica heartbeat")
    if doc.get("id") != name:
        raise ValueError("its id does not match its file name")
    model, version = _opt_text(doc, "model"), _opt_text(doc, "version")
    seen = _parse_time(doc.get("last_seen"))
    if model is None or version is None or seen is None:
        raise ValueError("model, version or last_seen missing")
    # the board's own clock wins over a record that claims to be newer
    when = min(seen, mtime) if mtime is not None else seen
    age = max(0.0, (now - when).total_seconds())
    every = doc.get("interval")
    every = float(every) if isinstance(every, int | float) and 0 < every <= 3600 else 0.0
    health = "fresh" if age <= max(stale, 2 * every) else "stale"
    return Replica(
        id=name, model=model, version=version, alias=_opt_text(doc, "alias"),
        engine=_opt_text(doc, "engine"), host=_opt_text(doc, "host"),
        node=_opt_text(doc, "node"), pid=_opt_int(doc, "pid"), port=_opt_int(doc, "port"),
        url=_opt_text(doc, "url"), started=_opt_text(doc, "started"),
        last_seen=when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        requests=_opt_int(doc, "requests"), rows=_opt_int(doc, "rows"),
        errors=_opt_int(doc, "errors"), age_seconds=round(age, 1), health=health,
        challenger=_opt_text(doc, "challenger"))


def _entries(store: Any) -> Iterator[dict[str, Any]]:
    try:
        listing = store.fs.ls(replicas_dir(store), detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return
    for info in listing:
        if isinstance(info, dict) and info.get("type", "file") == "file":
            yield info


def read_replicas(store: Any, *, now: datetime | None = None, stale: float | None = None
                  ) -> tuple[list[Replica], list[str]]:
    """Every replica reporting to ``store``'s board, and notes on files that were skipped.

    Sorted by model, version, then host and pid.
    """
    now = now or datetime.now(UTC)
    stale = stale_after() if stale is None else stale
    notes: list[str] = []
    candidates: list[tuple[datetime | None, str, str, int | None]] = []
    for info in _entries(store):
        path = str(info.get("name", ""))
        base = path.rsplit("/", 1)[-1]
        if base.startswith("."):  # a writer's temporary file
            continue
        stem = base[:-5] if base.endswith(".json") else ""
        if not _ID.match(stem):
            notes.append(f"Skipped {base[:80]!r} in the replicas folder: not a heartbeat file "
                         "name.")
            continue
        size = info.get("size")
        candidates.append((_mtime(info), path, stem, size if isinstance(size, int) else None))
    candidates.sort(key=lambda c: c[0] or datetime.min.replace(tzinfo=UTC), reverse=True)
    if len(candidates) > MAX_REPLICAS:
        notes.append(f"{len(candidates)} heartbeat files on the board; showing the newest "
                     f"{MAX_REPLICAS}. Remove stale ones with `python -m core endpoints "
                     "prune`.")
        candidates = candidates[:MAX_REPLICAS]
    replicas: list[Replica] = []
    for mtime, path, stem, size in candidates:
        try:
            if size is not None and size > MAX_RECORD_BYTES:
                raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
            raw = store.fs.cat_file(path, start=0, end=MAX_RECORD_BYTES + 1)
            replicas.append(parse_record(raw, name=stem, mtime=mtime, now=now, stale=stale))
        except FileNotFoundError:  # removed by a graceful shutdown meanwhile
            continue
        except ValueError as exc:
            notes.append(f"Skipped heartbeat file {stem[:80]}.json: {exc}.")
        except OSError as exc:
            notes.append(f"Could not read heartbeat file {stem[:80]}.json: {exc}.")
    replicas.sort(key=lambda r: (r.model, r.version, r.host or "", r.pid or 0, r.id))
    return replicas, notes


def served_versions(store: Any, *, now: datetime | None = None) -> list[tuple[str, str]]:
    """``(model, version)`` of every fresh replica reporting to ``store``'s board (local
    endpoints and fleets alike), each once; none when the board's replicas cannot be
    read (the status of aliased versions does not depend on it)."""
    try:
        replicas, _ = read_replicas(store, now=now)
    except (OSError, ValueError):
        return []
    return list(dict.fromkeys((r.model, r.version) for r in replicas if r.health == "fresh"))


def prune(store: Any, *, older_than: float, now: datetime | None = None) -> list[str]:
    """Remove the heartbeat files of replicas not seen for ``older_than`` seconds; their
    ids. Files that are not heartbeats are left alone (the listing notes them)."""
    now = now or datetime.now(UTC)
    replicas, _ = read_replicas(store, now=now, stale=older_than)
    gone = [r.id for r in replicas if r.age_seconds > older_than]
    for replica_id in gone:
        try:
            store.fs.rm_file(replica_file(store, replica_id))
        except FileNotFoundError:
            pass
    return gone
