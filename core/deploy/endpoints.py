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

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import processes
from core.deploy.challenger import ChallengerOption, challenger_option
from core.deploy.challenger import check_challenger_trust as check_challenger_trust
from core.deploy.probes import health, last_error, log_tail, request_counts
from core.deploy.probes import parse_metrics as parse_metrics
from core.deploy.registry import RECORD_KIND as RECORD_KIND
from core.deploy.registry import (
    Endpoint,
    EndpointStatus,
    forget,
    read_registry,
    record_event,
    run_dir,
    write_registry,
)
from core.deploy.registry import endpoint_history as endpoint_history
from core.errors import Conflict, FixativeError, InvalidArgument, NotFound
from core.serving.engine import check_engine, wants_graph
from core.serving.netcheck import (
    check_host,
    check_port,
    check_workers,
    ensure_port_free,
    listener_pid,
    port_is_free,
    process_command,
)
from core.store.names import parse_ref
from core.store.protocols import BoardLike, StoreLike

START_TIMEOUT = 60.0
STOP_GRACE = 10.0
MAX_BODY_MB = 1024

# Servers started by this process, kept so that poll() reaps them when they exit (no
# zombies) and so that a running one is never garbage-collected (Popen warns then).
_CHILDREN: dict[int, subprocess.Popen] = {}

log = logging.getLogger(__name__)


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
    for endpoint in read_registry(folder):
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
    :mod:`core.serving.challenger`; resolved here like ``ref`` and checked against it
    (same prototype and task, trust) before anything starts.

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
    _check_timeout(timeout)
    name, version = store.resolve(ref)
    engine = check_engine(engine)
    report = store.compiled(name, version) if engine != "sklearn" else None
    if not wants_graph(engine, report):
        check_trusted(store, name, version, trusted)
    challenger = challenger_option(store, (name, version), shadow=shadow, canary=canary,
                                   trusted=trusted)
    ensure_port_free(host, port, owner=_owner_by_registry(run_dir(store), port))
    options = {"log": log, "batching": batching, "max_body_mb": max_body_mb,
               "trusted": list(trusted), "engine": engine}
    return _launch(store, name, version, parse_ref(ref)[2], host=host, port=port,
                   workers=workers, options=options, challenger=challenger, timeout=timeout)


def _check_timeout(timeout: object) -> None:
    if not (isinstance(timeout, int | float) and 0 < timeout < float("inf")):
        raise InvalidArgument(f"timeout must be a positive number of seconds, got {timeout!r}.")


def _launch(store: StoreLike, name: str, version: str, alias: str | None, *, host: str,
            port: int, workers: int, options: dict[str, Any],
            challenger: ChallengerOption | None, timeout: float,
            endpoint_id: str | None = None) -> Endpoint:
    """Start the server of checked arguments; ``options`` as recorded (log, batching,
    max_body_mb, trusted, engine)."""
    folder = run_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    endpoint_id = endpoint_id or uuid.uuid4().hex[:12]
    log_file = folder / f"{endpoint_id}.log"
    options = {k: v for k, v in options.items() if k != "challenger"}
    if challenger is not None:
        options["challenger"] = list(challenger.flag)
    command = serve_command(f"{name}@{version}", store_url=_store_location(store), host=host,
                            port=port, workers=workers, log=bool(options.get("log", True)),
                            batching=bool(options.get("batching", True)),
                            max_body_mb=options.get("max_body_mb"),
                            trusted=list(options.get("trusted") or ()),
                            engine=str(options.get("engine") or "auto"),
                            challenger=challenger.flag if challenger else None)
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
        store=_store_location(store), alias=alias, workers=workers,
        machine=socket.gethostname(), proc_start=process_start_ticks(process.pid),
        options=options)
    write_registry(folder, endpoint)
    try:
        _wait_ready(endpoint, process, timeout)
        endpoint.status = "running"
        write_registry(folder, endpoint)
        # Recorded last: an endpoint that could not be recorded is stopped, not left over.
        record_event(store, endpoint, "started",
                **({"challenger": challenger.to_dict()} if challenger else {}))
    except BaseException:
        _terminate(process.pid, endpoint.proc_start, grace=2.0)
        process.wait()
        _CHILDREN.pop(process.pid, None)
        forget(folder, endpoint)
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
            reason = last_error(tail) or f"exit code {code}"
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
    found = [e for e in read_registry(run_dir(store))
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
    endpoints = [e for e in read_registry(run_dir(store)) if e.machine in ("", machine)]
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
    forget(run_dir(store), endpoint)
    record_event(store, endpoint, event,
                 stopped=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), **extra)
    before.detail = outcome
    return before


