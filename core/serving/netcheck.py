"""Checks on where a server may listen: host addresses, port numbers, busy ports.

Used by ``serve`` before it loads a model and by the local endpoint manager before it
starts a process, so that a mistake gets one clear sentence instead of a uvicorn
traceback.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from pathlib import Path

from core.errors import Conflict, InvalidArgument

MAX_WORKERS = 64
LOCAL_HOSTS = {"localhost": "127.0.0.1"}
_HOST_HINT = "use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"


def check_host(host: str) -> str:
    """The host as an IP address string; ``localhost`` becomes 127.0.0.1."""
    text = str(host).strip()
    if text.lower() in LOCAL_HOSTS:
        return LOCAL_HOSTS[text.lower()]
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        shown = text[:60] + ("…" if len(text) > 60 else "")
        raise InvalidArgument(f"host {shown!r} is not an IP address; {_HOST_HINT}.") from None


def check_port(port: object, *, allow_zero: bool = False) -> int:
    """A port number between 1 and 65535 (0 too when ``allow_zero``: any free port)."""
    low = 0 if allow_zero else 1
    try:
        value = int(str(port).strip())
    except (TypeError, ValueError):
        shown = str(port)[:40]
        raise InvalidArgument(f"port {shown!r} is not a number; give a port between 1 and 65535, "
                              "e.g. 8080.") from None
    if not low <= value <= 65535:
        raise InvalidArgument(f"port {value} is out of range; give a port between 1 and 65535, "
                              "e.g. 8080.")
    return value


def check_workers(workers: object) -> int:
    """A worker count between 1 and :data:`MAX_WORKERS`."""
    cores = os.cpu_count() or 1
    hint = (f"one per CPU core is a good start (this machine has {cores})")
    try:
        value = int(str(workers).strip())
    except (TypeError, ValueError):
        raise InvalidArgument(f"workers {str(workers)[:40]!r} is not a whole number; "
                              f"{hint}.") from None
    if not 1 <= value <= MAX_WORKERS:
        raise InvalidArgument(f"workers must be between 1 and {MAX_WORKERS}, got {value}; {hint}.")
    return value


def connect_host(host: str) -> str:
    """The address a client on this machine uses to reach a server bound to ``host``."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def url_host(host: str) -> str:
    """``host`` as written inside a URL (IPv6 in brackets)."""
    host = connect_host(host)
    return f"[{host}]" if ":" in host else host


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_is_free(host: str, port: int) -> bool:
    try:
        ensure_port_free(host, port)
    except Conflict:
        return False
    return True


def ensure_port_free(host: str, port: int, *, hint: str = "choose another port",
                     owner: str | None = None) -> None:
    """Raise :class:`Conflict` (or :class:`InvalidArgument`) unless ``host:port`` can be bound.

    Binds the way uvicorn does (``SO_REUSEADDR``), so a port in TIME_WAIT after a
    server stopped counts as free, while a port another program listens on does not.
    """
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            who = owner or listener_description(port)
            by = f" (by {who})" if who else ""
            raise Conflict(f"port {port} is already in use{by}; {hint}.") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise InvalidArgument(f"not allowed to listen on port {port} (ports below 1024 need "
                                  f"administrator rights); {hint} above 1023.") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise InvalidArgument(f"host {host} is not an address of this machine; "
                                  f"{_HOST_HINT}.") from None
        raise
    finally:
        sock.close()


def free_port(host: str = "127.0.0.1", preferred: int | None = None, span: int = 100) -> int:
    """``preferred`` or the next free port above it; any free port when none is given."""
    if preferred is not None:
        for port in range(preferred, min(preferred + span, 65536)):
            if port_is_free(host, port):
                return port
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
    finally:
        sock.close()


# -- who listens on a port (Linux /proc; best effort, own processes only unless root) -----

def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A: LISTEN
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port:
                inodes.add(fields[9])
    return inodes


def listener_pid(port: int) -> int | None:
    """The pid of a process listening on ``port``, when /proc can tell."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in targets:
                    return int(entry.name)
        except OSError:
            continue
    return None


def process_command(pid: int, limit: int = 80) -> str | None:
    """A short command line of ``pid`` (for messages), None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    parts = [p.decode("utf-8", "replace") for p in raw.split(b"\0") if p]
    if not parts:
        return None
    parts[0] = os.path.basename(parts[0])
    text = " ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def listener_description(port: int) -> str | None:
    pid = listener_pid(port)
    if pid is None:
        return None
    command = process_command(pid)
    return f"pid {pid}: {command}" if command else f"pid {pid}"
