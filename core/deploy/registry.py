"""The records of local endpoints: one JSON file per endpoint in a run directory on this
machine, and an ``endpoint`` record on the board for every start and stop (why two
places: see :mod:`core.deploy.endpoints`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core import settings
from core.deploy.challenger import ChallengerOption, recorded_challenger
from core.errors import NotFound
from core.serving.netcheck import url_host
from core.store.paths import endpoints_dir
from core.store.protocols import BoardLike, StoreLike

RECORD_KIND = "endpoint"

log = logging.getLogger(__name__)


@dataclass
class Endpoint:
    """A local endpoint as recorded when it was started."""

    id: str
    name: str
    version: str
    host: str
    port: int
    pid: int
    started: str
    log_file: str
    store: str
    alias: str | None = None
    workers: int = 1
    machine: str = ""
    proc_start: int | None = None
    status: str = "starting"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Base URL a client on this machine uses (the docs page lives here)."""
        return f"http://{url_host(self.host)}:{self.port}"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def label(self) -> str:
        via = f" (via :{self.alias})" if self.alias else ""
        return f"{self.ref}{via} on port {self.port}"

    @property
    def challenger(self) -> ChallengerOption | None:
        """The challenger this endpoint runs next to its version, if any."""
        return recorded_challenger(self.options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Endpoint:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class EndpointStatus:
    """An endpoint as it is now: process state, health and request counts."""

    endpoint: Endpoint
    status: str  # running | starting | unhealthy | crashed | stale
    detail: str = ""
    requests: int | None = None
    errors: int | None = None
    rows: int | None = None

    @property
    def alive(self) -> bool:
        return self.status in ("running", "starting", "unhealthy")


# -- where records live ------------------------------------------------------------------

def run_dir(store: BoardLike) -> Path:
    """The folder on this machine holding the registry files and logs of ``store``."""
    if store.is_local:
        return Path(endpoints_dir(store))
    base = settings.run_dir()
    key = hashlib.sha256(str(store.url).encode()).hexdigest()[:16]
    return Path(base) / "endpoints" / key


def registry_file(folder: Path, endpoint_id: str) -> Path:
    return folder / f"{endpoint_id}.json"


def write_registry(folder: Path, endpoint: Endpoint) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = registry_file(folder, endpoint.id)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(endpoint.to_dict(), indent=1))
    os.replace(tmp, target)


def read_registry(folder: Path) -> list[Endpoint]:
    found: list[Endpoint] = []
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            found.append(Endpoint.from_dict(data if isinstance(data, dict) else {}))
        except (OSError, ValueError, TypeError):
            # A file this module did not write (or a torn one from a crash) is not an
            # endpoint; listing must keep working regardless.
            continue
    return found


def forget(folder: Path, endpoint: Endpoint) -> None:
    """Remove the registry file and the server log (a crash's tail is kept in the board
    record)."""
    for path in (registry_file(folder, endpoint.id), Path(endpoint.log_file)):
        if path.parent == folder:  # never delete a file this module did not create
            path.unlink(missing_ok=True)


def record_event(store: StoreLike, endpoint: Endpoint, event: str, **extra: Any) -> None:
    payload = {"event": event, "id": endpoint.id, "host": endpoint.host,
               "port": endpoint.port, "pid": endpoint.pid, "machine": endpoint.machine,
               "alias": endpoint.alias, "workers": endpoint.workers, "url": endpoint.url,
               "started": endpoint.started, **extra}
    try:
        store.add_record(RECORD_KIND, endpoint.name, payload, version=endpoint.version)
    except NotFound:
        # The version was deleted while it was served: the event goes with the model.
        try:
            store.add_record(RECORD_KIND, endpoint.name, {**payload, "version": endpoint.version})
        except NotFound:
            log.info("not recording %s of %s: the model is gone", event, endpoint.label)


def endpoint_history(store: StoreLike, name: str | None = None) -> list[Any]:
    """Board records of endpoint starts and stops (oldest first), all machines."""
    return list(store.records(RECORD_KIND, name=name))