# -- change the challenger -----------------------------------------------------------------

def set_challenger(store: StoreLike, key: str | int | Endpoint, *, shadow: str | None = None,
                   canary: str | None = None, stop: bool = False,
                   timeout: float = START_TIMEOUT, grace: float = STOP_GRACE) -> Endpoint:
    """Give a running endpoint (id, port or :class:`Endpoint`) a new challenger
    (``shadow``: a REF; ``canary``: ``REF:SHARE``), or none (``stop=True``).

    The server is restarted on the same port with the same options (its version, engine,
    workers, prediction log, batching, body limit and trust; the endpoint keeps its id)
    and the new challenger. Everything is checked before the running server is touched:
    a challenger that is unknown, does not take the champion's inputs, does another task
    or needs trust the endpoint was not given is refused and the endpoint keeps running
    as it is. When the new server does not start, the endpoint is started again as it
    was and :class:`FixativeError` says why; if that fails too, it says the endpoint is
    stopped. Returns the restarted endpoint (the same one when nothing changes).
    """
    _check_timeout(timeout)
    if shadow is not None and canary is not None:
        raise InvalidArgument("Give a shadow or a canary challenger, not both.")
    if stop and (shadow is not None or canary is not None):
        raise InvalidArgument("Give a new challenger or stop the one that runs, not both.")
    if not stop and shadow is None and canary is None:
        raise InvalidArgument("Say what to run next to the endpoint: a shadow challenger (REF), "
                              "a canary (REF:SHARE, e.g. churn@v2:10%), or stop its "
                              "challenger.")
    # read again: another session may have restarted it since ``key`` was listed
    endpoint = find_endpoint(store, key.id if isinstance(key, Endpoint) else key)
    state = endpoint_status(endpoint, probe=False)
    if not state.alive:
        raise Conflict(f"The endpoint {endpoint.label} is not running ({state.detail}); stop "
                       f"it with `python -m core endpoints stop {endpoint.id}` and start it "
                       "again with the challenger you want.")
    options = dict(endpoint.options)
    trusted = [str(t) for t in options.get("trusted") or ()]
    # the champion as it will be started again: its version must still be there and loadable
    engine = check_engine(str(options.get("engine") or "auto"))
    if not wants_graph(engine, store.compiled(endpoint.name, endpoint.version)
                       if engine != "sklearn" else None):
        check_trusted(store, endpoint.name, endpoint.version, trusted)
    current = endpoint.challenger
    new = None if stop else challenger_option(
        store, (endpoint.name, endpoint.version), shadow=shadow, canary=canary,
        trusted=trusted)
    if new == current:
        return endpoint

    stop_endpoint(store, endpoint, grace=grace)
    _wait_port_free(endpoint.host, endpoint.port)

    def launch(challenger: ChallengerOption | None) -> Endpoint:
        return _launch(store, endpoint.name, endpoint.version, endpoint.alias,
                       host=endpoint.host, port=endpoint.port, workers=endpoint.workers,
                       options=options, challenger=challenger, timeout=timeout,
                       endpoint_id=endpoint.id)

    try:
        return launch(new)
    except FixativeError as exc:
        failure = exc.message
    what = new.text if new else "no challenger"
    try:
        again = launch(current)
    except FixativeError as exc:
        raise FixativeError(
            f"{endpoint.label} did not start with {what} and could not be started again as "
            f"it was, so it is stopped. Start it with `python -m core endpoints start "
            f"{endpoint.ref} --port {endpoint.port}`. Why:\n{failure}\n{exc.message}") from None
    raise FixativeError(f"{endpoint.label} did not start with {what}, so it runs again as it "
                        f"was (pid {again.pid}). Why:\n{failure}")


def _wait_port_free(host: str, port: int, seconds: float = 10.0) -> None:
    """Wait until the stopped server's port can be bound again (its workers may take a
    moment to close it); the start that follows says so if it cannot."""
    deadline = time.monotonic() + seconds
    while not port_is_free(host, port) and time.monotonic() < deadline:
        time.sleep(0.05)
