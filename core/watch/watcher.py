"""The watcher: each aliased model's monitoring evaluated on its schedule, on the board.

For every model with an alias and an enabled watch (:mod:`core.watch.config`), the
schedule's times ("ticks") since the last evaluation are evaluated in order, each with
the model's thresholds over the windows that had closed by then
(:func:`core.monitoring.thresholds.status` at that time). Every evaluation is written
to the board::

    <board>/.fixative/watch/<model>/<tick>.claim   who took the tick, and when
    <board>/.fixative/watch/<model>/<tick>.json    the evaluation: who, when, each aliased
                                                   version's status and marks, and what
                                                   was sent to whom
    <board>/.fixative/watch/<model>/latest.json    the last evaluation's tick and the last
                                                   judged status of each version

**Twice at once.** A tick is taken by creating its ``.claim`` file exclusively (an
``O_EXCL`` create on a folder, a conditional ``If-None-Match`` write on S3): of two
watchers only one gets it. A watcher that finds an earlier tick of the model taken
but not finished stops on that model until the next pass (unless the claim is older
than ``LEASE_SECONDS``: its watcher is gone, and the tick is skipped), so the status
a change is judged against is always the one just before it.

**Restarts.** Everything a watcher knows is on the board: after a restart it reads
``latest.json``, evaluates the ticks it missed (at most ``MAX_CATCHUP``, the latest)
and never sends again what was sent. A first run evaluates only the latest tick.

**Notifications** go out when a version's status changes between ok, warning and
alert (in either direction); "none" (nothing judged) changes nothing, and a version
seen for the first time is announced only when it is not ok.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from core.errors import FixativeError
from core.model.bundle import current_user
from core.monitoring import thresholds
from core.serving import heartbeat
from core.store.paths import watch_dir
from core.store.protocols import StoreLike
from core.watch import config as watch_config
from core.watch import notify

LEASE_SECONDS = 600
MAX_CATCHUP = 48
POLL_SECONDS = 30.0
JUDGED = ("ok", "warning", "alert")
FIRST_RUN_LOOKBACK = timedelta(days=400)


def who() -> str:
    return f"{current_user()} on {socket.gethostname()}, pid {os.getpid()}"


def tick_id(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _parse_tick(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _read(store: StoreLike, path: str) -> dict[str, Any] | None:
    try:
        with store.fs.open(path, "rb") as f:
            data = json.loads(f.read())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(store: StoreLike, path: str, data: dict[str, Any]) -> None:
    tmp = f"{path.rsplit('/', 1)[0]}/.{uuid.uuid4().hex[:8]}.tmp"
    with store.fs.open(tmp, "wb") as f:
        f.write(json.dumps(data, allow_nan=False, default=str).encode())
    store.fs.mv(tmp, path)


def claim(store: StoreLike, name: str, tick: datetime) -> bool:
    """Take ``tick`` of model ``name`` for this process; False when another has it."""
    folder = watch_dir(store, name)
    store.fs.makedirs(folder, exist_ok=True)
    body = json.dumps({"who": who(), "at": datetime.now(UTC).isoformat()}).encode()
    try:
        with store.fs.open(f"{folder}/{tick_id(tick)}.claim", "xb") as f:
            f.write(body)
    except FileExistsError:
        return False
    return True


def latest(store: StoreLike, name: str) -> dict[str, Any] | None:
    return _read(store, f"{watch_dir(store, name)}/latest.json")


def evaluations(store: StoreLike, name: str, limit: int = 200) -> list[dict[str, Any]]:
    """The model's recorded evaluations, newest first (at most ``limit``)."""
    try:
        files = store.fs.glob(f"{watch_dir(store, name)}/*.json")
    except FileNotFoundError:
        return []
    ticks = sorted((f for f in files if not f.endswith("/latest.json")), reverse=True)
    found = (_read(store, f) for f in ticks[:limit])
    return [r for r in found if r is not None]


def _value(v: Any) -> float | None:
    return float(v) if v is not None and not pd.isna(v) else None


def _evaluate(store: StoreLike, name: str, tick: datetime, judged: dict[str, str],
              cfg: watch_config.WatchConfig, sleep: Callable[[float], None]) -> dict[str, Any]:
    settings = thresholds.load(store, name)
    record: dict[str, Any] = {"model": name, "tick": tick.isoformat(), "who": who(),
                              "evaluated_at": datetime.now(UTC).isoformat(),
                              "window": settings.window, "versions": [], "notifications": []}
    try:
        # aliased versions, and versions endpoints serve without an alias
        statuses = thresholds.status(store, name, now=tick,
                                     also=heartbeat.served_versions(store))
    except FixativeError as exc:
        record["error"] = exc.message
        return record
    changes = []
    for s in statuses:
        entry: dict[str, Any] = {
                 "model": name, "version": s.version, "aliases": s.aliases, "status": s.status,
                 "window_start": s.window_start.isoformat() if s.window_start is not None
                 else None, "metric": s.metric, "value": _value(s.value),
                 "warning": s.warning, "alert": s.alert, "n": s.n, "alerts": s.alerts,
                 "warnings": s.warnings, "message": s.message, "tick": tick.isoformat()}
        previous = judged.get(s.version)
        entry["previous"] = previous
        record["versions"].append(entry)
        if s.status in JUDGED:
            if s.status != previous and (previous is not None or s.status != "ok"):
                changes.append((entry, previous))
            judged[s.version] = s.status
    record["judged"] = dict(judged)
    path = f"{watch_dir(store, name)}/{tick_id(tick)}.json"
    record["notifications"] = [{"version": e["version"], "status": e["status"],
                                "previous": p, "pending": True} for e, p in changes]
    _write(store, path, record)  # the evaluation is on the board before anything is sent
    sent = []
    for entry, previous in changes:
        rule = settings.rule(str(entry["metric"])) if entry["metric"] else None
        data = notify.payload(entry, previous=previous, window=settings.window,
                              direction=rule.direction if rule else "")
        for channel in cfg.channels:
            result = notify.deliver(store, channel, data, retries=cfg.retries,
                                    backoff=cfg.backoff, sleep=sleep)
            sent.append({"version": entry["version"], "status": entry["status"],
                         "previous": previous, **result})
        if not cfg.channels:
            sent.append({"version": entry["version"], "status": entry["status"],
                         "previous": previous, "channel": None, "delivered": False,
                         "attempts": 0, "error": "no channel: add one with watch-set"})
    record["notifications"] = sent
    _write(store, path, record)
    return record


