"""Local endpoints: start, watch and stop prediction servers as separate processes.

Each endpoint is one ``python -m core serve NAME@VERSION`` process in its own
session (so it outlives the workbench run that started it and can be stopped as a
group), with its output in a log file.

Where endpoints are recorded, and why in two places:

- A small JSON file per running endpoint in a *run directory* on this machine
  (``<board>/.fixative/endpoints/`` for a local board, a per-board folder under
  ``$FIXATIVE_RUN_DIR`` or ``~/.cache/fixative/endpoints/`` for a remote one). A pid,
  a process start time and a log path only mean something on the machine that
  started the process, and their status changes (running, crashed, stopped), which
  an atomic file rewrite expresses and the board's append-only records do not.
- An ``endpoint`` record on the board for every start and stop, so the store's
  history says which version was served where and when, for every machine.

A recorded pid is trusted only while ``/proc`` shows a process with that pid *and*
the same start time: a pid the system has since handed to another program is never
signalled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import processes, settings
from core.errors import Conflict, FixativeError, InvalidArgument, NotFound
from core.serving.engine import check_engine, wants_graph
from core.serving.netcheck import (
    check_host,
    check_port,
    check_workers,
    ensure_port_free,
    listener_pid,
    process_command,
    url_host,
)
from core.store.names import parse_ref
from core.store.paths import endpoints_dir
from core.store.protocols import BoardLike, StoreLike

RECORD_KIND = "endpoint"
START_TIMEOUT = 60.0
STOP_GRACE = 10.0
HEALTH_TIMEOUT = 1.0
LOG_TAIL_LINES = 15
PREDICTION_ROUTES = ("predict", "predict_proba", "invocations")
MAX_BODY_MB = 1024

# Servers started by this process, kept so that poll() reaps them when they exit (no
# zombies) and so that a running one is never garbage-collected (Popen warns then).
_CHILDREN: dict[int, subprocess.Popen] = {}

log = logging.getLogger(__name__)


# -- records ---------------------------------------------------------------------------

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


def _registry_file(folder: Path, endpoint_id: str) -> Path:
    return folder / f"{endpoint_id}.json"


def _write_registry(folder: Path, endpoint: Endpoint) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = _registry_file(folder, endpoint.id)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(endpoint.to_dict(), indent=1))
    os.replace(tmp, target)


def _read_registry(folder: Path) -> list[Endpoint]:
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


def _forget(folder: Path, endpoint: Endpoint) -> None:
    """Remove the registry file and the server log (a crash's tail is kept in the board
    record)."""
    for path in (_registry_file(folder, endpoint.id), Path(endpoint.log_file)):
        if path.parent == folder:  # never delete a file this module did not create
            path.unlink(missing_ok=True)


def _record(store: StoreLike, endpoint: Endpoint, event: str, **extra: Any) -> None:
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


# -- processes ---------------------------------------------------------------------------

def process_start_ticks(pid: int) -> int | None:
    return processes.start_ticks(pid)


def _reap(pid: int) -> None:
    """Collect the exit status of our own exited child so it leaves no zombie."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _CHILDREN[pid]
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def process_state(pid: int, start_ticks: int | None) -> str:
    """``alive``, ``gone`` or ``reused`` (the pid now belongs to another program)."""
    _reap(pid)
    return processes.state(pid, start_ticks)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pid: int, start_ticks: int | None, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if process_state(pid, start_ticks) != "alive":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


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


def _last_error(tail: str) -> str:
    """The CLI's one-line ``error: ...`` from a log tail, if the server printed one."""
    for line in reversed(tail.splitlines()):
        if line.startswith("error: "):
            return line[len("error: "):]
    return ""


# -- HTTP probes -------------------------------------------------------------------------

def _get(url: str, timeout: float) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read(2_000_000).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError, ValueError):
        return None


def health(endpoint: Endpoint, timeout: float = HEALTH_TIMEOUT) -> bool:
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


def request_counts(endpoint: Endpoint, timeout: float = HEALTH_TIMEOUT
                   ) -> tuple[int, int, int] | None:
    """(requests, failed requests, rows) served so far, from ``/metrics``; None if the
    server does not answer. With several workers, the counts of all of them together."""
    answer = _get(endpoint.url + "/metrics", timeout)
    if answer is None or answer[0] != 200:
        return None
    return parse_metrics(answer[1])


# -- start -------------------------------------------------------------------------------

