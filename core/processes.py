"""Questions about other processes on this machine, answered in one place.

``pid_alive`` asks psutil. On Linux, :func:`state` also reads ``/proc/<pid>/stat``
to tell a process that exited (or is a zombie) from one whose pid was given to another
program since (its start time differs).
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one owned by another user counts)."""
    return psutil.pid_exists(pid)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of ``pid`` from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rfind(")") + 2:].split()
    try:
        return rest[0], int(rest[19])
    except (IndexError, ValueError):
        return None


def start_ticks(pid: int) -> int | None:
    stat = proc_stat(pid)
    return stat[1] if stat else None


def parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rfind(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def state(pid: int, started: int | None) -> str:
    """``alive``, ``gone`` or ``reused`` (the pid now belongs to another program), for a
    process that started at ``started`` ticks (None: any start)."""
    if not Path("/proc").is_dir():  # no /proc (not Linux): existence is all we can see
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "gone"
        except PermissionError:  # someone else's process: ours ran as us
            return "reused"
        return "alive"
    stat = proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return "gone"
    if started is not None and stat[1] != started:
        return "reused"
    return "alive"