def _stale(store: StoreLike, path: str, now: datetime) -> bool:
    data = _read(store, path) or {}
    try:
        at = datetime.fromisoformat(str(data.get("at")))
    except ValueError:
        return True
    return (now - at).total_seconds() > LEASE_SECONDS


def _newest_claim(store: StoreLike, folder: str) -> datetime | None:
    try:
        names = [p.rsplit("/", 1)[-1] for p in store.fs.glob(f"{folder}/*.claim")]
    except FileNotFoundError:
        return None
    ticks = []
    for n in names:
        try:
            ticks.append(_parse_tick(n[:-len(".claim")]))
        except ValueError:
            continue
    return max(ticks) if ticks else None


def watch_model(store: StoreLike, name: str, now: datetime,
                sleep: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """Evaluate model ``name``'s due ticks up to ``now``; returns the evaluations made."""
    cfg = watch_config.load(store, name)
    if not cfg.enabled or not store.aliases(name):
        return []
    schedule = watch_config.schedule_for(store, name, cfg)
    last = latest(store, name)
    judged: dict[str, str] = dict((last or {}).get("judged") or {})
    folder = watch_dir(store, name)
    if not (last and last.get("tick")):
        # No evaluation finished yet; another watcher may be on its first one.
        held = _newest_claim(store, folder)
        if held is not None:
            base = f"{folder}/{tick_id(held)}"
            finished = _read(store, f"{base}.json")
            if finished is None and not _stale(store, f"{base}.claim", datetime.now(UTC)):
                return []
            last = {"tick": held.isoformat(), "judged": (finished or {}).get("judged") or {}}
            judged = dict(last["judged"])
    if last and last.get("tick"):
        after = datetime.fromisoformat(str(last["tick"]))
        ticks = watch_config.ticks_between(schedule, after, now, MAX_CATCHUP)
    else:
        ticks = watch_config.ticks_between(schedule, now - FIRST_RUN_LOOKBACK, now, 1)
    done = []
    for tick in ticks:
        base = f"{folder}/{tick_id(tick)}"
        if not claim(store, name, tick):
            finished = _read(store, f"{base}.json")
            if finished is not None:
                judged = dict(finished.get("judged") or judged)
                continue
            if _stale(store, f"{base}.claim", datetime.now(UTC)):
                continue  # its watcher is gone: the tick is skipped
            break  # another watcher is on it: the next ticks wait for its result
        record = _evaluate(store, name, tick, judged, cfg, sleep)
        done.append(record)
        _write(store, f"{folder}/latest.json", {"tick": tick.isoformat(), "judged": judged})
    return done


def run_once(store: StoreLike, now: datetime | None = None, names: Sequence[str] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """One pass over every aliased model (or ``names``)."""
    now = now or datetime.now(UTC)
    out = []
    for name in names or [m.name for m in store.list_models()]:
        out += watch_model(store, name, now, sleep)
    return out


def next_wake(store: StoreLike, now: datetime) -> float:
    """Seconds until the next tick of any watched model (at most ``POLL_SECONDS``)."""
    from croniter import croniter

    wait = POLL_SECONDS
    for m in store.list_models():
        cfg = watch_config.load(store, m.name)
        if not cfg.enabled or not store.aliases(m.name):
            continue
        nxt = croniter(watch_config.schedule_for(store, m.name, cfg), now).get_next(datetime)
        wait = min(wait, max((nxt - now).total_seconds(), 0.0))
    return wait


def run(store: StoreLike, stop: threading.Event, log: Callable[[str], None] = print) -> None:
    """Watch until ``stop`` is set: a pass, then sleep until the next tick."""
    log(f"watching {store.url} as {who()}")
    while not stop.is_set():
        try:
            for r in run_once(store):
                states = ", ".join(f"{v['version']}: {v['status']}" for v in r["versions"])
                log(f"{r['model']} at {r['tick']}: {states or r.get('error') or 'no version'}")
        except FixativeError as exc:
            log(f"error: {exc.message}")
        stop.wait(next_wake(store, datetime.now(UTC)) + 0.5)