def _repo_root() -> str:
    import core

    return str(Path(core.__file__).resolve().parent.parent)


def _store_location(store: BoardLike) -> str:
    url = str(store.url)
    if "://" not in url and not url.startswith("/"):
        url = str(Path(url).resolve())
    return url


def _owner_by_registry(folder: Path, port: int) -> str | None:
    for endpoint in _read_registry(folder):
        if endpoint.port == port and process_state(endpoint.pid, endpoint.proc_start) == "alive":
            return f"endpoint {endpoint.ref}, pid {endpoint.pid}"
    return None


def serve_command(ref: str, *, store_url: str, host: str, port: int, workers: int = 1,
                  log: bool = True, batching: bool = True, max_body_mb: float | None = None,
                  trusted: Sequence[str] = (), engine: str = "auto",
                  challenger: tuple[str, str] | None = None) -> list[str]:
    """The ``python -m core serve ...`` command line of an endpoint; ``challenger`` is
    ``("shadow", REF)`` or ``("canary", REF:SHARE)``."""
    command = [sys.executable, "-m", "core", "serve", ref, "--store", store_url,
               "--host", host, "--port", str(port), "--workers", str(workers),
               "--engine", check_engine(engine)]
    if not log:
        command.append("--no-log")
    if not batching:
        command.append("--no-batching")
    if max_body_mb is not None:
        command += ["--max-body-mb", repr(float(max_body_mb))]
    for name in trusted:
        command += ["--trust", name]
    if challenger is not None:
        command += [f"--{challenger[0]}", challenger[1]]
    return command


def _challenger_option(store: StoreLike, shadow: str | None, canary: str | None,
                       trusted: Sequence[str]) -> tuple[str, str] | None:
    """``("shadow", NAME@VERSION)`` or ``("canary", NAME@VERSION:SHARE)``, checked and
    pinned to a version before the server starts (None without a challenger)."""
    from core.serving.challenger import parse_canary

    if shadow is not None and canary is not None:
        raise InvalidArgument("Give a shadow or a canary challenger, not both.")
    if shadow is None and canary is None:
        return None
    if shadow is not None:
        name, version = store.resolve(shadow)
        check_challenger_trust(store, name, version, trusted)
        return ("shadow", f"{name}@{version}")
    ref, share = parse_canary(str(canary))
    name, version = store.resolve(ref)
    check_challenger_trust(store, name, version, trusted)
    return ("canary", f"{name}@{version}:{share * 100:g}%")


def check_challenger_trust(store: StoreLike, name: str, version: str,
                            trusted: Sequence[str]) -> None:
    """A challenger served from its verified graph is never unpickled; otherwise its
    model file must be safe or trusted, as the champion's."""
    if not wants_graph("auto", store.compiled(name, version)):
        check_trusted(store, name, version, trusted)


def check_max_body_mb(value: object) -> float:
    try:
        mb = float(str(value))
    except (TypeError, ValueError):
        raise InvalidArgument(f"max body size {str(value)[:40]!r} is not a number of megabytes; "
                              "e.g. 20.") from None
    if not 0 < mb <= MAX_BODY_MB:
        raise InvalidArgument(f"max body size must be more than 0 and at most {MAX_BODY_MB} MB, "
                              f"got {value}.")
    return mb


def check_trusted(store: StoreLike, name: str, version: str, trusted: Sequence[str]) -> None:
    """Refuse at once (not after a server died loading it) a version whose model imports
    names outside the allowlist that ``trusted`` does not name."""
    from core.safety.loader import refuse_untrusted

    refuse_untrusted(store.safety_report(name, version), trusted, f"{name}@{version}")


def start_endpoint(store: StoreLike, ref: str, *, port: int, host: str = "127.0.0.1",
                   workers: int = 1, log: bool = True, batching: bool = True,
                   max_body_mb: float | None = None, trusted: Sequence[str] = (),
                   timeout: float = START_TIMEOUT, engine: str = "auto",
                   shadow: str | None = None, canary: str | None = None) -> Endpoint:
    """Start ``ref`` (``NAME``, ``NAME@VERSION`` or ``NAME:ALIAS``) as a local endpoint.

    ``engine``: auto, sklearn or onnx (see :mod:`core.serving.engine`); a version served
    from its compiled graph needs no trust, since its model file is never loaded.
    ``shadow`` (a REF) or ``canary`` (``REF:SHARE``): a challenger next to it, see
    :mod:`core.serving.challenger`; resolved here like ``ref``.

    Returns once ``/healthz`` answers. The version is resolved here, so an alias that
    moves later does not change what this endpoint serves. Raises :class:`Conflict`
    for a busy port and :class:`FixativeError` with the end of the server's log when
    the process dies or does not answer within ``timeout`` seconds (it is then
    stopped, and nothing is recorded).
    """
    host = check_host(host)
    port = check_port(port)
    workers = check_workers(workers)
    if max_body_mb is not None:
        max_body_mb = check_max_body_mb(max_body_mb)
    if not (isinstance(timeout, int | float) and 0 < timeout < float("inf")):
        raise InvalidArgument(f"timeout must be a positive number of seconds, got {timeout!r}.")
    name, version = store.resolve(ref)
    engine = check_engine(engine)
    report = store.compiled(name, version) if engine != "sklearn" else None
    if not wants_graph(engine, report):
        check_trusted(store, name, version, trusted)
    challenger = _challenger_option(store, shadow, canary, trusted)
    folder = run_dir(store)
    ensure_port_free(host, port, owner=_owner_by_registry(folder, port))

    folder.mkdir(parents=True, exist_ok=True)
    endpoint_id = uuid.uuid4().hex[:12]
    log_file = folder / f"{endpoint_id}.log"
    command = serve_command(f"{name}@{version}", store_url=_store_location(store), host=host,
                            port=port, workers=workers, log=log, batching=batching,
                            max_body_mb=max_body_mb, trusted=trusted, engine=engine,
                            challenger=challenger)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_repo_root(), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    with open(log_file, "ab") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, env=env, cwd=_repo_root(),
                                   start_new_session=True)
    _CHILDREN[process.pid] = process
    endpoint = Endpoint(
        id=endpoint_id, name=name, version=version, host=host, port=port, pid=process.pid,
        started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), log_file=str(log_file),
        store=_store_location(store), alias=parse_ref(ref)[2], workers=workers,
        machine=socket.gethostname(), proc_start=process_start_ticks(process.pid),
        options={"log": log, "batching": batching, "max_body_mb": max_body_mb,
                 "trusted": list(trusted), "engine": engine,
                 **({"challenger": list(challenger)} if challenger else {})})
    _write_registry(folder, endpoint)
    try:
        _wait_ready(endpoint, process, timeout)
        endpoint.status = "running"
        _write_registry(folder, endpoint)
        # Recorded last: an endpoint that could not be recorded is stopped, not left over.
        _record(store, endpoint, "started")
    except BaseException:
        _terminate(process.pid, endpoint.proc_start, grace=2.0)
        process.wait()
        _CHILDREN.pop(process.pid, None)
        _forget(folder, endpoint)
        raise
    return endpoint


def _serves(port: int, pid: int) -> bool:
    """Whether the listener on ``port`` is ``pid`` or one of its workers, so that another
    server that took the port in the meantime is not mistaken for ours. True when /proc
    cannot tell."""
    owner = listener_pid(port)
    return owner is None or owner == pid or processes.parent(owner) == pid


def _wait_ready(endpoint: Endpoint, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            tail = log_tail(endpoint.log_file)
            reason = _last_error(tail) or f"exit code {code}"
            raise FixativeError(f"The server for {endpoint.ref} stopped during start-up "
                                f"({reason}). Last lines of its log:\n{tail}")
        if health(endpoint, timeout=0.5) and _serves(endpoint.port, process.pid):
            return
        if time.monotonic() >= deadline:
            tail = log_tail(endpoint.log_file)
            raise FixativeError(
                f"The server for {endpoint.ref} did not answer {endpoint.url}/healthz within "
                f"{timeout:g} s and was stopped. Last lines of its log:\n{tail}")
        time.sleep(0.1)


# -- list, find, stop ----------------------------------------------------------------------

def endpoint_status(endpoint: Endpoint, *, probe: bool = True) -> EndpointStatus:
    """Process state plus, for a live process, health and request counts."""
    state = process_state(endpoint.pid, endpoint.proc_start)
    if state == "gone":
        tail = log_tail(endpoint.log_file, 3)
        detail = f"process {endpoint.pid} is gone" + (f"; its log ends: {tail}" if tail else "")
        return EndpointStatus(endpoint, "crashed", detail)
    if state == "reused":
        return EndpointStatus(endpoint, "stale",
                              f"pid {endpoint.pid} now belongs to another program "
                              f"({process_command(endpoint.pid) or 'unknown'}); this endpoint "
                              "is gone")
    if not probe:
        return EndpointStatus(endpoint, endpoint.status)
    if not health(endpoint):
        return EndpointStatus(endpoint, "unhealthy" if endpoint.status == "running" else "starting",
                              f"{endpoint.url}/healthz does not answer")
    counts = request_counts(endpoint)
    requests, errors, rows = counts if counts else (None, None, None)
    return EndpointStatus(endpoint, "running", "", requests, errors, rows)


def list_endpoints(store: StoreLike, *, probe: bool = True, name: str | None = None
                   ) -> list[EndpointStatus]:
    """Endpoints of ``store`` started on this machine, with their live status.

    ``probe`` asks each live one for ``/healthz`` and ``/metrics`` (short timeouts).
    Crashed and stale endpoints stay listed until stopped, so a crash is not missed.
    """
    machine = socket.gethostname()
    found = [e for e in _read_registry(run_dir(store))
             if e.machine in ("", machine) and (name is None or e.name == name)]
    found.sort(key=lambda e: e.started)
    return [endpoint_status(e, probe=probe) for e in found]


def serving(store: StoreLike, name: str, version: str) -> list[Endpoint]:
    """Live endpoints on this machine that serve ``name@version``."""
    return [s.endpoint for s in list_endpoints(store, probe=False, name=name)
            if s.endpoint.version == version and s.status not in ("crashed", "stale")]


def find_endpoint(store: StoreLike, key: str | int) -> Endpoint:
    """The endpoint with id ``key`` (a unique prefix will do) or listening on port ``key``."""
    text = str(key).strip()
    machine = socket.gethostname()
    # A board folder shared between machines holds their registries too; a pid only means
    # something on the machine that started it.
    endpoints = [e for e in _read_registry(run_dir(store)) if e.machine in ("", machine)]
    port = int(text) if text.isdigit() and len(text) <= 5 else None
    matches = [e for e in endpoints if e.port == port or (text and e.id.startswith(text))]
    if not matches:
        known = ", ".join(f"{e.id} ({e.label})" for e in endpoints) or "none"
        raise NotFound(f"No endpoint {text!r} on this store. Running endpoints: {known}. "
                       "See `python -m core endpoints list`.")
    if len(matches) > 1:
        raise Conflict(f"{text!r} matches {len(matches)} endpoints; give the full id: "
                       + ", ".join(e.id for e in matches))
    return matches[0]


def _terminate(pid: int, start_ticks: int | None, grace: float) -> str:
    """SIGTERM the server (it flushes its log), SIGKILL its group after ``grace`` s."""
    if process_state(pid, start_ticks) != "alive":
        return "gone"
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "gone"
    if _wait_gone(pid, start_ticks, grace):
        # Workers of a multi-process server leave with their supervisor; make sure.
        _signal_group(pid, signal.SIGKILL)
        return "terminated"
    _signal_group(pid, signal.SIGKILL)
    _wait_gone(pid, start_ticks, 5.0)
    return "killed"


def stop_endpoint(store: StoreLike, key: str | int | Endpoint, *, grace: float = STOP_GRACE
                  ) -> EndpointStatus:
    """Stop an endpoint (id, port or :class:`Endpoint`) and forget it.

    A live server gets SIGTERM, which makes it finish open requests and flush its
    prediction log; after ``grace`` seconds its process group gets SIGKILL. A
    crashed endpoint is just forgotten; a pid now used by another program is never
    signalled. Returns the status it had, with ``detail`` saying what was done.
    """
    endpoint = key if isinstance(key, Endpoint) else find_endpoint(store, key)
    before = endpoint_status(endpoint, probe=False)
    if before.status == "stale":
        outcome = "forgotten (its pid belongs to another program now; nothing was signalled)"
        event = "stale"
    elif before.status == "crashed":
        outcome = "forgotten (it had already stopped)"
        event = "crashed"
    else:
        how = _terminate(endpoint.pid, endpoint.proc_start, grace)
        outcome = {"terminated": "stopped", "killed": f"killed after {grace:g} s",
                   "gone": "stopped"}[how]
        event = "stopped" if how != "killed" else "killed"
    extra = {"log_tail": log_tail(endpoint.log_file)} if event in ("crashed", "killed") else {}
    _forget(run_dir(store), endpoint)
    _record(store, endpoint, event, stopped=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **extra)
    before.detail = outcome
    return before
